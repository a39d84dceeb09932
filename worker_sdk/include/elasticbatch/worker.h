// Worker: an ElasticBatch worker process's connection to the AIMaster.
//
//   auto worker = elasticbatch::Worker::FromEnvironment();   // ELASTICBATCH_CONFIG, ...
//   if (!worker.ok()) { std::cerr << worker.status() << "\n"; return 2; }
//   for (absl::StatusOr<elasticbatch::Shard>& shard : (*worker)->Shards()) {
//     if (!shard.ok()) return 1;        // master lost, or it told us to stop
//     auto lines = shard->OpenLines();  // reports progress as it reads
//     auto out = shard->OpenOutput();
//     ... check both, read *lines, write *out ...
//     absl::Status s = (*out)->Commit();  // published once, or ABORTED: another won
//   }                                   // all data done: exit 0
//
// It registers at once (no waiting for other workers), prefetches shards so a
// fast worker never waits on a round trip, heartbeats progress from a
// background thread, retries UNAVAILABLE with jittered exponential backoff
// (so it survives a master restart, re-registering with the leases it holds),
// cancels shards whose lease was lost, and ends cleanly on END.
//
// Thread-safe. One Worker per process.
#ifndef ELASTICBATCH_WORKER_H_
#define ELASTICBATCH_WORKER_H_

#include <cstddef>
#include <cstdint>
#include <iterator>
#include <memory>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
// Included for what Shard::OpenLines() and OpenOutput() return.
#include "elasticbatch/line_range_reader.h"
#include "elasticbatch/shard.h"
#include "elasticbatch/shard_output.h"

namespace elasticbatch {

namespace internal {
class WorkerCore;
class WorkerFactory;
}  // namespace internal

struct WorkerOptions {
  // host:port of the AIMaster; required. Default: empty; FromEnvironment():
  // $AIMASTER_ADDR.
  std::string master_address;
  // This instance's index. Default: 0; FromEnvironment(): ELASTICBATCH_CONFIG's
  // task.index.
  uint32_t task_index = 0;
  // Launch attempt of this instance. Default: 0; FromEnvironment():
  // $ELASTICBATCH_ATTEMPT, else 0.
  uint32_t attempt = 0;
  // Shards held beyond the one being processed. Default: 1.
  uint32_t prefetch = 1;
  // Root of the input channel shards name their sources in. Default: empty,
  // meaning PAI_INPUT_<CHANNEL> of the job's input channel as the master names it.
  std::string input_root;
  // Where ShardOutput publishes. Default: empty, meaning PAI_OUTPUT_<CHANNEL> of
  // the job's output channel.
  std::string output_dir;
  // Deadline of each call to the master. Default: 10s.
  absl::Duration rpc_timeout = absl::Seconds(10);
  // Upper bound of the retry backoff. Default: 5s.
  absl::Duration max_backoff = absl::Seconds(5);
  // Give up (NextShard returns UNAVAILABLE) when the master stays unreachable
  // this long and has left no _SUCCESS/_FAILED in the output. Default: 10min.
  absl::Duration master_lost_timeout = absl::Minutes(10);
  // The job token sent with every call (`authorization: Bearer`). Default:
  // empty, none; FromEnvironment(): $ELASTICBATCH_TOKEN, else the contents of
  // the file $ELASTICBATCH_TOKEN_FILE names.
  std::string token;
  // TLS to the master, verifying its certificate. Default: false;
  // FromEnvironment(): $ELASTICBATCH_TLS ("1"/"true"). Any tls_* field set
  // below implies it.
  bool tls = false;
  // CA certificates (PEM file) the master's certificate must chain to.
  // Default: empty, the system's store; FromEnvironment(): $ELASTICBATCH_TLS_CA.
  std::string tls_ca_file;
  // This worker's certificate chain and key (PEM files) for mutual TLS.
  // Default: none; FromEnvironment(): $ELASTICBATCH_TLS_CERT, $ELASTICBATCH_TLS_KEY.
  std::string tls_cert_file;
  std::string tls_key_file;
  // Name the master's certificate must carry. Default: empty, the host of
  // master_address; FromEnvironment(): $ELASTICBATCH_TLS_SERVER_NAME.
  std::string tls_server_name;
};

class Worker;

// The shards of a Worker as a single-pass range (Worker::Shards()). Each step
// releases the previous shard (left to the master if unfinished) and calls
// NextShard(): the range ends when the job is over; an error is yielded once,
// as a non-OK element, and then the range ends. Not thread-safe.
class ShardRange {
 public:
  class Iterator {
   public:
    using iterator_category = std::input_iterator_tag;
    using value_type = absl::StatusOr<Shard>;
    using difference_type = std::ptrdiff_t;
    using pointer = value_type*;
    using reference = value_type&;
    reference operator*() const { return range_->current_; }
    pointer operator->() const { return &range_->current_; }
    Iterator& operator++() {
      range_->Advance();
      return *this;
    }
    bool operator==(const Iterator& other) const { return at_end() == other.at_end(); }
    bool operator!=(const Iterator& other) const { return !(*this == other); }

   private:
    friend class ShardRange;
    explicit Iterator(ShardRange* range) : range_(range) {}
    bool at_end() const { return range_ == nullptr || range_->done_; }
    ShardRange* range_;
  };

  // Waits for the first shard.
  Iterator begin();
  Iterator end() { return Iterator(nullptr); }

 private:
  friend class Worker;
  explicit ShardRange(Worker* worker) : worker_(worker) {}
  void Advance();

  Worker* worker_;
  absl::StatusOr<Shard> current_;
  bool started_ = false;
  bool done_ = false;
  bool failed_ = false;  // yielded an error: end at the next step
};

class Worker {
 public:
  // Connects and registers. INVALID_ARGUMENT for bad options; UNAVAILABLE when
  // the master could not be reached within master_lost_timeout, or at once
  // when the TLS handshake fails (wrong CA or name); UNAUTHENTICATED when the
  // master refuses the token;
  // FAILED_PRECONDITION when the master refuses this instance (a backup won
  // the start race, or the attempt was superseded): exit without retrying.
  static absl::StatusOr<std::unique_ptr<Worker>> Create(const WorkerOptions& options);
  // Create() with defaults from the environment contract; fields set in
  // `overrides` (non-empty strings, prefetch, timeouts) win.
  static absl::StatusOr<std::unique_ptr<Worker>> FromEnvironment(
      const WorkerOptions& overrides = WorkerOptions());
  // Stops the background thread after sending outstanding confirmations.
  ~Worker();

  // Blocks until a shard is ready (nullopt: the job is over). UNAVAILABLE when
  // the master was lost; FAILED_PRECONDITION when it told this worker to stop.
  absl::StatusOr<std::optional<Shard>> NextShard();
  // The same as a range: for (absl::StatusOr<Shard>& shard : worker->Shards()).
  // The Worker must outlive the range.
  ShardRange Shards() { return ShardRange(this); }

  // True once the master said the job is over (shards in progress are then
  // cancelled).
  bool job_over() const;
  // After NextShard returned nullopt: whether the job succeeded, and why it ended.
  bool job_succeeded() const;
  std::string end_reason() const;

  const std::string& input_channel() const;
  const std::string& output_channel() const;
  const std::string& input_root() const;
  const std::string& output_dir() const;
  uint64_t total_shards() const;
  uint32_t task_index() const;

 private:
  friend class internal::WorkerFactory;
  explicit Worker(std::shared_ptr<internal::WorkerCore> core);
  std::shared_ptr<internal::WorkerCore> core_;
};

}  // namespace elasticbatch

#endif  // ELASTICBATCH_WORKER_H_
