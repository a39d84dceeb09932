// How a client reaches the master: over TLS that verifies the master (or
// insecure, on loopback and test set-ups), with the job token on every call.
//
//   absl::StatusOr<ClientSecurity> security = WorkerSecurityFromEnvironment();
//   absl::StatusOr<std::shared_ptr<grpc::Channel>> channel =
//       NewClientChannel("aimaster:23456", *security, grpc::ChannelArguments());
//   grpc::ClientContext ctx;
//   AttachToken(*security, &ctx);     // authorization: Bearer <token>
//
// Thread-safe: plain functions over immutable values.
#ifndef ELASTICBATCH_COMMON_RPC_CLIENT_CHANNEL_H_
#define ELASTICBATCH_COMMON_RPC_CLIENT_CHANNEL_H_

#include <grpcpp/channel.h>
#include <grpcpp/client_context.h>
#include <grpcpp/support/channel_arguments.h>
#include <grpcpp/support/status.h>

#include <memory>
#include <string>

#include "absl/status/statusor.h"

namespace elasticbatch::rpc {

// The security part of the environment contract (what `aimaster run` and the
// deploy manifests give a worker; see the README's Security section).
// The job token itself. Never put it on a command line (ps shows those).
inline constexpr char kTokenVar[] = "ELASTICBATCH_TOKEN";
// A file holding the job token (a mounted Kubernetes Secret).
inline constexpr char kTokenFileVar[] = "ELASTICBATCH_TOKEN_FILE";
// The admin token `aimaster status` / `stop` send when --token-file is unset.
inline constexpr char kAdminTokenVar[] = "ELASTICBATCH_ADMIN_TOKEN";
// "1" or "true": TLS to the master, verified with the system's CA store.
inline constexpr char kTlsVar[] = "ELASTICBATCH_TLS";
// PEM file of the CA(s) that signed the master's certificate; implies TLS.
inline constexpr char kTlsCaVar[] = "ELASTICBATCH_TLS_CA";
// PEM certificate chain and key this client presents (mutual TLS).
inline constexpr char kTlsCertVar[] = "ELASTICBATCH_TLS_CERT";
inline constexpr char kTlsKeyVar[] = "ELASTICBATCH_TLS_KEY";
// The name the master's certificate must carry when it differs from the host
// in the address (a master reached by IP whose certificate names a DNS name).
inline constexpr char kTlsServerNameVar[] = "ELASTICBATCH_TLS_SERVER_NAME";

struct ClientSecurity {
  // Sent as `authorization: Bearer <token>`. Default: empty, none sent.
  std::string token;
  // TLS to the master. Default: false (insecure). Any tls_* file below turns
  // it on.
  bool tls = false;
  // CA certificates (PEM) the master's certificate must chain to. Default:
  // empty, the system's store.
  std::string tls_ca_file;
  // Client certificate chain and private key (PEM) for mutual TLS; both or
  // neither. Default: none.
  std::string tls_cert_file;
  std::string tls_key_file;
  // Name checked against the master's certificate. Default: empty, the host
  // part of the address.
  std::string tls_server_name;
};

// The token from `token_var` or else from the file `file_var` names (either
// may be null to skip it); empty when neither is set. INVALID_ARGUMENT when
// both are set or the token is malformed; the file's read error otherwise.
absl::StatusOr<std::string> TokenFromEnvironment(const char* token_var,
                                                 const char* file_var);

// Fills the TLS fields of `security` from ELASTICBATCH_TLS*; fields already
// set win. INVALID_ARGUMENT for a malformed ELASTICBATCH_TLS.
absl::Status TlsFromEnvironment(ClientSecurity* security);

// What a worker uses: the job token (ELASTICBATCH_TOKEN or
// ELASTICBATCH_TOKEN_FILE) and the TLS settings.
absl::StatusOr<ClientSecurity> WorkerSecurityFromEnvironment();

// A channel to `address` (host:port). With TLS, reads the PEM files now:
// INVALID_ARGUMENT naming the file when one cannot be read or holds no PEM
// block, or when only one of cert/key is given.
absl::StatusOr<std::shared_ptr<grpc::Channel>> NewClientChannel(
    const std::string& address, const ClientSecurity& security,
    grpc::ChannelArguments args);

// True when `security` asks for TLS (tls, or any tls_* field set).
bool UsesTls(const ClientSecurity& security);

// Adds the token (if any) to one call's metadata. Per call rather than as
// call credentials: gRPC drops call credentials on insecure channels.
void AttachToken(const ClientSecurity& security, grpc::ClientContext* ctx);

// True when a failed call's error says the TLS handshake failed: the master's
// certificate did not verify (CA or name). Retrying does not fix these.
// Only meaningful for a TLS channel.
bool IsTlsHandshakeFailure(const grpc::Status& status);

// True when the master accepted the connection and closed it before any
// answer. Transient when the master stops; when it repeats, the likely cause
// is TLS: a plaintext client of a TLS master, or a client without the
// certificate mutual TLS requires (the master only closes the connection).
bool IsConnectionClosedByMaster(const grpc::Status& status);

// One line about a failed call to `address`, with a hint of what to check
// when the failure is the TLS handshake or the token.
std::string DescribeCallError(const grpc::Status& status, const std::string& address,
                              const ClientSecurity& security);

}  // namespace elasticbatch::rpc

#endif  // ELASTICBATCH_COMMON_RPC_CLIENT_CHANNEL_H_
