#include "aimaster/service/master_server.h"

#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/health_check_service_interface.h>
#include <grpcpp/security/server_credentials.h>
#include <grpcpp/security/tls_certificate_provider.h>
#include <grpcpp/security/tls_credentials_options.h>
#include <grpcpp/server_builder.h>

#include <algorithm>
#include <limits>

#include "absl/strings/str_cat.h"
#include "aimaster/service/metrics_exporter.h"
#include "common/rpc/tls_files.h"
#include "spdlog/spdlog.h"

namespace elasticbatch::aimaster {
namespace {

// The port's credentials: insecure, or TLS from files gRPC keeps watching.
// The files are checked first so that a bad one is a clear error now, not a
// handshake failure on every worker later.
absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> ServerCredentials(
    const MasterTlsOptions& tls) {
  if (tls.cert_file.empty() && tls.key_file.empty() && tls.client_ca_file.empty()) {
    return grpc::InsecureServerCredentials();
  }
  if (tls.cert_file.empty() || tls.key_file.empty()) {
    return absl::InvalidArgumentError(
        "TLS needs both a certificate and its key (--tls-cert and --tls-key)");
  }
  absl::StatusOr<rpc::CertificateSummary> cert =
      rpc::CheckServerCertificate(tls.cert_file, tls.key_file, absl::Now());
  if (!cert.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("TLS certificate or key: ", cert.status().message()));
  }
  absl::StatusOr<int> cas = 0;
  if (!tls.client_ca_file.empty()) {
    cas = rpc::CheckCaFile(tls.client_ca_file);
    if (!cas.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("TLS client CA: ", cas.status().message()));
    }
  }
  // Logged once everything checked out: a refusal stays one line.
  spdlog::info("TLS: serving {}", cert->Describe());
  if (!tls.client_ca_file.empty()) {
    spdlog::info("TLS: clients must present a certificate signed by {} ({} CA(s))",
                 tls.client_ca_file, *cas);
  }
  const auto interval = static_cast<unsigned int>(
      std::clamp<int64_t>(absl::ToInt64Seconds(tls.reload_interval), 1, 86400));
  std::shared_ptr<grpc::experimental::CertificateProviderInterface> provider;
  if (tls.client_ca_file.empty()) {
    provider = std::make_shared<grpc::experimental::FileWatcherCertificateProvider>(
        tls.key_file, tls.cert_file, interval);
  } else {
    provider = std::make_shared<grpc::experimental::FileWatcherCertificateProvider>(
        tls.key_file, tls.cert_file, tls.client_ca_file, interval);
  }
  grpc::experimental::TlsServerCredentialsOptions options(provider);
  options.watch_identity_key_cert_pairs();
  if (tls.client_ca_file.empty()) {
    options.set_cert_request_type(GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE);
  } else {
    options.watch_root_certs();
    options.set_cert_request_type(
        GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY);
  }
  return grpc::experimental::TlsServerCredentials(options);
}

}  // namespace

MasterServer::MasterServer(JobCoordinator* coordinator, Journal* journal,
                           MasterServerOptions options)
    : coordinator_(coordinator), journal_(journal), options_(std::move(options)) {}

absl::StatusOr<std::unique_ptr<MasterServer>> MasterServer::Start(
    JobCoordinator* coordinator, Journal* journal, MasterServerOptions options) {
  absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> credentials =
      ServerCredentials(options.tls);
  if (!credentials.ok()) return credentials.status();
  auto m = std::unique_ptr<MasterServer>(new MasterServer(coordinator, journal, options));
  MasterServer* raw = m.get();
  m->durability_ =
      std::make_unique<DurabilityQueue>(journal, [raw](const absl::Status& s) {
        spdlog::critical("journal failed, the job cannot make durable progress: {}",
                         std::string(s.message()));
        // Stopped before WaitForEnd wakes: whoever it wakes sees the job over.
        raw->coordinator_->Stop(absl::StrCat("journal failed: ", s.message()));
        absl::MutexLock lock(&raw->mu_);
        raw->journal_failure_ = s;
      });
  m->authorizer_ = std::make_unique<Authorizer>(
      auth::Authenticator(m->options_.worker_token, m->options_.admin_token));
  m->aimaster_service_ = std::make_unique<AimasterService>(
      coordinator, m->durability_.get(), m->authorizer_.get());
  m->admin_service_ = std::make_unique<AdminService>(coordinator, m->authorizer_.get(),
                                                     m->options_.workers);

  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  grpc::ServerBuilder builder;
  // Two masters must never share a port (gRPC allows SO_REUSEPORT by default).
  builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
  builder.SetMaxReceiveMessageSize(static_cast<int>(
      std::min<size_t>(m->options_.max_message_bytes, std::numeric_limits<int>::max())));
  builder.AddListeningPort(absl::StrCat(m->options_.host, ":", m->options_.port),
                           *credentials, &m->port_);
  builder.RegisterService(m->aimaster_service_.get());
  builder.RegisterService(m->admin_service_.get());
  m->server_ = builder.BuildAndStart();
  if (m->server_ == nullptr || m->port_ == 0) {
    m->durability_.reset();
    return absl::FailedPreconditionError(absl::StrCat(
        "cannot listen on ", m->options_.host, ":", m->options_.port, " (port in use?)"));
  }
  if (!m->options_.metrics_address.empty()) {
    auto metrics = MetricsExporter::Start(m->options_.metrics_address, coordinator);
    if (!metrics.ok()) {
      m->Shutdown();
      return metrics.status();
    }
    m->metrics_ = std::move(*metrics);
  }
  m->ticker_ = std::thread([raw] { raw->TickLoop(); });
  return m;
}

MasterServer::~MasterServer() { Shutdown(); }

std::string MasterServer::address() const {
  return absl::StrCat(options_.host, ":", port_);
}

std::shared_ptr<grpc::Channel> MasterServer::InProcessChannel() {
  return server_->InProcessChannel(grpc::ChannelArguments());
}

void MasterServer::TickLoop() {
  while (true) {
    {
      absl::MutexLock lock(&mu_);
      auto stop = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return stop_ticking_; };
      if (mu_.AwaitWithTimeout(absl::Condition(&stop), options_.tick_interval)) return;
    }
    const uint64_t seq = coordinator_->Tick();
    if (seq != 0 && journal_ != nullptr) {
      durability_->AfterDurable(seq, [](absl::Status) {});
    }
    aimaster_service_->RetryParked();
    if (options_.on_tick) options_.on_tick();
    if (metrics_) metrics_->Update();
  }
}

absl::Status MasterServer::WaitForEnd(absl::Duration grace) {
  std::optional<absl::Time> ended_at;
  while (true) {
    {
      absl::MutexLock lock(&mu_);
      auto wake = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
        return shutdown_requested_ || !journal_failure_.ok();
      };
      mu_.AwaitWithTimeout(absl::Condition(&wake), absl::Milliseconds(50));
      if (!journal_failure_.ok()) return journal_failure_;
      if (shutdown_requested_) return absl::OkStatus();
    }
    if (!coordinator_->ended()) continue;
    if (!ended_at) ended_at = absl::Now();
    if (coordinator_->AllSessionsToldEnd() || absl::Now() - *ended_at >= grace) {
      return absl::OkStatus();
    }
  }
}

absl::Status MasterServer::CheckTlsFiles() const {
  const MasterTlsOptions& tls = options_.tls;
  if (tls.cert_file.empty()) return absl::OkStatus();
  absl::StatusOr<rpc::CertificateSummary> cert =
      rpc::CheckServerCertificate(tls.cert_file, tls.key_file, absl::Now());
  if (!cert.ok()) {
    spdlog::error(
        "TLS: the files on disk are not servable ({}); new connections may fail "
        "until they are fixed",
        std::string(cert.status().message()));
    return cert.status();
  }
  if (!tls.client_ca_file.empty()) {
    absl::StatusOr<int> cas = rpc::CheckCaFile(tls.client_ca_file);
    if (!cas.ok()) {
      spdlog::error("TLS: {}; new client connections may fail until it is fixed",
                    std::string(cas.status().message()));
      return cas.status();
    }
  }
  spdlog::info("TLS: the files on disk hold {}; served within {}", cert->Describe(),
               absl::FormatDuration(tls.reload_interval));
  return absl::OkStatus();
}

void MasterServer::RequestShutdown() {
  absl::MutexLock lock(&mu_);
  shutdown_requested_ = true;
}

void MasterServer::Shutdown() {
  {
    absl::MutexLock lock(&mu_);
    if (shut_down_) return;
    shut_down_ = true;
    stop_ticking_ = true;
  }
  if (ticker_.joinable()) ticker_.join();
  aimaster_service_->ReleaseAllParked();
  if (server_)
    server_->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(2));
  metrics_.reset();
  durability_.reset();  // syncs and answers whatever still waits
  if (server_) server_->Wait();
}

}  // namespace elasticbatch::aimaster
