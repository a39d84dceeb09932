// A real master on loopback with 16 concurrent clients that acquire, commit,
// fail and abandon leases at random: every shard is committed exactly once.
#include <grpcpp/create_channel.h>

#include <filesystem>
#include <thread>

#include "gtest/gtest.h"
#include "tests/testing/chaos_worker.h"
#include "tests/testing/master_fixture.h"

namespace elasticbatch::aimaster {
namespace {

TEST(MasterIntegrationTest, SixteenChaosClientsCommitEveryShardExactlyOnce) {
  CoordinatorOptions options;
  options.lease_timeout = absl::Milliseconds(500);
  options.heartbeat_interval = absl::Milliseconds(100);
  options.max_attempts = 1000;  // chaos failures must not quarantine here
  options.speculation = false;
  MasterFixture master(/*files=*/40, /*bytes_each=*/5000, /*shard_bytes=*/1024, options);
  ASSERT_EQ(master.shards().shard_count(), 200u);

  constexpr int kClients = 16;
  std::vector<std::unique_ptr<testing::ChaosWorker>> workers;
  for (int i = 0; i < kClients; ++i) {
    testing::ChaosOptions o;
    o.task_index = static_cast<uint32_t>(i);
    o.seed = 1000 + static_cast<uint32_t>(i);
    o.output_dir = master.output_dir();
    workers.push_back(std::make_unique<testing::ChaosWorker>(
        grpc::CreateChannel(master.target(), grpc::InsecureChannelCredentials()), o));
  }
  std::vector<std::thread> threads;
  std::vector<int> finished(kClients, 0);
  for (int i = 0; i < kClients; ++i) {
    threads.emplace_back([&, i] { finished[i] = workers[i]->Run(); });
  }
  for (auto& t : threads) t.join();

  uint64_t failed = 0, abandoned = 0, committed = 0;
  for (int i = 0; i < kClients; ++i) {
    EXPECT_TRUE(finished[i]) << "client " << i << " did not see the end";
    EXPECT_TRUE(workers[i]->job_succeeded()) << "client " << i;
    failed += workers[i]->stats().failed;
    abandoned += workers[i]->stats().abandoned;
    committed += workers[i]->stats().committed;
  }
  // The chaos really happened.
  EXPECT_GT(failed, 0u);
  EXPECT_GT(abandoned, 0u);

  const JobProgress p = master.coordinator().Progress();
  EXPECT_EQ(p.state, JobState::kSucceeded);
  EXPECT_EQ(p.committed_shards, 200u);
  const std::vector<int> commits = master.CommitsPerShard();
  for (size_t id = 0; id < commits.size(); ++id) {
    EXPECT_EQ(commits[id], 1) << "shard " << id;
    EXPECT_TRUE(std::filesystem::exists(master.output_dir() + "/" +
                                        master.shards().OutputName(id)))
        << "shard " << id;
  }
}

}  // namespace
}  // namespace elasticbatch::aimaster
