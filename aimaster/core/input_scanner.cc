#include "aimaster/core/input_scanner.h"

#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstdlib>
#include <cstring>
#include <memory>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace elasticbatch::aimaster {
namespace {

// A real file or directory, whatever path leads to it.
struct FileId {
  dev_t dev = 0;
  ino_t ino = 0;
  friend bool operator==(const FileId& a, const FileId& b) {
    return a.dev == b.dev && a.ino == b.ino;
  }
  template <typename H>
  friend H AbslHashValue(H h, const FileId& id) {
    return H::combine(std::move(h), id.dev, id.ino);
  }
};

FileId IdOf(const struct stat& st) { return {st.st_dev, st.st_ino}; }

bool Skipped(const std::string& name) {
  return !name.empty() && (name[0] == '.' || name[0] == '_');
}

const char* KindName(mode_t mode) {
  if (S_ISFIFO(mode)) return "a fifo";
  if (S_ISSOCK(mode)) return "a socket";
  if (S_ISCHR(mode)) return "a character device";
  if (S_ISBLK(mode)) return "a block device";
  return "not a regular file";
}

// The error for a failed stat/opendir/readdir of `path`, with errno set.
absl::Status EntryError(const std::string& what, const std::string& path, int err) {
  if (err == EACCES || err == EPERM) {
    return absl::PermissionDeniedError(
        absl::StrCat(what, " ", path, ": permission denied"));
  }
  if (err == ENOENT) {
    return absl::FailedPreconditionError(absl::StrCat(
        what, " ", path, ": it vanished or is a symlink to nothing (dangling)"));
  }
  if (err == ELOOP) {
    return absl::FailedPreconditionError(
        absl::StrCat(what, " ", path, ": symlinks that point at each other (ELOOP)"));
  }
  return absl::FailedPreconditionError(
      absl::StrCat(what, " ", path, ": ", strerror(err)));
}

struct DirCloser {
  void operator()(DIR* d) const { closedir(d); }
};

struct Found {
  std::string path;  // relative to the input
  uint64_t size = 0;
  FileId id;
};

class Scanner {
 public:
  Scanner(std::string root, const ListOptions& options)
      : root_(std::move(root)), options_(options) {}

  absl::StatusOr<std::vector<SourceFile>> Run(const struct stat& root_st) {
    if (absl::Status s = CollectRootAncestors(); !s.ok()) return s;
    if (absl::Status s = Walk(root_, "", root_st, 0); !s.ok()) return s;
    std::sort(found_.begin(), found_.end(),
              [](const Found& a, const Found& b) { return a.path < b.path; });
    std::vector<SourceFile> files;
    files.reserve(found_.size());
    absl::flat_hash_map<FileId, size_t> first;  // id -> index into found_
    for (size_t i = 0; i < found_.size(); ++i) {
      auto [it, inserted] = first.emplace(found_[i].id, i);
      if (!inserted) {
        if (options_.duplicates != nullptr) {
          options_.duplicates->push_back(absl::StrCat(found_[i].path, " (same file as ",
                                                      found_[it->second].path, ")"));
        }
        continue;
      }
      files.push_back({found_[i].path, found_[i].size});
    }
    return files;
  }

 private:
  // Every real directory from `/` down to the input itself: a link back to any
  // of them is a loop (`self -> .`, `up -> ..`).
  absl::Status CollectRootAncestors() {
    std::unique_ptr<char, decltype(&std::free)> real(realpath(root_.c_str(), nullptr),
                                                     &std::free);
    if (real == nullptr) return EntryError("cannot resolve input", root_, errno);
    std::string dir = real.get();
    while (true) {
      struct stat st;
      if (stat(dir.c_str(), &st) != 0) return EntryError("cannot read", dir, errno);
      on_path_.insert(IdOf(st));
      if (dir == "/" || dir.empty()) break;
      const size_t slash = dir.rfind('/');
      dir = slash == 0 ? "/" : dir.substr(0, slash);
    }
    return absl::OkStatus();
  }

  bool Cancelled() {
    return options_.cancelled && (++polls_ % 64 == 0 || polls_ == 1) &&
           options_.cancelled();
  }

  absl::Status Walk(const std::string& full, const std::string& rel,
                    const struct stat& st, int depth) {
    if (options_.cancelled && options_.cancelled()) {
      return absl::CancelledError(absl::StrCat("listing of input ", root_, " cancelled"));
    }
    if (depth > options_.max_depth) {
      return absl::FailedPreconditionError(
          absl::StrCat("input ", root_, " is nested deeper than ", options_.max_depth,
                       " directories at ", full));
    }
    visited_dirs_.insert(IdOf(st));
    std::unique_ptr<DIR, DirCloser> dir(opendir(full.c_str()));
    if (dir == nullptr) return EntryError("cannot list input directory", full, errno);
    std::vector<std::string> names;
    while (true) {
      errno = 0;
      const struct dirent* e = readdir(dir.get());
      if (e == nullptr) {
        if (errno != 0) return EntryError("cannot list input directory", full, errno);
        break;
      }
      const std::string name = e->d_name;
      if (name == "." || name == ".." || Skipped(name)) continue;
      names.push_back(name);
    }
    dir.reset();
    std::sort(names.begin(), names.end());
    on_path_.insert(IdOf(st));
    for (const std::string& name : names) {
      if (Cancelled()) {
        return absl::CancelledError(
            absl::StrCat("listing of input ", root_, " cancelled"));
      }
      const std::string child = absl::StrCat(full, full.back() == '/' ? "" : "/", name);
      const std::string child_rel = rel.empty() ? name : absl::StrCat(rel, "/", name);
      struct stat cst;
      if (stat(child.c_str(), &cst) != 0) {
        return EntryError("cannot read input entry", child, errno);
      }
      if (S_ISDIR(cst.st_mode)) {
        const FileId id = IdOf(cst);
        if (on_path_.contains(id)) {
          std::string target = "an enclosing directory";
          char buf[PATH_MAX];
          const ssize_t n = readlink(child.c_str(), buf, sizeof(buf) - 1);
          if (n > 0) target = std::string(buf, static_cast<size_t>(n));
          return absl::FailedPreconditionError(absl::StrCat(
              "input ", root_, " has a loop: ", child, " -> ", target,
              " leads back to a directory that contains it; remove the link or name "
              "it with a leading '_' to skip it"));
        }
        if (visited_dirs_.contains(id)) {
          if (options_.duplicates != nullptr) {
            options_.duplicates->push_back(
                absl::StrCat(child_rel, "/ (a directory already listed)"));
          }
          continue;
        }
        if (absl::Status s = Walk(child, child_rel, cst, depth + 1); !s.ok()) return s;
        continue;
      }
      if (!S_ISREG(cst.st_mode)) {
        return absl::FailedPreconditionError(
            absl::StrCat("input entry ", child, " is ", KindName(cst.st_mode),
                         ", not a regular file or directory; name it with a leading "
                         "'_' to skip it"));
      }
      if (access(child.c_str(), R_OK) != 0) {
        return absl::PermissionDeniedError(
            absl::StrCat("input file ", child, " is not readable"));
      }
      found_.push_back({child_rel, static_cast<uint64_t>(cst.st_size), IdOf(cst)});
    }
    on_path_.erase(IdOf(st));
    return absl::OkStatus();
  }

  const std::string root_;
  const ListOptions& options_;
  uint64_t polls_ = 0;
  // Real directories from `/` down to the one being listed.
  absl::flat_hash_set<FileId> on_path_;
  absl::flat_hash_set<FileId> visited_dirs_;
  std::vector<Found> found_;
};

}  // namespace

absl::StatusOr<std::vector<SourceFile>> ListSourceFiles(const std::string& path,
                                                        const ListOptions& options) {
  struct stat st;
  if (stat(path.c_str(), &st) != 0) {
    if (errno == ENOENT) {
      struct stat lst;
      if (lstat(path.c_str(), &lst) == 0) {
        return absl::FailedPreconditionError(
            absl::StrCat("input ", path, " is a symlink to nothing (dangling)"));
      }
      return absl::NotFoundError(absl::StrCat("input ", path, " does not exist"));
    }
    return EntryError("cannot read input", path, errno);
  }
  if (S_ISREG(st.st_mode)) {
    if (access(path.c_str(), R_OK) != 0) {
      return absl::PermissionDeniedError(
          absl::StrCat("input ", path, " is not readable"));
    }
    return std::vector<SourceFile>{{"", static_cast<uint64_t>(st.st_size)}};
  }
  if (!S_ISDIR(st.st_mode)) {
    return absl::FailedPreconditionError(
        absl::StrCat("input ", path, " is ", KindName(st.st_mode),
                     ", neither a file nor a directory"));
  }
  Scanner scanner(path, options);
  return scanner.Run(st);
}

}  // namespace elasticbatch::aimaster
