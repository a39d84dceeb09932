// The client side of the security contract: where a token comes from, what
// the TLS variables mean, and which call failures get which hint.
#include "common/rpc/client_channel.h"

#include <cstdlib>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/temp_files.h"

namespace elasticbatch::rpc {
namespace {

using ::testing::HasSubstr;

const std::string kToken(64, 'a');

class ClientChannelTest : public ::testing::Test {
 protected:
  void SetUp() override { Clear(); }
  void TearDown() override { Clear(); }
  static void Clear() {
    for (const char* v : {kTokenVar, kTokenFileVar, kAdminTokenVar, kTlsVar, kTlsCaVar,
                          kTlsCertVar, kTlsKeyVar, kTlsServerNameVar}) {
      unsetenv(v);
    }
  }
  testing::TempDir dir_;
};

TEST_F(ClientChannelTest, TheTokenComesFromTheVariableOrTheFileButNotBoth) {
  EXPECT_EQ(*TokenFromEnvironment(kTokenVar, kTokenFileVar), "");
  setenv(kTokenVar, (" " + kToken + "\n").c_str(), 1);
  EXPECT_EQ(*TokenFromEnvironment(kTokenVar, kTokenFileVar), kToken);
  testing::WriteFileOrDie(dir_.path() + "/t", kToken + "\n");
  setenv(kTokenFileVar, (dir_.path() + "/t").c_str(), 1);
  absl::StatusOr<std::string> both = TokenFromEnvironment(kTokenVar, kTokenFileVar);
  EXPECT_EQ(both.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(both.status().message()), HasSubstr("set one"));
  unsetenv(kTokenVar);
  EXPECT_EQ(*TokenFromEnvironment(kTokenVar, kTokenFileVar), kToken);
  EXPECT_EQ(WorkerSecurityFromEnvironment()->token, kToken);

  setenv(kTokenFileVar, (dir_.path() + "/absent").c_str(), 1);
  absl::StatusOr<std::string> absent = TokenFromEnvironment(kTokenVar, kTokenFileVar);
  EXPECT_FALSE(absent.ok());
  EXPECT_THAT(std::string(absent.status().message()), HasSubstr(kTokenFileVar));
  unsetenv(kTokenFileVar);
  setenv(kTokenVar, "too-short", 1);
  EXPECT_EQ(TokenFromEnvironment(kTokenVar, nullptr).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST_F(ClientChannelTest, TlsVariablesTurnTlsOnAndExplicitSettingsWin) {
  ClientSecurity plain;
  ASSERT_TRUE(TlsFromEnvironment(&plain).ok());
  EXPECT_FALSE(UsesTls(plain));

  setenv(kTlsVar, "TRUE", 1);
  ClientSecurity system_store;
  ASSERT_TRUE(TlsFromEnvironment(&system_store).ok());
  EXPECT_TRUE(UsesTls(system_store));
  EXPECT_EQ(system_store.tls_ca_file, "");

  setenv(kTlsVar, "yes please", 1);
  ClientSecurity bad;
  EXPECT_EQ(TlsFromEnvironment(&bad).code(), absl::StatusCode::kInvalidArgument);
  unsetenv(kTlsVar);

  setenv(kTlsCaVar, "/env/ca.pem", 1);
  setenv(kTlsServerNameVar, "master.example", 1);
  ClientSecurity given;
  given.tls_ca_file = "/flag/ca.pem";
  ASSERT_TRUE(TlsFromEnvironment(&given).ok());
  EXPECT_EQ(given.tls_ca_file, "/flag/ca.pem");
  EXPECT_EQ(given.tls_server_name, "master.example");
  EXPECT_TRUE(UsesTls(given));
}

TEST_F(ClientChannelTest, UnusableTlsFilesAreRefusedBeforeAnyCall) {
  ClientSecurity half;
  half.tls_cert_file = dir_.path() + "/client.crt";
  EXPECT_THAT(std::string(NewClientChannel("127.0.0.1:1", half, {}).status().message()),
              HasSubstr("both"));
  ClientSecurity missing;
  missing.tls_ca_file = dir_.path() + "/missing.pem";
  EXPECT_THAT(
      std::string(NewClientChannel("127.0.0.1:1", missing, {}).status().message()),
      HasSubstr("missing.pem"));
  testing::WriteFileOrDie(dir_.path() + "/junk.pem", "junk");
  ClientSecurity junk;
  junk.tls_ca_file = dir_.path() + "/junk.pem";
  EXPECT_THAT(std::string(NewClientChannel("127.0.0.1:1", junk, {}).status().message()),
              HasSubstr("no PEM block"));
  ClientSecurity none;
  EXPECT_TRUE(NewClientChannel("127.0.0.1:1", none, {}).ok());
}

TEST_F(ClientChannelTest, FailedCallsGetAHintOfWhatToCheck) {
  ClientSecurity tls;
  tls.tls_ca_file = "/etc/eb/ca.pem";
  const grpc::Status handshake(grpc::StatusCode::UNAVAILABLE,
                               "failed to connect to all addresses; last error: UNKNOWN: "
                               "ipv4:127.0.0.1:5: Ssl handshake failed: SSL_ERROR_SSL");
  EXPECT_TRUE(IsTlsHandshakeFailure(handshake));
  EXPECT_THAT(DescribeCallError(handshake, "m:1", tls), HasSubstr("/etc/eb/ca.pem"));
  EXPECT_THAT(DescribeCallError(handshake, "m:1", ClientSecurity()),
              HasSubstr("ELASTICBATCH_TLS_CA"));
  // A host name that happens to contain "tls" is no TLS failure.
  EXPECT_FALSE(
      IsTlsHandshakeFailure(grpc::Status(grpc::StatusCode::UNAVAILABLE,
                                         "DNS resolution failed for tls-master:23456: "
                                         "handshake with the resolver failed")));
  const grpc::Status refused(grpc::StatusCode::UNAVAILABLE,
                             "failed to connect to all addresses; Connection refused");
  EXPECT_FALSE(IsTlsHandshakeFailure(refused));
  EXPECT_EQ(DescribeCallError(refused, "m:1", tls),
            "m:1: failed to connect to all addresses; Connection refused");
  const grpc::Status closed(
      grpc::StatusCode::UNAVAILABLE,
      "failed to connect to all addresses; last error: UNAVAILABLE: "
      "ipv4:127.0.0.1:5: Socket closed");
  EXPECT_TRUE(IsConnectionClosedByMaster(closed));
  EXPECT_FALSE(IsConnectionClosedByMaster(refused));
  EXPECT_THAT(DescribeCallError(closed, "m:1", tls), HasSubstr("ELASTICBATCH_TLS_CERT"));
  EXPECT_THAT(DescribeCallError(closed, "m:1", ClientSecurity()),
              HasSubstr("ELASTICBATCH_TLS_CA"));
  const grpc::Status unauthenticated(grpc::StatusCode::UNAUTHENTICATED, "no token");
  EXPECT_THAT(DescribeCallError(unauthenticated, "m:1", ClientSecurity()),
              HasSubstr("ELASTICBATCH_TOKEN"));
  ClientSecurity with_token;
  with_token.token = kToken;
  EXPECT_THAT(DescribeCallError(unauthenticated, "m:1", with_token),
              HasSubstr("refused"));
}

}  // namespace
}  // namespace elasticbatch::rpc
