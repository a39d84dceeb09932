// LineRangeReader: the records (lines) of one BYTES shard of a text file
// (JSONL, CSV, plain lines), with Hadoop's split semantics: a split [begin,
// end) owns every line that starts at a position s with begin < s <= end (or
// 0 <= s <= end for the first split). So a split that starts mid-line skips to
// the next line, and its last line is read past `end`. Whatever the split size,
// every line of the file is read by exactly one split: CRLF endings, a missing
// final newline, empty lines and lines longer than a split included.
//
//   auto reader = LineRangeReader::Open(path, shard.begin(), shard.end());
//   // or shard.OpenLines(): the same reader, reporting progress to the shard
//   std::string line;
//   while (true) {
//     absl::StatusOr<bool> more = (*reader)->Next(&line);
//     if (!more.ok()) return more.status();
//     if (!*more) break;
//     Process(line);   // without "\n" / "\r\n"
//   }
//
// Not thread-safe.
#ifndef ELASTICBATCH_LINE_RANGE_READER_H_
#define ELASTICBATCH_LINE_RANGE_READER_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace elasticbatch {

class LineRangeReader {
 public:
  struct Options {
    // Read buffer. Default: 256 KiB.
    size_t buffer_size = 256 << 10;
    // Called after each line is read, with the records read so far (this
    // line included) and units_done(), so progress is reported where records
    // are consumed. Returning false stops the reader: that line is dropped
    // and Next() returns ABORTED from then on, never a plain end of split.
    // Default: none.
    std::function<bool(uint64_t records, uint64_t units_done)> on_record;
  };

  // NOT_FOUND / PERMISSION_DENIED name the path.
  static absl::StatusOr<std::unique_ptr<LineRangeReader>> Open(const std::string& path,
                                                               uint64_t begin,
                                                               uint64_t end,
                                                               Options options);
  static absl::StatusOr<std::unique_ptr<LineRangeReader>> Open(const std::string& path,
                                                               uint64_t begin,
                                                               uint64_t end) {
    return Open(path, begin, end, Options());
  }
  ~LineRangeReader();
  LineRangeReader(const LineRangeReader&) = delete;
  LineRangeReader& operator=(const LineRangeReader&) = delete;

  // Reads the next line of the split into `line`, without its terminator.
  // Returns false at the end of the split; ABORTED once on_record said stop.
  absl::StatusOr<bool> Next(std::string* line);

  // Bytes of the split consumed so far (for progress reports), capped at its size.
  uint64_t units_done() const;
  // Lines returned so far.
  uint64_t records() const { return records_; }

 private:
  LineRangeReader() = default;
  // Makes at least one unread byte available; false at end of file.
  absl::StatusOr<bool> Fill();
  // Consumes through the next '\n' (or EOF), appending to `out` when not null.
  absl::StatusOr<bool> ConsumeLine(std::string* out);

  int fd_ = -1;
  std::string path_;
  uint64_t begin_ = 0;
  uint64_t end_ = 0;
  uint64_t pos_ = 0;  // file offset of the next unread byte
  bool eof_ = false;
  std::vector<char> buffer_;
  size_t buffer_pos_ = 0;
  size_t buffer_len_ = 0;
  uint64_t records_ = 0;
  std::function<bool(uint64_t, uint64_t)> on_record_;
  bool stopped_ = false;  // on_record_ said stop
};

}  // namespace elasticbatch

#endif  // ELASTICBATCH_LINE_RANGE_READER_H_
