#include "aimaster/cli/security_flags.h"

#include <arpa/inet.h>

#include "absl/flags/flag.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "absl/time/time.h"
#include "common/auth/token.h"
#include "spdlog/spdlog.h"

ABSL_FLAG(std::string, token_file, "",
          "serve: file holding the job token every worker call must carry (e.g. a "
          "mounted Kubernetes Secret); status/stop: file holding the token to send "
          "(default: $ELASTICBATCH_ADMIN_TOKEN, else $ELASTICBATCH_TOKEN)");
ABSL_FLAG(std::string, admin_token_file, "",
          "serve: file holding the admin token StopJob needs (default: the job token)");
ABSL_FLAG(bool, insecure, false,
          "serve: allow a non-loopback --host without a token (anyone who can reach "
          "the port can take shards and stop the job)");
ABSL_FLAG(std::string, tls_cert, "",
          "serve: the master's PEM certificate chain (TLS on); status/stop: the client "
          "certificate for mutual TLS (default: $ELASTICBATCH_TLS_CERT)");
ABSL_FLAG(std::string, tls_key, "",
          "serve: the PEM private key of --tls-cert; status/stop: the client key "
          "(default: $ELASTICBATCH_TLS_KEY)");
ABSL_FLAG(std::string, tls_client_ca, "",
          "serve: PEM CA(s) every client certificate must chain to (mutual TLS)");
ABSL_FLAG(absl::Duration, tls_reload_interval, absl::Seconds(1),
          "serve: how often the TLS files are re-read (rotation needs no restart)");
ABSL_FLAG(std::string, tls_ca, "",
          "status/stop: PEM CA(s) the master's certificate must chain to (TLS on; "
          "default: $ELASTICBATCH_TLS_CA)");
ABSL_FLAG(std::string, tls_server_name, "",
          "status/stop: name the master's certificate must carry (default: the host "
          "of --addr, or $ELASTICBATCH_TLS_SERVER_NAME)");

namespace elasticbatch::aimaster {

bool IsLoopbackHost(const std::string& host) {
  std::string h(absl::StripSuffix(absl::StripPrefix(host, "["), "]"));
  if (h == "localhost") return true;
  in_addr v4;
  if (inet_pton(AF_INET, h.c_str(), &v4) == 1) {
    return (ntohl(v4.s_addr) >> 24) == 127;
  }
  in6_addr v6;
  if (inet_pton(AF_INET6, h.c_str(), &v6) == 1) {
    if (IN6_IS_ADDR_LOOPBACK(&v6)) return true;
    // ::ffff:127.x.y.z
    return IN6_IS_ADDR_V4MAPPED(&v6) && v6.s6_addr[12] == 127;
  }
  return false;
}

absl::Status ApplyServeSecurityFlags(MasterServerOptions* options) {
  const std::string token_file = absl::GetFlag(FLAGS_token_file);
  const std::string admin_file = absl::GetFlag(FLAGS_admin_token_file);
  const bool insecure = absl::GetFlag(FLAGS_insecure);
  if (!token_file.empty()) {
    absl::StatusOr<std::string> token = auth::ReadTokenFile(token_file);
    if (!token.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("--token-file: ", token.status().message()));
    }
    options->worker_token = *std::move(token);
  }
  if (!admin_file.empty()) {
    if (token_file.empty()) {
      return absl::InvalidArgumentError(
          "--admin-token-file needs --token-file too (the workers' token)");
    }
    absl::StatusOr<std::string> token = auth::ReadTokenFile(admin_file);
    if (!token.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("--admin-token-file: ", token.status().message()));
    }
    if (auth::TokensEqual(*token, options->worker_token)) {
      return absl::InvalidArgumentError(
          "--admin-token-file holds the job token: every worker could stop the job");
    }
    options->admin_token = *std::move(token);
  }
  if (insecure && !token_file.empty()) {
    return absl::InvalidArgumentError("--insecure contradicts --token-file: pick one");
  }
  if (token_file.empty() && !IsLoopbackHost(options->host)) {
    if (!insecure) {
      return absl::InvalidArgumentError(absl::StrCat(
          "refusing to serve on ", options->host,
          " without a token: give --token-file FILE (or --host 127.0.0.1, or --insecure "
          "to accept anyone who can reach the port)"));
    }
    spdlog::warn(
        "--insecure: no token; anyone who can reach {} can take shards, commit "
        "them and stop the job",
        options->host);
  }

  options->tls.cert_file = absl::GetFlag(FLAGS_tls_cert);
  options->tls.key_file = absl::GetFlag(FLAGS_tls_key);
  options->tls.client_ca_file = absl::GetFlag(FLAGS_tls_client_ca);
  options->tls.reload_interval = absl::GetFlag(FLAGS_tls_reload_interval);
  if (options->tls.cert_file.empty() != options->tls.key_file.empty()) {
    return absl::InvalidArgumentError("--tls-cert and --tls-key go together");
  }
  if (!options->tls.client_ca_file.empty() && options->tls.cert_file.empty()) {
    return absl::InvalidArgumentError("--tls-client-ca needs --tls-cert and --tls-key");
  }
  if (options->tls.reload_interval < absl::Seconds(1) ||
      options->tls.reload_interval > absl::Hours(24)) {
    return absl::InvalidArgumentError("--tls-reload-interval must be within 1s..24h");
  }
  if (!absl::GetFlag(FLAGS_tls_ca).empty() ||
      !absl::GetFlag(FLAGS_tls_server_name).empty()) {
    return absl::InvalidArgumentError(
        "--tls-ca and --tls-server-name are for status/stop; serve takes "
        "--tls-client-ca");
  }
  return absl::OkStatus();
}

absl::StatusOr<rpc::ClientSecurity> ClientSecurityFromFlags() {
  rpc::ClientSecurity security;
  if (const std::string file = absl::GetFlag(FLAGS_token_file); !file.empty()) {
    absl::StatusOr<std::string> token = auth::ReadTokenFile(file);
    if (!token.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("--token-file: ", token.status().message()));
    }
    security.token = *std::move(token);
  } else {
    absl::StatusOr<std::string> admin =
        rpc::TokenFromEnvironment(rpc::kAdminTokenVar, nullptr);
    if (!admin.ok()) return admin.status();
    security.token = *std::move(admin);
    if (security.token.empty()) {
      absl::StatusOr<std::string> job =
          rpc::TokenFromEnvironment(rpc::kTokenVar, rpc::kTokenFileVar);
      if (!job.ok()) return job.status();
      security.token = *std::move(job);
    }
  }
  security.tls_ca_file = absl::GetFlag(FLAGS_tls_ca);
  security.tls_cert_file = absl::GetFlag(FLAGS_tls_cert);
  security.tls_key_file = absl::GetFlag(FLAGS_tls_key);
  security.tls_server_name = absl::GetFlag(FLAGS_tls_server_name);
  if (absl::Status s = rpc::TlsFromEnvironment(&security); !s.ok()) return s;
  if (!absl::GetFlag(FLAGS_admin_token_file).empty() || absl::GetFlag(FLAGS_insecure) ||
      !absl::GetFlag(FLAGS_tls_client_ca).empty()) {
    return absl::InvalidArgumentError(
        "--admin-token-file, --insecure and --tls-client-ca are serve's; status/stop "
        "send --token-file");
  }
  return security;
}

absl::Status RejectSecurityFlags(const std::string& command) {
  const std::pair<const char*, bool> flags[] = {
      {"--token-file", !absl::GetFlag(FLAGS_token_file).empty()},
      {"--admin-token-file", !absl::GetFlag(FLAGS_admin_token_file).empty()},
      {"--insecure", absl::GetFlag(FLAGS_insecure)},
      {"--tls-cert", !absl::GetFlag(FLAGS_tls_cert).empty()},
      {"--tls-key", !absl::GetFlag(FLAGS_tls_key).empty()},
      {"--tls-client-ca", !absl::GetFlag(FLAGS_tls_client_ca).empty()},
      {"--tls-ca", !absl::GetFlag(FLAGS_tls_ca).empty()},
      {"--tls-server-name", !absl::GetFlag(FLAGS_tls_server_name).empty()},
  };
  for (const auto& [name, set] : flags) {
    if (set) {
      return absl::InvalidArgumentError(
          absl::StrCat(name, " is not for ", command,
                       ", which listens on loopback only with a token "
                       "of its own (its workers get it in ELASTICBATCH_TOKEN)"));
    }
  }
  return absl::OkStatus();
}

}  // namespace elasticbatch::aimaster
