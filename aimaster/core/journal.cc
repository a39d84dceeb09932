#include "aimaster/core/journal.h"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "aimaster/core/crc32c.h"
#include "aimaster/core/random_id.h"

namespace elasticbatch::aimaster {
namespace {

constexpr char kHeader = 1;
constexpr char kCommit = 2;
constexpr char kQuarantine = 3;
constexpr char kOpen = 4;  // a master opened the journal (counts restarts)
constexpr uint64_t kMagic = 0x314A424Cull;  // "LBJ1"
// Version 2: frames carry a checksum of their own header (so a damaged length
// is told from a torn tail).
constexpr uint32_t kVersion = 2;
// Frame: u32 payload length, u8 type, u32 masked CRC-32C of the payload,
// u32 masked CRC-32C of the 9 bytes before it; then the payload.
constexpr size_t kFrameBytes = 13;
constexpr uint32_t kMaxPayload = 64u << 20;

void PutVarint(std::string* out, uint64_t v) {
  while (v >= 0x80) {
    out->push_back(static_cast<char>(v | 0x80));
    v >>= 7;
  }
  out->push_back(static_cast<char>(v));
}

bool GetVarint(const char** p, const char* end, uint64_t* v) {
  *v = 0;
  for (int shift = 0; shift < 64 && *p < end; shift += 7) {
    const auto byte = static_cast<unsigned char>(*(*p)++);
    *v |= static_cast<uint64_t>(byte & 0x7F) << shift;
    if ((byte & 0x80) == 0) return true;
  }
  return false;
}

void PutU32(std::string* out, uint32_t v) {
  for (int i = 0; i < 4; ++i) out->push_back(static_cast<char>(v >> (8 * i)));
}

uint32_t GetU32(const char* p) {
  uint32_t v = 0;
  for (int i = 0; i < 4; ++i)
    v |= static_cast<uint32_t>(static_cast<unsigned char>(p[i])) << (8 * i);
  return v;
}

// LevelDB's mask: a run of zero bytes never carries a matching checksum, and
// a checksum of data that holds checksums stays well mixed.
uint32_t MaskedCrc(const char* data, size_t n) {
  const uint32_t crc = Crc32c(0, data, n);
  return ((crc >> 15) | (crc << 17)) + 0xa282ead8u;
}

void Frame(std::string* out, char type, const std::string& payload) {
  const size_t start = out->size();
  PutU32(out, static_cast<uint32_t>(payload.size()));
  out->push_back(type);
  PutU32(out, MaskedCrc(payload.data(), payload.size()));
  PutU32(out, MaskedCrc(out->data() + start, 9));
  out->append(payload);
}

void PutString(std::string* out, const std::string& v) {
  PutVarint(out, v.size());
  out->append(v);
}

bool GetString(const char** p, const char* end, std::string* v) {
  uint64_t n = 0;
  if (!GetVarint(p, end, &n) || n > static_cast<uint64_t>(end - *p)) return false;
  v->assign(*p, n);
  *p += n;
  return true;
}

std::string EncodeHeader(const JournalHeader& h, const std::string& job_uid) {
  std::string p;
  PutVarint(&p, kMagic);
  PutVarint(&p, kVersion);
  PutVarint(&p, h.layout_fingerprint);
  PutVarint(&p, h.total_shards);
  PutString(&p, h.job_id);
  PutString(&p, h.output_path);
  PutString(&p, h.input_channel);
  PutString(&p, job_uid);
  return p;
}

// The rest of a header record after magic and version.
bool DecodeHeader(const char* p, const char* end, JournalHeader* h,
                  std::string* job_uid) {
  return GetVarint(&p, end, &h->layout_fingerprint) &&
         GetVarint(&p, end, &h->total_shards) && GetString(&p, end, &h->job_id) &&
         GetString(&p, end, &h->output_path) && GetString(&p, end, &h->input_channel) &&
         GetString(&p, end, job_uid);
}

// Names every way `found` (in the journal) differs from `expected` (this job).
std::string HeaderDifferences(const JournalHeader& found, const JournalHeader& expected) {
  std::vector<std::string> diffs;
  if (found.job_id != expected.job_id) {
    diffs.push_back(absl::StrCat("its job id is '", found.job_id, "' (this job: '",
                                 expected.job_id, "')"));
  }
  if (found.output_path != expected.output_path) {
    diffs.push_back(absl::StrCat("its output is ", found.output_path,
                                 " (this job: ", expected.output_path, ")"));
  }
  if (found.input_channel != expected.input_channel) {
    diffs.push_back(absl::StrCat("its input channel is '", found.input_channel,
                                 "' (this job: '", expected.input_channel, "')"));
  }
  if (found.layout_fingerprint != expected.layout_fingerprint ||
      found.total_shards != expected.total_shards) {
    diffs.push_back(absl::StrCat(
        "it has another input layout (", found.total_shards, " shards, layout ",
        absl::Hex(found.layout_fingerprint), "; this job: ", expected.total_shards,
        " shards, layout ", absl::Hex(expected.layout_fingerprint), ")"));
  }
  return absl::StrJoin(diffs, ", ");
}

// Everything a journal writes when it is opened: the header record (for a new
// journal) and an open record.
std::string FirstWrite(const JournalHeader& header, const std::string& job_uid,
                       bool with_header) {
  std::string out;
  if (with_header) Frame(&out, kHeader, EncodeHeader(header, job_uid));
  Frame(&out, kOpen, std::string());
  return out;
}

// Version 1 framed records as u32 length, u32 CRC-32C of (type, payload), u8
// type. True when `data` starts with a version-1 header record.
bool IsVersion1Header(const char* data, size_t n) {
  if (n < 9) return false;
  const uint32_t len = GetU32(data);
  if (data[8] != kHeader || len > n - 9) return false;
  if (Crc32c(Crc32c(0, data + 8, 1), data + 9, len) != GetU32(data + 4)) return false;
  const char* p = data + 9;
  uint64_t magic = 0, version = 0;
  return GetVarint(&p, data + 9 + len, &magic) && magic == kMagic &&
         GetVarint(&p, data + 9 + len, &version) && version == 1;
}

// Sequential reads of a journal file through a buffer. Not thread-safe.
class JournalReader {
 public:
  explicit JournalReader(JournalFile& file) : file_(file) {}

  // Reads until `n` bytes are buffered at the current position or the file
  // ends; returns how many are buffered.
  absl::StatusOr<size_t> Fill(size_t n) {
    while (buf_.size() - pos_ < n && !eof_) {
      if (pos_ > 0) {
        buf_.erase(0, pos_);
        pos_ = 0;
      }
      // Reads grow from 4 KiB to 1 MiB: a small journal (or a fuzzer's) is
      // not padded to a megabyte per read, a large one is read in big steps.
      const size_t want = std::max<size_t>(n - buf_.size(), chunk_);
      chunk_ = std::min<size_t>(chunk_ * 2, 1 << 20);
      const size_t old = buf_.size();
      buf_.resize(old + want);
      absl::StatusOr<size_t> got = file_.Read(buf_.data() + old, want);
      buf_.resize(old + (got.ok() ? *got : 0));
      if (!got.ok()) {
        // Never the end of the journal: that would drop every record after it.
        return absl::Status(
            got.status().code(),
            absl::StrCat(got.status().message(), " (replaying byte ",
                         offset_ + buf_.size(), "); nothing was changed"));
      }
      if (*got == 0) eof_ = true;
    }
    return buf_.size() - pos_;
  }
  const char* data() const { return buf_.data() + pos_; }
  void Skip(size_t n) {
    pos_ += n;
    offset_ += n;
  }
  uint64_t offset() const { return offset_; }
  absl::Status SkipToEnd() {
    while (true) {
      absl::StatusOr<size_t> avail = Fill(1);
      if (!avail.ok()) return avail.status();
      if (*avail == 0) return absl::OkStatus();
      Skip(*avail);
    }
  }
  // Reads on to the end of the file, or to the first byte that is not zero;
  // returns true when the rest of the file is all zero (offset() is then the
  // file's size).
  absl::StatusOr<bool> SkipZerosToEnd() {
    while (true) {
      absl::StatusOr<size_t> avail = Fill(1);
      if (!avail.ok()) return avail.status();
      if (*avail == 0) return true;
      const char* p = data();
      for (size_t i = 0; i < *avail; ++i) {
        if (p[i] != 0) return false;
      }
      Skip(*avail);
    }
  }

 private:
  JournalFile& file_;
  std::string buf_;
  size_t chunk_ = 4 << 10;
  size_t pos_ = 0;
  uint64_t offset_ = 0;
  bool eof_ = false;
};

// What a parse found. Records count every frame: header, opens and the rest.
struct Parsed {
  bool saw_header = false;
  uint64_t intact_bytes = 0;  // the whole, valid records at the start
  uint64_t size = 0;          // bytes read to the end of the file
  uint64_t records = 0;
};

std::string CorruptionMessage(const std::string& path, uint64_t at, uint64_t records,
                              const std::string& what) {
  return absl::StrCat(
      "journal ", path, " is corrupt at byte ", at, " (record ", records + 1, ": ", what,
      "); ", records == 1 ? "the 1 record" : absl::StrCat("the ", records, " records"),
      " before it ", records == 1 ? "is" : "are",
      " intact. Nothing was changed. Start over with a fresh --state-dir, or keep the "
      "intact part with `truncate -s ",
      at, " ", path, "` if you accept losing every record after it");
}

// Parses `file`, replaying every record through `replay` as it goes; checks
// the header against `expected` when it is not null. A torn tail (a frame
// that runs past the end of the file, or a tail of zero bytes) ends the
// parse; any other bad frame is DATA_LOSS. `replay` may have seen records
// when an error is returned.
absl::StatusOr<Parsed> ParseJournal(JournalFile& file, const std::string& path,
                                    const JournalHeader* expected,
                                    const JournalReplay& replay, JournalStats* stats) {
  Parsed out;
  JournalReader in(file);
  absl::StatusOr<size_t> avail = in.Fill(64);
  if (!avail.ok()) return avail.status();
  if (IsVersion1Header(in.data(), *avail)) {
    return absl::FailedPreconditionError(absl::StrCat(
        "journal ", path,
        " was written by an older aimaster (journal version 1) and cannot be resumed; "
        "use a fresh --state-dir"));
  }
  while (true) {
    const uint64_t start = in.offset();
    avail = in.Fill(kFrameBytes);
    if (!avail.ok()) return avail.status();
    if (*avail == 0) break;  // the clean end
    std::string bad;         // what is wrong with this frame, if anything
    bool torn = false;
    uint32_t len = 0;
    char type = 0;
    if (*avail < kFrameBytes) {
      torn = true;  // the header runs past the end
    } else {
      const char* h = in.data();
      len = GetU32(h);
      type = h[4];
      if (MaskedCrc(h, 9) != GetU32(h + 9)) {
        bad = "header checksum mismatch";
      } else if (len > kMaxPayload) {
        bad = absl::StrCat("length ", len, " over the limit of ", kMaxPayload);
      } else {
        avail = in.Fill(kFrameBytes + len);
        if (!avail.ok()) return avail.status();
        if (*avail < kFrameBytes + len) {
          torn = true;  // the payload runs past the end
        } else if (MaskedCrc(in.data() + kFrameBytes, len) != GetU32(in.data() + 5)) {
          bad = "checksum mismatch";
        }
      }
    }
    if (!bad.empty()) {
      // A power loss can leave the file extended with zeros that were never
      // written: a torn tail too. Anything else is damage.
      absl::StatusOr<bool> zeros = in.SkipZerosToEnd();
      if (!zeros.ok()) return zeros.status();
      if (!*zeros && !out.saw_header) {
        return absl::DataLossError(absl::StrCat(
            "journal ", path, " has no intact header (", bad,
            " at byte 0): it is damaged or not an ElasticBatch journal. Nothing was "
            "changed. Move it away, or use a fresh --state-dir"));
      }
      if (!*zeros) {
        return absl::DataLossError(CorruptionMessage(path, start, out.records, bad));
      }
      break;
    }
    if (torn) {  // a crash mid-append: this frame was never acknowledged
      if (absl::Status s = in.SkipToEnd(); !s.ok()) return s;
      break;
    }
    const char* p = in.data() + kFrameBytes;
    const char* end = p + len;
    if (!out.saw_header) {
      uint64_t magic = 0, version = 0;
      if (type != kHeader || !GetVarint(&p, end, &magic) || magic != kMagic ||
          !GetVarint(&p, end, &version)) {
        return absl::FailedPreconditionError(
            absl::StrCat(path, " is not an ElasticBatch journal"));
      }
      if (version != kVersion) {
        return absl::FailedPreconditionError(absl::StrCat(
            "journal ", path, " was written by ",
            version < kVersion ? "an older" : "a newer", " aimaster (journal version ",
            version, "; this one reads version ", kVersion,
            "); use a fresh --state-dir"));
      }
      JournalHeader found;
      if (!DecodeHeader(p, end, &found, &stats->job_uid)) {
        return absl::DataLossError(
            CorruptionMessage(path, start, out.records, "undecodable header record"));
      }
      if (expected != nullptr) {
        if (std::string diffs = HeaderDifferences(found, *expected); !diffs.empty()) {
          return absl::FailedPreconditionError(absl::StrCat(
              "state dir ", std::filesystem::path(path).parent_path().string(),
              " belongs to another job: ", diffs, "; use a fresh --state-dir"));
        }
      }
      out.saw_header = true;
    } else if (type == kCommit) {
      uint64_t shard, attempt, records, task;
      if (!GetVarint(&p, end, &shard) || !GetVarint(&p, end, &attempt) ||
          !GetVarint(&p, end, &records) || !GetVarint(&p, end, &task)) {
        return absl::DataLossError(
            CorruptionMessage(path, start, out.records, "undecodable commit record"));
      }
      ++stats->commits;
      if (replay.on_commit) {
        replay.on_commit({shard, static_cast<uint32_t>(attempt), records,
                          static_cast<uint32_t>(task)});
      }
    } else if (type == kQuarantine) {
      QuarantineRecord q;
      uint64_t n;
      bool ok = GetVarint(&p, end, &q.shard_id) && GetVarint(&p, end, &n);
      for (uint64_t i = 0; ok && i < n; ++i) {
        uint64_t l;
        ok = GetVarint(&p, end, &l) && l <= static_cast<uint64_t>(end - p);
        if (ok) {
          q.errors.emplace_back(p, l);
          p += l;
        }
      }
      if (!ok) {
        return absl::DataLossError(
            CorruptionMessage(path, start, out.records, "undecodable quarantine record"));
      }
      ++stats->quarantines;
      if (replay.on_quarantine) replay.on_quarantine(q);
    } else if (type == kOpen) {
      ++stats->previous_opens;
    } else if (type == kHeader) {
      return absl::DataLossError(
          CorruptionMessage(path, start, out.records, "a second header record"));
    } else {
      return absl::DataLossError(CorruptionMessage(
          path, start, out.records,
          absl::StrCat("unknown record type ", static_cast<int>(type))));
    }
    in.Skip(kFrameBytes + len);
    out.intact_bytes = in.offset();
    ++out.records;
  }
  out.size = in.offset();
  stats->truncated_bytes = out.size - out.intact_bytes;
  return out;
}

}  // namespace

absl::StatusOr<std::unique_ptr<Journal>> Journal::Open(const std::string& dir,
                                                       const JournalHeader& header,
                                                       const JournalReplay& replay,
                                                       FileSystem* fs) {
  if (fs == nullptr) fs = FileSystem::Default();
  if (const size_t n = EncodeHeader(header, std::string(32, '0')).size();
      n > kMaxPayload) {
    return absl::InvalidArgumentError(absl::StrCat(
        "journal header of ", n, " bytes is over the limit of ", kMaxPayload));
  }
  if (absl::Status s = fs->CreateDir(dir); !s.ok()) {
    return absl::FailedPreconditionError(
        absl::StrCat("cannot create state dir ", dir, ": ", s.message()));
  }
  auto journal = std::unique_ptr<Journal>(new Journal());
  journal->dir_ = dir;
  journal->path_ = dir + "/journal";
  absl::StatusOr<std::unique_ptr<FileLock>> lock = fs->LockFile(dir + "/LOCK");
  if (absl::IsUnavailable(lock.status())) {
    return absl::FailedPreconditionError(
        absl::StrCat("state dir ", dir, " is in use by another aimaster"));
  }
  if (!lock.ok()) return lock.status();
  journal->lock_ = std::move(*lock);
  absl::StatusOr<std::unique_ptr<JournalFile>> file = fs->OpenForAppend(journal->path_);
  if (!file.ok()) return file.status();
  journal->file_ = std::move(*file);
  JournalFile& f = *journal->file_;
  absl::StatusOr<Parsed> parsed =
      ParseJournal(f, journal->path_, &header, replay, &journal->replay_stats_);
  if (!parsed.ok()) return parsed.status();
  absl::StatusOr<uint64_t> size = f.Size();
  if (!size.ok()) return size.status();
  if (*size != parsed->size) {
    return absl::InternalError(absl::StrCat(
        "journal ", journal->path_, " changed while it was replayed (", parsed->size,
        " bytes read, now ", *size, "); is another process writing it?"));
  }
  if (!parsed->saw_header) {
    journal->replay_stats_.job_uid = RandomHex(16);
  }
  const std::string first =
      FirstWrite(header, journal->replay_stats_.job_uid, !parsed->saw_header);
  if (!parsed->saw_header && *size > first.size()) {
    // More than a torn first write: this is damage, not a crash mid-append.
    return absl::DataLossError(absl::StrCat(
        "journal ", journal->path_, " has no intact header but holds ", *size,
        " bytes; refusing to overwrite it. Nothing was changed. Move it away, or use a "
        "fresh --state-dir"));
  }
  if (parsed->intact_bytes < *size) {
    // A crash mid-append leaves a torn tail: it was never acknowledged.
    if (absl::Status s = f.Truncate(parsed->intact_bytes); !s.ok()) return s;
  }
  if (absl::Status s = f.Append(first); !s.ok()) return s;
  if (absl::Status s = f.Sync(); !s.ok()) return s;
  if (!parsed->saw_header) {
    // A new journal's name must be durable before anything in it is
    // acknowledged, and so must the state dir's own name: it may have been
    // made by a master that crashed before syncing it.
    if (absl::Status s = fs->SyncDir(dir); !s.ok()) return s;
    std::filesystem::path parent = std::filesystem::path(dir).lexically_normal();
    if (!parent.has_filename()) parent = parent.parent_path();  // a trailing '/'
    parent = parent.has_parent_path() ? parent.parent_path() : ".";
    if (absl::Status s = fs->SyncDir(parent.string()); !s.ok()) return s;
  }
  return journal;
}

absl::Status Journal::Read(const std::string& dir, const JournalReplay& replay,
                           JournalStats* stats, FileSystem* fs) {
  if (fs == nullptr) fs = FileSystem::Default();
  const std::string path = dir + "/journal";
  absl::StatusOr<std::unique_ptr<JournalFile>> file = fs->OpenForRead(path);
  if (!file.ok()) return file.status();
  JournalStats local;
  return ParseJournal(**file, path, nullptr, replay, stats != nullptr ? stats : &local)
      .status();
}

Journal::~Journal() {
  if (file_ != nullptr) (void)SyncAll();
}

uint64_t Journal::AppendLocked(char type, const std::string& payload) {
  const uint64_t seq = ++appended_seq_;
  if (!status_.ok()) return seq;  // failed for good: nothing more is written
  if (payload.size() > kMaxPayload) {
    // Replay would refuse it (and everything after it): never write it. A
    // sticky failure stops the master loudly instead of losing the record.
    status_ = absl::InternalError(absl::StrCat(
        "journal ", path_, " refused a ", type == kCommit ? "commit" : "quarantine",
        " record of ", payload.size(), " bytes, over the limit of ", kMaxPayload,
        " bytes that replay accepts"));
    return seq;
  }
  Frame(&pending_, type, payload);
  return seq;
}

uint64_t Journal::AppendCommit(const CommitRecord& record) {
  std::string p;
  PutVarint(&p, record.shard_id);
  PutVarint(&p, record.attempt);
  PutVarint(&p, record.records);
  PutVarint(&p, record.task_index);
  absl::MutexLock lock(&mu_);
  return AppendLocked(kCommit, p);
}

uint64_t Journal::AppendQuarantine(const QuarantineRecord& record) {
  std::string p;
  PutVarint(&p, record.shard_id);
  PutVarint(&p, record.errors.size());
  for (const std::string& e : record.errors) {
    PutVarint(&p, e.size());
    p.append(e);
  }
  absl::MutexLock lock(&mu_);
  return AppendLocked(kQuarantine, p);
}

absl::Status Journal::Sync(uint64_t seq) {
  mu_.Lock();
  auto done_or_free = [this, seq]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return !status_.ok() || durable_seq_ >= seq || !syncing_;
  };
  mu_.Await(absl::Condition(&done_or_free));
  if (!status_.ok() || durable_seq_ >= seq) {
    absl::Status s = status_;
    mu_.Unlock();
    return s;
  }
  // Become the leader: write everything appended so far in one go.
  syncing_ = true;
  std::string batch;
  batch.swap(pending_);
  const uint64_t upto = appended_seq_;
  mu_.Unlock();

  absl::Status s = file_->Append(batch);
  if (s.ok()) s = file_->Sync();

  mu_.Lock();
  syncing_ = false;
  if (s.ok()) {
    durable_seq_ = upto;
  } else {
    status_ = s;
  }
  s = status_;
  mu_.Unlock();
  return s;
}

uint64_t Journal::durable_seq() const {
  absl::MutexLock lock(&mu_);
  return durable_seq_;
}

absl::Status Journal::SyncAll() {
  uint64_t seq;
  {
    absl::MutexLock lock(&mu_);
    seq = appended_seq_;
  }
  return Sync(seq);
}

}  // namespace elasticbatch::aimaster
