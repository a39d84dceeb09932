// dispatch_bench: what the master adds to a gRPC round trip.
//
// A real `aimaster serve` (its own process, loopback, journal with fsync) and,
// beside it, a bare gRPC echo server built the same way (callback API, its
// own process), each driven by C concurrent client workers running
// acquire+commit cycles on empty work: Acquire(max_n, confirmations of the
// previous batch), then Commit(the max_n shards). The echo run makes the same
// two calls per cycle with the same request and response sizes. Reported per
// configuration: cycles/s, RPCs/s, shards/s, p50/p99 RPC latency, server
// CPU-us per RPC, and the master/echo ratio of RPCs/s. Finally a paced run at
// half of the master's saturation gives p50/p99 under a realistic load, and
// the cost of security: the same master with a job token, and with a token
// over TLS (certificates made with openssl for the run), 8 clients.
//
// Usage: dispatch_bench [--bin DIR] [--seconds S] [--security-only]
//        (internal: --serve-echo)
#include <grpcpp/create_channel.h>
#include <grpcpp/server_builder.h>
#include <signal.h>

#include <algorithm>
#include <atomic>
#include <filesystem>
#include <iostream>
#include <thread>

#include "absl/flags/flag.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "bench/bench_util.h"
#include "common/auth/token.h"
#include "common/rpc/client_channel.h"
#include "echo.grpc.pb.h"
#include "elasticbatch/v1/elasticbatch.grpc.pb.h"
#include "tests/testing/subprocess.h"
#include "tests/testing/temp_files.h"
#include "tests/testing/test_pki.h"

ABSL_FLAG(std::string, bin, "", "directory holding aimaster (default: this program's)");
ABSL_FLAG(double, seconds, 3, "measuring time of each configuration");
ABSL_FLAG(bool, serve_echo, false, "internal: run as the echo server");
ABSL_FLAG(bool, security_only, false, "measure only the cost of the token and of TLS");

constexpr char kUsage[] =
    "Usage: dispatch_bench [--bin DIR] [--seconds S]\nA real master against a bare gRPC "
    "echo server: cycles/s, RPCs/s, p50/p99, CPU per RPC.";

namespace elasticbatch::bench {
namespace {

namespace v1 = elasticbatch::v1;

// --- The echo server (runs as `dispatch_bench --serve-echo`). ---------------

class EchoService final : public elasticbatch::bench::Echo::CallbackService {
  grpc::ServerUnaryReactor* Echo(grpc::CallbackServerContext* ctx,
                                 const elasticbatch::bench::EchoRequest* request,
                                 elasticbatch::bench::EchoResponse* response) override {
    response->mutable_payload()->assign(request->response_bytes(), 'e');
    grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
    reactor->Finish(grpc::Status::OK);
    return reactor;
  }
};

int ServeEcho() {
  EchoService service;
  grpc::ServerBuilder builder;
  builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
  int port = 0;
  builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port);
  builder.RegisterService(&service);
  auto server = builder.BuildAndStart();
  if (!server) return 1;
  std::cout << "listening on 127.0.0.1:" << port << std::endl;
  server->Wait();
  return 0;
}

// --- Clients. -----------------------------------------------------------------

std::shared_ptr<grpc::Channel> NewChannel(const std::string& target,
                                          const rpc::ClientSecurity& security = {}) {
  grpc::ChannelArguments args;
  // One connection per worker, as separate worker processes would have.
  args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
  absl::StatusOr<std::shared_ptr<grpc::Channel>> channel =
      rpc::NewClientChannel(target, security, args);
  if (!channel.ok()) {
    std::cerr << "dispatch_bench: " << channel.status().message() << "\n";
    std::exit(1);
  }
  return *channel;
}

struct Sizes {
  size_t acquire_request, acquire_response, commit_request, commit_response;
};

// Serialized sizes of a typical cycle's messages with `n` shards.
Sizes MessageSizes(uint32_t n) {
  v1::AcquireShardsRequest aq;
  aq.set_session_id(4294967297ull);
  aq.set_max_shards(n);
  v1::AcquireShardsResponse ar;
  ar.set_outcome(v1::AcquireShardsResponse::SHARDS);
  v1::CommitShardRequest cq;
  cq.set_session_id(4294967297ull);
  v1::CommitShardResponse cr;
  for (uint32_t i = 0; i < n; ++i) {
    v1::LeaseRef* l = aq.add_published();
    l->set_shard_id(12345678 + i);
    l->set_attempt(1);
    v1::Shard* s = ar.add_shards();
    s->set_shard_id(12345678 + i);
    s->set_attempt(1);
    s->set_channel("table");
    s->set_begin(12345678 + i);
    s->set_end(12345679 + i);
    s->set_unit(v1::SHARD_UNIT_RECORDS);
    s->set_output_name("part-12345678");
    v1::ShardCompletion* c = cq.add_commits();
    c->mutable_lease()->set_shard_id(12345678 + i);
    c->mutable_lease()->set_attempt(1);
    c->set_records(1);
    v1::CommitResult* r = cr.add_results();
    r->mutable_lease()->set_shard_id(12345678 + i);
    r->mutable_lease()->set_attempt(1);
    r->set_decision(v1::CommitResult::GRANTED);
  }
  return {aq.ByteSizeLong(), ar.ByteSizeLong(), cq.ByteSizeLong(), cr.ByteSizeLong()};
}

struct WorkerStats {
  uint64_t cycles = 0;
  uint64_t rpcs = 0;
  uint64_t shards = 0;
  uint64_t errors = 0;
  std::vector<double> latency_us;  // per RPC
};

// One client worker's loop: run cycles until `stop`, optionally paced.
class Client {
 public:
  virtual ~Client() = default;
  virtual bool Setup() = 0;
  // One cycle (two RPCs); false on error.
  virtual bool Cycle(WorkerStats* stats) = 0;
};

double Since(absl::Time t) { return absl::ToDoubleMicroseconds(absl::Now() - t); }

class MasterClient final : public Client {
 public:
  // `one_call`: each cycle is a single AcquireShards that commits the shards
  // of the previous cycle and confirms the grants of the one before.
  MasterClient(const std::string& target, uint32_t index, uint32_t batch, bool one_call,
               const rpc::ClientSecurity& security = {})
      : stub_(v1::AIMaster::NewStub(NewChannel(target, security))),
        security_(security),
        index_(index),
        batch_(batch),
        one_call_(one_call) {}

  bool Setup() override {
    v1::RegisterWorkerRequest req;
    req.set_task_type("worker");
    req.set_task_index(index_);
    req.set_pid(static_cast<int32_t>(getpid()));
    req.set_host("bench");
    v1::RegisterWorkerResponse resp;
    grpc::ClientContext ctx;
    rpc::AttachToken(security_, &ctx);
    if (!stub_->RegisterWorker(&ctx, req, &resp).ok()) return false;
    session_ = resp.session_id();
    return true;
  }

  bool Cycle(WorkerStats* stats) override {
    return one_call_ ? OneCallCycle(stats) : TwoCallCycle(stats);
  }

  bool OneCallCycle(WorkerStats* stats) {
    v1::AcquireShardsRequest aq;
    aq.set_session_id(session_);
    aq.set_max_shards(batch_);
    for (const v1::LeaseRef& l : granted_) *aq.add_published() = l;
    for (const v1::LeaseRef& l : held_) {
      v1::ShardCompletion* c = aq.add_commits();
      *c->mutable_lease() = l;
      c->set_records(1);
    }
    v1::AcquireShardsResponse ar;
    const absl::Time t = absl::Now();
    {
      grpc::ClientContext ctx;
      rpc::AttachToken(security_, &ctx);
      if (!stub_->AcquireShards(&ctx, aq, &ar).ok()) return false;
    }
    stats->latency_us.push_back(Since(t));
    granted_.clear();
    for (const v1::CommitResult& r : ar.commit_results()) {
      if (r.decision() == v1::CommitResult::GRANTED) granted_.push_back(r.lease());
    }
    stats->shards += held_.size();
    held_.clear();
    for (const v1::Shard& sh : ar.shards()) {
      v1::LeaseRef l;
      l.set_shard_id(sh.shard_id());
      l.set_attempt(sh.attempt());
      held_.push_back(l);
    }
    stats->rpcs += 1;
    ++stats->cycles;
    return ar.outcome() == v1::AcquireShardsResponse::SHARDS;
  }

  bool TwoCallCycle(WorkerStats* stats) {
    v1::AcquireShardsRequest aq;
    aq.set_session_id(session_);
    aq.set_max_shards(batch_);
    for (const v1::LeaseRef& l : granted_) *aq.add_published() = l;
    v1::AcquireShardsResponse ar;
    absl::Time t = absl::Now();
    {
      grpc::ClientContext ctx;
      rpc::AttachToken(security_, &ctx);
      if (!stub_->AcquireShards(&ctx, aq, &ar).ok()) return false;
    }
    stats->latency_us.push_back(Since(t));
    granted_.clear();
    if (ar.outcome() != v1::AcquireShardsResponse::SHARDS) return false;
    v1::CommitShardRequest cq;
    cq.set_session_id(session_);
    for (const v1::Shard& s : ar.shards()) {
      v1::ShardCompletion* c = cq.add_commits();
      c->mutable_lease()->set_shard_id(s.shard_id());
      c->mutable_lease()->set_attempt(s.attempt());
      c->set_records(1);
    }
    v1::CommitShardResponse cr;
    t = absl::Now();
    {
      grpc::ClientContext ctx;
      rpc::AttachToken(security_, &ctx);
      if (!stub_->CommitShard(&ctx, cq, &cr).ok()) return false;
    }
    stats->latency_us.push_back(Since(t));
    for (const v1::CommitResult& r : cr.results()) {
      if (r.decision() == v1::CommitResult::GRANTED) granted_.push_back(r.lease());
    }
    stats->rpcs += 2;
    stats->shards += static_cast<uint64_t>(ar.shards_size());
    ++stats->cycles;
    return true;
  }

 private:
  std::unique_ptr<v1::AIMaster::Stub> stub_;
  rpc::ClientSecurity security_;
  uint32_t index_;
  uint32_t batch_;
  bool one_call_;
  uint64_t session_ = 0;
  std::vector<v1::LeaseRef> granted_;  // published; confirmed by the next call
  std::vector<v1::LeaseRef> held_;     // one-call mode: committed by the next call
};

class EchoClient final : public Client {
 public:
  EchoClient(const std::string& target, uint32_t batch, bool one_call)
      : stub_(elasticbatch::bench::Echo::NewStub(NewChannel(target))),
        batch_(batch),
        one_call_(one_call),
        sizes_(MessageSizes(batch)) {}
  bool Setup() override { return true; }
  bool Cycle(WorkerStats* stats) override {
    std::vector<std::pair<size_t, size_t>> calls;
    if (one_call_) {
      // The one-call cycle carries both requests' and both responses' content.
      calls = {{sizes_.acquire_request + sizes_.commit_request,
                sizes_.acquire_response + sizes_.commit_response}};
    } else {
      calls = {{sizes_.acquire_request, sizes_.acquire_response},
               {sizes_.commit_request, sizes_.commit_response}};
    }
    for (auto [request, response] : calls) {
      elasticbatch::bench::EchoRequest q;
      q.mutable_payload()->assign(request, 'q');
      q.set_response_bytes(static_cast<uint32_t>(response));
      elasticbatch::bench::EchoResponse r;
      const absl::Time t = absl::Now();
      grpc::ClientContext ctx;
      if (!stub_->Echo(&ctx, q, &r).ok()) return false;
      stats->latency_us.push_back(Since(t));
    }
    stats->rpcs += calls.size();
    stats->shards += batch_;
    ++stats->cycles;
    return true;
  }

 private:
  std::unique_ptr<elasticbatch::bench::Echo::Stub> stub_;
  uint32_t batch_;
  bool one_call_;
  Sizes sizes_;
};

struct Result {
  double cycles_per_s = 0, rpcs_per_s = 0, shards_per_s = 0, p50_ms = 0, p99_ms = 0,
         server_cpu_us_per_rpc = 0;
  uint64_t errors = 0;
};

double Percentile(std::vector<double>& v, double p) {
  if (v.empty()) return 0;
  auto it =
      v.begin() + static_cast<std::ptrdiff_t>(p * static_cast<double>(v.size() - 1));
  std::nth_element(v.begin(), it, v.end());
  return *it;
}

// Runs `clients` concurrently for `seconds` (after a short warm-up). With
// `cycles_per_s_each` > 0 each client is paced to that rate.
Result Drive(std::vector<std::unique_ptr<Client>>& clients, pid_t server, double seconds,
             double cycles_per_s_each = 0) {
  const size_t n = clients.size();
  std::vector<WorkerStats> stats(n);
  std::atomic<bool> measuring{false}, stop{false};
  std::atomic<size_t> ready{0};
  std::vector<std::thread> threads;
  for (size_t i = 0; i < n; ++i) {
    threads.emplace_back([&, i] {
      const bool ok = clients[i]->Setup();
      ++ready;
      if (!ok) {
        ++stats[i].errors;
        return;
      }
      WorkerStats warmup;
      absl::Time next = absl::Now();
      const absl::Duration period = cycles_per_s_each > 0
                                        ? absl::Seconds(1.0 / cycles_per_s_each)
                                        : absl::ZeroDuration();
      while (!stop.load(std::memory_order_relaxed)) {
        if (period > absl::ZeroDuration()) {
          const absl::Time now = absl::Now();
          if (next > now) absl::SleepFor(next - now);
          next += period;
        }
        WorkerStats* into =
            measuring.load(std::memory_order_relaxed) ? &stats[i] : &warmup;
        if (!clients[i]->Cycle(into)) ++into->errors;
      }
    });
  }
  while (ready.load() < n) absl::SleepFor(absl::Milliseconds(5));
  absl::SleepFor(absl::Milliseconds(500));  // warm-up
  const double cpu0 = CpuSeconds(server);
  const absl::Time t0 = absl::Now();
  measuring = true;
  absl::SleepFor(absl::Seconds(seconds));
  measuring = false;
  const double elapsed = absl::ToDoubleSeconds(absl::Now() - t0);
  const double cpu = CpuSeconds(server) - cpu0;
  stop = true;
  for (auto& t : threads) t.join();
  Result r;
  std::vector<double> latencies;
  uint64_t cycles = 0, rpcs = 0, shards = 0;
  for (WorkerStats& s : stats) {
    cycles += s.cycles;
    rpcs += s.rpcs;
    shards += s.shards;
    r.errors += s.errors;
    latencies.insert(latencies.end(), s.latency_us.begin(), s.latency_us.end());
  }
  r.cycles_per_s = static_cast<double>(cycles) / elapsed;
  r.rpcs_per_s = static_cast<double>(rpcs) / elapsed;
  r.shards_per_s = static_cast<double>(shards) / elapsed;
  r.p50_ms = Percentile(latencies, 0.50) / 1000;
  r.p99_ms = Percentile(latencies, 0.99) / 1000;
  r.server_cpu_us_per_rpc = rpcs > 0 ? cpu * 1e6 / static_cast<double>(rpcs) : 0;
  return r;
}

std::string Rate(double v) { return absl::StrFormat("%.0f", v); }

// A real master listening as `extra` says, started from `bin`; its pid and
// address. Exits the bench when it does not start.
std::pair<std::unique_ptr<testing::Subprocess>, std::string> StartServer(
    std::vector<std::string> argv) {
  auto p = testing::Subprocess::Start(argv);
  if (!p.ok()) std::exit(1);
  auto line = (*p)->ReadStdoutLine(absl::Seconds(60));
  if (!line.ok()) {
    std::cerr << "server did not start: " << (*p)->Stderr() << "\n";
    std::exit(1);
  }
  return {std::move(*p), "127.0.0.1:" + line->substr(line->rfind(':') + 1)};
}

std::vector<std::string> MasterArgs(const std::string& bin, const std::string& dir) {
  return {bin + "/aimaster",
          "serve",
          "--port=0",
          "--host=127.0.0.1",
          "--records=200000000",
          "--shard-records=1",
          "--input",
          "table=synthetic",
          "--output",
          "out=" + dir + "/out",
          "--state-dir",
          dir + "/state",
          "--lease-timeout=120s",
          "--no-speculation",
          "--log-level=warn"};
}

// The same master plain, with a job token, and with a token over TLS: 8
// clients, max_n 1, two calls per cycle. The token is a metadata entry and a
// constant-time compare; TLS adds encryption per message (the handshake is
// once per connection, outside the measurement).
void MeasureSecurity(const std::string& bin, double seconds, Report& report) {
  testing::TempDir dir;
  absl::StatusOr<testing::TestCa> ca =
      testing::TestCa::Create(dir.path() + "/ca", "bench");
  if (!ca.ok()) {
    std::cerr << "dispatch_bench: " << ca.status().message() << "\n";
    std::exit(1);
  }
  absl::StatusOr<testing::CertPair> cert =
      ca->Issue(dir.path() + "/server", "aimaster", "IP:127.0.0.1");
  if (!cert.ok()) std::exit(1);
  const std::string token = auth::GenerateToken();
  if (!auth::WriteTokenFile(dir.path() + "/token", token).ok()) std::exit(1);

  struct Mode {
    const char* name;
    std::vector<std::string> flags;
    rpc::ClientSecurity security;
  };
  rpc::ClientSecurity with_token;
  with_token.token = token;
  rpc::ClientSecurity with_tls = with_token;
  with_tls.tls_ca_file = ca->cert_file();
  const std::vector<Mode> modes = {
      {"plain", {}, {}},
      {"token", {"--token-file=" + dir.path() + "/token"}, with_token},
      {"token+TLS",
       {"--token-file=" + dir.path() + "/token", "--tls-cert=" + cert->cert_file,
        "--tls-key=" + cert->key_file},
       with_tls},
  };
  report.Row({});  // a table of its own
  report.Row({"security", "clients", "RPCs/s", "p50 ms", "p99 ms", "server CPU-us/RPC",
              "vs plain"});
  double plain = 0;
  int run = 0;
  for (const Mode& mode : modes) {
    std::vector<std::string> argv =
        MasterArgs(bin, absl::StrCat(dir.path(), "/m", run++));
    argv.insert(argv.end(), mode.flags.begin(), mode.flags.end());
    auto [master, target] = StartServer(argv);
    std::vector<std::unique_ptr<Client>> clients;
    for (uint32_t i = 0; i < 8; ++i) {
      clients.push_back(
          std::make_unique<MasterClient>(target, i, 1, false, mode.security));
    }
    const Result r = Drive(clients, master->pid(), seconds);
    if (plain == 0) plain = r.rpcs_per_s;
    report.Row({mode.name, "8", Rate(r.rpcs_per_s), absl::StrFormat("%.3f", r.p50_ms),
                absl::StrFormat("%.3f", r.p99_ms),
                absl::StrFormat("%.1f", r.server_cpu_us_per_rpc),
                absl::StrFormat("%.2f", plain > 0 ? r.rpcs_per_s / plain : 0)});
    std::string key = absl::StrCat("security_", mode.name);
    std::replace(key.begin(), key.end(), '+', '_');
    report.Figure(key + "_rpcs_per_s", r.rpcs_per_s);
    report.Figure(key + "_p99_ms", r.p99_ms);
    report.Figure(key + "_server_cpu_us_per_rpc", r.server_cpu_us_per_rpc);
    if (r.errors > 0) std::cerr << mode.name << ": " << r.errors << " errors\n";
    master->Signal(SIGTERM);
    (void)master->Wait(absl::Seconds(30));
  }
}

}  // namespace
}  // namespace elasticbatch::bench

int main(int argc, char** argv) {
  using namespace elasticbatch::bench;
  if (std::optional<int> exit = ParseFlags(argc, argv, "dispatch_bench", kUsage))
    return *exit;
  if (absl::GetFlag(FLAGS_serve_echo)) return ServeEcho();
  const std::string bin = BinDir(absl::GetFlag(FLAGS_bin), argv[0]);
  const double seconds = absl::GetFlag(FLAGS_seconds);
  if (!(seconds > 0 && seconds <= 600)) {
    std::cerr << "dispatch_bench: --seconds must be in (0, 600], got " << seconds << "\n";
    return 2;
  }
  signal(SIGPIPE, SIG_IGN);
  if (absl::GetFlag(FLAGS_security_only)) {
    Report report("dispatch");
    MeasureSecurity(bin, seconds, report);
    report.Print();
    return 0;
  }
  elasticbatch::testing::TempDir dir;
  auto [master, master_target] = StartServer(MasterArgs(bin, dir.path()));
  auto [echo, echo_target] = StartServer({argv[0], "--serve-echo"});

  Report report("dispatch");
  report.Row({"server", "calls/cycle", "clients", "max_n", "cycles/s", "RPCs/s",
              "shards/s", "p50 ms", "p99 ms", "server CPU-us/RPC", "RPC ratio"});
  double saturation_cycles = 0;
  struct Config {
    uint32_t batch;
    bool one_call;
  };
  for (Config config : {Config{1, false}, Config{16, false}, Config{16, true}}) {
    const uint32_t batch = config.batch;
    const char* calls = config.one_call ? "1" : "2";
    for (uint32_t clients : {1u, 8u, 64u, 256u}) {
      std::vector<std::unique_ptr<Client>> m, e;
      for (uint32_t i = 0; i < clients; ++i) {
        m.push_back(
            std::make_unique<MasterClient>(master_target, i, batch, config.one_call));
        e.push_back(std::make_unique<EchoClient>(echo_target, batch, config.one_call));
      }
      const Result mr = Drive(m, master->pid(), seconds);
      const Result er = Drive(e, echo->pid(), seconds);
      const double ratio = er.rpcs_per_s > 0 ? mr.rpcs_per_s / er.rpcs_per_s : 0;
      if (batch == 1) saturation_cycles = std::max(saturation_cycles, mr.cycles_per_s);
      for (const auto& [name, r] : {std::pair{"master", mr}, std::pair{"echo", er}}) {
        report.Row({name, calls, absl::StrCat(clients), absl::StrCat(batch),
                    Rate(r.cycles_per_s), Rate(r.rpcs_per_s), Rate(r.shards_per_s),
                    absl::StrFormat("%.3f", r.p50_ms), absl::StrFormat("%.3f", r.p99_ms),
                    absl::StrFormat("%.1f", r.server_cpu_us_per_rpc),
                    std::string(name) == "master" ? absl::StrFormat("%.2f", ratio) : ""});
        const std::string key = absl::StrCat(name, "_c", clients, "_n", batch,
                                             config.one_call ? "_onecall" : "");
        report.Figure(key + "_rpcs_per_s", r.rpcs_per_s);
        report.Figure(key + "_shards_per_s", r.shards_per_s);
        report.Figure(key + "_p99_ms", r.p99_ms);
        report.Figure(key + "_server_cpu_us_per_rpc", r.server_cpu_us_per_rpc);
        if (r.errors > 0)
          std::cerr << name << " c=" << clients << ": " << r.errors << " errors\n";
      }
      report.Figure(absl::StrCat("ratio_c", clients, "_n", batch,
                                 config.one_call ? "_onecall" : ""),
                    ratio);
    }
  }
  // Half of saturation, paced, with 8 workers and max_n = 1.
  constexpr uint32_t kPaced = 8;
  const double each = saturation_cycles / 2 / kPaced;
  std::vector<std::unique_ptr<Client>> m, e;
  for (uint32_t i = 0; i < kPaced; ++i) {
    m.push_back(std::make_unique<MasterClient>(master_target, 1000 + i, 1, false));
    e.push_back(std::make_unique<EchoClient>(echo_target, 1, false));
  }
  const Result mh = Drive(m, master->pid(), seconds, each);
  const Result eh = Drive(e, echo->pid(), seconds, each);
  for (const auto& [name, r] : {std::pair{"master", mh}, std::pair{"echo", eh}}) {
    report.Row({absl::StrCat(name, " @50%"), "2", absl::StrCat(kPaced), "1",
                Rate(r.cycles_per_s), Rate(r.rpcs_per_s), Rate(r.shards_per_s),
                absl::StrFormat("%.3f", r.p50_ms), absl::StrFormat("%.3f", r.p99_ms),
                absl::StrFormat("%.1f", r.server_cpu_us_per_rpc), ""});
    report.Figure(absl::StrCat(name, "_half_saturation_p50_ms"), r.p50_ms);
    report.Figure(absl::StrCat(name, "_half_saturation_p99_ms"), r.p99_ms);
  }
  report.Figure("master_saturation_cycles_per_s", saturation_cycles);
  master->Signal(SIGTERM);
  echo->Signal(SIGKILL);
  (void)master->Wait(absl::Seconds(30));
  (void)echo->Wait(absl::Seconds(30));
  MeasureSecurity(bin, seconds, report);
  report.Print();
  return 0;
}
