#include "elasticbatch/line_range_reader.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace elasticbatch {

absl::StatusOr<std::unique_ptr<LineRangeReader>> LineRangeReader::Open(
    const std::string& path, uint64_t begin, uint64_t end, Options options) {
  auto r = std::unique_ptr<LineRangeReader>(new LineRangeReader());
  r->path_ = path;
  r->fd_ = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (r->fd_ < 0) {
    const std::string why = strerror(errno);
    if (errno == ENOENT) return absl::NotFoundError(absl::StrCat(path, ": ", why));
    if (errno == EACCES)
      return absl::PermissionDeniedError(absl::StrCat(path, ": ", why));
    return absl::FailedPreconditionError(absl::StrCat(path, ": ", why));
  }
  posix_fadvise(r->fd_, static_cast<off_t>(begin), 0, POSIX_FADV_SEQUENTIAL);
  r->begin_ = begin;
  r->end_ = std::max(begin, end);
  r->buffer_.resize(std::max<size_t>(options.buffer_size, 4096));
  r->pos_ = begin;
  r->on_record_ = std::move(options.on_record);
  if (begin > 0) {
    if (lseek(r->fd_, static_cast<off_t>(begin), SEEK_SET) < 0) {
      return absl::FailedPreconditionError(
          absl::StrCat(path, ": seek: ", strerror(errno)));
    }
    // The line that contains (or starts at) `begin` belongs to the previous split.
    absl::StatusOr<bool> skipped = r->ConsumeLine(nullptr);
    if (!skipped.ok()) return skipped.status();
  }
  return r;
}

LineRangeReader::~LineRangeReader() {
  if (fd_ >= 0) close(fd_);
}

absl::StatusOr<bool> LineRangeReader::Fill() {
  if (buffer_pos_ < buffer_len_) return true;
  if (eof_) return false;
  while (true) {
    ssize_t n = read(fd_, buffer_.data(), buffer_.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0)
      return absl::DataLossError(absl::StrCat(path_, ": read: ", strerror(errno)));
    buffer_pos_ = 0;
    buffer_len_ = static_cast<size_t>(n);
    if (n == 0) eof_ = true;
    return n > 0;
  }
}

absl::StatusOr<bool> LineRangeReader::ConsumeLine(std::string* out) {
  bool any = false;
  while (true) {
    absl::StatusOr<bool> more = Fill();
    if (!more.ok()) return more.status();
    if (!*more) return any;
    any = true;
    const char* start = buffer_.data() + buffer_pos_;
    const size_t avail = buffer_len_ - buffer_pos_;
    const void* nl = std::memchr(start, '\n', avail);
    const size_t take =
        nl != nullptr ? static_cast<size_t>(static_cast<const char*>(nl) - start) : avail;
    if (out != nullptr) out->append(start, take);
    const size_t consumed = take + (nl != nullptr ? 1 : 0);
    buffer_pos_ += consumed;
    pos_ += consumed;
    if (nl != nullptr) return true;
  }
}

absl::StatusOr<bool> LineRangeReader::Next(std::string* line) {
  line->clear();
  // A split owns the lines that start at or before its end.
  // Stopping is not the end of the split: a caller that took it for one
  // could publish a partial result as a whole one.
  if (stopped_)
    return absl::AbortedError("the reader was stopped before the end of its split");
  if (end_ == begin_ || pos_ > end_) return false;
  absl::StatusOr<bool> got = ConsumeLine(line);
  if (!got.ok()) return got.status();
  if (!*got) return false;  // end of file
  if (!line->empty() && line->back() == '\r') line->pop_back();
  if (on_record_ && !on_record_(records_ + 1, units_done())) {
    stopped_ = true;
    line->clear();
    return absl::AbortedError("the reader was stopped before the end of its split");
  }
  ++records_;
  return true;
}

uint64_t LineRangeReader::units_done() const {
  return std::min(pos_, end_) - std::min(begin_, end_);
}

}  // namespace elasticbatch
