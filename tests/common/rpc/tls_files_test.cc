// CheckServerCertificate / CheckCaFile on certificates made by openssl at
// test time: what they report, and each way a file can be unusable.
#include "common/rpc/tls_files.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/temp_files.h"
#include "tests/testing/test_pki.h"

namespace elasticbatch::rpc {
namespace {

using ::testing::HasSubstr;

class TlsFilesTest : public ::testing::Test {
 protected:
  void SetUp() override {
    absl::StatusOr<testing::TestCa> ca =
        testing::TestCa::Create(dir_.path() + "/ca", "Unit CA");
    ASSERT_TRUE(ca.ok()) << ca.status();
    ca_file_ = ca->cert_file();
    absl::StatusOr<testing::CertPair> a =
        ca->Issue(dir_.path() + "/a", "master-a", "IP:127.0.0.1,DNS:master.example");
    absl::StatusOr<testing::CertPair> b = ca->Issue(dir_.path() + "/b", "master-b", "");
    ASSERT_TRUE(a.ok() && b.ok());
    a_ = *a;
    b_ = *b;
  }
  testing::TempDir dir_;
  std::string ca_file_;
  testing::CertPair a_, b_;
};

TEST_F(TlsFilesTest, AGoodPairIsDescribed) {
  absl::StatusOr<CertificateSummary> s =
      CheckServerCertificate(a_.cert_file, a_.key_file, absl::Now());
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_THAT(s->subject, HasSubstr("master-a"));
  EXPECT_THAT(s->subject_alt_names, HasSubstr("127.0.0.1"));
  EXPECT_THAT(s->subject_alt_names, HasSubstr("master.example"));
  EXPECT_GT(s->not_after, absl::Now());
  EXPECT_EQ(s->sha256.size(), 64u);
  EXPECT_THAT(s->Describe(), HasSubstr("valid until"));
  EXPECT_EQ(*CheckCaFile(ca_file_), 1);
}

TEST_F(TlsFilesTest, EachUnusableFileIsNamedWithWhatIsWrong) {
  testing::WriteFileOrDie(dir_.path() + "/junk.pem", "not a certificate\n");
  const std::string junk = dir_.path() + "/junk.pem";
  const std::string missing = dir_.path() + "/missing.pem";
  struct Case {
    std::string cert, key, message;
  };
  for (const Case& c : std::vector<Case>{
           {a_.cert_file, b_.key_file, "does not belong"},
           {junk, a_.key_file, "no PEM certificate"},
           {a_.cert_file, junk, "no unencrypted PEM private key"},
           {missing, a_.key_file, "cannot read"},
           {a_.cert_file, missing, "cannot read"},
           // A key in the certificate's place and the other way round.
           {a_.key_file, a_.cert_file, "no PEM certificate"},
       }) {
    absl::StatusOr<CertificateSummary> s =
        CheckServerCertificate(c.cert, c.key, absl::Now());
    EXPECT_EQ(s.status().code(), absl::StatusCode::kInvalidArgument) << c.message;
    EXPECT_THAT(std::string(s.status().message()), HasSubstr(c.message));
  }
  EXPECT_THAT(std::string(CheckCaFile(junk).status().message()), HasSubstr(junk));
  EXPECT_FALSE(CheckCaFile(dir_.path()).ok());  // a directory
}

TEST_F(TlsFilesTest, ACertificateOutsideItsValidityIsRefused) {
  absl::StatusOr<CertificateSummary> now =
      CheckServerCertificate(a_.cert_file, a_.key_file, absl::Now());
  ASSERT_TRUE(now.ok());
  absl::StatusOr<CertificateSummary> later =
      CheckServerCertificate(a_.cert_file, a_.key_file, now->not_after + absl::Hours(1));
  EXPECT_THAT(std::string(later.status().message()), HasSubstr("expired on"));
  absl::StatusOr<CertificateSummary> earlier =
      CheckServerCertificate(a_.cert_file, a_.key_file, now->not_before - absl::Hours(1));
  EXPECT_THAT(std::string(earlier.status().message()), HasSubstr("valid only from"));
}

}  // namespace
}  // namespace elasticbatch::rpc
