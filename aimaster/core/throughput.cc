#include "aimaster/core/throughput.h"

namespace elasticbatch::aimaster {
namespace {

constexpr absl::Duration kWorkerSample = absl::Seconds(1);
constexpr double kEwmaAlpha = 0.3;
constexpr absl::Duration kJobWindow = absl::Seconds(30);

double Blend(double sample, double average) {
  return kEwmaAlpha * sample + (1 - kEwmaAlpha) * average;
}

}  // namespace

void WorkerThroughput::OnCommit(uint64_t records, absl::Time now) {
  shards_ += 1;
  records_ += records;
  unsampled_shards_ += 1;
  unsampled_records_ += records;
  const absl::Duration dt = now - last_sample_;
  if (dt < kWorkerSample) return;
  const double secs = absl::ToDoubleSeconds(dt);
  const double shard_rate = unsampled_shards_ / secs;
  const double record_rate = unsampled_records_ / secs;
  // The first sample starts both averages.
  const bool first = shards_per_second_ == 0;
  shards_per_second_ = first ? shard_rate : Blend(shard_rate, shards_per_second_);
  records_per_second_ = first ? record_rate : Blend(record_rate, records_per_second_);
  unsampled_shards_ = 0;
  unsampled_records_ = 0;
  last_sample_ = now;
}

void JobThroughput::Sample(absl::Time now, uint64_t shards, uint64_t records) {
  samples_.push_back({now, shards, records});
  while (samples_.size() > 2 && now - samples_.front().at > kJobWindow) {
    samples_.pop_front();
  }
}

std::optional<JobThroughput::Rates> JobThroughput::Current() const {
  if (samples_.size() < 2) return std::nullopt;
  const Point& a = samples_.front();
  const Point& b = samples_.back();
  const double secs = absl::ToDoubleSeconds(b.at - a.at);
  if (secs <= 0) return std::nullopt;
  return Rates{static_cast<double>(b.shards - a.shards) / secs,
               static_cast<double>(b.records - a.records) / secs};
}

}  // namespace elasticbatch::aimaster
