#include "elasticbatch/shard_output.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <random>

#include "absl/strings/str_cat.h"

namespace elasticbatch {
namespace {

absl::Status Errno(const std::string& what, const std::string& path) {
  return absl::InternalError(absl::StrCat(what, " ", path, ": ", strerror(errno)));
}

// Makes a rename in `dir` durable.
absl::Status SyncDirectory(const std::string& dir) {
  const int fd = open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return Errno("cannot open directory", dir);
  absl::Status s;
  if (fsync(fd) != 0) s = Errno("cannot sync directory", dir);
  close(fd);
  return s;
}

}  // namespace

absl::StatusOr<std::unique_ptr<ShardOutput>> ShardOutput::Open(
    Shard& shard, const std::string& output_dir) {
  if (output_dir.empty()) {
    return absl::FailedPreconditionError(
        "no output directory: the job's PAI_OUTPUT_<CHANNEL> is not set");
  }
  const std::string staging_dir = output_dir + "/_temporary";
  std::error_code ec;
  std::filesystem::create_directories(staging_dir, ec);
  if (ec) {
    return absl::FailedPreconditionError(
        absl::StrCat("cannot create ", staging_dir, ": ", ec.message()));
  }
  auto out = std::unique_ptr<ShardOutput>(new ShardOutput());
  out->shard_ = &shard;
  // Unique per writer: attempt numbers repeat after a master restart and pids
  // repeat across hosts sharing the output channel, so add a random nonce.
  static thread_local std::mt19937_64 rng(std::random_device{}() ^
                                          (static_cast<uint64_t>(getpid()) << 32));
  out->staging_path_ =
      absl::StrCat(staging_dir, "/", shard.output_name(), ".attempt-", shard.attempt(),
                   ".", absl::Hex(rng(), absl::kZeroPad16), ".tmp");
  out->final_path_ = absl::StrCat(output_dir, "/", shard.output_name());
  out->file_ = std::fopen(out->staging_path_.c_str(), "wb");
  if (out->file_ == nullptr) {
    return absl::FailedPreconditionError(
        absl::StrCat("cannot create ", out->staging_path_, ": ", strerror(errno)));
  }
  return out;
}

ShardOutput::~ShardOutput() {
  if (!done_) Discard();
}

absl::Status ShardOutput::Write(absl::string_view data) {
  if (!error_.ok()) return error_;
  if (file_ == nullptr) return absl::FailedPreconditionError("output already closed");
  if (std::fwrite(data.data(), 1, data.size(), file_) != data.size()) {
    // Sticky: whatever was lost cannot be written again in order.
    error_ = Errno("cannot write", staging_path_);
    return error_;
  }
  bytes_ += data.size();
  return absl::OkStatus();
}

absl::Status ShardOutput::WriteLine(absl::string_view line) {
  if (absl::Status s = Write(line); !s.ok()) return s;
  return Write("\n");
}

void ShardOutput::Discard() {
  if (file_ != nullptr) {
    std::fclose(file_);
    file_ = nullptr;
  }
  std::remove(staging_path_.c_str());
  done_ = true;
}

absl::Status ShardOutput::Commit() {
  if (!error_.ok()) {
    // Never ask the master to commit an output that lost data.
    Discard();
    return error_;
  }
  if (done_ || file_ == nullptr)
    return absl::FailedPreconditionError("output already closed");
  // Durable before asking: once granted, the rename must publish whole data.
  if (std::fflush(file_) != 0 || fsync(fileno(file_)) != 0) {
    error_ = Errno("cannot write", staging_path_);
    Discard();
    return error_;
  }
  const int closed = std::fclose(file_);
  file_ = nullptr;
  if (closed != 0) {
    error_ = Errno("cannot close", staging_path_);
    Discard();
    return error_;
  }
  absl::Status committed = shard_->CommitWith([this]() -> absl::Status {
    if (std::rename(staging_path_.c_str(), final_path_.c_str()) != 0) {
      return Errno("cannot publish", final_path_);
    }
    absl::Status synced =
        SyncDirectory(std::filesystem::path(final_path_).parent_path().string());
    if (!synced.ok()) {
      // Not durably published: take it back, so that a shard which ends up
      // quarantined leaves no part file; the master hands the shard out again.
      std::remove(final_path_.c_str());
      return synced;
    }
    return absl::OkStatus();
  });
  if (!committed.ok()) std::remove(staging_path_.c_str());
  done_ = true;
  return committed;
}

}  // namespace elasticbatch
