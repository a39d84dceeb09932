#include "aimaster/core/shard_enumerator.h"

#include <algorithm>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace elasticbatch::aimaster {
namespace {

// FNV-1a: deterministic across processes, unlike absl::Hash.
class Fnv1a {
 public:
  void Add(const void* data, size_t n) {
    const auto* p = static_cast<const unsigned char*>(data);
    for (size_t i = 0; i < n; ++i) h_ = (h_ ^ p[i]) * 0x100000001b3ull;
  }
  void Add(uint64_t v) { Add(&v, sizeof(v)); }
  void Add(const std::string& s) {
    Add(static_cast<uint64_t>(s.size()));
    Add(s.data(), s.size());
  }
  uint64_t value() const { return h_; }

 private:
  uint64_t h_ = 0xcbf29ce484222325ull;
};

uint64_t CeilDiv(uint64_t a, uint64_t b) { return a / b + (a % b != 0 ? 1 : 0); }

}  // namespace

absl::StatusOr<ShardEnumerator> ShardEnumerator::ForFiles(std::vector<SourceFile> files,
                                                          ShardingMode mode,
                                                          uint64_t shard_bytes) {
  if (mode == ShardingMode::kRecords) {
    return absl::InvalidArgumentError("record shards need a record count, not files");
  }
  if (mode == ShardingMode::kBytes && shard_bytes == 0) {
    return absl::InvalidArgumentError("shard size must be at least 1 byte");
  }
  ShardEnumerator e;
  e.mode_ = mode;
  e.shard_size_ = mode == ShardingMode::kBytes ? shard_bytes : 0;
  files.erase(std::remove_if(files.begin(), files.end(),
                             [](const SourceFile& f) { return f.size == 0; }),
              files.end());
  e.files_ = std::move(files);
  e.first_shard_.reserve(e.files_.size() + 1);
  uint64_t next = 0;
  for (const SourceFile& f : e.files_) {
    e.first_shard_.push_back(next);
    next += mode == ShardingMode::kPerFile ? 1 : CeilDiv(f.size, shard_bytes);
    e.total_units_ += f.size;
  }
  e.first_shard_.push_back(next);
  e.shard_count_ = next;
  if (e.shard_count_ == 0) return absl::InvalidArgumentError("the input holds no data");
  e.Finish();
  return e;
}

absl::StatusOr<ShardEnumerator> ShardEnumerator::ForRecords(uint64_t records,
                                                            uint64_t shard_records) {
  if (shard_records == 0) {
    return absl::InvalidArgumentError("shard size must be at least 1 record");
  }
  if (records == 0) return absl::InvalidArgumentError("the input holds no records");
  ShardEnumerator e;
  e.mode_ = ShardingMode::kRecords;
  e.shard_size_ = shard_records;
  e.records_ = records;
  e.total_units_ = records;
  e.shard_count_ = CeilDiv(records, shard_records);
  e.Finish();
  return e;
}

void ShardEnumerator::Finish() {
  int digits = 1;
  for (uint64_t v = shard_count_ - 1; v >= 10; v /= 10) ++digits;
  name_width_ = std::max(5, digits);
  Fnv1a h;
  h.Add(static_cast<uint64_t>(mode_));
  h.Add(shard_size_);
  h.Add(records_);
  h.Add(static_cast<uint64_t>(files_.size()));
  for (const SourceFile& f : files_) {
    h.Add(f.path);
    h.Add(f.size);
  }
  fingerprint_ = h.value();
}

ShardDescriptor ShardEnumerator::Describe(uint64_t id) const {
  ShardDescriptor d;
  d.id = id;
  d.unit = unit();
  if (mode_ == ShardingMode::kRecords) {
    d.source = &empty_source_;
    d.begin = id * shard_size_;
    d.end = d.begin + std::min(shard_size_, records_ - d.begin);  // no overflow
    return d;
  }
  // The file whose first shard is the last one <= id.
  auto it = std::upper_bound(first_shard_.begin(), first_shard_.end(), id);
  const size_t file = static_cast<size_t>(it - first_shard_.begin()) - 1;
  const SourceFile& f = files_[file];
  d.source = &f.path;
  if (mode_ == ShardingMode::kPerFile) {
    d.begin = 0;
    d.end = f.size;
  } else {
    d.begin = (id - first_shard_[file]) * shard_size_;
    d.end = d.begin + std::min(shard_size_, f.size - d.begin);  // no overflow
  }
  return d;
}

uint64_t ShardEnumerator::ShardUnits(uint64_t id) const {
  ShardDescriptor d = Describe(id);
  return d.end - d.begin;
}

std::string ShardEnumerator::OutputName(uint64_t id) const {
  return absl::StrFormat("part-%0*d", name_width_, id);
}

}  // namespace elasticbatch::aimaster
