// recovery_bench: how fast the system reacts.
//   * kill -> re-acquire: `aimaster run` with two ebatch-workers; the one on
//     shard 0 is SIGKILLed mid-shard; measured from the kill to the moment the
//     other worker's command starts on shard 0 again (both clocks: realtime).
//   * time to first shard: a new ebatch-worker process against a running
//     `aimaster serve`, from exec to its first shard command starting.
//   * 1,000 workers heartbeating at 1 Hz (one lease each), against a real
//     master: the master's CPU share.
// (The master's restart time over 1,000,000 journalled commits is in
// scale_bench.)
//
// Usage: recovery_bench [--bin DIR] [--repeat N]
#include <grpcpp/create_channel.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <filesystem>
#include <iostream>
#include <optional>
#include <thread>

#include "absl/flags/flag.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "bench/bench_util.h"
#include "elasticbatch/v1/elasticbatch.grpc.pb.h"
#include "tests/testing/subprocess.h"
#include "tests/testing/temp_files.h"

ABSL_FLAG(std::string, bin, "",
          "directory holding aimaster and ebatch-worker (default: this program's)");
ABSL_FLAG(int, repeat, 5, "runs of each timed measure");

constexpr char kUsage[] =
    "Usage: recovery_bench [--bin DIR] [--repeat N]\nSIGKILL to re-acquire, time to "
    "first shard, master CPU with 1,000 heartbeating workers.";

namespace elasticbatch::bench {
namespace {

namespace v1 = elasticbatch::v1;
using testing::Subprocess;

struct Event {
  absl::Time at;
  std::string what;
  uint64_t shard = 0;
  uint32_t attempt = 0;
  int pid = 0;
};

// Lines "<ns since epoch> <what> <shard> <attempt> <pid>" written by commands.
std::vector<Event> ReadEvents(const std::string& path) {
  std::vector<Event> out;
  for (absl::string_view line :
       absl::StrSplit(testing::ReadFileOrEmpty(path), '\n', absl::SkipEmpty())) {
    std::vector<std::string> f = absl::StrSplit(line, ' ');
    if (f.size() < 5) continue;
    Event e;
    int64_t ns = 0;
    if (!absl::SimpleAtoi(f[0], &ns)) continue;
    e.at = absl::FromUnixNanos(ns);
    e.what = f[1];
    (void)absl::SimpleAtoi(f[2], &e.shard);
    (void)absl::SimpleAtoi(f[3], &e.attempt);
    (void)absl::SimpleAtoi(f[4], &e.pid);
    out.push_back(e);
  }
  return out;
}

template <typename Pred>
std::optional<Event> WaitForEvent(const std::string& path, Pred pred,
                                  absl::Duration timeout) {
  const absl::Time give_up = absl::Now() + timeout;
  while (absl::Now() < give_up) {
    for (const Event& e : ReadEvents(path)) {
      if (pred(e)) return e;
    }
    absl::SleepFor(absl::Milliseconds(1));
  }
  return std::nullopt;
}

std::string EventCommand(const std::string& events, const std::string& then) {
  return absl::StrCat("echo \"$(date +%s%N) start $SHARD_ID $SHARD_ATTEMPT $PPID\" >> ",
                      events, "; ", then);
}

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0 : v[v.size() / 2];
}

// kill -9 of the worker on shard 0 -> shard 0 starts again elsewhere.
std::optional<double> KillToReacquireMs(const std::string& bin, const std::string& dir) {
  const std::string events = dir + "/events";
  // Shard 0's first attempt hangs (until killed); everything else is instant.
  const std::string shard_cmd = EventCommand(
      events,
      "if [ \"$SHARD_ID\" = 0 ] && [ \"$SHARD_ATTEMPT\" = 1 ]; then sleep 1000; fi");
  const std::string worker =
      absl::StrCat(bin, "/ebatch-worker --prefetch=0 -- '", shard_cmd, "'");
  auto run = Subprocess::Start({bin + "/aimaster", "run", "--workers=2", "--records=3",
                                "--shard-records=1", "--input", "table=synthetic",
                                "--output", "out", "--job-dir", dir + "/job",
                                "--heartbeat-interval=500ms", "--restart-backoff=10s",
                                "--no-speculation", "--log-level=warn", "--", worker});
  if (!run.ok()) return std::nullopt;
  auto victim = WaitForEvent(
      events, [](const Event& e) { return e.shard == 0 && e.attempt == 1; },
      absl::Seconds(60));
  // Let the other worker finish the rest and sit idle, waiting for work.
  absl::SleepFor(absl::Milliseconds(300));
  if (!victim) return std::nullopt;
  const absl::Time killed = absl::Now();
  kill(victim->pid, SIGKILL);
  auto again = WaitForEvent(
      events, [](const Event& e) { return e.shard == 0 && e.attempt >= 2; },
      absl::Seconds(60));
  (void)(*run)->Wait(absl::Seconds(60));
  if (!again) return std::nullopt;
  return absl::ToDoubleMilliseconds(again->at - killed);
}

// A new ebatch-worker process: exec -> its first shard command starts.
std::optional<double> TimeToFirstShardMs(const std::string& bin,
                                         const std::string& target,
                                         const std::string& dir, int index) {
  const std::string events = absl::StrCat(dir, "/first-", index);
  testing::SubprocessOptions env;
  env.env = {absl::StrCat("ELASTICBATCH_CONFIG={\"task\":{\"type\":\"worker\",\"index\":",
                          index, "}}"),
             "AIMASTER_ADDR=" + target, "PAI_OUTPUT_OUT=" + dir + "/out",
             "ELASTICBATCH_LOG_LEVEL=warn"};
  const absl::Time start = absl::Now();
  auto worker = Subprocess::Start(
      {bin + "/ebatch-worker", "--", EventCommand(events, "sleep 1000")}, env);
  if (!worker.ok()) return std::nullopt;
  auto first = WaitForEvent(
      events, [](const Event&) { return true; }, absl::Seconds(60));
  (*worker)->Signal(SIGKILL);
  if (!first) return std::nullopt;
  return absl::ToDoubleMilliseconds(first->at - start);
}

// 1,000 sessions with one lease each, heartbeating at 1 Hz: master CPU share.
double HeartbeatCpuShare(const std::string& target, pid_t master, int workers,
                         double seconds) {
  constexpr int kThreads = 8;
  std::atomic<bool> stop{false};
  std::atomic<int> registered{0};
  std::atomic<uint64_t> beats{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      struct Session {
        std::unique_ptr<v1::AIMaster::Stub> stub;
        uint64_t id;
        v1::LeaseRef lease;
      };
      std::vector<Session> mine;
      for (int w = t; w < workers; w += kThreads) {
        grpc::ChannelArguments args;
        args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
        Session s{v1::AIMaster::NewStub(grpc::CreateCustomChannel(
                      target, grpc::InsecureChannelCredentials(), args)),
                  0,
                  {}};
        v1::RegisterWorkerRequest rq;
        rq.set_task_type("worker");
        rq.set_task_index(static_cast<uint32_t>(10000 + w));
        v1::RegisterWorkerResponse rr;
        grpc::ClientContext c1;
        if (!s.stub->RegisterWorker(&c1, rq, &rr).ok()) continue;
        s.id = rr.session_id();
        v1::AcquireShardsRequest aq;
        aq.set_session_id(s.id);
        aq.set_max_shards(1);
        v1::AcquireShardsResponse ar;
        grpc::ClientContext c2;
        if (s.stub->AcquireShards(&c2, aq, &ar).ok() && ar.shards_size() == 1) {
          s.lease.set_shard_id(ar.shards(0).shard_id());
          s.lease.set_attempt(ar.shards(0).attempt());
        }
        mine.push_back(std::move(s));
        ++registered;
      }
      // Each session beats once a second, spread evenly over the second.
      const absl::Duration period = absl::Seconds(1) / std::max<size_t>(mine.size(), 1);
      absl::Time next = absl::Now();
      for (size_t i = 0; !stop.load(); i = (i + 1) % std::max<size_t>(mine.size(), 1)) {
        if (mine.empty()) break;
        next += period;
        const absl::Time now = absl::Now();
        if (next > now) absl::SleepFor(next - now);
        v1::HeartbeatRequest hb;
        hb.set_session_id(mine[i].id);
        v1::ShardProgress* p = hb.add_progress();
        *p->mutable_lease() = mine[i].lease;
        p->set_started(true);
        p->set_records_done(i);
        v1::HeartbeatResponse hr;
        grpc::ClientContext ctx;
        if (mine[i].stub->Heartbeat(&ctx, hb, &hr).ok()) ++beats;
      }
    });
  }
  while (registered.load() < workers) absl::SleepFor(absl::Milliseconds(20));
  absl::SleepFor(absl::Seconds(1));
  const double cpu0 = CpuSeconds(master);
  const uint64_t beats0 = beats.load();
  const absl::Time t0 = absl::Now();
  absl::SleepFor(absl::Seconds(seconds));
  const double cpu = CpuSeconds(master) - cpu0;
  const double wall = absl::ToDoubleSeconds(absl::Now() - t0);
  const uint64_t n = beats.load() - beats0;
  stop = true;
  for (auto& t : threads) t.join();
  std::cout << absl::StrFormat("  (%d heartbeats in %.1fs: %.0f/s)\n", n, wall, n / wall);
  return cpu / wall;
}

}  // namespace
}  // namespace elasticbatch::bench

int main(int argc, char** argv) {
  using namespace elasticbatch::bench;
  if (std::optional<int> exit = ParseFlags(argc, argv, "recovery_bench", kUsage))
    return *exit;
  const std::string bin = BinDir(absl::GetFlag(FLAGS_bin), argv[0]);
  const int repeat = absl::GetFlag(FLAGS_repeat);
  if (repeat < 1 || repeat > 1000) {
    std::cerr << "recovery_bench: --repeat must be in [1, 1000], got " << repeat << "\n";
    return 2;
  }
  signal(SIGPIPE, SIG_IGN);
  elasticbatch::testing::TempDir dir;
  Report report("recovery");
  report.Row({"measure", "median", "max", "runs"});

  std::vector<double> recoveries;
  for (int r = 0; r < repeat; ++r) {
    if (auto ms = KillToReacquireMs(bin, absl::StrCat(dir.path(), "/kill-", r))) {
      recoveries.push_back(*ms);
    }
  }
  report.Row({"SIGKILL -> shard started again (aimaster run)",
              absl::StrFormat("%.1f ms", Median(recoveries)),
              absl::StrFormat("%.1f ms", recoveries.empty()
                                             ? 0
                                             : *std::max_element(recoveries.begin(),
                                                                 recoveries.end())),
              absl::StrCat(recoveries.size())});
  report.Figure("kill_to_reacquire_ms_median", Median(recoveries));

  auto master = Subprocess::Start(
      {bin + "/aimaster", "serve", "--port=0", "--host=127.0.0.1", "--records=100000",
       "--shard-records=1", "--input", "table=synthetic", "--output",
       "out=" + dir.path() + "/serve-out", "--state-dir", dir.path() + "/serve-state",
       "--heartbeat-interval=1s", "--lease-timeout=60s", "--log-level=warn"});
  auto line = (*master)->ReadStdoutLine(absl::Seconds(60));
  if (!line.ok()) return 1;
  const std::string target = "127.0.0.1:" + line->substr(line->rfind(':') + 1);
  std::vector<double> firsts;
  for (int r = 0; r < repeat; ++r) {
    if (auto ms = TimeToFirstShardMs(bin, target, dir.path(), r)) firsts.push_back(*ms);
  }
  report.Row({"time to first shard (new ebatch-worker process)",
              absl::StrFormat("%.1f ms", Median(firsts)),
              absl::StrFormat(
                  "%.1f ms",
                  firsts.empty() ? 0 : *std::max_element(firsts.begin(), firsts.end())),
              absl::StrCat(firsts.size())});
  report.Figure("time_to_first_shard_ms_median", Median(firsts));

  const double share = HeartbeatCpuShare(target, (*master)->pid(), 1000, 10);
  report.Row({"master CPU, 1,000 workers heartbeating at 1 Hz",
              absl::StrFormat("%.1f%% of a core", share * 100), "", "10 s"});
  report.Figure("heartbeat_1000_cpu_share", share);
  (*master)->Signal(SIGTERM);
  (void)(*master)->Wait(absl::Seconds(30));
  report.Print();
  return 0;
}
