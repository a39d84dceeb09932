// The SDK against a real master that wants a token, TLS, or both: the right
// credentials complete a job; a missing or wrong token, a CA or name that
// does not verify, a missing client certificate each fail at once with an
// error that says what to check; a rotated certificate keeps being served.
// Certificates are made at test time (openssl).
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <filesystem>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/auth/token.h"
#include "elasticbatch/line_range_reader.h"
#include "elasticbatch/shard_output.h"
#include "elasticbatch/worker.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/master_fixture.h"
#include "tests/testing/temp_files.h"
#include "tests/testing/test_pki.h"
#include "tests/testing/wait.h"

namespace elasticbatch {
namespace {

using aimaster::CoordinatorOptions;
using aimaster::JobState;
using aimaster::MasterFixture;
using aimaster::MasterServerOptions;
using ::testing::HasSubstr;

CoordinatorOptions FastOptions() {
  CoordinatorOptions o;
  o.heartbeat_interval = absl::Milliseconds(100);
  o.lease_timeout = absl::Seconds(5);
  return o;
}

MasterFixture::Files Lines(int files, int lines) {
  MasterFixture::Files out;
  for (int f = 0; f < files; ++f) {
    std::string content;
    for (int i = 0; i < lines; ++i) absl::StrAppend(&content, "record ", f, "-", i, "\n");
    out.push_back({absl::StrCat("f", f, ".txt"), content});
  }
  return out;
}

WorkerOptions Options(MasterFixture& master) {
  WorkerOptions o;
  o.master_address = master.target();
  o.input_root = master.input_dir();
  o.output_dir = master.output_dir();
  // Long: a credential problem must fail at once, not when this runs out.
  o.master_lost_timeout = absl::Minutes(10);
  return o;
}

// Copies every line of every shard to the output; the number of lines.
absl::StatusOr<int> CopyAll(Worker& worker) {
  int lines = 0;
  for (absl::StatusOr<Shard>& shard : worker.Shards()) {
    if (!shard.ok()) return shard.status();
    auto reader =
        LineRangeReader::Open(shard->input_path(), shard->begin(), shard->end());
    if (!reader.ok()) return reader.status();
    auto out = ShardOutput::Open(*shard, worker.output_dir());
    if (!out.ok()) return out.status();
    std::string line;
    while (true) {
      absl::StatusOr<bool> more = (*reader)->Next(&line);
      if (!more.ok()) return more.status();
      if (!*more) break;
      if (absl::Status s = (*out)->WriteLine(line); !s.ok()) return s;
      ++lines;
    }
    if (absl::Status s = (*out)->Commit(); !s.ok()) return s;
  }
  return lines;
}

// A TCP proxy on loopback that holds back the master's first bytes on each
// connection for `delay`: a TLS handshake as slow as a loaded or distant
// master's.
class SlowHandshakeProxy {
 public:
  SlowHandshakeProxy(int target_port, absl::Duration delay)
      : target_port_(target_port), delay_(delay) {
    listen_fd_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof(addr);
    if (listen_fd_ < 0 ||
        bind(listen_fd_, reinterpret_cast<sockaddr*>(&addr), len) != 0 ||
        listen(listen_fd_, 16) != 0 ||
        getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
      ADD_FAILURE() << "proxy: cannot listen";
      return;
    }
    port_ = ntohs(addr.sin_port);
    accept_ = std::thread([this] { AcceptLoop(); });
  }
  ~SlowHandshakeProxy() {
    stop_ = true;
    if (accept_.joinable()) accept_.join();
    for (std::thread& t : pumps_) t.join();
    if (listen_fd_ >= 0) close(listen_fd_);
  }
  std::string target() const { return absl::StrCat("127.0.0.1:", port_); }

 private:
  void AcceptLoop() {
    while (!stop_) {
      pollfd p{listen_fd_, POLLIN, 0};
      if (poll(&p, 1, 50) <= 0) continue;
      const int client = accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
      if (client < 0) continue;
      const int server = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
      sockaddr_in addr{};
      addr.sin_family = AF_INET;
      addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
      addr.sin_port = htons(static_cast<uint16_t>(target_port_));
      if (server < 0 ||
          connect(server, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
        close(client);
        if (server >= 0) close(server);
        continue;
      }
      pumps_.emplace_back([this, client, server] { Pump(client, server); });
    }
  }
  // Both directions on one thread; the master's bytes wait until `delay_`
  // has passed since the connection was accepted.
  void Pump(int client, int server) {
    const absl::Time release = absl::Now() + delay_;
    char buf[16384];
    bool open = true;
    while (!stop_ && open) {
      const bool held = absl::Now() < release;
      pollfd p[2] = {{client, POLLIN, 0},
                     {server, static_cast<short>(held ? 0 : POLLIN), 0}};
      if (poll(p, 2, 20) < 0) break;
      for (int i = 0; i < 2 && open; ++i) {
        if ((p[i].revents & (POLLIN | POLLHUP | POLLERR)) == 0) continue;
        const ssize_t n = read(p[i].fd, buf, sizeof(buf));
        if (n <= 0) {
          open = false;
          break;
        }
        const int to = i == 0 ? server : client;
        for (ssize_t off = 0; off < n;) {
          const ssize_t w = write(to, buf + off, static_cast<size_t>(n - off));
          if (w <= 0) {
            open = false;
            break;
          }
          off += w;
        }
      }
    }
    close(client);
    close(server);
  }

  const int target_port_;
  const absl::Duration delay_;
  int listen_fd_ = -1;
  int port_ = 0;
  std::atomic<bool> stop_{false};
  std::thread accept_;
  std::vector<std::thread> pumps_;  // only the accept thread adds, before the join
};

class WorkerSecurityTest : public ::testing::Test {
 protected:
  void SetUp() override {
    absl::StatusOr<testing::TestCa> ca =
        testing::TestCa::Create(dir_.path() + "/ca", "Job CA");
    ASSERT_TRUE(ca.ok()) << ca.status();
    ca_.emplace(*std::move(ca));
    absl::StatusOr<testing::CertPair> server =
        ca_->Issue(dir_.path() + "/server", "aimaster", "IP:127.0.0.1,DNS:localhost");
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = *std::move(server);
  }

  MasterServerOptions Tls() const {
    MasterServerOptions o;
    o.tls.cert_file = server_.cert_file;
    o.tls.key_file = server_.key_file;
    return o;
  }

  testing::TempDir dir_;
  std::optional<testing::TestCa> ca_;
  testing::CertPair server_;
};

TEST_F(WorkerSecurityTest, TheJobTokenCompletesAJobAndNoOrAWrongTokenIsRefusedAtOnce) {
  MasterServerOptions server;
  server.worker_token = auth::GenerateToken();
  MasterFixture master(Lines(3, 50), 400, FastOptions(), absl::Milliseconds(20), server);

  WorkerOptions none = Options(master);
  absl::StatusOr<std::unique_ptr<Worker>> refused = Worker::Create(none);
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kUnauthenticated);
  EXPECT_THAT(std::string(refused.status().message()), HasSubstr("ELASTICBATCH_TOKEN"));

  WorkerOptions wrong = Options(master);
  wrong.token = auth::GenerateToken();
  refused = Worker::Create(wrong);
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kUnauthenticated);
  EXPECT_THAT(std::string(refused.status().message()), HasSubstr("refused"));

  WorkerOptions malformed = Options(master);
  malformed.token = "short";
  EXPECT_EQ(Worker::Create(malformed).status().code(),
            absl::StatusCode::kInvalidArgument);

  WorkerOptions right = Options(master);
  right.token = server.worker_token;
  absl::StatusOr<std::unique_ptr<Worker>> worker = Worker::Create(right);
  ASSERT_TRUE(worker.ok()) << worker.status();
  absl::StatusOr<int> lines = CopyAll(**worker);
  ASSERT_TRUE(lines.ok()) << lines.status();
  EXPECT_EQ(*lines, 150);
  EXPECT_EQ(master.coordinator().Progress().state, JobState::kSucceeded);
  for (int count : master.CommitsPerShard()) EXPECT_EQ(count, 1);
}

TEST_F(WorkerSecurityTest, AWorkerTrustingTheJobCaCompletesAJobOverTls) {
  MasterServerOptions server = Tls();
  server.worker_token = auth::GenerateToken();
  MasterFixture master(Lines(2, 40), 300, FastOptions(), absl::Milliseconds(20), server);
  WorkerOptions o = Options(master);
  o.token = server.worker_token;
  o.tls_ca_file = ca_->cert_file();
  absl::StatusOr<std::unique_ptr<Worker>> worker = Worker::Create(o);
  ASSERT_TRUE(worker.ok()) << worker.status();
  absl::StatusOr<int> lines = CopyAll(**worker);
  ASSERT_TRUE(lines.ok()) << lines.status();
  EXPECT_EQ(*lines, 80);
  EXPECT_EQ(master.coordinator().Progress().state, JobState::kSucceeded);
}

// Every connection attempt must get the time a handshake needs, however
// short the reconnect backoff: with gRPC's shortest connect timeout set as
// low as the backoff, a master whose handshake takes longer than the
// longest backoff (5s) was never reached.
TEST_F(WorkerSecurityTest, AMasterSlowToShakeHandsIsStillReached) {
  MasterServerOptions server = Tls();
  server.worker_token = auth::GenerateToken();
  MasterFixture master(Lines(1, 20), 300, FastOptions(), absl::Milliseconds(20), server);
  const int master_port =
      std::stoi(master.target().substr(master.target().rfind(':') + 1));
  SlowHandshakeProxy proxy(master_port, absl::Seconds(6));
  WorkerOptions o = Options(master);
  o.master_address = proxy.target();
  o.token = server.worker_token;
  o.tls_ca_file = ca_->cert_file();
  o.max_backoff = absl::Seconds(5);
  o.rpc_timeout = absl::Seconds(30);
  o.master_lost_timeout = absl::Seconds(90);  // fails rather than hangs if unreachable
  absl::StatusOr<std::unique_ptr<Worker>> worker = Worker::Create(o);
  ASSERT_TRUE(worker.ok()) << worker.status();
  absl::StatusOr<int> lines = CopyAll(**worker);
  ASSERT_TRUE(lines.ok()) << lines.status();
  EXPECT_EQ(*lines, 20);
  EXPECT_EQ(master.coordinator().Progress().state, JobState::kSucceeded);
}

TEST_F(WorkerSecurityTest, AnotherCaOrAnInsecureClientFailsAtOnceSayingWhatToCheck) {
  MasterFixture master(Lines(1, 10), 300, FastOptions(), absl::Milliseconds(20), Tls());
  absl::StatusOr<testing::TestCa> other =
      testing::TestCa::Create(dir_.path() + "/other-ca", "Someone else's CA");
  ASSERT_TRUE(other.ok()) << other.status();

  WorkerOptions wrong_ca = Options(master);
  wrong_ca.tls_ca_file = other->cert_file();
  absl::StatusOr<std::unique_ptr<Worker>> refused = Worker::Create(wrong_ca);
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(std::string(refused.status().message()), HasSubstr("TLS"));
  EXPECT_THAT(std::string(refused.status().message()), HasSubstr(other->cert_file()));

  // A plaintext client: the master closes the connection, again and again;
  // that could be a proxy not ready yet, so it is retried like an outage.
  WorkerOptions insecure = Options(master);
  insecure.master_lost_timeout = absl::Seconds(3);
  insecure.max_backoff = absl::Milliseconds(200);
  refused = Worker::Create(insecure);
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(std::string(refused.status().message()), HasSubstr("ELASTICBATCH_TLS_CA"));

  WorkerOptions missing_ca = Options(master);
  missing_ca.tls_ca_file = dir_.path() + "/no-such-ca.pem";
  refused = Worker::Create(missing_ca);
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(refused.status().message()), HasSubstr("no-such-ca.pem"));
}

TEST_F(WorkerSecurityTest, ACertificateForAnotherNameFailsUnlessThatNameIsExpected) {
  absl::StatusOr<testing::CertPair> elsewhere =
      ca_->Issue(dir_.path() + "/elsewhere", "elsewhere", "DNS:master.elsewhere.example");
  ASSERT_TRUE(elsewhere.ok()) << elsewhere.status();
  MasterServerOptions server;
  server.tls.cert_file = elsewhere->cert_file;
  server.tls.key_file = elsewhere->key_file;
  MasterFixture master(Lines(1, 10), 300, FastOptions(), absl::Milliseconds(20), server);

  WorkerOptions by_ip = Options(master);
  by_ip.tls_ca_file = ca_->cert_file();
  absl::StatusOr<std::unique_ptr<Worker>> refused = Worker::Create(by_ip);
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(std::string(refused.status().message()), HasSubstr("TLS"));

  WorkerOptions named = by_ip;
  named.tls_server_name = "master.elsewhere.example";
  absl::StatusOr<std::unique_ptr<Worker>> worker = Worker::Create(named);
  ASSERT_TRUE(worker.ok()) << worker.status();
  EXPECT_TRUE(CopyAll(**worker).ok());
}

TEST_F(WorkerSecurityTest, MutualTlsRefusesAClientWithoutACertificate) {
  MasterServerOptions server = Tls();
  server.tls.client_ca_file = ca_->cert_file();
  MasterFixture master(Lines(1, 20), 300, FastOptions(), absl::Milliseconds(20), server);

  WorkerOptions anonymous = Options(master);
  anonymous.tls_ca_file = ca_->cert_file();
  anonymous.master_lost_timeout = absl::Seconds(3);
  anonymous.max_backoff = absl::Milliseconds(200);
  absl::StatusOr<std::unique_ptr<Worker>> refused = Worker::Create(anonymous);
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(std::string(refused.status().message()),
              HasSubstr("ELASTICBATCH_TLS_CERT"));

  absl::StatusOr<testing::TestCa> other =
      testing::TestCa::Create(dir_.path() + "/other-ca", "Someone else's CA");
  ASSERT_TRUE(other.ok()) << other.status();
  absl::StatusOr<testing::CertPair> stranger =
      other->Issue(dir_.path() + "/stranger", "stranger", "");
  ASSERT_TRUE(stranger.ok()) << stranger.status();
  WorkerOptions foreign = anonymous;
  foreign.tls_cert_file = stranger->cert_file;
  foreign.tls_key_file = stranger->key_file;
  refused = Worker::Create(foreign);
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kUnavailable);

  absl::StatusOr<testing::CertPair> client =
      ca_->Issue(dir_.path() + "/client", "worker-0", "");
  ASSERT_TRUE(client.ok()) << client.status();
  WorkerOptions known = anonymous;
  known.tls_cert_file = client->cert_file;
  known.tls_key_file = client->key_file;
  absl::StatusOr<std::unique_ptr<Worker>> worker = Worker::Create(known);
  ASSERT_TRUE(worker.ok()) << worker.status();
  absl::StatusOr<int> lines = CopyAll(**worker);
  ASSERT_TRUE(lines.ok()) << lines.status();
  EXPECT_EQ(*lines, 20);
}

// Kubernetes rotates a mounted Secret by swapping a symlink; here the files
// are renamed into place. Clients that trust only the new CA get in once the
// master has re-read the files; the master never stops serving.
TEST_F(WorkerSecurityTest, ARotatedCertificateIsServedWithoutARestart) {
  const std::string live = dir_.path() + "/live";
  std::filesystem::create_directories(live);
  std::filesystem::copy_file(server_.cert_file, live + "/tls.crt");
  std::filesystem::copy_file(server_.key_file, live + "/tls.key");
  MasterServerOptions server;
  server.tls.cert_file = live + "/tls.crt";
  server.tls.key_file = live + "/tls.key";
  server.tls.reload_interval = absl::Seconds(1);
  MasterFixture master(Lines(1, 20), 300, FastOptions(), absl::Milliseconds(20), server);
  EXPECT_TRUE(master.server().CheckTlsFiles().ok());

  absl::StatusOr<testing::TestCa> next =
      testing::TestCa::Create(dir_.path() + "/ca2", "Next CA");
  ASSERT_TRUE(next.ok()) << next.status();
  absl::StatusOr<testing::CertPair> renewed =
      next->Issue(dir_.path() + "/renewed", "aimaster", "IP:127.0.0.1");
  ASSERT_TRUE(renewed.ok()) << renewed.status();
  // Key first: for the moment in between, gRPC may read a mismatched pair,
  // as it may during a real rotation.
  std::filesystem::copy_file(renewed->key_file, live + "/tls.key.new");
  std::filesystem::copy_file(renewed->cert_file, live + "/tls.crt.new");
  std::filesystem::rename(live + "/tls.key.new", live + "/tls.key");
  std::filesystem::rename(live + "/tls.crt.new", live + "/tls.crt");
  EXPECT_TRUE(master.server().CheckTlsFiles().ok());

  WorkerOptions o = Options(master);
  o.tls_ca_file = next->cert_file();
  o.master_lost_timeout = absl::Seconds(5);
  absl::StatusOr<std::unique_ptr<Worker>> worker =
      absl::UnavailableError("not tried yet");
  // Bounded: the files are re-read every second; a minute is generous.
  testing::WaitUntil(absl::Now() + absl::Seconds(60), [&] {
    worker = Worker::Create(o);
    return worker.ok();
  });
  ASSERT_TRUE(worker.ok()) << worker.status();
  absl::StatusOr<int> lines = CopyAll(**worker);
  ASSERT_TRUE(lines.ok()) << lines.status();
  EXPECT_EQ(*lines, 20);
}

}  // namespace
}  // namespace elasticbatch
