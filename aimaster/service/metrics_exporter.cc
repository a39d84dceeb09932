#include "aimaster/service/metrics_exporter.h"

#include <exception>

#include "absl/strings/str_cat.h"
#include "prometheus/exposer.h"
#include "prometheus/gauge.h"
#include "prometheus/registry.h"

namespace elasticbatch::aimaster {

absl::StatusOr<std::unique_ptr<MetricsExporter>> MetricsExporter::Start(
    const std::string& address, const JobCoordinator* coordinator) {
  auto m = std::unique_ptr<MetricsExporter>(new MetricsExporter());
  m->coordinator_ = coordinator;
  m->registry_ = std::make_shared<prometheus::Registry>();
  auto& shards = prometheus::BuildGauge()
                     .Name("elasticbatch_shards")
                     .Help("Shards of the job by state")
                     .Register(*m->registry_);
  m->total_ = &shards.Add({{"state", "total"}});
  m->committed_ = &shards.Add({{"state", "committed"}});
  m->quarantined_ = &shards.Add({{"state", "quarantined"}});
  m->leased_ = &shards.Add({{"state", "leased"}});
  m->pending_ = &shards.Add({{"state", "pending"}});
  m->records_ = &prometheus::BuildGauge()
                     .Name("elasticbatch_committed_records")
                     .Help("Records in committed shards")
                     .Register(*m->registry_)
                     .Add({});
  m->records_rate_ = &prometheus::BuildGauge()
                          .Name("elasticbatch_records_per_second")
                          .Help("Recent committed records per second")
                          .Register(*m->registry_)
                          .Add({});
  m->workers_ = &prometheus::BuildGauge()
                     .Name("elasticbatch_live_workers")
                     .Help("Registered worker sessions")
                     .Register(*m->registry_)
                     .Add({});
  m->state_ = &prometheus::BuildGauge()
                   .Name("elasticbatch_job_state")
                   .Help("0 running, 1 succeeded, 2 failed")
                   .Register(*m->registry_)
                   .Add({});
  try {
    m->exposer_ = std::make_unique<prometheus::Exposer>(address);
  } catch (const std::exception& e) {
    return absl::FailedPreconditionError(
        absl::StrCat("cannot serve metrics on ", address, ": ", e.what()));
  }
  m->exposer_->RegisterCollectable(m->registry_);
  m->Update();
  return m;
}

MetricsExporter::~MetricsExporter() = default;

void MetricsExporter::Update() {
  const JobProgress p = coordinator_->Progress();
  total_->Set(static_cast<double>(p.total_shards));
  committed_->Set(static_cast<double>(p.committed_shards));
  quarantined_->Set(static_cast<double>(p.quarantined_shards));
  leased_->Set(static_cast<double>(p.leased_shards));
  pending_->Set(static_cast<double>(p.pending_shards));
  records_->Set(static_cast<double>(p.committed_records));
  records_rate_->Set(p.records_per_second);
  workers_->Set(p.live_sessions);
  state_->Set(p.state == JobState::kRunning     ? 0
              : p.state == JobState::kSucceeded ? 1
                                                : 2);
}

}  // namespace elasticbatch::aimaster
