// Journal replay over arbitrary bytes as the journal file, through an
// in-memory FileSystem. The first input byte picks what the file is: the rest
// of the input as is (0), a valid journal written by Journal itself followed
// by the rest (1), or that valid journal with the rest XORed into it at an
// offset the next byte picks (2).
// Invariants: never crashes; Read and Open either replay or return an error;
// a failed Open leaves the file as it was; after a successful Open the
// journal reopens with the same records replayed and no torn tail left.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "aimaster/core/file_system.h"
#include "aimaster/core/journal.h"
#include "fuzz/fuzz_check.h"

namespace elasticbatch::aimaster {
namespace {

// Files as strings. Not thread-safe (the fuzzer calls it from one thread).
class MemoryFileSystem final : public FileSystem {
 public:
  std::map<std::string, std::string> files;

  absl::Status CreateDir(const std::string&) override { return absl::OkStatus(); }
  absl::StatusOr<std::unique_ptr<FileLock>> LockFile(const std::string&) override {
    return std::make_unique<FileLock>();
  }
  absl::StatusOr<std::unique_ptr<JournalFile>> OpenForAppend(
      const std::string& path) override {
    return std::unique_ptr<JournalFile>(new File(&files[path]));
  }
  absl::StatusOr<std::unique_ptr<JournalFile>> OpenForRead(
      const std::string& path) override {
    auto it = files.find(path);
    if (it == files.end()) return absl::NotFoundError(path);
    return std::unique_ptr<JournalFile>(new File(&it->second));
  }
  absl::Status SyncDir(const std::string&) override { return absl::OkStatus(); }

 private:
  class File final : public JournalFile {
   public:
    explicit File(std::string* bytes) : bytes_(bytes) {}
    absl::StatusOr<size_t> Read(char* buf, size_t n) override {
      const size_t got = pos_ < bytes_->size() ? std::min(n, bytes_->size() - pos_) : 0;
      std::copy_n(bytes_->data() + pos_, got, buf);
      pos_ += got;
      return got;
    }
    absl::StatusOr<uint64_t> Size() override { return bytes_->size(); }
    absl::Status Truncate(uint64_t size) override {
      bytes_->resize(std::min<uint64_t>(size, bytes_->size()));
      return absl::OkStatus();
    }
    absl::Status Append(absl::string_view data) override {
      bytes_->append(data.data(), data.size());
      return absl::OkStatus();
    }
    absl::Status Sync() override { return absl::OkStatus(); }

   private:
    std::string* bytes_;
    size_t pos_ = 0;
  };
};

constexpr char kDir[] = "/state";
constexpr char kPath[] = "/state/journal";

JournalHeader Header() {
  JournalHeader h;
  h.layout_fingerprint = 0x1234;
  h.total_shards = 8;
  h.job_id = "job";
  h.output_path = "/out";
  h.input_channel = "data";
  return h;
}

// A journal as Journal writes it: the header, commits and a quarantine.
const std::string& ValidJournal() {
  static const std::string* bytes = [] {
    MemoryFileSystem fs;
    {
      auto journal = Journal::Open(kDir, Header(), {}, &fs);
      FUZZ_CHECK(journal.ok(), "%s", journal.status().ToString().c_str());
      (*journal)->AppendCommit({1, 0, 100, 3});
      (*journal)->AppendCommit({5, 2, 7, 0});
      (*journal)->AppendQuarantine({6, {"boom", "again"}});
      FUZZ_CHECK((*journal)->SyncAll().ok(), "sync");
    }
    return new std::string(fs.files[kPath]);
  }();
  return *bytes;
}

struct Replayed {
  std::vector<uint64_t> commits;
  std::vector<uint64_t> quarantines;
  JournalReplay replay() {
    JournalReplay r;
    r.on_commit = [this](const CommitRecord& c) { commits.push_back(c.shard_id); };
    r.on_quarantine = [this](const QuarantineRecord& q) {
      quarantines.push_back(q.shard_id);
    };
    return r;
  }
};

}  // namespace
}  // namespace elasticbatch::aimaster

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace elasticbatch::aimaster;
  elasticbatch::fuzz::FuzzInput in(data, size);
  const uint8_t mode = in.Byte() % 3;
  std::string file;
  if (mode == 0) {
    file = std::string(in.Rest());
  } else if (mode == 1) {
    file = ValidJournal() + std::string(in.Rest());
  } else {
    file = ValidJournal();
    size_t at = in.Byte() % file.size();
    for (char c : in.Rest()) {
      if (at >= file.size()) break;
      file[at++] ^= c;
    }
  }
  MemoryFileSystem fs;
  fs.files[kPath] = file;

  Replayed read;
  JournalStats stats;
  const absl::Status read_status = Journal::Read(kDir, read.replay(), &stats, &fs);
  FUZZ_CHECK(fs.files[kPath] == file, "Read changed the file");
  if (read_status.ok()) {
    FUZZ_CHECK(stats.commits == read.commits.size(), "%llu commits counted, %zu replayed",
               static_cast<unsigned long long>(stats.commits), read.commits.size());
  }

  Replayed opened;
  absl::Status open_status;
  {
    auto journal = Journal::Open(kDir, Header(), opened.replay(), &fs);
    open_status = journal.status();
  }
  if (!open_status.ok()) {
    FUZZ_CHECK(fs.files[kPath] == file, "a failed Open (%s) changed the file",
               open_status.ToString().c_str());
    return 0;
  }
  FUZZ_CHECK(read_status.ok(), "Open replayed what Read refused: %s",
             read_status.ToString().c_str());
  FUZZ_CHECK(opened.commits == read.commits && opened.quarantines == read.quarantines,
             "Open and Read replayed different records");

  Replayed again;
  auto reopened = Journal::Open(kDir, Header(), again.replay(), &fs);
  FUZZ_CHECK(reopened.ok(), "reopen: %s", reopened.status().ToString().c_str());
  FUZZ_CHECK((*reopened)->replay_stats().truncated_bytes == 0,
             "torn tail left on reopen");
  FUZZ_CHECK(again.commits == opened.commits && again.quarantines == opened.quarantines,
             "reopen replayed different records");
  return 0;
}
