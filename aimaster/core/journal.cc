#include "journal.h"

#include <algorithm>
#include <filesystem>

#include "absl/strings/str_cat.h"
#include "crc32c.h"

namespace elasticbatch::aimaster {
namespace {

constexpr char kHeader = 1;
constexpr char kCommit = 2;
constexpr char kQuarantine = 3;
constexpr char kOpen = 4;  // a master opened the journal (counts restarts)
constexpr uint64_t kMagic = 0x314A424Cull;  // "LBJ1"
constexpr uint32_t kVersion = 1;
constexpr size_t kFrameBytes = 9;  // length, crc, type
constexpr uint32_t kMaxPayload = 64u << 20;
// The first write of a journal (header and open records) is at most this long.
constexpr uint64_t kMaxFirstWriteBytes = 2 * kFrameBytes + 4 * 10;

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

void Frame(std::string* out, char type, const std::string& payload) {
  PutU32(out, static_cast<uint32_t>(payload.size()));
  uint32_t crc = Crc32c(0, &type, 1);
  crc = Crc32c(crc, payload.data(), payload.size());
  PutU32(out, crc);
  out->push_back(type);
  out->append(payload);
}

std::string EncodeHeader(const JournalHeader& h) {
  std::string p;
  PutVarint(&p, kMagic);
  PutVarint(&p, kVersion);
  PutVarint(&p, h.layout_fingerprint);
  PutVarint(&p, h.total_shards);
  return p;
}

// Parses records from `fd`. Stops at the end or at the first record that is
// truncated or fails its checksum; *good_bytes is the length of the intact prefix.
absl::Status ParseJournal(JournalFile& file, const std::string& path,
                          const JournalHeader* expected, const JournalReplay& replay,
                          JournalStats* stats, uint64_t* good_bytes, bool* saw_header) {
  std::string buf;
  size_t pos = 0;  // parse position within buf
  uint64_t consumed = 0;
  bool eof = false;
  *saw_header = false;
  auto fill = [&](size_t need) -> bool {
    while (buf.size() - pos < need && !eof) {
      if (pos > 0) {
        buf.erase(0, pos);
        pos = 0;
      }
      const size_t want = std::max<size_t>(need, 1 << 20);
      const size_t old = buf.size();
      buf.resize(old + want);
      absl::StatusOr<size_t> n = file.Read(buf.data() + old, want);
      if (!n.ok() || *n == 0) eof = true;
      buf.resize(old + (n.ok() ? *n : 0));
    }
    return buf.size() - pos >= need;
  };
  while (fill(kFrameBytes)) {
    const uint32_t len = GetU32(buf.data() + pos);
    const uint32_t crc = GetU32(buf.data() + pos + 4);
    if (len > kMaxPayload || !fill(kFrameBytes + len)) break;
    const char type = buf[pos + 8];
    const char* payload = buf.data() + pos + kFrameBytes;
    uint32_t actual = Crc32c(0, &type, 1);
    actual = Crc32c(actual, payload, len);
    if (actual != crc) break;
    const char* p = payload;
    const char* end = payload + len;
    if (!*saw_header) {
      uint64_t magic, version, fingerprint, total;
      if (type != kHeader || !GetVarint(&p, end, &magic) || magic != kMagic ||
          !GetVarint(&p, end, &version) || !GetVarint(&p, end, &fingerprint) ||
          !GetVarint(&p, end, &total)) {
        return absl::FailedPreconditionError(
            absl::StrCat(path, " is not an ElasticBatch journal"));
      }
      if (version != kVersion) {
        return absl::FailedPreconditionError(absl::StrCat(
            path, " has journal version ", version, ", expected ", kVersion));
      }
      if (expected != nullptr && (fingerprint != expected->layout_fingerprint ||
                                  total != expected->total_shards)) {
        return absl::FailedPreconditionError(absl::StrCat(
            "state dir ", std::filesystem::path(path).parent_path().string(),
            " belongs to a job with another input layout (", total, " shards, layout ",
            absl::Hex(fingerprint), "; this job has ", expected->total_shards,
            " shards, layout ", absl::Hex(expected->layout_fingerprint),
            "): use a fresh --state-dir"));
      }
      *saw_header = true;
    } else if (type == kCommit) {
      uint64_t shard, attempt, records, task;
      if (!GetVarint(&p, end, &shard) || !GetVarint(&p, end, &attempt) ||
          !GetVarint(&p, end, &records) || !GetVarint(&p, end, &task)) {
        break;
      }
      ++stats->commits;
      if (replay.on_commit) {
        replay.on_commit({shard, static_cast<uint32_t>(attempt), records,
                          static_cast<uint32_t>(task)});
      }
    } else if (type == kQuarantine) {
      QuarantineRecord q;
      uint64_t n;
      if (!GetVarint(&p, end, &q.shard_id) || !GetVarint(&p, end, &n)) break;
      bool ok = true;
      for (uint64_t i = 0; i < n && ok; ++i) {
        uint64_t l;
        ok = GetVarint(&p, end, &l) && l <= static_cast<uint64_t>(end - p);
        if (ok) {
          q.errors.emplace_back(p, l);
          p += l;
        }
      }
      if (!ok) break;
      ++stats->quarantines;
      if (replay.on_quarantine) replay.on_quarantine(q);
    } else if (type == kOpen) {
      ++stats->previous_opens;
    }
    pos += kFrameBytes + len;
    consumed += kFrameBytes + len;
  }
  *good_bytes = consumed;
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::unique_ptr<Journal>> Journal::Open(const std::string& dir,
                                                       const JournalHeader& header,
                                                       const JournalReplay& replay,
                                                       FileSystem* fs) {
  if (fs == nullptr) fs = FileSystem::Default();
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
  uint64_t good = 0;
  bool saw_header = false;
  absl::Status parsed = ParseJournal(f, journal->path_, &header, replay,
                                     &journal->replay_stats_, &good, &saw_header);
  if (!parsed.ok()) return parsed;
  absl::StatusOr<uint64_t> size = f.Size();
  if (!size.ok()) return size.status();
  if (!saw_header && *size > kMaxFirstWriteBytes) {
    // More than a torn first write: this is damage, not a crash mid-append.
    return absl::DataLossError(absl::StrCat(
        journal->path_, " has no intact header but holds ", *size,
        " bytes; refusing to overwrite it (move it away to start the job over)"));
  }
  if (good < *size) {
    // A crash mid-append leaves a torn tail: it was never acknowledged.
    journal->replay_stats_.truncated_bytes = *size - good;
    if (absl::Status s = f.Truncate(good); !s.ok()) return s;
  }
  std::string first;
  if (!saw_header) Frame(&first, kHeader, EncodeHeader(header));
  Frame(&first, kOpen, std::string());
  if (absl::Status s = f.Append(first); !s.ok()) return s;
  if (absl::Status s = f.Sync(); !s.ok()) return s;
  if (!saw_header) {
    if (absl::Status s = fs->SyncDir(dir); !s.ok()) return s;
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
  uint64_t good = 0;
  bool saw_header = false;
  return ParseJournal(**file, path, nullptr, replay, stats != nullptr ? stats : &local,
                      &good, &saw_header);
}

Journal::~Journal() {
  if (file_ != nullptr) (void)SyncAll();
}

uint64_t Journal::AppendLocked(char type, const std::string& payload) {
  Frame(&pending_, type, payload);
  return ++appended_seq_;
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
