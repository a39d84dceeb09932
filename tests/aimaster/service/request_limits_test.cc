// The hostile client of issue 12 against a real master over loopback: an
// oversized host, an oversized message, a huge max_shards, a registration
// flood from one peer, many sessions for one index. Each is refused, the
// master's memory stays bounded, and a real worker still finishes the job
// with every shard committed exactly once.
#include <grpcpp/client_context.h>
#include <grpcpp/create_channel.h>
#include <unistd.h>

#include <fstream>
#include <string>
#include <vector>

#include "elasticbatch/v1/elasticbatch.grpc.pb.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/chaos_worker.h"
#include "tests/testing/master_fixture.h"

#if defined(__SANITIZE_ADDRESS__)
#define EB_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define EB_ASAN 1
#endif
#endif
#ifndef EB_ASAN
#define EB_ASAN 0
#endif
#if EB_ASAN
// From <sanitizer/allocator_interface.h>, which GCC does not ship; the ASan
// runtime (GCC's or clang's) defines it.
extern "C" size_t __sanitizer_get_current_allocated_bytes();
#endif

namespace elasticbatch::aimaster {
namespace {

using ::testing::HasSubstr;

// The memory this process (the master runs in it) holds, in bytes: its
// resident set, or under AddressSanitizer the heap bytes allocated and not
// yet freed. ASan keeps freed blocks in a quarantine (256 MiB by default) to
// catch uses after free, so there the resident set grows with every freed
// 3 MiB host and says nothing about what the master kept.
size_t HeldBytes() {
#if EB_ASAN
  return __sanitizer_get_current_allocated_bytes();
#else
  std::ifstream statm("/proc/self/statm");
  size_t pages = 0, resident = 0;
  statm >> pages >> resident;
  return resident * static_cast<size_t>(sysconf(_SC_PAGESIZE));
#endif
}

class RequestLimitsTest : public ::testing::Test {
 protected:
  static CoordinatorOptions Options() {
    CoordinatorOptions o;
    o.speculation = false;
    // Shards a hostile session holds come back soon.
    o.lease_timeout = absl::Seconds(1);
    o.heartbeat_interval = absl::Milliseconds(100);
    o.job_id = "limits-test";
    o.limits.registrations_per_second = 20;
    o.limits.registration_burst = 40;
    o.limits.max_sessions_per_index = 4;
    return o;
  }

  RequestLimitsTest()
      // 2000 shards of 10 bytes.
      : master_(/*files=*/4, /*bytes_each=*/5000, /*shard_bytes=*/10, Options()),
        stub_(v1::AIMaster::NewStub(
            grpc::CreateChannel(master_.target(), grpc::InsecureChannelCredentials()))) {}

  grpc::Status Register(uint32_t index, int32_t pid, const std::string& host,
                        v1::RegisterWorkerResponse* resp) {
    v1::RegisterWorkerRequest req;
    req.set_task_type("worker");
    req.set_task_index(index);
    req.set_pid(pid);
    req.set_host(host);
    grpc::ClientContext ctx;
    return stub_->RegisterWorker(&ctx, req, resp);
  }

  // Runs one well-behaved worker to the job's end and checks its output.
  void FinishJobWithARealWorker() {
    testing::ChaosOptions o;
    o.task_index = 7;
    o.fail_percent = 0;
    o.abandon_percent = 0;
    o.max_batch = 64;
    o.output_dir = master_.output_dir();
    o.deadline = absl::Seconds(60);
    testing::ChaosWorker worker(
        grpc::CreateChannel(master_.target(), grpc::InsecureChannelCredentials()), o);
    ASSERT_TRUE(worker.Run());
    EXPECT_TRUE(worker.job_succeeded());
    for (int n : master_.CommitsPerShard()) ASSERT_EQ(n, 1);
    ASSERT_TRUE(master_.Finish().ok());
  }

  MasterFixture master_;
  std::unique_ptr<v1::AIMaster::Stub> stub_;
};

TEST_F(RequestLimitsTest, OversizedHostAndMessageAreRefused) {
  v1::RegisterWorkerResponse resp;
  // 3 MiB host: under the message limit, refused by the field limit.
  grpc::Status s = Register(0, 1, std::string(3 << 20, 'h'), &resp);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(s.error_message(), HasSubstr("host name of"));
  // 5 MiB: refused by gRPC before the handler runs.
  s = Register(0, 1, std::string(5 << 20, 'h'), &resp);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_TRUE(master_.coordinator().Sessions().empty());
  FinishJobWithARealWorker();
}

TEST_F(RequestLimitsTest, HugeMaxShardsLeasesOnlyAFewAndAnswersLittle) {
  v1::RegisterWorkerResponse reg;
  ASSERT_TRUE(Register(0, 1, "evil", &reg).ok());
  v1::AcquireShardsRequest req;
  req.set_session_id(reg.session_id());
  req.set_max_shards(UINT32_MAX);
  v1::AcquireShardsResponse resp;
  grpc::ClientContext ctx;
  ASSERT_TRUE(stub_->AcquireShards(&ctx, req, &resp).ok());
  EXPECT_EQ(resp.shards_size(), 64);
  EXPECT_LT(resp.ByteSizeLong(), 16u << 10);
  EXPECT_EQ(master_.coordinator().Progress().leased_shards, 64u);
  // More calls stop at what one session may hold.
  for (int i = 0; i < 40; ++i) {
    grpc::ClientContext again;
    v1::AcquireShardsResponse more;
    ASSERT_TRUE(stub_->AcquireShards(&again, req, &more).ok());
  }
  EXPECT_EQ(master_.coordinator().Progress().leased_shards, 1024u);
  FinishJobWithARealWorker();
}

TEST_F(RequestLimitsTest, RegistrationFloodFromOnePeerIsRefused) {
  int refused = 0;
  for (uint32_t i = 0; i < 200; ++i) {
    v1::RegisterWorkerResponse resp;
    grpc::Status s = Register(1000 + i, 1, std::string(255, 'h'), &resp);
    if (!s.ok()) {
      ASSERT_EQ(s.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
      ASSERT_THAT(s.error_message(), HasSubstr("too many registrations"));
      ++refused;
    }
  }
  // A burst of 40, then 20/s: most of a fast flood is refused.
  EXPECT_GE(refused, 100);
  EXPECT_LE(master_.coordinator().Sessions().size(), 100u);
  // The real worker on the same host backs off and gets in.
  FinishJobWithARealWorker();
}

TEST_F(RequestLimitsTest, ManySessionsForOneIndexAreRefused) {
  int refused = 0;
  for (int32_t pid = 1; pid <= 10; ++pid) {
    v1::RegisterWorkerResponse resp;
    grpc::Status s = Register(3, pid, "evil", &resp);
    if (!s.ok()) {
      ASSERT_EQ(s.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
      ASSERT_THAT(s.error_message(), HasSubstr("--max-sessions-per-index"));
      ++refused;
    }
  }
  EXPECT_EQ(refused, 6);
  EXPECT_EQ(master_.coordinator().Sessions().size(), 4u);
  FinishJobWithARealWorker();
}

TEST_F(RequestLimitsTest, FloodOfBigFieldsKeepsMemoryBounded) {
  const size_t before = HeldBytes();
  for (uint32_t i = 0; i < 100; ++i) {
    v1::RegisterWorkerResponse resp;
    // Refused (too big), or accepted with the largest host allowed.
    (void)Register(i, 1, std::string(3 << 20, 'h'), &resp);
    (void)Register(i, 1, std::string(255, 'h'), &resp);
  }
  const size_t after = HeldBytes();
  // Generous: 100 refused 3 MiB hosts kept would be 300 MiB.
  EXPECT_LT(after, before + (64u << 20)) << before << " -> " << after;
}

}  // namespace
}  // namespace elasticbatch::aimaster
