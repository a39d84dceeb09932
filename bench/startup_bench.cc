// startup_bench: how much earlier the first shard completes when
// `ebatch-worker --persistent` starts a slow-loading command at once.
//
// Real processes: an `aimaster serve` over a few small files (a shard each)
// and one `ebatch-worker --persistent` whose command takes --load-seconds to
// load, in two flavours:
//   at start   the command loads as soon as it runs (`sleep L; exec cat`):
//              ebatch-worker starts it at once, so the load overlaps the
//              worker's registration and its wait for the master;
//   on record  the command loads only once its first record arrives
//              (`read first; sleep L; ...; exec cat`): the behaviour of the
//              earlier ebatch-worker, which started its command at the first
//              shard.
// and two orders of start: the master up first, then the worker; and the
// worker first with the master --master-delay later (pods start together,
// the master's takes longer). The figure is the time from the worker's exec
// to the first published part file (a committed shard), median of --repeat
// runs; the worker retries the master with jittered backoff, so the second
// order also shows when it got through.
//
// Usage: startup_bench [--bin DIR] [--load-seconds L] [--master-delay D] [--repeat N]
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <iostream>
#include <optional>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "bench/bench_util.h"
#include "tests/testing/subprocess.h"
#include "tests/testing/temp_files.h"

ABSL_FLAG(std::string, bin, "",
          "directory holding aimaster and ebatch-worker (default: this program's)");
ABSL_FLAG(double, load_seconds, 3, "how long the command takes to load its model");
ABSL_FLAG(double, master_delay, 2,
          "seconds between the worker's start and the master's, in the second order");
ABSL_FLAG(int, repeat, 3, "runs of each case");

constexpr char kUsage[] =
    "Usage: startup_bench [--bin DIR] [--load-seconds L] [--master-delay D] [--repeat "
    "N]\nTime to the first committed shard with a slow-loading --persistent command, "
    "loaded at process start vs at the first record.";

namespace elasticbatch::bench {
namespace {

using testing::Subprocess;

// A port nobody listens on now (the master takes it a moment later).
int FreePort() {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof(a);
  int port = 0;
  if (bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) == 0 &&
      getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) == 0) {
    port = ntohs(a.sin_port);
  }
  close(fd);
  return port;
}

bool HasPartFile(const std::string& dir) {
  std::error_code error;
  for (const auto& e : std::filesystem::directory_iterator(dir, error)) {
    if (absl::StartsWith(e.path().filename().string(), "part-")) return true;
  }
  return false;
}

struct Case {
  std::string command;
  bool master_first;
};

// Seconds from the worker's exec to its first published part file.
std::optional<double> TimeToFirstCommit(const std::string& bin, const std::string& dir,
                                        const Case& c, double master_delay) {
  std::filesystem::remove_all(dir);
  const std::string in = dir + "/in", out = dir + "/out";
  for (int f = 0; f < 4; ++f) {
    std::string content;
    for (int i = 0; i < 100; ++i) absl::StrAppend(&content, "rec ", f * 1000 + i, "\n");
    testing::WriteFileOrDie(absl::StrCat(in, "/part-", f, ".txt"), content);
  }
  std::filesystem::create_directories(out);
  const int port = FreePort();
  auto start_master = [&] {
    return Subprocess::Start({bin + "/aimaster", "serve", "--host=127.0.0.1",
                              absl::StrCat("--port=", port), "--input", "data=" + in,
                              "--output", "out=" + out, "--shard-per-file",
                              "--heartbeat-interval=500ms", "--log-level=warn"});
  };
  testing::SubprocessOptions env;
  env.env = {"ELASTICBATCH_CONFIG={\"task\":{\"type\":\"worker\",\"index\":0}}",
             absl::StrCat("AIMASTER_ADDR=127.0.0.1:", port), "PAI_INPUT_DATA=" + in,
             "PAI_OUTPUT_OUT=" + out, "ELASTICBATCH_LOG_LEVEL=warn"};
  absl::StatusOr<std::unique_ptr<Subprocess>> master;
  if (c.master_first) {
    master = start_master();
    if (!master.ok() || !(*master)->ReadStdoutLine(absl::Seconds(30)).ok()) {
      return std::nullopt;
    }
  }
  const absl::Time start = absl::Now();
  auto worker =
      Subprocess::Start({bin + "/ebatch-worker", "--persistent", "--", c.command}, env);
  if (!worker.ok()) return std::nullopt;
  if (!c.master_first) {
    absl::SleepFor(absl::Seconds(master_delay));
    master = start_master();
    if (!master.ok()) return std::nullopt;
  }
  std::optional<double> seconds;
  const absl::Time give_up = start + absl::Seconds(120);
  while (absl::Now() < give_up) {
    if (HasPartFile(out)) {
      seconds = absl::ToDoubleSeconds(absl::Now() - start);
      break;
    }
    absl::SleepFor(absl::Milliseconds(1));
  }
  // The rest of the job takes a moment; both then exit on their own.
  (void)(*worker)->Wait(absl::Seconds(60));
  (void)(*master)->Wait(absl::Seconds(60));
  return seconds;
}

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0 : v[v.size() / 2];
}

}  // namespace
}  // namespace elasticbatch::bench

int main(int argc, char** argv) {
  using namespace elasticbatch::bench;
  if (std::optional<int> exit = ParseFlags(argc, argv, "startup_bench", kUsage)) {
    return *exit;
  }
  const std::string bin = BinDir(absl::GetFlag(FLAGS_bin), argv[0]);
  const double load = absl::GetFlag(FLAGS_load_seconds);
  const double delay = absl::GetFlag(FLAGS_master_delay);
  const int repeat = absl::GetFlag(FLAGS_repeat);
  if (repeat < 1 || repeat > 100 || !(load >= 0 && load <= 600) ||
      !(delay >= 0 && delay <= 600)) {
    std::cerr << "startup_bench: need --repeat in [1, 100], --load-seconds and "
                 "--master-delay in [0, 600]\n";
    return 2;
  }
  signal(SIGPIPE, SIG_IGN);
  elasticbatch::testing::TempDir dir;
  const std::string at_start = absl::StrFormat("sleep %g; exec cat", load);
  const std::string on_record = absl::StrFormat(
      "IFS= read -r first; sleep %g; printf '%%s\\n' \"$first\"; exec cat", load);
  struct Row {
    std::string order, load, key;
    Case c;
  };
  const std::string later = absl::StrFormat("worker first, master %gs later", delay);
  const std::vector<Row> rows = {
      {"master first", "at start", "master_first_at_start", {at_start, true}},
      {"master first", "on record", "master_first_on_record", {on_record, true}},
      {later, "at start", "worker_first_at_start", {at_start, false}},
      {later, "on record", "worker_first_on_record", {on_record, false}},
  };
  Report report("startup");
  report.Row(
      {"order of start", "command loads", "first commit (median)", "min", "max", "runs"});
  std::vector<double> medians;
  for (const Row& row : rows) {
    std::vector<double> runs;
    for (int r = 0; r < repeat; ++r) {
      if (auto s = TimeToFirstCommit(bin, absl::StrCat(dir.path(), "/", row.key, "-", r),
                                     row.c, delay)) {
        runs.push_back(*s);
      }
    }
    const double median = Median(runs);
    medians.push_back(median);
    report.Row(
        {row.order, row.load, absl::StrFormat("%.2f s", median),
         absl::StrFormat("%.2f s",
                         runs.empty() ? 0 : *std::min_element(runs.begin(), runs.end())),
         absl::StrFormat("%.2f s",
                         runs.empty() ? 0 : *std::max_element(runs.begin(), runs.end())),
         absl::StrCat(runs.size())});
    report.Figure(row.key + "_s", median);
  }
  report.Row({"gain of loading at start", "master first",
              absl::StrFormat("%.2f s", medians[1] - medians[0]), "", "", ""});
  report.Row({"gain of loading at start", later,
              absl::StrFormat("%.2f s", medians[3] - medians[2]), "", "", ""});
  report.Figure("gain_master_first_s", medians[1] - medians[0]);
  report.Figure("gain_worker_first_s", medians[3] - medians[2]);
  report.Figure("load_seconds", load);
  report.Figure("master_delay_s", delay);
  report.Print();
  return 0;
}
