#include "common/rpc/client_channel.h"

#include <grpcpp/create_channel.h>
#include <grpcpp/security/credentials.h>

#include <cstdlib>
#include <fstream>
#include <sstream>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/auth/token.h"

namespace elasticbatch::rpc {
namespace {

// Far above any real certificate bundle; keeps a hostile path (a device, a
// huge file) from being read whole.
constexpr std::streamsize kMaxPemBytes = 4 << 20;

const char* NonEmptyEnv(const char* name) {
  if (name == nullptr) return nullptr;
  const char* value = std::getenv(name);
  return value != nullptr && *value != '\0' ? value : nullptr;
}

// The PEM file at `path`, named in errors as `what`.
absl::StatusOr<std::string> ReadPem(const std::string& path, const std::string& what) {
  std::ifstream in(path, std::ios::binary);
  if (!in)
    return absl::InvalidArgumentError(absl::StrCat(what, " ", path, ": cannot read"));
  std::string pem(kMaxPemBytes + 1, '\0');
  in.read(pem.data(), kMaxPemBytes + 1);
  if (in.bad())
    return absl::InvalidArgumentError(absl::StrCat(what, " ", path, ": cannot read"));
  pem.resize(static_cast<size_t>(in.gcount()));
  if (pem.size() > static_cast<size_t>(kMaxPemBytes)) {
    return absl::InvalidArgumentError(
        absl::StrCat(what, " ", path, ": larger than ", kMaxPemBytes, " bytes"));
  }
  if (!absl::StrContains(pem, "-----BEGIN ")) {
    return absl::InvalidArgumentError(absl::StrCat(what, " ", path, ": no PEM block"));
  }
  return pem;
}

}  // namespace

absl::StatusOr<std::string> TokenFromEnvironment(const char* token_var,
                                                 const char* file_var) {
  const char* token = NonEmptyEnv(token_var);
  const char* file = NonEmptyEnv(file_var);
  if (token != nullptr && file != nullptr) {
    return absl::InvalidArgumentError(
        absl::StrCat("both ", token_var, " and ", file_var, " are set: set one"));
  }
  if (token != nullptr) {
    const std::string trimmed(absl::StripAsciiWhitespace(token));
    if (absl::Status s = auth::ValidateToken(trimmed, token_var); !s.ok()) return s;
    return trimmed;
  }
  if (file != nullptr) {
    absl::StatusOr<std::string> read = auth::ReadTokenFile(file);
    if (!read.ok()) {
      return absl::Status(read.status().code(),
                          absl::StrCat(file_var, ": ", read.status().message()));
    }
    return read;
  }
  return std::string();
}

absl::Status TlsFromEnvironment(ClientSecurity* security) {
  if (const char* tls = NonEmptyEnv(kTlsVar); tls != nullptr) {
    const std::string value = absl::AsciiStrToLower(tls);
    if (value == "1" || value == "true") {
      security->tls = true;
    } else if (value != "0" && value != "false") {
      return absl::InvalidArgumentError(
          absl::StrCat(kTlsVar, "=", tls, ": expected 1, true, 0 or false"));
    }
  }
  const auto fill = [](std::string* field, const char* var) {
    if (const char* v = NonEmptyEnv(var); v != nullptr && field->empty()) *field = v;
  };
  fill(&security->tls_ca_file, kTlsCaVar);
  fill(&security->tls_cert_file, kTlsCertVar);
  fill(&security->tls_key_file, kTlsKeyVar);
  fill(&security->tls_server_name, kTlsServerNameVar);
  return absl::OkStatus();
}

absl::StatusOr<ClientSecurity> WorkerSecurityFromEnvironment() {
  ClientSecurity security;
  absl::StatusOr<std::string> token = TokenFromEnvironment(kTokenVar, kTokenFileVar);
  if (!token.ok()) return token.status();
  security.token = *std::move(token);
  if (absl::Status s = TlsFromEnvironment(&security); !s.ok()) return s;
  return security;
}

absl::StatusOr<std::shared_ptr<grpc::Channel>> NewClientChannel(
    const std::string& address, const ClientSecurity& security,
    grpc::ChannelArguments args) {
  if (!UsesTls(security)) {
    return grpc::CreateCustomChannel(address, grpc::InsecureChannelCredentials(), args);
  }
  if (security.tls_cert_file.empty() != security.tls_key_file.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("mutual TLS needs both a client certificate and its key (",
                     kTlsCertVar, " and ", kTlsKeyVar, ")"));
  }
  grpc::SslCredentialsOptions ssl;
  if (!security.tls_ca_file.empty()) {
    absl::StatusOr<std::string> ca = ReadPem(security.tls_ca_file, "TLS CA file");
    if (!ca.ok()) return ca.status();
    ssl.pem_root_certs = *std::move(ca);
  }
  if (!security.tls_cert_file.empty()) {
    absl::StatusOr<std::string> cert =
        ReadPem(security.tls_cert_file, "TLS client certificate");
    if (!cert.ok()) return cert.status();
    absl::StatusOr<std::string> key = ReadPem(security.tls_key_file, "TLS client key");
    if (!key.ok()) return key.status();
    ssl.pem_cert_chain = *std::move(cert);
    ssl.pem_private_key = *std::move(key);
  }
  if (!security.tls_server_name.empty()) {
    args.SetSslTargetNameOverride(security.tls_server_name);
  }
  return grpc::CreateCustomChannel(address, grpc::SslCredentials(ssl), args);
}

bool UsesTls(const ClientSecurity& security) {
  return security.tls || !security.tls_ca_file.empty() ||
         !security.tls_cert_file.empty() || !security.tls_key_file.empty() ||
         !security.tls_server_name.empty();
}

void AttachToken(const ClientSecurity& security, grpc::ClientContext* ctx) {
  if (!security.token.empty()) {
    ctx->AddMetadata(auth::kAuthorizationKey, auth::BearerHeader(security.token));
  }
}

bool IsTlsHandshakeFailure(const grpc::Status& status) {
  if (status.error_code() != grpc::StatusCode::UNAVAILABLE) return false;
  // Only markers of the TLS layer itself: a host name in the message (a DNS
  // failure for "tls-master", say) must not read as a certificate problem.
  const std::string m = absl::AsciiStrToLower(status.error_message());
  return absl::StrContains(m, "ssl handshake failed") ||
         absl::StrContains(m, "ssl_error") ||
         absl::StrContains(m, "certificate verify failed") ||
         absl::StrContains(m, "not in peer certificate");
}

bool IsConnectionClosedByMaster(const grpc::Status& status) {
  return status.error_code() == grpc::StatusCode::UNAVAILABLE &&
         absl::StrContains(absl::AsciiStrToLower(status.error_message()),
                           "socket closed");
}

std::string DescribeCallError(const grpc::Status& status, const std::string& address,
                              const ClientSecurity& security) {
  std::string hint;
  if (IsTlsHandshakeFailure(status)) {
    hint =
        UsesTls(security)
            ? absl::StrCat(" (TLS: does the master's certificate chain to ",
                           security.tls_ca_file.empty() ? std::string("the system's CAs")
                                                        : security.tls_ca_file,
                           " and name ",
                           security.tls_server_name.empty()
                               ? std::string("the host in ") + address
                               : security.tls_server_name,
                           "? does it require a client certificate?)")
            : " (the master speaks TLS: set ELASTICBATCH_TLS_CA or ELASTICBATCH_TLS=1)";
  } else if (IsConnectionClosedByMaster(status)) {
    hint = UsesTls(security)
               ? " (the master closed the connection: if it requires mutual TLS, this "
                 "client needs a certificate it trusts: ELASTICBATCH_TLS_CERT and "
                 "ELASTICBATCH_TLS_KEY)"
               : " (the master closed the connection: if it serves TLS, set "
                 "ELASTICBATCH_TLS_CA or ELASTICBATCH_TLS=1)";
  } else if (status.error_code() == grpc::StatusCode::UNAUTHENTICATED) {
    hint = security.token.empty() ? " (no token was sent: set ELASTICBATCH_TOKEN or "
                                    "ELASTICBATCH_TOKEN_FILE)"
                                  : " (the token was refused)";
  }
  return absl::StrCat(address, ": ", status.error_message(), hint);
}

}  // namespace elasticbatch::rpc
