// Tests for LineRangeReader (Hadoop split semantics) and RecordRange.
//
// A split [begin, end) owns the lines that start at s with begin < s <= end
// (0 <= s <= end for the first split); an empty split owns nothing. Cutting a
// file into contiguous splits must yield every line exactly once, in order.
#include "elasticbatch/line_range_reader.h"

#include <algorithm>
#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "elasticbatch/record_range.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/temp_files.h"

namespace elasticbatch {
namespace {

using ::testing::ElementsAre;
using ::testing::ElementsAreArray;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

// No test file has this many lines; more means the reader does not stop.
constexpr size_t kMaxLines = 100000;

struct SplitResult {
  std::vector<std::string> lines;
  uint64_t units_done = 0;
};

// Reads split [begin, end) of `path` to its end, checking progress on the way.
SplitResult ReadSplit(const std::string& path, uint64_t begin, uint64_t end,
                      LineRangeReader::Options options = LineRangeReader::Options()) {
  SplitResult result;
  absl::StatusOr<std::unique_ptr<LineRangeReader>> reader =
      LineRangeReader::Open(path, begin, end, options);
  EXPECT_TRUE(reader.ok()) << reader.status();
  if (!reader.ok()) return result;
  const uint64_t split_size = end > begin ? end - begin : 0;
  uint64_t last_units = (*reader)->units_done();
  EXPECT_LE(last_units, split_size);
  std::string line = "garbage";
  while (true) {
    absl::StatusOr<bool> more = (*reader)->Next(&line);
    EXPECT_TRUE(more.ok()) << more.status();
    if (!more.ok()) break;
    const uint64_t units = (*reader)->units_done();
    EXPECT_LE(units, split_size) << "split [" << begin << "," << end << ")";
    EXPECT_GE(units, last_units) << "progress went backwards";
    last_units = units;
    if (!*more) break;
    result.lines.push_back(line);
    if (result.lines.size() > kMaxLines) {
      ADD_FAILURE() << "split [" << begin << "," << end << ") never ends";
      break;
    }
    EXPECT_EQ((*reader)->records(), result.lines.size());
  }
  // After the end, Next keeps returning false.
  absl::StatusOr<bool> again = (*reader)->Next(&line);
  EXPECT_TRUE(again.ok() && !*again);
  result.units_done = (*reader)->units_done();
  return result;
}

// Lines of `content` computed independently: split on '\n', strip one
// trailing '\r', no phantom line after a final newline.
std::vector<std::string> ExpectedLines(const std::string& content) {
  std::vector<std::string> lines;
  size_t start = 0;
  while (start < content.size()) {
    size_t nl = content.find('\n', start);
    const size_t stop = nl == std::string::npos ? content.size() : nl;
    std::string line = content.substr(start, stop - start);
    if (!line.empty() && line.back() == '\r') line.pop_back();
    lines.push_back(std::move(line));
    start = nl == std::string::npos ? content.size() : nl + 1;
  }
  return lines;
}

// Offsets at which the lines of `content` start (parallel to ExpectedLines).
std::vector<uint64_t> LineStarts(const std::string& content) {
  std::vector<uint64_t> starts;
  for (size_t i = 0; i < content.size(); ++i) {
    if (i == 0 || content[i - 1] == '\n') starts.push_back(i);
  }
  return starts;
}

class LineRangeReaderTest : public ::testing::Test {
 protected:
  std::string Write(const std::string& content) {
    const std::string path = absl::StrCat(dir_.path(), "/file", files_++, ".txt");
    testing::WriteFileOrDie(path, content);
    return path;
  }
  testing::TempDir dir_;
  int files_ = 0;
};

TEST_F(LineRangeReaderTest, HelpersAgreeWithHandWorkedExamples) {
  EXPECT_THAT(ExpectedLines(""), IsEmpty());
  EXPECT_THAT(ExpectedLines("\n"), ElementsAre(""));
  EXPECT_THAT(ExpectedLines("a\r\nb"), ElementsAre("a", "b"));
  EXPECT_THAT(ExpectedLines("a\n\n"), ElementsAre("a", ""));
  EXPECT_THAT(LineStarts("ab\ncd\n\nx"), ElementsAre(0, 3, 6, 7));
}

TEST_F(LineRangeReaderTest, WholeFile) {
  const std::string path = Write("alpha\nbeta\ngamma\n");
  SplitResult r = ReadSplit(path, 0, 17);
  EXPECT_THAT(r.lines, ElementsAre("alpha", "beta", "gamma"));
  EXPECT_EQ(r.units_done, 17u);
}

// A stop is ABORTED, never a plain end of split: a caller that wrote its own
// sink must not take a half-read split for a whole one.
TEST_F(LineRangeReaderTest, OnRecordSeesEachLinesProgressAndCanStopTheReader) {
  const std::string path = Write("alpha\nbeta\ngamma\n");
  std::vector<std::pair<uint64_t, uint64_t>> seen;
  LineRangeReader::Options options;
  options.on_record = [&](uint64_t records, uint64_t units_done) {
    seen.push_back({records, units_done});
    return records < 2;  // stop at the second line, as for a cancelled shard
  };
  auto reader = LineRangeReader::Open(path, 0, 17, options);
  ASSERT_TRUE(reader.ok()) << reader.status();
  std::string line;
  EXPECT_TRUE(*(*reader)->Next(&line));
  EXPECT_EQ(line, "alpha");
  absl::StatusOr<bool> stopped = (*reader)->Next(&line);
  EXPECT_TRUE(absl::IsAborted(stopped.status())) << stopped.status();
  EXPECT_EQ(line, "");
  EXPECT_EQ((*reader)->records(), 1u);  // the dropped line does not count
  EXPECT_TRUE(absl::IsAborted((*reader)->Next(&line).status()));
  EXPECT_THAT(seen, ElementsAre(std::pair<uint64_t, uint64_t>{1, 6},
                                std::pair<uint64_t, uint64_t>{2, 11}));
}

TEST_F(LineRangeReaderTest, CrlfEndingsAreStripped) {
  const std::string path = Write("a\r\nbb\r\n\r\nccc\r\n");
  EXPECT_THAT(ReadSplit(path, 0, 14).lines, ElementsAre("a", "bb", "", "ccc"));
}

TEST_F(LineRangeReaderTest, OnlyOneCarriageReturnIsStripped) {
  const std::string path = Write("a\r\r\nb\rc\n\r");
  EXPECT_THAT(ReadSplit(path, 0, 10).lines, ElementsAre("a\r", "b\rc", ""));
}

TEST_F(LineRangeReaderTest, NoFinalNewline) {
  const std::string path = Write("one\ntwo");
  EXPECT_THAT(ReadSplit(path, 0, 7).lines, ElementsAre("one", "two"));
  // "two" starts at 4: not owned by [0,3), owned by [0,4) and [3,7).
  EXPECT_THAT(ReadSplit(path, 0, 3).lines, ElementsAre("one"));
  EXPECT_THAT(ReadSplit(path, 3, 7).lines, ElementsAre("two"));
  EXPECT_THAT(ReadSplit(path, 0, 4).lines, ElementsAre("one", "two"));
  EXPECT_THAT(ReadSplit(path, 4, 7).lines, IsEmpty());
  const std::string crlf = Write("one\r\ntwo\r");
  EXPECT_THAT(ReadSplit(crlf, 0, 9).lines, ElementsAre("one", "two"));
}

TEST_F(LineRangeReaderTest, EmptyLinesArePreserved) {
  // Lines start at 0, 1, 2, 5, 6.
  const std::string path = Write("\n\nab\n\n\n");
  EXPECT_THAT(ReadSplit(path, 0, 7).lines, ElementsAre("", "", "ab", "", ""));
  EXPECT_THAT(ReadSplit(path, 0, 1).lines, ElementsAre("", ""));
  EXPECT_THAT(ReadSplit(path, 1, 2).lines, ElementsAre("ab"));
  EXPECT_THAT(ReadSplit(path, 2, 5).lines, ElementsAre(""));
  EXPECT_THAT(ReadSplit(path, 5, 7).lines, ElementsAre(""));
}

TEST_F(LineRangeReaderTest, LineLongerThanASplit) {
  const std::string long_line(10000, 'x');
  const std::string content = "a\n" + long_line + "\nb\n";  // starts at 0, 2, 10003
  const std::string path = Write(content);
  LineRangeReader::Options small;
  small.buffer_size = 4096;
  EXPECT_THAT(ReadSplit(path, 0, 2, small).lines, ElementsAre("a", long_line));
  EXPECT_THAT(ReadSplit(path, 2, 100, small).lines, IsEmpty());
  EXPECT_THAT(ReadSplit(path, 100, 5000, small).lines, IsEmpty());
  EXPECT_THAT(ReadSplit(path, 5000, 10003, small).lines, ElementsAre("b"));
  EXPECT_THAT(ReadSplit(path, 10003, 10005, small).lines, IsEmpty());
  // A single split in the middle of the long line owns nothing, yet reports
  // its whole size as done once finished.
  SplitResult mid = ReadSplit(path, 100, 5000, small);
  EXPECT_EQ(mid.units_done, 4900u);
}

TEST_F(LineRangeReaderTest, SplitStartingExactlyAtALineStart) {
  // Lines start at 0, 3, 6; the line at a split's begin belongs to the
  // previous split, which reads past its end.
  const std::string path = Write("ab\ncd\nef\n");
  EXPECT_THAT(ReadSplit(path, 0, 3).lines, ElementsAre("ab", "cd"));
  EXPECT_THAT(ReadSplit(path, 3, 6).lines, ElementsAre("ef"));
  EXPECT_THAT(ReadSplit(path, 6, 9).lines, IsEmpty());
  // One byte later, the boundary line moves to the next split.
  EXPECT_THAT(ReadSplit(path, 0, 2).lines, ElementsAre("ab"));
  EXPECT_THAT(ReadSplit(path, 2, 5).lines, ElementsAre("cd"));
  EXPECT_THAT(ReadSplit(path, 5, 9).lines, ElementsAre("ef"));
}

TEST_F(LineRangeReaderTest, EmptySplitOwnsNothing) {
  const std::string path = Write("ab\ncd\nef\n");
  for (uint64_t b : {0, 1, 2, 3, 4, 8, 9, 20}) {
    SCOPED_TRACE(b);
    SplitResult r = ReadSplit(path, b, b);
    EXPECT_THAT(r.lines, IsEmpty());
    EXPECT_EQ(r.units_done, 0u);
  }
  // end < begin is treated as empty.
  EXPECT_THAT(ReadSplit(path, 5, 2).lines, IsEmpty());
}

TEST_F(LineRangeReaderTest, BeginBeyondEndOfFile) {
  const std::string path = Write("ab\ncd\n");
  SplitResult r = ReadSplit(path, 100, 200);
  EXPECT_THAT(r.lines, IsEmpty());
  EXPECT_LE(r.units_done, 100u);
  EXPECT_THAT(ReadSplit(path, 6, 10).lines, IsEmpty());
  EXPECT_THAT(ReadSplit(path, 7, 10).lines, IsEmpty());
}

TEST_F(LineRangeReaderTest, EndBeyondEndOfFile) {
  const std::string path = Write("ab\ncd");
  SplitResult r = ReadSplit(path, 0, 1000);
  EXPECT_THAT(r.lines, ElementsAre("ab", "cd"));
  EXPECT_EQ(r.units_done, 5u);  // what was consumed
}

TEST_F(LineRangeReaderTest, UnitsDoneIsBoundedBySplitSize) {
  // Progress after each line never exceeds the split size and reaches it when
  // the last line crosses the end.
  const std::string content = "0123456789\n0123456789\n0123456789\n0123456789\n";
  const std::string path = Write(content);
  absl::StatusOr<std::unique_ptr<LineRangeReader>> reader =
      LineRangeReader::Open(path, 5, 15);
  ASSERT_TRUE(reader.ok()) << reader.status();
  // Skipping the partial first line counts as progress.
  EXPECT_EQ((*reader)->units_done(), 6u);  // 5 -> 11
  std::string line;
  ASSERT_TRUE(*(*reader)->Next(&line));
  EXPECT_EQ(line, "0123456789");
  EXPECT_EQ((*reader)->units_done(), 10u);  // consumed to 22, capped at 10
  EXPECT_FALSE(*(*reader)->Next(&line));
  EXPECT_EQ((*reader)->units_done(), 10u);
  EXPECT_EQ((*reader)->records(), 1u);
}

TEST_F(LineRangeReaderTest, MissingFileIsNotFound) {
  const std::string path = dir_.path() + "/no/such/file.jsonl";
  absl::StatusOr<std::unique_ptr<LineRangeReader>> reader =
      LineRangeReader::Open(path, 0, 10);
  ASSERT_FALSE(reader.ok());
  EXPECT_EQ(reader.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(std::string(reader.status().message()), HasSubstr(path));
}

TEST_F(LineRangeReaderTest, DirectoryIsAnErrorNotACrash) {
  for (uint64_t begin : {0, 3}) {
    absl::StatusOr<std::unique_ptr<LineRangeReader>> reader =
        LineRangeReader::Open(dir_.path(), begin, 10);
    if (!reader.ok()) continue;
    std::string line;
    absl::StatusOr<bool> more = (*reader)->Next(&line);
    EXPECT_FALSE(more.ok() && *more) << "read a line from a directory";
  }
}

TEST_F(LineRangeReaderTest, OneByteFiles) {
  const std::string x = Write("x");
  EXPECT_THAT(ReadSplit(x, 0, 1).lines, ElementsAre("x"));
  EXPECT_THAT(ReadSplit(x, 1, 1).lines, IsEmpty());
  EXPECT_THAT(ReadSplit(x, 1, 2).lines, IsEmpty());
  const std::string nl = Write("\n");
  EXPECT_THAT(ReadSplit(nl, 0, 1).lines, ElementsAre(""));
  EXPECT_THAT(ReadSplit(nl, 1, 2).lines, IsEmpty());
  const std::string cr = Write("\r");
  EXPECT_THAT(ReadSplit(cr, 0, 1).lines, ElementsAre(""));
}

TEST_F(LineRangeReaderTest, EmptyFile) {
  const std::string path = Write("");
  EXPECT_THAT(ReadSplit(path, 0, 0).lines, IsEmpty());
  EXPECT_THAT(ReadSplit(path, 0, 10).lines, IsEmpty());
  EXPECT_THAT(ReadSplit(path, 5, 10).lines, IsEmpty());
}

TEST_F(LineRangeReaderTest, LinesCrossingBufferBoundaries) {
  // Lines of every length around the 4096-byte buffer.
  std::string content;
  std::vector<std::string> want;
  for (size_t len : {4094, 4095, 4096, 4097, 1, 0, 8191, 8192, 8193}) {
    std::string line(len, 'a' + static_cast<char>(len % 26));
    want.push_back(line);
    content += line + (len % 2 ? "\r\n" : "\n");
  }
  const std::string path = Write(content);
  LineRangeReader::Options small;
  small.buffer_size = 4096;
  EXPECT_THAT(ReadSplit(path, 0, content.size(), small).lines, ElementsAreArray(want));
  EXPECT_THAT(ReadSplit(path, 0, content.size()).lines, ElementsAreArray(want));
}

// A random file: random line lengths (including 0 and very long), a random
// mix of "\n" and "\r\n", with or without a final newline, sometimes empty.
std::string RandomFile(std::mt19937_64& rng) {
  auto uniform = [&](uint64_t lo, uint64_t hi) {  // [lo, hi]
    return std::uniform_int_distribution<uint64_t>(lo, hi)(rng);
  };
  if (uniform(0, 19) == 0) return "";
  const uint64_t lines = uniform(1, 60);
  const uint64_t crlf_percent = uniform(0, 2) * 50;  // none, half, all
  std::string content;
  for (uint64_t i = 0; i < lines; ++i) {
    const uint64_t kind = uniform(0, 99);
    uint64_t len = 0;
    if (kind < 25) {
      len = 0;
    } else if (kind < 75) {
      len = uniform(1, 20);
    } else if (kind < 95) {
      len = uniform(21, 300);
    } else {
      len = uniform(3000, 12000);
    }
    for (uint64_t j = 0; j < len; ++j) {
      const uint64_t c = uniform(0, 99);
      // Mostly printable; a stray '\r' now and then.
      content.push_back(c == 0 ? '\r' : static_cast<char>(' ' + c % 95));
    }
    const bool last = i + 1 == lines;
    if (last && uniform(0, 1) == 0) break;  // no final newline
    content += uniform(0, 99) < crlf_percent ? "\r\n" : "\n";
  }
  return content;
}

// Reads `content` (stored at `path`) as the contiguous splits cut at `cuts`
// (0 = cuts[0] <= ... <= cuts.back() = end) and checks every split against
// the ownership rule and the whole against the file's lines.
void CheckSplits(const std::string& path, const std::string& content,
                 const std::vector<uint64_t>& cuts, LineRangeReader::Options options,
                 const std::vector<std::string>& want,
                 const std::vector<uint64_t>& starts) {
  std::vector<std::string> all;
  for (size_t i = 0; i + 1 < cuts.size(); ++i) {
    const uint64_t begin = cuts[i];
    const uint64_t end = cuts[i + 1];
    SplitResult r = ReadSplit(path, begin, end, options);
    // The lines this split owns, by the rule.
    std::vector<std::string> owned;
    if (begin < end) {
      for (size_t l = 0; l < starts.size(); ++l) {
        const uint64_t s = starts[l];
        if ((begin == 0 || s > begin) && s <= end) owned.push_back(want[l]);
      }
    }
    if (r.lines != owned) {
      ADD_FAILURE() << "split [" << begin << "," << end << ") of a " << content.size()
                    << "-byte file read " << r.lines.size() << " lines, owns "
                    << owned.size();
      return;
    }
    const uint64_t consumed_end = std::min<uint64_t>(end, content.size());
    if (begin < consumed_end) {
      // A finished split reports all of its bytes in the file as done.
      EXPECT_EQ(r.units_done, consumed_end - begin)
          << "split [" << begin << "," << end << ")";
    }
    all.insert(all.end(), r.lines.begin(), r.lines.end());
  }
  if (all != want) {
    ADD_FAILURE() << "concatenated splits: " << all.size() << " lines, file has "
                  << want.size();
  }
}

TEST_F(LineRangeReaderTest, PropertyEverySplittingYieldsEveryLineOnce) {
  std::mt19937_64 rng(0x5eed2024);
  int files = 0;
  int splits = 0;
  for (int f = 0; f < 120; ++f) {
    const std::string content = RandomFile(rng);
    const std::string path = Write(content);
    const std::vector<std::string> want = ExpectedLines(content);
    const std::vector<uint64_t> starts = LineStarts(content);
    ASSERT_EQ(want.size(), starts.size());
    const uint64_t size = content.size();
    ++files;

    // Split sizes: tiny, random, the file size and beyond.
    std::vector<uint64_t> sizes = {1, 2, 3, 7, size, size + 1, size + 1000};
    for (int i = 0; i < 6; ++i) {
      sizes.push_back(std::uniform_int_distribution<uint64_t>(1, size + 10)(rng));
    }
    for (uint64_t s : sizes) {
      if (s == 0) s = 1;
      // Keep the number of splits bounded for runtime.
      if (size / s > 4000) continue;
      SCOPED_TRACE(absl::StrCat("file ", f, " (", size, " bytes), split size ", s));
      std::vector<uint64_t> cuts = {0};
      while (cuts.back() < size) cuts.push_back(std::min(cuts.back() + s, size));
      if (cuts.size() == 1) cuts.push_back(size);  // empty file: [0,0)
      LineRangeReader::Options options;
      // A small buffer crosses buffer boundaries; the default one is costly to
      // allocate per split, so use it for few splits only.
      if (cuts.size() > 200 || (s + f) % 2 == 0) options.buffer_size = 4096;
      CheckSplits(path, content, cuts, options, want, starts);
      splits += static_cast<int>(cuts.size()) - 1;
      if (HasFailure()) return;
    }

    // Random cut points, duplicates (empty splits) included, and a last split
    // that ends past the end of the file.
    for (int round = 0; round < 3; ++round) {
      std::vector<uint64_t> cuts = {0, size + round};
      const int n = static_cast<int>(std::min<uint64_t>(size, 30));
      for (int i = 0; i < n; ++i) {
        cuts.push_back(std::uniform_int_distribution<uint64_t>(0, size)(rng));
      }
      std::sort(cuts.begin(), cuts.end());
      LineRangeReader::Options options;
      options.buffer_size = 4096;
      SCOPED_TRACE(absl::StrCat("file ", f, " random cuts round ", round));
      CheckSplits(path, content, cuts, options, want, starts);
      splits += static_cast<int>(cuts.size()) - 1;
      if (HasFailure()) return;
    }
  }
  RecordProperty("files", files);
  RecordProperty("splits", splits);
  EXPECT_EQ(files, 120);
  EXPECT_GT(splits, 10000);  // the property was exercised
}

TEST(RecordRangeTest, IteratesHalfOpenRange) {
  std::vector<uint64_t> rows;
  for (uint64_t row : RecordRange(3, 7)) rows.push_back(row);
  EXPECT_THAT(rows, ElementsAre(3, 4, 5, 6));
  RecordRange range(3, 7);
  EXPECT_EQ(range.size(), 4u);
  EXPECT_FALSE(range.empty());
  EXPECT_EQ(range.first(), 3u);
  EXPECT_EQ(range.last_exclusive(), 7u);
  EXPECT_EQ(std::distance(range.begin(), range.end()), 4);
}

TEST(RecordRangeTest, EmptyAndInvertedRanges) {
  for (RecordRange range : {RecordRange(5, 5), RecordRange(9, 2), RecordRange(0, 0)}) {
    EXPECT_TRUE(range.empty());
    EXPECT_EQ(range.size(), 0u);
    EXPECT_TRUE(range.begin() == range.end());
    int n = 0;
    for (uint64_t row : range) {
      (void)row;
      ++n;
    }
    EXPECT_EQ(n, 0);
  }
  EXPECT_EQ(RecordRange(9, 2).last_exclusive(), 9u);
}

TEST(RecordRangeTest, LargeOffsetsAndPostIncrement) {
  const uint64_t big = uint64_t{1} << 40;
  RecordRange range(big, big + 2);
  auto it = range.begin();
  EXPECT_EQ(*it++, big);
  EXPECT_EQ(*it, big + 1);
  ++it;
  EXPECT_TRUE(it == range.end());
  EXPECT_FALSE(it != range.end());
  EXPECT_EQ(range.size(), 2u);
}

}  // namespace
}  // namespace elasticbatch
