#include "aimaster/core/file_system.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <vector>

#include "absl/strings/str_cat.h"

namespace elasticbatch::aimaster {
namespace {

std::string ErrnoText(const std::string& what, const std::string& path, int err) {
  return absl::StrCat(what, " ", path, ": ", strerror(err));
}

// Refuses what is not a plain file: a FIFO would block the master, a device
// or directory is not ours to write.
absl::Status CheckRegularFile(int fd, const std::string& path) {
  struct stat st;
  if (fstat(fd, &st) != 0) {
    return absl::InternalError(ErrnoText("cannot stat", path, errno));
  }
  if (!S_ISREG(st.st_mode)) {
    return absl::FailedPreconditionError(
        absl::StrCat(path, " is not a regular file; refusing to use it"));
  }
  // A second name for the file (a hard link planted by someone who can write
  // the directory) would let them read or change it behind our back.
  if (st.st_nlink > 1) {
    return absl::FailedPreconditionError(absl::StrCat(
        path, " has ", st.st_nlink, " names (hard links); refusing to use it"));
  }
  return absl::OkStatus();
}

// Opens a file of the state dir. O_NOFOLLOW: a symlink planted there (the state
// dir may be writable by workers) is refused, not followed. O_NONBLOCK: opening
// a planted FIFO must not hang; it has no effect on regular files.
absl::StatusOr<int> OpenStateFile(const std::string& path, int flags) {
  const int fd = open(path.c_str(), flags | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK, 0644);
  if (fd < 0) {
    const int err = errno;
    if (err == ENOENT && (flags & O_CREAT) == 0) {
      return absl::NotFoundError(ErrnoText("cannot open", path, err));
    }
    if (err == ELOOP) {
      return absl::FailedPreconditionError(
          absl::StrCat(path,
                       " is a symbolic link; refusing to follow it (remove it, or use a "
                       "fresh --state-dir)"));
    }
    return absl::FailedPreconditionError(ErrnoText("cannot open", path, err));
  }
  if (absl::Status s = CheckRegularFile(fd, path); !s.ok()) {
    close(fd);
    return s;
  }
  return fd;
}

class PosixFileLock final : public FileLock {
 public:
  explicit PosixFileLock(int fd) : fd_(fd) {}
  ~PosixFileLock() override { close(fd_); }  // releases the flock

 private:
  const int fd_;
};

class PosixJournalFile final : public JournalFile {
 public:
  PosixJournalFile(int fd, std::string path) : fd_(fd), path_(std::move(path)) {}
  ~PosixJournalFile() override { close(fd_); }

  absl::StatusOr<size_t> Read(char* buf, size_t n) override {
    while (true) {
      const ssize_t got = read(fd_, buf, n);
      if (got >= 0) return static_cast<size_t>(got);
      if (errno != EINTR)
        return absl::InternalError(ErrnoText("cannot read", path_, errno));
    }
  }

  absl::StatusOr<uint64_t> Size() override {
    struct stat st;
    if (fstat(fd_, &st) != 0) {
      return absl::InternalError(ErrnoText("cannot stat", path_, errno));
    }
    return static_cast<uint64_t>(st.st_size);
  }

  absl::Status Truncate(uint64_t size) override {
    if (ftruncate(fd_, static_cast<off_t>(size)) != 0) {
      return absl::InternalError(ErrnoText("cannot truncate", path_, errno));
    }
    return absl::OkStatus();
  }

  absl::Status Append(absl::string_view data) override {
    // The file is open with O_APPEND: every write lands at the current end.
    size_t off = 0;
    while (off < data.size()) {
      const ssize_t n = write(fd_, data.data() + off, data.size() - off);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) return absl::InternalError(ErrnoText("cannot write", path_, errno));
      if (n == 0) {  // would loop forever
        return absl::InternalError(absl::StrCat("cannot write ", path_, ": no progress"));
      }
      off += static_cast<size_t>(n);
    }
    return absl::OkStatus();
  }

  absl::Status Sync() override {
    if (fdatasync(fd_) != 0) {
      return absl::InternalError(ErrnoText("cannot fdatasync", path_, errno));
    }
    return absl::OkStatus();
  }

 private:
  const int fd_;
  const std::string path_;
};

class PosixFileSystem final : public FileSystem {
 public:
  absl::Status CreateDir(const std::string& dir) override {
    namespace fs = std::filesystem;
    fs::path p = fs::path(dir).lexically_normal();
    if (!p.empty() && p.filename().empty()) p = p.parent_path();  // trailing '/'
    // Walk up to the first directory that exists; create the rest top-down.
    std::vector<fs::path> missing;
    for (; !p.empty(); p = p.parent_path()) {
      struct stat st;
      if (stat(p.c_str(), &st) == 0) {
        if (!S_ISDIR(st.st_mode)) {
          return absl::FailedPreconditionError(absl::StrCat(
              "cannot create ", dir, ": ", p.string(), " is not a directory"));
        }
        break;
      }
      if (errno != ENOENT) {
        return absl::FailedPreconditionError(ErrnoText("cannot create", dir, errno));
      }
      missing.push_back(p);
      if (p == p.parent_path()) break;
    }
    for (auto it = missing.rbegin(); it != missing.rend(); ++it) {
      if (mkdir(it->c_str(), 0755) != 0 && errno != EEXIST) {
        return absl::FailedPreconditionError(ErrnoText("cannot create", dir, errno));
      }
      // A new directory's name lives in its parent: sync the parent, or a
      // power loss can take the directory and every file in it away.
      const fs::path parent = it->has_parent_path() ? it->parent_path() : fs::path(".");
      if (absl::Status s = SyncDir(parent.string()); !s.ok()) return s;
    }
    return absl::OkStatus();
  }

  absl::StatusOr<std::unique_ptr<FileLock>> LockFile(const std::string& path) override {
    absl::StatusOr<int> fd = OpenStateFile(path, O_RDWR | O_CREAT);
    if (!fd.ok()) return fd.status();
    if (flock(*fd, LOCK_EX | LOCK_NB) != 0) {
      const int err = errno;
      close(*fd);
      if (err == EWOULDBLOCK) {
        return absl::UnavailableError(
            absl::StrCat(path, " is locked by another process"));
      }
      return absl::FailedPreconditionError(ErrnoText("cannot lock", path, err));
    }
    return std::make_unique<PosixFileLock>(*fd);
  }

  absl::StatusOr<std::unique_ptr<JournalFile>> OpenForAppend(
      const std::string& path) override {
    absl::StatusOr<int> fd = OpenStateFile(path, O_RDWR | O_CREAT | O_APPEND);
    if (!fd.ok()) return fd.status();
    return std::make_unique<PosixJournalFile>(*fd, path);
  }

  absl::StatusOr<std::unique_ptr<JournalFile>> OpenForRead(
      const std::string& path) override {
    absl::StatusOr<int> fd = OpenStateFile(path, O_RDONLY);
    if (!fd.ok()) return fd.status();
    return std::make_unique<PosixJournalFile>(*fd, path);
  }

  absl::Status SyncDir(const std::string& dir) override {
    const int fd = open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return absl::InternalError(ErrnoText("cannot open", dir, errno));
    const int rc = fsync(fd);
    const int err = errno;
    close(fd);
    if (rc != 0) return absl::InternalError(ErrnoText("cannot fsync", dir, err));
    return absl::OkStatus();
  }
};

}  // namespace

FileSystem* FileSystem::Default() {
  static FileSystem* const fs = new PosixFileSystem();
  return fs;
}

}  // namespace elasticbatch::aimaster
