// A real in-process master over a directory of generated input, for service
// and integration tests.
#ifndef ELASTICBATCH_TESTS_TESTING_MASTER_FIXTURE_H_
#define ELASTICBATCH_TESTS_TESTING_MASTER_FIXTURE_H_

#include <memory>
#include <string>
#include <vector>

#include "aimaster/core/clock.h"
#include "aimaster/core/input_scanner.h"
#include "aimaster/core/job_coordinator.h"
#include "aimaster/core/job_outputs.h"
#include "aimaster/core/journal.h"
#include "aimaster/core/shard_enumerator.h"
#include "aimaster/service/master_server.h"
#include "tests/testing/temp_files.h"

namespace elasticbatch::aimaster {

class MasterFixture {
 public:
  using Files = std::vector<std::pair<std::string, std::string>>;

  // Writes `files` input files of `bytes_each` bytes, shards them by
  // `shard_bytes`, and starts a master on 127.0.0.1 (port 0).
  MasterFixture(int files, int bytes_each, uint64_t shard_bytes,
                CoordinatorOptions options, absl::Duration tick = absl::Milliseconds(20))
      : MasterFixture(Generated(files, bytes_each), shard_bytes, std::move(options),
                      tick) {}

  // Input files (name relative to the input dir, content), sharded by `shard_bytes`.
  // `server_options` sets what else the server needs (tokens, say); host,
  // port and tick are the fixture's.
  MasterFixture(const Files& files, uint64_t shard_bytes, CoordinatorOptions options,
                absl::Duration tick = absl::Milliseconds(20),
                MasterServerOptions server_options = {}) {
    for (const auto& [name, content] : files) {
      testing::WriteFileOrDie(absl::StrCat(input_dir(), "/", name), content);
    }
    output_dir_ = dir_.path() + "/out";
    state_dir_ = dir_.path() + "/state";
    auto listed = ListSourceFiles(input_dir());
    shards_ = std::make_unique<ShardEnumerator>(
        *ShardEnumerator::ForFiles(*listed, ShardingMode::kBytes, shard_bytes));
    journal_ =
        std::move(*Journal::Open(state_dir_,
                                 {shards_->fingerprint(), shards_->shard_count(),
                                  options.job_id, output_dir_, options.input_channel},
                                 JournalReplay{}));
    if (options.job_uid.empty()) options.job_uid = journal_->job_uid();
    coordinator_ = std::make_unique<JobCoordinator>(&clock_, shards_.get(),
                                                    journal_.get(), std::move(options));
    server_options.host = "127.0.0.1";
    server_options.port = 0;
    server_options.tick_interval = tick;
    server_ = std::move(
        *MasterServer::Start(coordinator_.get(), journal_.get(), server_options));
  }

  std::string input_dir() const { return dir_.path() + "/in"; }
  ~MasterFixture() { server_->Shutdown(); }

  std::string target() const { return absl::StrCat("127.0.0.1:", server_->port()); }
  MasterServer& server() { return *server_; }
  JobCoordinator& coordinator() { return *coordinator_; }
  const ShardEnumerator& shards() const { return *shards_; }
  const std::string& output_dir() const { return output_dir_; }
  const std::string& state_dir() const { return state_dir_; }

  // Writes the job's result files (_SUCCESS, manifests) as `aimaster serve` does.
  absl::Status Finish() {
    (void)journal_->SyncAll();
    const JobProgress p = coordinator_->Progress();
    const CoordinatorOptions& o = coordinator_->options();
    return WriteJobOutputs(
        output_dir_, state_dir_, *shards_, o.input_channel,
        {o.job_id, o.job_uid, p.state == JobState::kSucceeded, p.reason});
  }

  // Commit records per shard id, read from the journal.
  std::vector<int> CommitsPerShard() {
    (void)journal_->SyncAll();
    std::vector<int> counts(shards_->shard_count(), 0);
    JournalReplay replay;
    replay.on_commit = [&](const CommitRecord& c) { ++counts.at(c.shard_id); };
    EXPECT_TRUE(Journal::Read(state_dir_, replay).ok());
    return counts;
  }

  // `files` files of `bytes_each` bytes each.
  static Files Generated(int files, int bytes_each) {
    Files out;
    for (int i = 0; i < files; ++i) {
      out.push_back(
          {absl::StrCat("f", i), std::string(static_cast<size_t>(bytes_each), 'x')});
    }
    return out;
  }

 private:
  testing::TempDir dir_;
  std::string output_dir_;
  std::string state_dir_;
  RealClock clock_;
  std::unique_ptr<ShardEnumerator> shards_;
  std::unique_ptr<Journal> journal_;
  std::unique_ptr<JobCoordinator> coordinator_;
  std::unique_ptr<MasterServer> server_;
};

}  // namespace elasticbatch::aimaster

#endif  // ELASTICBATCH_TESTS_TESTING_MASTER_FIXTURE_H_
