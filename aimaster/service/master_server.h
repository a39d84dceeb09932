// MasterServer: the running AIMaster process around a JobCoordinator: the
// gRPC server (AIMaster, Admin, health, reflection), the group-commit thread,
// the periodic tick, and optional Prometheus metrics.
//
//   auto server = MasterServer::Start(&coordinator, journal.get(), options);
//   std::cout << "listening on " << (*server)->address() << "\n";
//   (*server)->WaitForEnd(absl::Seconds(10));   // job over, workers told
//
// Thread-safe.
#ifndef ELASTICBATCH_AIMASTER_SERVICE_MASTER_SERVER_H_
#define ELASTICBATCH_AIMASTER_SERVICE_MASTER_SERVER_H_

#include <grpcpp/server.h>

#include <functional>
#include <memory>
#include <string>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "aimaster/core/job_coordinator.h"
#include "aimaster/core/journal.h"
#include "aimaster/service/admin_service.h"
#include "aimaster/service/aimaster_service.h"
#include "aimaster/service/durability_queue.h"

namespace elasticbatch::aimaster {

class MetricsExporter;

// TLS on the master's port. gRPC re-reads the files every reload_interval
// and serves a changed pair from then on (Kubernetes rotates mounted Secrets
// in place), so a rotation needs no restart.
struct MasterTlsOptions {
  // PEM certificate chain and private key. Default: empty, no TLS.
  std::string cert_file;
  std::string key_file;
  // PEM CA(s) a client certificate must chain to; set, every client must
  // present one (mutual TLS). Default: empty, no client certificate asked.
  std::string client_ca_file;
  // How often the files are re-read. Default: 1s (three small reads).
  absl::Duration reload_interval = absl::Seconds(1);
};

struct MasterServerOptions {
  // Interface to listen on. Default: all.
  std::string host = "0.0.0.0";
  // 0 picks a free port. Default: 23456 (KubeDL's AIMaster port).
  int port = 23456;
  // Period of lease expiry checks and long-poll retries. Default: 50ms.
  absl::Duration tick_interval = absl::Milliseconds(50);
  // Largest request message accepted; larger ones are RESOURCE_EXHAUSTED
  // before any handler runs. Default: 4MiB (RequestLimits's).
  size_t max_message_bytes = RequestLimits{}.max_message_bytes;
  // host:port for Prometheus /metrics. Default: empty, off.
  std::string metrics_address;
  // Runs on the tick thread after every coordinator tick (run mode's driver).
  // Default: none.
  std::function<void()> on_tick;
  // Worker list for the Admin service. Default: none, the list comes from
  // the coordinator's sessions.
  WorkerListProvider workers;
  // The job token every worker call must carry (`authorization: Bearer
  // <token>`); it may also read the job's status. Default: empty, and with
  // admin_token also empty no call is authenticated (loopback or --insecure).
  std::string worker_token;
  // The token the Admin service's StopJob needs (it may do anything).
  // Default: empty, which makes worker_token the admin token too.
  std::string admin_token;
  // TLS. Default: off (cert_file empty).
  MasterTlsOptions tls;
};

class MasterServer {
 public:
  // FAILED_PRECONDITION when the port cannot be bound (in use, ...);
  // INVALID_ARGUMENT when a TLS file is unreadable, malformed, expired or the
  // key does not match the certificate.
  static absl::StatusOr<std::unique_ptr<MasterServer>> Start(JobCoordinator* coordinator,
                                                             Journal* journal,
                                                             MasterServerOptions options);
  ~MasterServer();

  int port() const { return port_; }
  std::string address() const;
  // A channel to this server that bypasses the network (for tests and tools).
  std::shared_ptr<grpc::Channel> InProcessChannel();
  // Long-polling acquires waiting right now.
  size_t parked_acquires() const { return aimaster_service_->parked(); }

  // Blocks until (a) the job ended and every live worker was told so, or
  // `grace` passed since the end; or (b) Shutdown was requested; or (c) the
  // journal failed. Returns the journal's failure in case (c), else OK.
  absl::Status WaitForEnd(absl::Duration grace);
  // Checks the TLS files as they are on disk now and logs what they hold
  // (SIGHUP): a good pair is served within tls.reload_interval; a bad one is
  // reported loudly (gRPC serves what is on disk). OK when TLS is off.
  absl::Status CheckTlsFiles() const;
  // Makes WaitForEnd return (from a signal thread, say). Idempotent.
  void RequestShutdown();
  // Stops serving: parked calls are answered, the server and threads stop.
  void Shutdown();

 private:
  MasterServer(JobCoordinator* coordinator, Journal* journal,
               MasterServerOptions options);
  void TickLoop();

  JobCoordinator* const coordinator_;
  Journal* const journal_;
  MasterServerOptions options_;
  std::unique_ptr<Authorizer> authorizer_;
  int port_ = 0;
  std::unique_ptr<DurabilityQueue> durability_;
  std::unique_ptr<AimasterService> aimaster_service_;
  std::unique_ptr<AdminService> admin_service_;
  std::unique_ptr<grpc::Server> server_;
  std::unique_ptr<MetricsExporter> metrics_;
  std::thread ticker_;

  absl::Mutex mu_;
  bool stop_ticking_ ABSL_GUARDED_BY(mu_) = false;
  bool shutdown_requested_ ABSL_GUARDED_BY(mu_) = false;
  bool shut_down_ ABSL_GUARDED_BY(mu_) = false;
  absl::Status journal_failure_ ABSL_GUARDED_BY(mu_);
};

}  // namespace elasticbatch::aimaster

#endif  // ELASTICBATCH_AIMASTER_SERVICE_MASTER_SERVER_H_
