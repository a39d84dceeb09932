#include "input_scanner.h"

#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <system_error>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace elasticbatch::aimaster {
namespace fs = std::filesystem;
namespace {

bool Skipped(const fs::path& p) {
  const std::string name = p.filename().string();
  return !name.empty() && (name[0] == '.' || name[0] == '_');
}

absl::Status FsError(const std::string& what, const std::string& path,
                     std::error_code ec) {
  if (ec == std::errc::permission_denied) {
    return absl::PermissionDeniedError(
        absl::StrCat(what, " ", path, ": permission denied"));
  }
  return absl::FailedPreconditionError(absl::StrCat(what, " ", path, ": ", ec.message()));
}

}  // namespace

absl::StatusOr<std::vector<SourceFile>> ListSourceFiles(const std::string& path) {
  std::error_code ec;
  const fs::file_status st = fs::status(path, ec);
  if (ec || !fs::exists(st)) {
    if (!ec || ec == std::errc::no_such_file_or_directory) {
      return absl::NotFoundError(absl::StrCat("input ", path, " does not exist"));
    }
    return FsError("cannot read input", path, ec);
  }
  std::vector<SourceFile> files;
  if (fs::is_regular_file(st)) {
    if (access(path.c_str(), R_OK) != 0) {
      return absl::PermissionDeniedError(
          absl::StrCat("input ", path, " is not readable"));
    }
    uint64_t size = fs::file_size(path, ec);
    if (ec) return FsError("cannot stat input", path, ec);
    files.push_back({"", size});
    return files;
  }
  if (!fs::is_directory(st)) {
    return absl::FailedPreconditionError(
        absl::StrCat("input ", path, " is neither a file nor a directory"));
  }
  const fs::path root(path);
  fs::recursive_directory_iterator it(
      root, fs::directory_options::follow_directory_symlink, ec);
  if (ec) return FsError("cannot list input", path, ec);
  for (; it != fs::recursive_directory_iterator(); it.increment(ec)) {
    if (ec) return FsError("cannot list input", path, ec);
    const fs::directory_entry& entry = *it;
    if (Skipped(entry.path())) {
      if (entry.is_directory(ec)) it.disable_recursion_pending();
      continue;
    }
    if (!entry.is_regular_file(ec)) continue;
    const std::string full = entry.path().string();
    if (access(full.c_str(), R_OK) != 0) {
      return absl::PermissionDeniedError(
          absl::StrCat("input file ", full, " is not readable"));
    }
    uint64_t size = entry.file_size(ec);
    if (ec) return FsError("cannot stat input file", full, ec);
    files.push_back({entry.path().lexically_relative(root).string(), size});
  }
  if (ec) return FsError("cannot list input", path, ec);
  std::sort(files.begin(), files.end(),
            [](const SourceFile& a, const SourceFile& b) { return a.path < b.path; });
  return files;
}

}  // namespace elasticbatch::aimaster
