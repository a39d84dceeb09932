#include "aimaster/core/job_outputs.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "aimaster/core/journal.h"
#include "aimaster/core/random_id.h"

namespace elasticbatch::aimaster {
namespace {

// An end marker is one short JSON line; anything larger is not ours.
constexpr size_t kMaxMarkerBytes = 64 << 10;

absl::Status Errno(const std::string& what, const std::string& path) {
  return absl::InternalError(absl::StrCat(what, " ", path, ": ", strerror(errno)));
}

// A rename is durable once its directory is.
absl::Status SyncDirectory(const std::string& dir) {
  const int fd = open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return Errno("cannot open", dir);
  const int synced = fsync(fd);
  absl::Status s = synced == 0 ? absl::OkStatus() : Errno("cannot sync", dir);
  close(fd);
  return s;
}

// Streams lines into a temporary file, then publishes it with rename. The
// output channel is writable by every worker, so nothing here may follow a
// link a worker planted: the temporary file gets an unpredictable name and is
// created with O_EXCL|O_NOFOLLOW, and rename() replaces whatever sits at the
// final name (a link included) instead of writing through it.
class AtomicFileWriter {
 public:
  explicit AtomicFileWriter(std::string path) : path_(std::move(path)) {
    const std::filesystem::path p(path_);
    dir_ = p.parent_path().string();
    if (dir_.empty()) dir_ = ".";
    for (int tries = 0; tries < 16 && file_ == nullptr; ++tries) {
      tmp_ = absl::StrCat(dir_, "/.", p.filename().string(), ".tmp-", RandomHex(8));
      const int fd =
          open(tmp_.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
      if (fd < 0) {
        error_ = errno;
        if (errno == EEXIST) continue;
        break;
      }
      file_ = fdopen(fd, "w");
      if (file_ == nullptr) {
        error_ = errno;
        close(fd);
        std::remove(tmp_.c_str());
        break;
      }
    }
  }
  ~AtomicFileWriter() {
    if (file_ != nullptr) {
      std::fclose(file_);
      std::remove(tmp_.c_str());
    }
  }
  void Write(const std::string& s) {
    if (file_ != nullptr && std::fwrite(s.data(), 1, s.size(), file_) != s.size())
      failed_ = true;
  }
  absl::Status Publish() {
    if (file_ == nullptr) {
      errno = error_;
      return Errno("cannot create a temporary file for", path_);
    }
    if (failed_ || std::fflush(file_) != 0 || fsync(fileno(file_)) != 0) {
      return Errno("cannot write", tmp_);
    }
    const int closed = std::fclose(file_);
    file_ = nullptr;
    if (closed != 0) {
      std::remove(tmp_.c_str());
      return Errno("cannot write", tmp_);
    }
    if (std::rename(tmp_.c_str(), path_.c_str()) != 0) {
      absl::Status s = Errno("cannot publish", path_);
      std::remove(tmp_.c_str());
      return s;
    }
    return SyncDirectory(dir_);
  }

 private:
  std::string path_;
  std::string dir_;
  std::string tmp_;
  std::FILE* file_ = nullptr;
  int error_ = 0;
  bool failed_ = false;
};

std::string SourceName(const std::string& channel, const std::string& source) {
  return source.empty() ? channel : absl::StrCat(channel, "/", source);
}

// Length of the well-formed UTF-8 sequence starting at s[i] (RFC 3629), or 0.
size_t Utf8SequenceLength(const std::string& s, size_t i) {
  const auto byte = [&](size_t k) { return static_cast<unsigned char>(s[k]); };
  const unsigned char c = byte(i);
  size_t n;
  unsigned char lo = 0x80, hi = 0xBF;  // allowed range of the second byte
  if (c >= 0xC2 && c <= 0xDF) {
    n = 2;
  } else if (c >= 0xE0 && c <= 0xEF) {
    n = 3;
    if (c == 0xE0) lo = 0xA0;  // no overlong forms
    if (c == 0xED) hi = 0x9F;  // no surrogates
  } else if (c >= 0xF0 && c <= 0xF4) {
    n = 4;
    if (c == 0xF0) lo = 0x90;  // no overlong forms
    if (c == 0xF4) hi = 0x8F;  // nothing above U+10FFFF
  } else {
    return 0;
  }
  if (i + n > s.size() || byte(i + 1) < lo || byte(i + 1) > hi) return 0;
  for (size_t k = 2; k < n; ++k) {
    if (byte(i + k) < 0x80 || byte(i + k) > 0xBF) return 0;
  }
  return n;
}

}  // namespace

std::string JsonQuote(const std::string& s) {
  std::string out = "\"";
  for (size_t i = 0; i < s.size(); ++i) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c >= 0x80) {
      // JSON text is UTF-8: bytes that are not well-formed UTF-8 (an error
      // message holding binary data, a non-UTF-8 file name) become U+FFFD.
      const size_t n = Utf8SequenceLength(s, i);
      if (n == 0) {
        out += "\\ufffd";
      } else {
        out.append(s, i, n);
        i += n - 1;
      }
      continue;
    }
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      default:
        if (c < 0x20) {
          out += absl::StrFormat("\\u%04x", c);
        } else {
          out.push_back(static_cast<char>(c));
        }
    }
  }
  out += "\"";
  return out;
}

absl::Status WriteFileAtomically(const std::string& path, const std::string& content) {
  AtomicFileWriter w(path);
  w.Write(content);
  return w.Publish();
}

absl::Status ProbeWritableDirectory(const std::string& dir) {
  const std::string probe = absl::StrCat(dir, "/.aimaster-probe-", RandomHex(8));
  const int fd =
      open(probe.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
  if (fd < 0) {
    return absl::FailedPreconditionError(
        absl::StrCat(dir, " is not writable: ", strerror(errno)));
  }
  const bool wrote = write(fd, "probe", 5) == 5;
  const int err = errno;
  close(fd);
  unlink(probe.c_str());
  if (!wrote) {
    return absl::FailedPreconditionError(
        absl::StrCat(dir, " is not writable: ", strerror(err)));
  }
  return absl::OkStatus();
}

std::optional<std::string> EndMarkerJobUid(const std::string& path) {
  const int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0) return std::nullopt;
  std::string text(kMaxMarkerBytes, '\0');
  size_t got = 0;
  while (got < text.size()) {
    const ssize_t n = read(fd, text.data() + got, text.size() - got);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    got += static_cast<size_t>(n);
  }
  close(fd);
  text.resize(got);
  // Our own JSON line: the uid is hex, so a plain search for the field is exact.
  const std::string field = "\"job_uid\":\"";
  const size_t at = text.find(field);
  if (at == std::string::npos) return std::nullopt;
  const size_t begin = at + field.size();
  const size_t end = text.find('"', begin);
  if (end == std::string::npos || end == begin) return std::nullopt;
  return text.substr(begin, end - begin);
}

absl::Status PrepareOutputChannel(const std::string& output_dir,
                                  const std::string& job_uid, bool resumed) {
  for (const char* marker : {"_SUCCESS", "_FAILED"}) {
    const std::string path = absl::StrCat(output_dir, "/", marker);
    struct stat st;
    if (lstat(path.c_str(), &st) != 0) continue;
    const std::optional<std::string> uid = EndMarkerJobUid(path);
    if (!uid.has_value() || *uid != job_uid) {
      return absl::FailedPreconditionError(absl::StrCat(
          "output ", output_dir, " holds the end marker ", marker, " of another job",
          uid.has_value() ? absl::StrCat(" (instance ", *uid, ")") : std::string(),
          ": its results would mix with this job's and its workers would take it for "
          "this job's verdict; use an empty output directory, or remove that job's "
          "results"));
    }
    if (unlink(path.c_str()) != 0) return Errno("cannot remove the stale", path);
  }
  if (resumed) return absl::OkStatus();
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator(output_dir, ec)) {
    const std::string name = entry.path().filename().string();
    if (absl::StartsWith(name, "part-") || name == "_manifest.jsonl" ||
        name == "_quarantine.jsonl") {
      return absl::FailedPreconditionError(absl::StrCat(
          "output ", output_dir, " already holds results of an earlier job (", name,
          "); a new job would mix its own with them: use an empty output directory"));
    }
  }
  if (ec) {
    return absl::FailedPreconditionError(
        absl::StrCat("cannot list output ", output_dir, ": ", ec.message()));
  }
  return absl::OkStatus();
}

absl::Status WriteJobOutputs(const std::string& output_dir, const std::string& state_dir,
                             const ShardEnumerator& shards,
                             const std::string& input_channel,
                             const JobVerdict& verdict) {
  const char* unit = shards.unit() == ShardUnit::kBytes ? "bytes" : "records";
  AtomicFileWriter manifest(output_dir + "/_manifest.jsonl");
  AtomicFileWriter quarantine(output_dir + "/_quarantine.jsonl");
  std::vector<bool> seen(shards.shard_count(), false);
  JournalReplay replay;
  replay.on_commit = [&](const CommitRecord& c) {
    if (c.shard_id >= seen.size() || seen[c.shard_id]) return;
    seen[c.shard_id] = true;
    const ShardDescriptor d = shards.Describe(c.shard_id);
    manifest.Write(absl::StrFormat(
        "{\"shard\":%d,\"source\":%s,\"begin\":%d,\"end\":%d,\"unit\":\"%s\",\"output\":%"
        "s,"
        "\"records\":%d,\"attempt\":%d,\"worker\":%d}\n",
        c.shard_id, JsonQuote(SourceName(input_channel, *d.source)), d.begin, d.end, unit,
        JsonQuote(shards.OutputName(c.shard_id)), c.records, c.attempt, c.task_index));
  };
  replay.on_quarantine = [&](const QuarantineRecord& q) {
    if (q.shard_id >= seen.size()) return;
    const ShardDescriptor d = shards.Describe(q.shard_id);
    std::string errors;
    for (const std::string& e : q.errors)
      absl::StrAppend(&errors, errors.empty() ? "" : ",", JsonQuote(e));
    quarantine.Write(
        absl::StrFormat("{\"shard\":%d,\"source\":%s,\"begin\":%d,\"end\":%d,\"unit\":\"%"
                        "s\",\"failures\":%d,"
                        "\"errors\":[%s]}\n",
                        q.shard_id, JsonQuote(SourceName(input_channel, *d.source)),
                        d.begin, d.end, unit, q.errors.size(), errors));
  };
  if (absl::Status s = Journal::Read(state_dir, replay); !s.ok()) return s;
  if (absl::Status s = manifest.Publish(); !s.ok()) return s;
  if (absl::Status s = quarantine.Publish(); !s.ok()) return s;
  const std::string marker =
      absl::StrCat("{\"job_id\":", JsonQuote(verdict.job_id),
                   ",\"job_uid\":", JsonQuote(verdict.job_uid), ",\"state\":\"",
                   verdict.succeeded ? "succeeded" : "failed",
                   "\",\"reason\":", JsonQuote(verdict.reason.substr(0, 4096)), "}\n");
  std::error_code ec;
  if (verdict.succeeded) {
    std::filesystem::remove_all(absl::StrCat(output_dir, "/", kStagingDirName), ec);
    std::filesystem::remove(output_dir + "/_FAILED", ec);
    return WriteFileAtomically(output_dir + "/_SUCCESS", marker);
  }
  std::filesystem::remove(output_dir + "/_SUCCESS", ec);
  return WriteFileAtomically(output_dir + "/_FAILED", marker);
}

}  // namespace elasticbatch::aimaster
