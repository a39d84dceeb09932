// A FileSystem that fails on request, for the journal's failure paths: a full
// disk, an I/O error on read, an fsync that fails. It forwards everything else
// to a real file system.
//
//   FaultyFileSystem fs;
//   auto journal = Journal::Open(dir, header, {}, &fs);
//   fs.FailSyncs(EIO);                 // every fdatasync fails from now on
//   fs.FailAppend(/*nth=*/1, ENOSPC);  // the next write fails
//   fs.FailReadAt(123, EIO);           // reading byte 123 of a journal fails
//
// Thread-safe.
#ifndef ELASTICBATCH_TESTS_TESTING_FAULTY_FILE_SYSTEM_H_
#define ELASTICBATCH_TESTS_TESTING_FAULTY_FILE_SYSTEM_H_

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "aimaster/core/file_system.h"

namespace elasticbatch::aimaster {

class FaultyFileSystem final : public FileSystem {
 public:
  explicit FaultyFileSystem(FileSystem* base = FileSystem::Default()) : base_(base) {}

  // The `nth` Append from now (1: the next one) writes the first `partial`
  // bytes of its data, then fails with `err`. Later appends succeed.
  void FailAppend(int nth, int err = ENOSPC, size_t partial = 0) {
    absl::MutexLock lock(&mu_);
    append_countdown_ = nth;
    append_errno_ = err;
    append_partial_ = partial;
  }
  // Every Sync fails with `err` from now on; 0 makes them succeed again.
  void FailSyncs(int err = EIO) {
    absl::MutexLock lock(&mu_);
    sync_errno_ = err;
  }
  // A Read of byte `offset` of any file fails with `err` (the bytes before it
  // are returned first); 0 turns it off.
  void FailReadAt(uint64_t offset, int err = EIO) {
    absl::MutexLock lock(&mu_);
    read_fail_offset_ = offset;
    read_errno_ = err;
  }
  // Size, Truncate and SyncDir fail with `err` from now on; 0 turns it off.
  void FailSize(int err) {
    absl::MutexLock lock(&mu_);
    size_errno_ = err;
  }
  void FailTruncate(int err) {
    absl::MutexLock lock(&mu_);
    truncate_errno_ = err;
  }
  void FailSyncDir(int err) {
    absl::MutexLock lock(&mu_);
    sync_dir_errno_ = err;
  }

  // Calls that reached a file (failed ones included).
  int appends() const {
    absl::MutexLock lock(&mu_);
    return appends_;
  }
  int syncs() const {
    absl::MutexLock lock(&mu_);
    return syncs_;
  }
  int truncates() const {
    absl::MutexLock lock(&mu_);
    return truncates_;
  }

  absl::Status CreateDir(const std::string& dir) override {
    return base_->CreateDir(dir);
  }
  absl::StatusOr<std::unique_ptr<FileLock>> LockFile(const std::string& path) override {
    return base_->LockFile(path);
  }
  absl::StatusOr<std::unique_ptr<JournalFile>> OpenForAppend(
      const std::string& path) override {
    return Wrap(base_->OpenForAppend(path), path);
  }
  absl::StatusOr<std::unique_ptr<JournalFile>> OpenForRead(
      const std::string& path) override {
    return Wrap(base_->OpenForRead(path), path);
  }
  absl::Status SyncDir(const std::string& dir) override {
    {
      absl::MutexLock lock(&mu_);
      if (sync_dir_errno_ != 0) return Injected("cannot fsync", dir, sync_dir_errno_);
      synced_dirs_.push_back(dir);
    }
    return base_->SyncDir(dir);
  }
  // Directories synced through SyncDir (not those CreateDir syncs), in order.
  std::vector<std::string> synced_dirs() const {
    absl::MutexLock lock(&mu_);
    return synced_dirs_;
  }

 private:
  class File final : public JournalFile {
   public:
    File(FaultyFileSystem* fs, std::unique_ptr<JournalFile> base, std::string path)
        : fs_(fs), base_(std::move(base)), path_(std::move(path)) {}

    absl::StatusOr<size_t> Read(char* buf, size_t n) override {
      {
        absl::MutexLock lock(&fs_->mu_);
        if (fs_->read_errno_ != 0 && read_pos_ + n > fs_->read_fail_offset_) {
          if (read_pos_ >= fs_->read_fail_offset_) {
            return Injected("cannot read", path_, fs_->read_errno_);
          }
          n = static_cast<size_t>(fs_->read_fail_offset_ - read_pos_);
        }
      }
      absl::StatusOr<size_t> got = base_->Read(buf, n);
      if (got.ok()) read_pos_ += *got;
      return got;
    }
    absl::StatusOr<uint64_t> Size() override {
      {
        absl::MutexLock lock(&fs_->mu_);
        if (fs_->size_errno_ != 0)
          return Injected("cannot stat", path_, fs_->size_errno_);
      }
      return base_->Size();
    }
    absl::Status Truncate(uint64_t size) override {
      {
        absl::MutexLock lock(&fs_->mu_);
        ++fs_->truncates_;
        if (fs_->truncate_errno_ != 0) {
          return Injected("cannot truncate", path_, fs_->truncate_errno_);
        }
      }
      return base_->Truncate(size);
    }
    absl::Status Append(absl::string_view data) override {
      int err = 0;
      size_t partial = 0;
      {
        absl::MutexLock lock(&fs_->mu_);
        ++fs_->appends_;
        if (fs_->append_countdown_ > 0 && --fs_->append_countdown_ == 0) {
          err = fs_->append_errno_;
          partial = std::min(fs_->append_partial_, data.size());
        }
      }
      if (err == 0) return base_->Append(data);
      if (partial > 0) (void)base_->Append(data.substr(0, partial));
      return Injected("cannot write", path_, err);
    }
    absl::Status Sync() override {
      {
        absl::MutexLock lock(&fs_->mu_);
        ++fs_->syncs_;
        if (fs_->sync_errno_ != 0) {
          return Injected("cannot fdatasync", path_, fs_->sync_errno_);
        }
      }
      return base_->Sync();
    }

   private:
    FaultyFileSystem* const fs_;
    const std::unique_ptr<JournalFile> base_;
    const std::string path_;
    uint64_t read_pos_ = 0;
  };

  static absl::Status Injected(const std::string& what, const std::string& path,
                               int err) {
    return absl::InternalError(absl::StrCat(what, " ", path, ": ", strerror(err)));
  }

  absl::StatusOr<std::unique_ptr<JournalFile>> Wrap(
      absl::StatusOr<std::unique_ptr<JournalFile>> file, const std::string& path) {
    if (!file.ok()) return file.status();
    return std::make_unique<File>(this, std::move(*file), path);
  }

  FileSystem* const base_;
  mutable absl::Mutex mu_;
  int append_countdown_ ABSL_GUARDED_BY(mu_) = 0;
  int append_errno_ ABSL_GUARDED_BY(mu_) = 0;
  size_t append_partial_ ABSL_GUARDED_BY(mu_) = 0;
  int sync_errno_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t read_fail_offset_ ABSL_GUARDED_BY(mu_) = 0;
  int read_errno_ ABSL_GUARDED_BY(mu_) = 0;
  int size_errno_ ABSL_GUARDED_BY(mu_) = 0;
  int truncate_errno_ ABSL_GUARDED_BY(mu_) = 0;
  int sync_dir_errno_ ABSL_GUARDED_BY(mu_) = 0;
  int appends_ ABSL_GUARDED_BY(mu_) = 0;
  int syncs_ ABSL_GUARDED_BY(mu_) = 0;
  int truncates_ ABSL_GUARDED_BY(mu_) = 0;
  std::vector<std::string> synced_dirs_ ABSL_GUARDED_BY(mu_);
};

}  // namespace elasticbatch::aimaster

#endif  // ELASTICBATCH_TESTS_TESTING_FAULTY_FILE_SYSTEM_H_
