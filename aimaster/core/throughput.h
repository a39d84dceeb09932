// Throughput of a worker and of the whole job, for status and the Admin
// service (never for decisions).
//
//   WorkerThroughput worker(registered_at);
//   worker.OnCommit(/*records=*/100, now);
//   double rate = worker.shards_per_second();
//
//   JobThroughput job;
//   job.Sample(now, committed_shards, committed_records);  // on every tick
//   std::optional<JobThroughput::Rates> rates = job.Current();
//
// Not thread-safe: the JobCoordinator serialises all calls under its mutex.
#ifndef ELASTICBATCH_AIMASTER_CORE_THROUGHPUT_H_
#define ELASTICBATCH_AIMASTER_CORE_THROUGHPUT_H_

#include <cstdint>
#include <deque>
#include <optional>

#include "absl/time/time.h"

namespace elasticbatch::aimaster {

// One worker's commits: totals, and rates as an EWMA over samples of at least
// a second, so that batched commits do not look infinitely fast.
class WorkerThroughput {
 public:
  // Rates count from `since` (the registration) until the first commit.
  explicit WorkerThroughput(absl::Time since) : last_sample_(since) {}

  void OnCommit(uint64_t records, absl::Time now);

  uint64_t shards() const { return shards_; }
  uint64_t records() const { return records_; }
  double shards_per_second() const { return shards_per_second_; }
  double records_per_second() const { return records_per_second_; }

 private:
  uint64_t shards_ = 0;
  uint64_t records_ = 0;
  double shards_per_second_ = 0;
  double records_per_second_ = 0;
  // Commits since the last sample.
  absl::Time last_sample_;
  uint64_t unsampled_shards_ = 0;
  uint64_t unsampled_records_ = 0;
};

// The job's rates over a sliding window of samples of its committed totals.
class JobThroughput {
 public:
  struct Rates {
    double shards_per_second = 0;
    double records_per_second = 0;
  };

  void Sample(absl::Time now, uint64_t shards, uint64_t records);
  // Nothing until two samples span some time.
  std::optional<Rates> Current() const;

 private:
  struct Point {
    absl::Time at;
    uint64_t shards;
    uint64_t records;
  };
  std::deque<Point> samples_;
};

}  // namespace elasticbatch::aimaster

#endif  // ELASTICBATCH_AIMASTER_CORE_THROUGHPUT_H_
