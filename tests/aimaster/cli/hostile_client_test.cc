// The attacks of a hand-written client on a real `aimaster serve --token-file`
// while two real SDK workers run the job: without or with a wrong token
// nothing is done; with the job token, another worker's session, StopJob,
// oversized fields, a huge max_shards and a registration flood are refused or
// capped. The job still succeeds with every input line in the output exactly
// once, and the master's memory stays bounded.
#include <grpcpp/create_channel.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <set>
#include <thread>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "common/auth/token.h"
#include "elasticbatch/line_range_reader.h"
#include "elasticbatch/shard_output.h"
#include "elasticbatch/v1/admin.grpc.pb.h"
#include "elasticbatch/v1/elasticbatch.grpc.pb.h"
#include "elasticbatch/worker.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/subprocess.h"
#include "tests/testing/temp_files.h"
#include "tests/testing/wait.h"

namespace elasticbatch {
namespace {

using ::testing::AnyOf;
using ::testing::HasSubstr;

const std::string kAimaster = std::string(EB_BIN_DIR) + "/aimaster";

// VmRSS of `pid` in bytes; 0 when unreadable.
size_t ResidentBytes(pid_t pid) {
  std::ifstream status(absl::StrCat("/proc/", pid, "/status"));
  std::string line;
  while (std::getline(status, line)) {
    if (absl::StartsWith(line, "VmRSS:")) {
      size_t kb = 0;
      std::string digits(absl::StripAsciiWhitespace(
          absl::StripSuffix(absl::StripPrefix(line, "VmRSS:"), "kB")));
      digits = std::string(absl::StripAsciiWhitespace(digits));
      return absl::SimpleAtoi(digits, &kb) ? kb * 1024 : 0;
    }
  }
  return 0;
}

class Client {
 public:
  Client(const std::string& target, std::string token)
      : channel_(grpc::CreateChannel(target, grpc::InsecureChannelCredentials())),
        workers_(v1::AIMaster::NewStub(channel_)),
        admin_(v1::Admin::NewStub(channel_)),
        token_(std::move(token)) {}

  grpc::Status Register(uint32_t index, const std::string& host,
                        v1::RegisterWorkerResponse* resp) {
    v1::RegisterWorkerRequest req;
    req.set_task_type("worker");
    req.set_task_index(index);
    req.set_attempt(1);
    req.set_host(host);
    req.set_pid(4242);
    Context ctx(token_);
    return workers_->RegisterWorker(&ctx.ctx, req, resp);
  }
  grpc::Status Acquire(uint64_t session, uint32_t max_shards,
                       v1::AcquireShardsResponse* resp) {
    v1::AcquireShardsRequest req;
    req.set_session_id(session);
    req.set_max_shards(max_shards);
    Context ctx(token_);
    return workers_->AcquireShards(&ctx.ctx, req, resp);
  }
  grpc::Status Commit(uint64_t session, uint64_t shard, uint32_t attempt,
                      v1::CommitShardResponse* resp = nullptr) {
    v1::CommitShardRequest req;
    req.set_session_id(session);
    v1::ShardCompletion* c = req.add_commits();
    c->mutable_lease()->set_shard_id(shard);
    c->mutable_lease()->set_attempt(attempt);
    c->set_records(1);
    v1::CommitShardResponse ignored;
    Context ctx(token_);
    return workers_->CommitShard(&ctx.ctx, req, resp != nullptr ? resp : &ignored);
  }
  grpc::Status Fail(uint64_t session, uint64_t shard, uint32_t attempt,
                    const std::string& error) {
    v1::FailShardRequest req;
    req.set_session_id(session);
    req.mutable_lease()->set_shard_id(shard);
    req.mutable_lease()->set_attempt(attempt);
    req.set_error(error);
    v1::FailShardResponse resp;
    Context ctx(token_);
    return workers_->FailShard(&ctx.ctx, req, &resp);
  }
  grpc::Status Stop() {
    v1::StopJobRequest req;
    req.set_reason("pwned");
    v1::StopJobResponse resp;
    Context ctx(token_);
    return admin_->StopJob(&ctx.ctx, req, &resp);
  }
  grpc::Status Status(v1::JobStatus* status) {
    Context ctx(token_);
    return admin_->GetJobStatus(&ctx.ctx, v1::GetJobStatusRequest(), status);
  }

 private:
  struct Context {
    explicit Context(const std::string& token) {
      ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
      if (!token.empty()) ctx.AddMetadata("authorization", auth::BearerHeader(token));
    }
    grpc::ClientContext ctx;
  };
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<v1::AIMaster::Stub> workers_;
  std::unique_ptr<v1::Admin::Stub> admin_;
  std::string token_;
};

TEST(HostileClientTest, AttacksAreRefusedAndTheJobsOutputIsExactlyTheInput) {
  testing::TempDir dir;
  std::multiset<std::string> input;
  for (int f = 0; f < 40; ++f) {
    std::string content;
    for (int i = 0; i < 100; ++i) {
      const std::string line = absl::StrCat("file ", f, " record ", i);
      input.insert(line);
      absl::StrAppend(&content, line, "\n");
    }
    testing::WriteFileOrDie(absl::StrCat(dir.path(), "/in/f", f, ".txt"), content);
  }
  const std::string token = auth::GenerateToken();
  const std::string admin_token = auth::GenerateToken();
  testing::WriteFileOrDie(dir.path() + "/token", token);
  testing::WriteFileOrDie(dir.path() + "/admin-token", admin_token);
  const std::string out = dir.path() + "/out";
  auto master = testing::Subprocess::Start(
      {kAimaster, "serve", "--host=127.0.0.1", "--port=0",
       "--token-file=" + dir.path() + "/token",
       "--admin-token-file=" + dir.path() + "/admin-token", "--input",
       "data=" + dir.path() + "/in", "--output", "out=" + out, "--shard-bytes=500",
       "--lease-timeout=3s", "--heartbeat-interval=300ms", "--end-grace=5s"});
  ASSERT_TRUE(master.ok()) << master.status();
  absl::StatusOr<std::string> listening = (*master)->ReadStdoutLine(absl::Seconds(60));
  ASSERT_TRUE(listening.ok()) << (*master)->Stderr();
  const std::string target =
      absl::StrCat("127.0.0.1:", listening->substr(listening->rfind(':') + 1));
  const size_t rss_before = ResidentBytes((*master)->pid());
  ASSERT_GT(rss_before, 0u);

  // Anonymous and wrong-token clients: refused, whatever they call.
  for (const std::string& bad : {std::string(), auth::GenerateToken()}) {
    Client intruder(target, bad);
    v1::RegisterWorkerResponse reg;
    EXPECT_EQ(intruder.Register(0, "evil", &reg).error_code(),
              grpc::StatusCode::UNAUTHENTICATED);
    v1::AcquireShardsResponse acquired;
    EXPECT_EQ(intruder.Acquire(1, UINT32_MAX, &acquired).error_code(),
              grpc::StatusCode::UNAUTHENTICATED);
    EXPECT_EQ(intruder.Commit(1, 0, 1).error_code(), grpc::StatusCode::UNAUTHENTICATED);
    EXPECT_EQ(intruder.Fail(1, 0, 1, "x").error_code(),
              grpc::StatusCode::UNAUTHENTICATED);
    EXPECT_EQ(intruder.Stop().error_code(), grpc::StatusCode::UNAUTHENTICATED);
    v1::JobStatus status;
    EXPECT_EQ(intruder.Status(&status).error_code(), grpc::StatusCode::UNAUTHENTICATED);
  }

  // A token holder turned hostile: the job token cannot stop the job.
  Client insider(target, token);
  EXPECT_EQ(insider.Stop().error_code(), grpc::StatusCode::PERMISSION_DENIED);
  // Oversized host: refused before it is stored.
  v1::RegisterWorkerResponse reg;
  EXPECT_THAT(
      insider.Register(7, std::string(3 << 20, 'h'), &reg).error_code(),
      AnyOf(grpc::StatusCode::INVALID_ARGUMENT, grpc::StatusCode::RESOURCE_EXHAUSTED));
  // A huge max_shards gets one call's cap, in a small answer.
  ASSERT_TRUE(insider.Register(7, "evil", &reg).ok());
  v1::AcquireShardsResponse grabbed;
  ASSERT_TRUE(insider.Acquire(reg.session_id(), UINT32_MAX, &grabbed).ok());
  EXPECT_LE(grabbed.shards_size(), 64);
  EXPECT_LT(grabbed.ByteSizeLong(), 1u << 20);
  // Sessions it does not own (ids are random: it can only guess).
  for (uint64_t guess : {reg.session_id() + 1, reg.session_id() - 1, uint64_t{1}}) {
    v1::AcquireShardsResponse stolen;
    EXPECT_FALSE(insider.Acquire(guess, 64, &stolen).ok()) << guess;
    EXPECT_FALSE(insider.Commit(guess, 0, 1).ok()) << guess;
  }
  // Leases it does not hold, under its own session: refused.
  v1::CommitShardResponse decided;
  const grpc::Status foreign = insider.Commit(reg.session_id(), 1000000, 1, &decided);
  EXPECT_TRUE(!foreign.ok() ||
              (decided.results_size() == 1 &&
               decided.results(0).decision() != v1::CommitResult::GRANTED))
      << decided.ShortDebugString();
  // Another session's lease, by a session of its own: never granted.
  ASSERT_GT(grabbed.shards_size(), 0);
  v1::RegisterWorkerResponse thief;
  ASSERT_TRUE(insider.Register(8, "thief", &thief).ok());
  v1::CommitShardResponse stolen_commit;
  const grpc::Status theft =
      insider.Commit(thief.session_id(), grabbed.shards(0).shard_id(),
                     grabbed.shards(0).attempt(), &stolen_commit);
  EXPECT_TRUE(!theft.ok() ||
              (stolen_commit.results_size() == 1 &&
               stolen_commit.results(0).decision() != v1::CommitResult::GRANTED))
      << stolen_commit.ShortDebugString();
  EXPECT_FALSE(insider
                   .Fail(thief.session_id(), grabbed.shards(0).shard_id(),
                         grabbed.shards(0).attempt(), "not mine")
                   .ok());
  // A flood of registrations from one host: mostly refused.
  int flood_refused = 0;
  for (uint32_t i = 0; i < 600; ++i) {
    v1::RegisterWorkerResponse r;
    grpc::Status s = insider.Register(100 + i, std::string(255, 'f'), &r);
    if (!s.ok()) {
      EXPECT_EQ(s.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED)
          << s.error_message();
      ++flood_refused;
    }
  }
  EXPECT_GE(flood_refused, 300);

  // Real workers with the token: the job completes despite the hoarded leases
  // (they expire) and the flood (the workers back off and get in).
  std::vector<std::thread> threads;
  std::vector<std::string> errors(2);
  for (uint32_t w = 0; w < 2; ++w) {
    threads.emplace_back([&, w] {
      WorkerOptions o;
      o.master_address = target;
      o.task_index = w;
      o.input_root = dir.path() + "/in";
      o.output_dir = out;
      o.token = token;
      o.master_lost_timeout = absl::Minutes(5);
      auto worker = Worker::Create(o);
      if (!worker.ok()) {
        errors[w] = worker.status().ToString();
        return;
      }
      for (absl::StatusOr<Shard>& shard : (*worker)->Shards()) {
        if (!shard.ok()) {
          errors[w] = shard.status().ToString();
          return;
        }
        auto lines = shard->OpenLines();
        auto output = shard->OpenOutput();
        if (!lines.ok() || !output.ok()) {
          errors[w] = "cannot open a shard";
          return;
        }
        std::string line;
        absl::StatusOr<bool> more;
        while ((more = (*lines)->Next(&line)).ok() && *more)
          (void)(*output)->WriteLine(line);
        if (!more.ok()) continue;  // lost the lease: another attempt will publish
        (void)(*output)->Commit();
      }
    });
  }
  for (std::thread& t : threads) t.join();
  EXPECT_EQ(errors[0], "");
  EXPECT_EQ(errors[1], "");

  const size_t rss_after = ResidentBytes((*master)->pid());
  absl::StatusOr<int> code = (*master)->Wait(absl::Seconds(120));
  ASSERT_TRUE(code.ok());
  EXPECT_EQ(*code, 0) << (*master)->Stderr();
  // Generous: the attacks above must not cost the master more than this.
  EXPECT_LT(rss_after, rss_before + (64u << 20))
      << "RSS " << rss_before << " -> " << rss_after;
  EXPECT_THAT((*master)->Stderr(), HasSubstr("refused"));

  std::multiset<std::string> output;
  for (const auto& entry : std::filesystem::directory_iterator(out)) {
    const std::string name = entry.path().filename().string();
    if (!absl::StartsWith(name, "part-")) continue;
    for (absl::string_view line : absl::StrSplit(
             testing::ReadFileOrEmpty(entry.path().string()), '\n', absl::SkipEmpty())) {
      output.insert(std::string(line));
    }
  }
  EXPECT_TRUE(output == input) << output.size() << " output lines for " << input.size();
  EXPECT_NE(testing::ReadFileOrEmpty(out + "/_SUCCESS"), "");
}

}  // namespace
}  // namespace elasticbatch
