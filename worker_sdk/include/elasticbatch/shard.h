// Shard: one leased unit of work, as handed out by Worker::Shards() or
// Worker::NextShard().
//
//   auto lines = shard.OpenLines();     // reports progress as it reads
//   auto out = shard.OpenOutput();      // staged; published by Commit()
//   std::string line;
//   absl::StatusOr<bool> more;
//   while ((more = (*lines)->Next(&line)).ok() && *more) {
//     absl::Status written = (*out)->WriteLine(Score(line));  // sticky: Commit() sees it
//   }
//   absl::Status s = more.ok() ? (*out)->Commit() : more.status();
//   // shard.Commit() commits without output; on an error: shard.Fail(s)
//
// A Shard is move-only; its methods are thread-safe. After the master revoked
// the lease (it expired, or a duplicate committed first) cancelled() turns
// true: stop working on it; Commit() then returns ABORTED.
#ifndef ELASTICBATCH_SHARD_H_
#define ELASTICBATCH_SHARD_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace elasticbatch {

namespace internal {
class WorkerCore;
struct ShardState;
}  // namespace internal

class LineRangeReader;  // elasticbatch/line_range_reader.h
class ShardOutput;      // elasticbatch/shard_output.h

enum class ShardUnit {
  kBytes,    // [begin, end) is a byte range of input_path(); align with LineRangeReader
  kRecords,  // [begin, end) is a range of record indexes; see RecordRange
};

class Shard {
 public:
  Shard(Shard&&) noexcept;
  Shard& operator=(Shard&&) noexcept;
  // Unfinished shards are left to the master: their leases expire or are
  // released when the Worker stops.
  ~Shard();

  uint64_t id() const;
  // The lease's attempt number (fencing token).
  uint32_t attempt() const;
  // Input channel and source path relative to it.
  const std::string& channel() const;
  const std::string& source() const;
  // The source resolved against this worker's PAI_INPUT_<CHANNEL>.
  const std::string& input_path() const;
  uint64_t begin() const;
  uint64_t end() const;
  ShardUnit unit() const;
  // Final name of this shard's output file ("part-00042").
  const std::string& output_name() const;
  // True for a speculative duplicate of a straggler's shard.
  bool speculative() const;

  // A reader of this BYTES shard's lines that reports progress to the shard
  // as it reads (no ReportProgress calls needed), and stops once the shard is
  // cancelled: Next() then returns ABORTED (never a plain end, so a partial
  // result is not mistaken for a whole one), as Commit() would. The reader keeps what
  // it reports to alive, so it may outlive the Shard. FAILED_PRECONDITION for
  // a RECORDS shard (use RecordRange); else as LineRangeReader::Open.
  absl::StatusOr<std::unique_ptr<LineRangeReader>> OpenLines();
  // This shard's output in the worker's output directory: as
  // ShardOutput::Open(*this, worker.output_dir()). The Shard must outlive it.
  absl::StatusOr<std::unique_ptr<ShardOutput>> OpenOutput();

  // Records processed so far and, optionally, the position reached in the
  // shard's unit counted from begin() (lets the master spot stragglers).
  // Readers from OpenLines() call it themselves.
  void ReportProgress(uint64_t records, uint64_t units_done = 0);
  uint64_t records() const;
  bool cancelled() const;

  // Asks the master to commit this attempt (no output file). OK when this
  // attempt is the one committed; ABORTED when another attempt won or the
  // lease was lost; UNAVAILABLE when the master stayed unreachable.
  absl::Status Commit();
  // Reports a failure; the shard is retried elsewhere or quarantined. `error`
  // is kept in the dead-letter manifest.
  absl::Status Fail(const absl::Status& error);

 private:
  friend class internal::WorkerCore;
  friend class ShardOutput;
  Shard(std::shared_ptr<internal::WorkerCore> core,
        std::shared_ptr<internal::ShardState> state);
  // Commit with a publish step that runs only when this attempt is granted.
  absl::Status CommitWith(const std::function<absl::Status()>& publish);

  std::shared_ptr<internal::WorkerCore> core_;
  std::shared_ptr<internal::ShardState> state_;
};

}  // namespace elasticbatch

#endif  // ELASTICBATCH_SHARD_H_
