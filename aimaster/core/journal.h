// Durable progress: an append-only, checksummed log of commits and quarantines
// in the state directory, written with group-committed fsync.
//
// Record framing (version 2): u32 payload length, u8 type, u32 masked CRC-32C
// of the payload, u32 masked CRC-32C of those 9 bytes, payload (varints). Payloads are at
// most 64 MiB: an append over that is never written and fails the journal
// (sticky), since replay would refuse it.
//
// The first record is a header naming the job: layout, job id, output path,
// input channel, and a random job instance id made when the journal was
// created (job_uid()). Open refuses a journal of another job, naming what
// differs, and one of version 1 (both FAILED_PRECONDITION).
//
// Replay on open keeps every acknowledged record or refuses to start:
//  * a torn tail, i.e. a last frame whose header or payload runs past the end
//    of the file (a crash mid-append), or a tail of zero bytes from the first
//    bad frame on (a power loss after the file grew), was never acknowledged:
//    Open cuts it off and reports it in truncated_bytes;
//  * any other bad frame (checksum mismatch, length over the limit, a payload
//    that does not decode, an unknown type) is corruption: Open and Read
//    return DATA_LOSS naming the file, the byte offset and the intact records
//    before it, and change nothing;
//  * an I/O error while reading is an error, never the end of the journal.
//
//   JournalReplay replay;
//   replay.on_commit = [&](const CommitRecord& c) { coordinator.RestoreCommitted(c); };
//   auto journal = Journal::Open(dir, header, replay);
//   uint64_t seq = (*journal)->AppendCommit(record);   // cheap, in memory
//   absl::Status s = (*journal)->Sync(seq);            // durable when OK
//
// Thread-safe. Concurrent Sync() calls coalesce: one caller writes and fsyncs
// everything appended so far while the others wait for it.
#ifndef ELASTICBATCH_AIMASTER_CORE_JOURNAL_H_
#define ELASTICBATCH_AIMASTER_CORE_JOURNAL_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "aimaster/core/file_system.h"

namespace elasticbatch::aimaster {

// Identifies the job a journal belongs to; Open refuses a journal whose
// header differs in any field.
struct JournalHeader {
  // ShardEnumerator::fingerprint() of the job's layout (sharding mode, shard
  // size, record count, files and their sizes). Default: 0.
  uint64_t layout_fingerprint = 0;
  // Default: 0.
  uint64_t total_shards = 0;
  // The job's id (--job-id). Default: empty.
  std::string job_id;
  // Absolute path of the primary output channel, where the parts, the
  // manifest and the end marker go. Default: empty.
  std::string output_path;
  // Name of the sharded input channel (shard sources are named relative to
  // it). Default: empty.
  std::string input_channel;
};

struct CommitRecord {
  uint64_t shard_id = 0;
  uint32_t attempt = 0;
  uint64_t records = 0;
  uint32_t task_index = 0;
};

struct QuarantineRecord {
  uint64_t shard_id = 0;
  std::vector<std::string> errors;
};

struct JournalReplay {
  std::function<void(const CommitRecord&)> on_commit;
  std::function<void(const QuarantineRecord&)> on_quarantine;
};

struct JournalStats {
  uint64_t commits = 0;
  uint64_t quarantines = 0;
  // How many times a master opened this journal before (0 for a new job).
  uint64_t previous_opens = 0;
  // Bytes of torn tail cut off on open (Read: seen and left in place).
  uint64_t truncated_bytes = 0;
  // The job instance id in the header: 32 lowercase hex digits, random, made
  // when the journal was created. Empty when Read found no header.
  std::string job_uid;
};

class Journal {
 public:
  // Opens or creates `dir`/journal, takes an exclusive lock on the directory
  // (FAILED_PRECONDITION when another master holds it), checks the header
  // against `header` (FAILED_PRECONDITION on mismatch) and replays every intact
  // record through `replay`. DATA_LOSS when the journal is corrupt; `replay`
  // may have seen some records before any error: discard them. Files go through `fs`
  // (null: FileSystem::Default()), which must outlive the journal.
  static absl::StatusOr<std::unique_ptr<Journal>> Open(const std::string& dir,
                                                       const JournalHeader& header,
                                                       const JournalReplay& replay,
                                                       FileSystem* fs = nullptr);
  // Reads a journal without opening it for writing (for manifests and tools).
  static absl::Status Read(const std::string& dir, const JournalReplay& replay,
                           JournalStats* stats = nullptr, FileSystem* fs = nullptr);

  ~Journal();
  Journal(const Journal&) = delete;
  Journal& operator=(const Journal&) = delete;

  // Buffer one record in memory; returns its sequence number for Sync(). A
  // record whose payload is over 64 MiB (what replay accepts) is not written:
  // it fails the journal (INTERNAL, sticky), so Sync returns the error.
  uint64_t AppendCommit(const CommitRecord& record);
  uint64_t AppendQuarantine(const QuarantineRecord& record);

  // Returns once every record up to `seq` is on disk (written and fdatasync'ed).
  // A write or sync failure is sticky: every later call returns it.
  absl::Status Sync(uint64_t seq);
  absl::Status SyncAll();

  // Every record up to this sequence is on disk.
  uint64_t durable_seq() const;

  const JournalStats& replay_stats() const { return replay_stats_; }
  // This job instance's id (see JournalStats::job_uid): the same for the life
  // of the journal, across every reopen; another job's differs.
  const std::string& job_uid() const { return replay_stats_.job_uid; }
  std::string path() const { return path_; }

 private:
  Journal() = default;
  uint64_t AppendLocked(char type, const std::string& payload)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  std::string dir_;
  std::string path_;
  std::unique_ptr<FileLock> lock_;
  // Written by one Sync() leader at a time (syncing_), outside mu_.
  std::unique_ptr<JournalFile> file_;
  JournalStats replay_stats_;

  mutable absl::Mutex mu_;
  std::string pending_ ABSL_GUARDED_BY(mu_);
  uint64_t appended_seq_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t durable_seq_ ABSL_GUARDED_BY(mu_) = 0;
  bool syncing_ ABSL_GUARDED_BY(mu_) = false;
  absl::Status status_ ABSL_GUARDED_BY(mu_);
};

}  // namespace elasticbatch::aimaster

#endif  // ELASTICBATCH_AIMASTER_CORE_JOURNAL_H_
