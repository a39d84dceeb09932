// Lazy shard enumeration: shard ids map to (source, begin, end) through prefix
// sums of per-source shard counts, so nothing is materialised per shard.
// Memory is O(sources); Describe() is O(log sources).
//
//   auto shards = ShardEnumerator::ForFiles(files, ShardingMode::kBytes, 4 << 20);
//   ShardDescriptor d = shards->Describe(17);  // d.source, d.begin, d.end
//
// Immutable after construction, hence thread-safe.
#ifndef ELASTICBATCH_AIMASTER_CORE_SHARD_ENUMERATOR_H_
#define ELASTICBATCH_AIMASTER_CORE_SHARD_ENUMERATOR_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace elasticbatch::aimaster {

enum class ShardUnit { kBytes, kRecords };

enum class ShardingMode {
  kBytes,    // byte ranges of shard_size bytes (records aligned by the reader)
  kRecords,  // record index ranges of shard_size records over a record count
  kPerFile,  // one shard per file
};

// One input file, named relative to its channel's root ("" when the channel is
// itself a single file).
struct SourceFile {
  std::string path;
  uint64_t size = 0;
};

struct ShardDescriptor {
  uint64_t id = 0;
  // Relative source path; points into the enumerator, valid while it lives.
  const std::string* source = nullptr;
  uint64_t begin = 0;
  uint64_t end = 0;
  ShardUnit unit = ShardUnit::kBytes;
};

class ShardEnumerator {
 public:
  // Shards over files. Empty files are skipped. INVALID_ARGUMENT for a zero
  // shard size, a mode other than kBytes/kPerFile, or when no shard results.
  static absl::StatusOr<ShardEnumerator> ForFiles(std::vector<SourceFile> files,
                                                  ShardingMode mode,
                                                  uint64_t shard_bytes);
  // Shards over `records` records of a table-like input.
  static absl::StatusOr<ShardEnumerator> ForRecords(uint64_t records,
                                                    uint64_t shard_records);

  uint64_t shard_count() const { return shard_count_; }
  ShardUnit unit() const {
    return mode_ == ShardingMode::kRecords ? ShardUnit::kRecords : ShardUnit::kBytes;
  }
  ShardingMode mode() const { return mode_; }
  // Requires id < shard_count().
  ShardDescriptor Describe(uint64_t id) const;
  // Size of a shard in its unit (bytes or records).
  uint64_t ShardUnits(uint64_t id) const;
  // The shard's final output file name: "part-" + id zero-padded to the width of
  // the largest id (at least 5 digits), so names sort in shard order.
  std::string OutputName(uint64_t id) const;
  // Stable across processes: identifies the layout in the journal header.
  uint64_t fingerprint() const { return fingerprint_; }
  const std::vector<SourceFile>& files() const { return files_; }
  // Total bytes (or records) covered.
  uint64_t total_units() const { return total_units_; }

 private:
  ShardEnumerator() = default;
  void Finish();

  ShardingMode mode_ = ShardingMode::kBytes;
  uint64_t shard_size_ = 1;
  std::vector<SourceFile> files_;
  // first_shard_[i] is the id of file i's first shard; one extra entry at the end.
  std::vector<uint64_t> first_shard_;
  uint64_t records_ = 0;
  uint64_t shard_count_ = 0;
  uint64_t total_units_ = 0;
  int name_width_ = 5;
  uint64_t fingerprint_ = 0;
  std::string empty_source_;
};

}  // namespace elasticbatch::aimaster

#endif  // ELASTICBATCH_AIMASTER_CORE_SHARD_ENUMERATOR_H_
