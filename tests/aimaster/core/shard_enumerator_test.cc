// ShardEnumerator: lazy shard layout over files or a record count.
#include "aimaster/core/shard_enumerator.h"

#include <algorithm>
#include <cstdint>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_format.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace elasticbatch::aimaster {
namespace {

using ::testing::HasSubstr;

constexpr uint64_t kMiB = uint64_t{1} << 20;

ShardEnumerator MustFiles(std::vector<SourceFile> files, ShardingMode mode,
                          uint64_t size) {
  absl::StatusOr<ShardEnumerator> e =
      ShardEnumerator::ForFiles(std::move(files), mode, size);
  EXPECT_TRUE(e.ok()) << e.status();
  return *std::move(e);
}

ShardEnumerator MustRecords(uint64_t records, uint64_t per_shard) {
  absl::StatusOr<ShardEnumerator> e = ShardEnumerator::ForRecords(records, per_shard);
  EXPECT_TRUE(e.ok()) << e.status();
  return *std::move(e);
}

struct Range {
  std::string source;
  uint64_t begin;
  uint64_t end;
  friend bool operator==(const Range& a, const Range& b) {
    return a.source == b.source && a.begin == b.begin && a.end == b.end;
  }
  friend std::ostream& operator<<(std::ostream& os, const Range& r) {
    return os << r.source << "[" << r.begin << "," << r.end << ")";
  }
};

std::vector<Range> AllRanges(const ShardEnumerator& e) {
  std::vector<Range> out;
  for (uint64_t id = 0; id < e.shard_count(); ++id) {
    ShardDescriptor d = e.Describe(id);
    EXPECT_EQ(d.id, id);
    EXPECT_NE(d.source, nullptr);
    out.push_back({*d.source, d.begin, d.end});
  }
  return out;
}

// Every byte of every non-empty file is covered exactly once, in file order,
// by shards of at most `shard` bytes, only the last shard of a file short.
void ExpectExactCover(const ShardEnumerator& e, const std::vector<SourceFile>& files,
                      uint64_t shard) {
  uint64_t id = 0;
  uint64_t total = 0;
  for (const SourceFile& f : files) {
    if (f.size == 0) continue;
    total += f.size;
    uint64_t pos = 0;
    while (pos < f.size) {
      ASSERT_LT(id, e.shard_count());
      ShardDescriptor d = e.Describe(id);
      ASSERT_EQ(*d.source, f.path) << "shard " << id;
      ASSERT_EQ(d.begin, pos) << "shard " << id;
      ASSERT_EQ(d.end, std::min(f.size, pos + shard)) << "shard " << id;
      ASSERT_EQ(e.ShardUnits(id), d.end - d.begin);
      pos = d.end;
      ++id;
    }
  }
  EXPECT_EQ(id, e.shard_count());
  EXPECT_EQ(total, e.total_units());
}

TEST(ShardEnumeratorTest, BytesModeSplitsFilesWithAShortLastShard) {
  ShardEnumerator e = MustFiles({{"a", 10}, {"b", 4}}, ShardingMode::kBytes, 4);
  EXPECT_EQ(e.shard_count(), 4u);
  EXPECT_EQ(e.unit(), ShardUnit::kBytes);
  EXPECT_EQ(e.mode(), ShardingMode::kBytes);
  EXPECT_EQ(e.total_units(), 14u);
  EXPECT_THAT(AllRanges(e), ::testing::ElementsAre(Range{"a", 0, 4}, Range{"a", 4, 8},
                                                   Range{"a", 8, 10}, Range{"b", 0, 4}));
  EXPECT_EQ(e.ShardUnits(2), 2u);
  EXPECT_EQ(e.ShardUnits(3), 4u);
  // The source pointer points into the enumerator's own file list.
  EXPECT_EQ(e.Describe(3).source, &e.files()[1].path);
  EXPECT_EQ(e.Describe(1).unit, ShardUnit::kBytes);
}

TEST(ShardEnumeratorTest, ShardsNeverSpanFilesAndCoverEveryByteOnce) {
  std::mt19937_64 rng(12345);
  for (int round = 0; round < 50; ++round) {
    std::vector<SourceFile> files;
    const int n = 1 + static_cast<int>(rng() % 20);
    for (int i = 0; i < n; ++i) {
      uint64_t size = rng() % 4 == 0 ? 0 : rng() % 100;
      files.push_back({absl::StrFormat("dir/f%03d", i), size});
    }
    if (std::all_of(files.begin(), files.end(),
                    [](const SourceFile& f) { return f.size == 0; })) {
      files[0].size = 1;
    }
    const uint64_t shard = 1 + rng() % 17;
    ShardEnumerator e = MustFiles(files, ShardingMode::kBytes, shard);
    SCOPED_TRACE(absl::StrFormat("round %d, shard size %d", round, shard));
    ExpectExactCover(e, files, shard);
  }
}

TEST(ShardEnumeratorTest, ExactMultipleHasNoShortShard) {
  ShardEnumerator e = MustFiles({{"a", 12}}, ShardingMode::kBytes, 4);
  EXPECT_EQ(e.shard_count(), 3u);
  EXPECT_EQ(e.Describe(2).begin, 8u);
  EXPECT_EQ(e.Describe(2).end, 12u);
}

TEST(ShardEnumeratorTest, EmptyFilesAreSkipped) {
  ShardEnumerator e = MustFiles({{"a", 0}, {"b", 5}, {"c", 0}, {"d", 3}, {"e", 0}},
                                ShardingMode::kBytes, 4);
  ASSERT_EQ(e.files().size(), 2u);
  EXPECT_EQ(e.files()[0].path, "b");
  EXPECT_EQ(e.files()[1].path, "d");
  EXPECT_THAT(AllRanges(e), ::testing::ElementsAre(Range{"b", 0, 4}, Range{"b", 4, 5},
                                                   Range{"d", 0, 3}));
  // Empty files add nothing to the layout.
  ShardEnumerator same = MustFiles({{"b", 5}, {"d", 3}}, ShardingMode::kBytes, 4);
  EXPECT_EQ(e.fingerprint(), same.fingerprint());

  ShardEnumerator per_file =
      MustFiles({{"a", 0}, {"b", 5}, {"c", 0}}, ShardingMode::kPerFile, 0);
  EXPECT_EQ(per_file.shard_count(), 1u);
  EXPECT_EQ(*per_file.Describe(0).source, "b");
}

TEST(ShardEnumeratorTest, NoDataIsAnError) {
  auto none = ShardEnumerator::ForFiles({}, ShardingMode::kBytes, 4);
  EXPECT_EQ(none.status().code(), absl::StatusCode::kInvalidArgument);
  auto empty = ShardEnumerator::ForFiles({{"a", 0}, {"b", 0}}, ShardingMode::kBytes, 4);
  EXPECT_EQ(empty.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(empty.status().message()), HasSubstr("no data"));
  auto empty_per_file = ShardEnumerator::ForFiles({{"a", 0}}, ShardingMode::kPerFile, 0);
  EXPECT_EQ(empty_per_file.status().code(), absl::StatusCode::kInvalidArgument);
  auto no_records = ShardEnumerator::ForRecords(0, 10);
  EXPECT_EQ(no_records.status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(ShardEnumeratorTest, ZeroShardSizeIsAnError) {
  auto bytes = ShardEnumerator::ForFiles({{"a", 10}}, ShardingMode::kBytes, 0);
  EXPECT_EQ(bytes.status().code(), absl::StatusCode::kInvalidArgument);
  auto records = ShardEnumerator::ForRecords(10, 0);
  EXPECT_EQ(records.status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(ShardEnumeratorTest, RecordModeOverFilesIsAnError) {
  auto e = ShardEnumerator::ForFiles({{"a", 10}}, ShardingMode::kRecords, 4);
  EXPECT_EQ(e.status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(ShardEnumeratorTest, OneByteFiles) {
  std::vector<SourceFile> files;
  for (int i = 0; i < 5; ++i) files.push_back({absl::StrFormat("f%d", i), 1});
  ShardEnumerator e = MustFiles(files, ShardingMode::kBytes, 4 * kMiB);
  ASSERT_EQ(e.shard_count(), 5u);
  for (uint64_t id = 0; id < 5; ++id) {
    ShardDescriptor d = e.Describe(id);
    EXPECT_EQ(*d.source, files[id].path);
    EXPECT_EQ(d.begin, 0u);
    EXPECT_EQ(d.end, 1u);
  }
  ShardEnumerator one = MustFiles({{"x", 3}}, ShardingMode::kBytes, 1);
  EXPECT_THAT(AllRanges(one), ::testing::ElementsAre(Range{"x", 0, 1}, Range{"x", 1, 2},
                                                     Range{"x", 2, 3}));
}

TEST(ShardEnumeratorTest, OneHugeFileIsNeverMaterialised) {
  const uint64_t size = 1'000'000'000'000'000ull;  // 10^15 bytes
  ShardEnumerator e = MustFiles({{"huge.bin", size}}, ShardingMode::kBytes, 4 * kMiB);
  // ceil(10^15 / 2^22)
  ASSERT_EQ(e.shard_count(), 238418580u);
  EXPECT_EQ(e.total_units(), size);
  ShardDescriptor first = e.Describe(0);
  EXPECT_EQ(first.begin, 0u);
  EXPECT_EQ(first.end, 4 * kMiB);
  ShardDescriptor mid = e.Describe(123456789);
  EXPECT_EQ(mid.begin, 123456789ull * 4 * kMiB);
  EXPECT_EQ(mid.end, 123456790ull * 4 * kMiB);
  ShardDescriptor last = e.Describe(238418579);
  EXPECT_EQ(*last.source, "huge.bin");
  EXPECT_EQ(last.begin, 999999999574016ull);
  EXPECT_EQ(last.end, size);
  EXPECT_EQ(e.ShardUnits(238418579), 425984u);
  EXPECT_EQ(e.ShardUnits(238418578), 4 * kMiB);
  // 238418579 has 9 digits.
  EXPECT_EQ(e.OutputName(0), "part-000000000");
  EXPECT_EQ(e.OutputName(238418579), "part-238418579");

  ShardEnumerator per_file = MustFiles({{"huge.bin", size}}, ShardingMode::kPerFile, 0);
  ASSERT_EQ(per_file.shard_count(), 1u);
  EXPECT_EQ(per_file.Describe(0).end, size);
  EXPECT_EQ(per_file.ShardUnits(0), size);
}

TEST(ShardEnumeratorTest, SeveralHugeFilesMapIdsAcrossFiles) {
  const uint64_t size = uint64_t{1} << 50;
  const uint64_t shard = 3 * kMiB;  // not a power of two
  const uint64_t per_file = (size + shard - 1) / shard;
  ShardEnumerator e =
      MustFiles({{"a", size}, {"b", size + 1}, {"c", 7}}, ShardingMode::kBytes, shard);
  ASSERT_EQ(e.shard_count(), per_file + (size + 1 + shard - 1) / shard + 1);
  EXPECT_EQ(*e.Describe(per_file - 1).source, "a");
  EXPECT_EQ(e.Describe(per_file - 1).end, size);
  EXPECT_EQ(*e.Describe(per_file).source, "b");
  EXPECT_EQ(e.Describe(per_file).begin, 0u);
  ShardDescriptor last_b = e.Describe(e.shard_count() - 2);
  EXPECT_EQ(*last_b.source, "b");
  EXPECT_EQ(last_b.end, size + 1);
  ShardDescriptor c = e.Describe(e.shard_count() - 1);
  EXPECT_EQ(*c.source, "c");
  EXPECT_EQ(c.begin, 0u);
  EXPECT_EQ(c.end, 7u);
  EXPECT_EQ(e.total_units(), 2 * size + 8);
}

TEST(ShardEnumeratorTest, ShardEndsDoNotOverflowNearTheTopOfTheRange) {
  const uint64_t half = uint64_t{1} << 63;
  ShardEnumerator bytes = MustFiles({{"a", half + 10}}, ShardingMode::kBytes, half);
  ASSERT_EQ(bytes.shard_count(), 2u);
  EXPECT_EQ(bytes.Describe(1).begin, half);
  EXPECT_EQ(bytes.Describe(1).end, half + 10);
  EXPECT_EQ(bytes.ShardUnits(1), 10u);

  const uint64_t max = ~uint64_t{0};
  ShardEnumerator records = MustRecords(max, half);
  ASSERT_EQ(records.shard_count(), 2u);
  EXPECT_EQ(records.Describe(1).begin, half);
  EXPECT_EQ(records.Describe(1).end, max);
  EXPECT_EQ(records.ShardUnits(1), half - 1);

  ShardEnumerator whole = MustFiles({{"a", max}, {"b", 3}}, ShardingMode::kBytes, max);
  ASSERT_EQ(whole.shard_count(), 2u);
  EXPECT_EQ(whole.Describe(0).end, max);
  EXPECT_EQ(whole.Describe(1).end, 3u);
}

TEST(ShardEnumeratorTest, ManyTinyFiles) {
  constexpr int kFiles = 100'000;
  std::vector<SourceFile> files;
  files.reserve(kFiles);
  uint64_t total = 0;
  for (int i = 0; i < kFiles; ++i) {
    const uint64_t size = i % 7 == 3 ? 0 : 1 + i % 3;
    files.push_back({absl::StrFormat("part-%06d.jsonl", i), size});
    total += size;
  }
  ShardEnumerator e = MustFiles(files, ShardingMode::kBytes, 4 * kMiB);
  std::vector<const SourceFile*> non_empty;
  for (const SourceFile& f : files) {
    if (f.size > 0) non_empty.push_back(&f);
  }
  ASSERT_EQ(e.shard_count(), non_empty.size());
  EXPECT_EQ(e.total_units(), total);
  for (uint64_t id = 0; id < e.shard_count(); ++id) {
    ShardDescriptor d = e.Describe(id);
    ASSERT_EQ(*d.source, non_empty[id]->path) << id;
    ASSERT_EQ(d.begin, 0u);
    ASSERT_EQ(d.end, non_empty[id]->size);
  }
  // With 1-byte shards every byte is a shard.
  ShardEnumerator bytes = MustFiles(files, ShardingMode::kBytes, 1);
  ASSERT_EQ(bytes.shard_count(), total);
  ExpectExactCover(bytes, files, 1);
}

TEST(ShardEnumeratorTest, PerFileModeMakesOneShardPerNonEmptyFile) {
  ShardEnumerator e =
      MustFiles({{"a", 10}, {"b", 0}, {"c/d", 5 * kMiB}}, ShardingMode::kPerFile, 0);
  EXPECT_EQ(e.mode(), ShardingMode::kPerFile);
  EXPECT_EQ(e.unit(), ShardUnit::kBytes);
  ASSERT_EQ(e.shard_count(), 2u);
  EXPECT_THAT(AllRanges(e),
              ::testing::ElementsAre(Range{"a", 0, 10}, Range{"c/d", 0, 5 * kMiB}));
  EXPECT_EQ(e.ShardUnits(1), 5 * kMiB);
  EXPECT_EQ(e.total_units(), 10 + 5 * kMiB);
  // The shard size plays no part in per-file mode.
  ShardEnumerator other =
      MustFiles({{"a", 10}, {"b", 0}, {"c/d", 5 * kMiB}}, ShardingMode::kPerFile, 1);
  EXPECT_EQ(other.shard_count(), 2u);
  EXPECT_EQ(other.Describe(1).end, 5 * kMiB);
}

TEST(ShardEnumeratorTest, RecordCountMode) {
  ShardEnumerator e = MustRecords(10, 3);
  EXPECT_EQ(e.mode(), ShardingMode::kRecords);
  EXPECT_EQ(e.unit(), ShardUnit::kRecords);
  EXPECT_EQ(e.total_units(), 10u);
  EXPECT_THAT(AllRanges(e), ::testing::ElementsAre(Range{"", 0, 3}, Range{"", 3, 6},
                                                   Range{"", 6, 9}, Range{"", 9, 10}));
  EXPECT_EQ(e.Describe(3).unit, ShardUnit::kRecords);
  EXPECT_EQ(e.ShardUnits(3), 1u);
  EXPECT_EQ(MustRecords(9, 3).shard_count(), 3u);
  EXPECT_EQ(MustRecords(1, 1000).shard_count(), 1u);
  EXPECT_EQ(MustRecords(1, 1000).ShardUnits(0), 1u);

  ShardEnumerator big = MustRecords(10'000'000'000ull, 1000);
  EXPECT_EQ(big.shard_count(), 10'000'000u);
  EXPECT_EQ(big.Describe(9'999'999).begin, 9'999'999'000ull);
  EXPECT_EQ(big.Describe(9'999'999).end, 10'000'000'000ull);
}

TEST(ShardEnumeratorTest, OutputNamePadsToAtLeastFiveDigits) {
  ShardEnumerator small = MustRecords(4, 1);
  EXPECT_EQ(small.OutputName(0), "part-00000");
  EXPECT_EQ(small.OutputName(3), "part-00003");

  // 100000 shards: the largest id 99999 still fits in five digits.
  ShardEnumerator five = MustRecords(100'000, 1);
  EXPECT_EQ(five.OutputName(0), "part-00000");
  EXPECT_EQ(five.OutputName(99'999), "part-99999");

  // 100001 shards: the largest id has six digits, so every name has six.
  ShardEnumerator six = MustRecords(100'001, 1);
  EXPECT_EQ(six.OutputName(0), "part-000000");
  EXPECT_EQ(six.OutputName(7), "part-000007");
  EXPECT_EQ(six.OutputName(100'000), "part-100000");

  ShardEnumerator seven = MustRecords(10'000'000, 1);
  EXPECT_EQ(seven.OutputName(42), "part-0000042");
  EXPECT_EQ(seven.OutputName(9'999'999), "part-9999999");
  EXPECT_EQ(MustRecords(10'000'001, 1).OutputName(0), "part-00000000");
}

TEST(ShardEnumeratorTest, OutputNamesSortInShardOrder) {
  ShardEnumerator e = MustRecords(123'457, 1);
  std::vector<std::string> names;
  for (uint64_t id : {0ull, 1ull, 9ull, 10ull, 99ull, 100ull, 9999ull, 10000ull, 99999ull,
                      100000ull, 123456ull}) {
    names.push_back(e.OutputName(id));
  }
  EXPECT_TRUE(std::is_sorted(names.begin(), names.end()));
  EXPECT_EQ(std::set<std::string>(names.begin(), names.end()).size(), names.size());
}

TEST(ShardEnumeratorTest, FingerprintIsStableAcrossInstancesAndProcesses) {
  std::vector<SourceFile> files = {{"a", 10}, {"b/c", 5}};
  ShardEnumerator x = MustFiles(files, ShardingMode::kBytes, 4);
  ShardEnumerator y = MustFiles(files, ShardingMode::kBytes, 4);
  EXPECT_EQ(x.fingerprint(), y.fingerprint());
  EXPECT_EQ(MustRecords(1000, 10).fingerprint(), MustRecords(1000, 10).fingerprint());
  // Golden values (FNV-1a over the layout, computed independently): a change
  // here makes every existing journal unreadable, so it must be deliberate.
  EXPECT_EQ(x.fingerprint(), 0xf0b06a187f54578dull);
  EXPECT_EQ(MustFiles(files, ShardingMode::kPerFile, 4).fingerprint(),
            0x2f8133e015f0f05bull);
  EXPECT_EQ(MustRecords(1000, 10).fingerprint(), 0xcfa2ca7baafba6cbull);
}

TEST(ShardEnumeratorTest, FingerprintChangesWithTheLayout) {
  const std::vector<SourceFile> base_files = {{"ab", 10}, {"c", 5}};
  std::vector<uint64_t> prints = {
      MustFiles(base_files, ShardingMode::kBytes, 4).fingerprint(),
      MustFiles({{"ab", 10}, {"d", 5}}, ShardingMode::kBytes, 4).fingerprint(),  // path
      MustFiles({{"ab", 11}, {"c", 5}}, ShardingMode::kBytes, 4).fingerprint(),  // size
      MustFiles(base_files, ShardingMode::kBytes, 5).fingerprint(),    // shard size
      MustFiles(base_files, ShardingMode::kPerFile, 4).fingerprint(),  // mode
      MustFiles({{"c", 5}, {"ab", 10}}, ShardingMode::kBytes, 4).fingerprint(),  // order
      MustFiles({{"ab", 10}}, ShardingMode::kBytes, 4).fingerprint(),  // one fewer
      MustFiles({{"ab", 10}, {"c", 5}, {"e", 1}}, ShardingMode::kBytes, 4).fingerprint(),
      MustFiles({{"a", 10}, {"bc", 5}}, ShardingMode::kBytes, 4).fingerprint(),  // split
      MustFiles({{"ab", 5}, {"c", 10}}, ShardingMode::kBytes, 4)
          .fingerprint(),  // swap sizes
      MustRecords(15, 4).fingerprint(),
      MustRecords(16, 4).fingerprint(),
      MustRecords(15, 5).fingerprint(),
  };
  std::set<uint64_t> distinct(prints.begin(), prints.end());
  EXPECT_EQ(distinct.size(), prints.size());
}

}  // namespace
}  // namespace elasticbatch::aimaster
