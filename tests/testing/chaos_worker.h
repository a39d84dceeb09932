// A scripted worker on raw elasticbatch.v1 stubs for integration and crash
// tests: it acquires batches and, per shard, commits (staged file, grant,
// atomic rename, confirmation), fails, or abandons the lease, at random. It
// heartbeats the leases it keeps, retries UNAVAILABLE (master down) and
// re-registers with its held leases on NOT_FOUND (master restarted). When the
// master is unreachable and _SUCCESS or _FAILED is in the output channel, the
// job is over.
//
// Thread-compatible: one ChaosWorker per thread.
#ifndef ELASTICBATCH_TESTS_TESTING_CHAOS_WORKER_H_
#define ELASTICBATCH_TESTS_TESTING_CHAOS_WORKER_H_

#include <grpcpp/channel.h>

#include <cstdint>
#include <map>
#include <memory>
#include <random>
#include <string>

#include "absl/time/time.h"
#include "elasticbatch/v1/elasticbatch.grpc.pb.h"

namespace elasticbatch::testing {

struct ChaosOptions {
  uint32_t task_index = 0;
  // Percentages of shards failed and abandoned; the rest are committed.
  int fail_percent = 10;
  int abandon_percent = 5;
  // Shards per acquire: uniform in [1, max_batch].
  uint32_t max_batch = 4;
  // Where shard outputs are published (part files) and staged.
  std::string output_dir;
  absl::Duration heartbeat_interval = absl::Milliseconds(100);
  // Give up (Run returns false) after this long.
  absl::Duration deadline = absl::Seconds(120);
  uint32_t seed = 1;
  // Simulated work per committed shard: uniform in [0.5, 1.5] x this.
  absl::Duration work_time = absl::ZeroDuration();
};

struct ChaosStats {
  uint64_t committed = 0;  // confirmations the master acknowledged
  uint64_t failed = 0;
  uint64_t abandoned = 0;
  uint64_t lost = 0;  // ALREADY_COMMITTED / LEASE_LOST answers
  uint64_t reregistered = 0;
  uint64_t unavailable = 0;
};

class ChaosWorker {
 public:
  ChaosWorker(std::shared_ptr<grpc::Channel> channel, ChaosOptions options);
  // Works until the master answers END (true) or the deadline passes (false).
  bool Run();
  const ChaosStats& stats() const { return stats_; }
  bool job_succeeded() const { return job_succeeded_; }

 private:
  struct Held {
    v1::Shard shard;
    bool published = false;
  };
  // Calls `rpc` until it is not UNAVAILABLE; on NOT_FOUND re-registers and
  // retries. False when the deadline passed.
  template <typename Rpc>
  bool Call(Rpc rpc, bool lease_may_be_gone = false);
  bool Register();
  // True (and the job marked ended) when _SUCCESS or _FAILED is in the output.
  bool JobEndedOnDisk();
  // Forgets published leases whose confirmation the master made durable.
  void Acknowledge(const google::protobuf::RepeatedPtrField<v1::LeaseRef>& confirmed);
  void Heartbeat();
  // Cancellations drop held leases; STOP ends the run.
  void HandleCommands(
      const google::protobuf::RepeatedPtrField<v1::WorkerCommand>& commands);
  bool ProcessShard(const v1::Shard& shard);
  std::string Key(uint64_t id, uint32_t attempt) const;

  std::unique_ptr<v1::AIMaster::Stub> stub_;
  ChaosOptions options_;
  std::mt19937 rng_;
  absl::Time deadline_;
  absl::Time last_heartbeat_;
  uint64_t session_ = 0;
  // Leases this worker keeps (renews); published ones await confirmation.
  std::map<std::pair<uint64_t, uint32_t>, Held> held_;
  ChaosStats stats_;
  bool job_succeeded_ = false;
  bool ended_ = false;
};

}  // namespace elasticbatch::testing

#endif  // ELASTICBATCH_TESTS_TESTING_CHAOS_WORKER_H_
