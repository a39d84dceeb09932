// The security flags of aimaster's commands: tokens and TLS for `serve`, and
// what `status` / `stop` present to a master.
#ifndef ELASTICBATCH_AIMASTER_CLI_SECURITY_FLAGS_H_
#define ELASTICBATCH_AIMASTER_CLI_SECURITY_FLAGS_H_

#include <string>

#include "absl/status/statusor.h"
#include "aimaster/service/master_server.h"
#include "common/rpc/client_channel.h"

namespace elasticbatch::aimaster {

// True for an address only this machine can reach: 127.0.0.0/8, ::1,
// localhost.
bool IsLoopbackHost(const std::string& host);

// Fills the tokens and TLS of `options` from --token-file,
// --admin-token-file, --insecure and --tls-*, for a master listening on
// options->host. INVALID_ARGUMENT (one line) for a contradiction, an unusable
// file, or a non-loopback address with no token and no --insecure.
absl::Status ApplyServeSecurityFlags(MasterServerOptions* options);

// What `status` / `stop` present: the token of --token-file, else
// $ELASTICBATCH_ADMIN_TOKEN, else the job token of the environment
// (ELASTICBATCH_TOKEN or _FILE, enough for `status`); TLS from --tls-ca,
// --tls-cert, --tls-key, --tls-server-name, else ELASTICBATCH_TLS*.
absl::StatusOr<rpc::ClientSecurity> ClientSecurityFromFlags();

// INVALID_ARGUMENT naming the first security flag set, for `run` (which
// makes its own token and listens on loopback only).
absl::Status RejectSecurityFlags(const std::string& command);

}  // namespace elasticbatch::aimaster

#endif  // ELASTICBATCH_AIMASTER_CLI_SECURITY_FLAGS_H_
