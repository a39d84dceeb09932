// LineRangeReader over random file contents, split points and buffer sizes.
// The input is: a byte giving the number of splits, a byte giving the read
// buffer size, one byte per split point, then the file's contents.
// Invariant: every line is read by exactly one split, i.e. the lines of all
// splits in order are the file's lines (split on '\n', one trailing '\r'
// dropped, no empty last line after a final '\n'); and units_done never
// exceeds the split's size.
#include <unistd.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <fstream>
#include <string>
#include <vector>

#include "elasticbatch/line_range_reader.h"
#include "fuzz/fuzz_check.h"

namespace {

const std::string& FilePath() {
  static const std::string* path = [] {
    std::string tmpl =
        std::string(std::getenv("TMPDIR") ? std::getenv("TMPDIR") : "/tmp") +
        "/eb-fuzz-lines-XXXXXX";
    const int fd = mkstemp(tmpl.data());
    FUZZ_CHECK(fd >= 0, "mkstemp %s", tmpl.c_str());
    close(fd);
    return new std::string(tmpl);
  }();
  return *path;
}

std::vector<std::string> ExpectedLines(const std::string& text) {
  std::vector<std::string> lines;
  size_t start = 0;
  while (start < text.size()) {
    size_t nl = text.find('\n', start);
    if (nl == std::string::npos) nl = text.size();
    std::string line = text.substr(start, nl - start);
    if (!line.empty() && line.back() == '\r') line.pop_back();
    lines.push_back(std::move(line));
    start = nl + 1;
  }
  return lines;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  elasticbatch::fuzz::FuzzInput in(data, size);
  const size_t splits = in.Range(1, 16);
  elasticbatch::LineRangeReader::Options options;
  options.buffer_size = in.Range(1, 64);
  std::vector<uint8_t> cuts;
  for (size_t i = 1; i < splits; ++i) cuts.push_back(in.Byte());
  const std::string text(in.Rest());
  {
    std::ofstream out(FilePath(), std::ios::binary | std::ios::trunc);
    out << text;
  }
  // Split points in [0, size], sorted; repeats make empty splits.
  std::vector<uint64_t> points = {0, text.size()};
  for (uint8_t c : cuts) points.push_back(text.empty() ? 0 : c % (text.size() + 1));
  std::sort(points.begin(), points.end());

  std::vector<std::string> read;
  for (size_t i = 0; i + 1 < points.size(); ++i) {
    auto reader = elasticbatch::LineRangeReader::Open(FilePath(), points[i],
                                                      points[i + 1], options);
    FUZZ_CHECK(reader.ok(), "%s", reader.status().ToString().c_str());
    std::string line;
    while (true) {
      absl::StatusOr<bool> more = (*reader)->Next(&line);
      FUZZ_CHECK(more.ok(), "%s", more.status().ToString().c_str());
      if (!*more) break;
      read.push_back(line);
      FUZZ_CHECK(read.size() <= text.size() + 1, "more lines than bytes");
    }
    FUZZ_CHECK((*reader)->units_done() <= points[i + 1] - points[i],
               "units_done %llu over split [%llu, %llu)",
               static_cast<unsigned long long>((*reader)->units_done()),
               static_cast<unsigned long long>(points[i]),
               static_cast<unsigned long long>(points[i + 1]));
  }
  const std::vector<std::string> expected = ExpectedLines(text);
  FUZZ_CHECK(read == expected, "read %zu lines, the file has %zu", read.size(),
             expected.size());
  return 0;
}
