// Prometheus /metrics for a running job (prometheus-cpp pull exposer).
// Thread-safe.
#ifndef ELASTICBATCH_AIMASTER_SERVICE_METRICS_EXPORTER_H_
#define ELASTICBATCH_AIMASTER_SERVICE_METRICS_EXPORTER_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "aimaster/core/job_coordinator.h"

namespace prometheus {
class Exposer;
class Gauge;
class Registry;
}  // namespace prometheus

namespace elasticbatch::aimaster {

class MetricsExporter {
 public:
  // Serves http://`address`/metrics. FAILED_PRECONDITION when it cannot bind.
  static absl::StatusOr<std::unique_ptr<MetricsExporter>> Start(
      const std::string& address, const JobCoordinator* coordinator);
  ~MetricsExporter();
  // Copies the coordinator's progress into the gauges.
  void Update();

 private:
  MetricsExporter() = default;
  const JobCoordinator* coordinator_ = nullptr;
  std::shared_ptr<prometheus::Registry> registry_;
  std::unique_ptr<prometheus::Exposer> exposer_;
  prometheus::Gauge* total_ = nullptr;
  prometheus::Gauge* committed_ = nullptr;
  prometheus::Gauge* quarantined_ = nullptr;
  prometheus::Gauge* leased_ = nullptr;
  prometheus::Gauge* pending_ = nullptr;
  prometheus::Gauge* records_ = nullptr;
  prometheus::Gauge* records_rate_ = nullptr;
  prometheus::Gauge* workers_ = nullptr;
  prometheus::Gauge* state_ = nullptr;
};

}  // namespace elasticbatch::aimaster

#endif  // ELASTICBATCH_AIMASTER_SERVICE_METRICS_EXPORTER_H_
