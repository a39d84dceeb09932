// The file operations the journal needs, behind a seam (LevelDB's Env style)
// so that tests can inject EIO, ENOSPC and failed fsyncs.
//
//   FileSystem* fs = FileSystem::Default();
//   absl::Status made = fs->CreateDir("/out/_state");
//   auto lock = fs->LockFile("/out/_state/LOCK");          // held until destroyed
//   auto file = fs->OpenForAppend("/out/_state/journal");
//   absl::StatusOr<size_t> n = (*file)->Read(buf, sizeof(buf));  // 0 at the end
//   absl::Status s = (*file)->Append(bytes);
//   s = (*file)->Sync();                                 // durable when OK
//
// The state dir lives by default inside the output channel, which workers can
// write: files are opened with O_NOFOLLOW and must be regular files, so a
// planted symlink or FIFO is refused rather than followed.
//
// Errors name the path and the OS error. Codes: NOT_FOUND (OpenForRead of a
// missing file), UNAVAILABLE (LockFile: held by another process),
// FAILED_PRECONDITION (cannot create or open: permissions, symlink, not a
// regular file), INTERNAL (an I/O error on a file that is open).
#ifndef ELASTICBATCH_AIMASTER_CORE_FILE_SYSTEM_H_
#define ELASTICBATCH_AIMASTER_CORE_FILE_SYSTEM_H_

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace elasticbatch::aimaster {

// An exclusive lock on a file; released when destroyed. Not thread-safe.
class FileLock {
 public:
  virtual ~FileLock() = default;
};

// An open journal file: read sequentially from the start, then appended to.
// Not thread-safe: one caller at a time.
class JournalFile {
 public:
  virtual ~JournalFile() = default;
  // Reads up to `n` bytes at the read position into `buf`. Returns 0 only at
  // the end of the file; an I/O error is an error, never the end.
  virtual absl::StatusOr<size_t> Read(char* buf, size_t n) = 0;
  // The file's size now.
  virtual absl::StatusOr<uint64_t> Size() = 0;
  // Cuts the file to `size` bytes.
  virtual absl::Status Truncate(uint64_t size) = 0;
  // Writes all of `data` at the end of the file. On error a prefix of `data`
  // may have been written.
  virtual absl::Status Append(absl::string_view data) = 0;
  // fdatasync: everything appended is durable when OK. After a failure the
  // kernel may have dropped the unwritten pages, so the file must not be
  // trusted again (callers make the error sticky).
  virtual absl::Status Sync() = 0;
};

// Thread-safe (every method may be called concurrently).
class FileSystem {
 public:
  // The POSIX file system. Never null; lives for the whole process.
  static FileSystem* Default();

  virtual ~FileSystem() = default;
  // Creates `dir` and its missing parents, and makes each created directory
  // durable (fsyncs its parent). OK when it exists already.
  virtual absl::Status CreateDir(const std::string& dir) = 0;
  // Opens or creates `path` and takes an exclusive lock on it without waiting.
  // UNAVAILABLE when another process (or another open) holds it.
  virtual absl::StatusOr<std::unique_ptr<FileLock>> LockFile(const std::string& path) = 0;
  // Opens `path` for reading and appending, creating it (mode 0644) if missing.
  virtual absl::StatusOr<std::unique_ptr<JournalFile>> OpenForAppend(
      const std::string& path) = 0;
  // Opens `path` read-only. NOT_FOUND when it does not exist.
  virtual absl::StatusOr<std::unique_ptr<JournalFile>> OpenForRead(
      const std::string& path) = 0;
  // fsync of a directory: makes the names created in it durable.
  virtual absl::Status SyncDir(const std::string& dir) = 0;
};

}  // namespace elasticbatch::aimaster

#endif  // ELASTICBATCH_AIMASTER_CORE_FILE_SYSTEM_H_
