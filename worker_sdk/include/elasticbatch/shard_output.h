// ShardOutput: a shard's output file, published exactly once.
//
// Writes go to a staging file under <output dir>/_temporary/. Commit() asks
// the master; only when this attempt is granted is the staging file renamed
// atomically onto <output dir>/<output_name> ("part-00042"); otherwise it is
// deleted. A crash at any point leaves no partial part-* file.
//
//   auto out = shard.OpenOutput();   // ShardOutput::Open(shard, worker->output_dir())
//   absl::Status written = (*out)->WriteLine("{\"label\":1}");  // sticky on error
//   absl::Status s = (*out)->Commit();   // OK, or ABORTED: another attempt won
//
// Not thread-safe.
#ifndef ELASTICBATCH_SHARD_OUTPUT_H_
#define ELASTICBATCH_SHARD_OUTPUT_H_

#include <cstdio>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "elasticbatch/shard.h"

namespace elasticbatch {

class ShardOutput {
 public:
  // `shard` must outlive the ShardOutput. FAILED_PRECONDITION when the output
  // directory cannot be written.
  static absl::StatusOr<std::unique_ptr<ShardOutput>> Open(Shard& shard,
                                                           const std::string& output_dir);
  // Deletes the staging file unless committed.
  ~ShardOutput();

  // Appends to the staging file. The first error is sticky: every later
  // Write and Commit() return it, so an output that lost data is never
  // published. FAILED_PRECONDITION after Commit() or Discard().
  absl::Status Write(absl::string_view data);
  absl::Status WriteLine(absl::string_view line);
  uint64_t bytes_written() const { return bytes_; }
  const std::string& staging_path() const { return staging_path_; }
  const std::string& final_path() const { return final_path_; }

  // Flushes and fsyncs the staging file, then commits the shard: see above.
  // After a write error it discards the staging file and returns that error
  // without asking the master. The rename is made durable (directory fsync);
  // when that fails the published file is removed again and the error is
  // returned (the master hears of it and hands the shard out again).
  absl::Status Commit();
  // Deletes the staging file now.
  void Discard();

 private:
  ShardOutput() = default;
  Shard* shard_ = nullptr;
  std::string staging_path_;
  std::string final_path_;
  std::FILE* file_ = nullptr;
  uint64_t bytes_ = 0;
  bool done_ = false;
  absl::Status error_;  // the first write error, sticky
};

}  // namespace elasticbatch

#endif  // ELASTICBATCH_SHARD_OUTPUT_H_
