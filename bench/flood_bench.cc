// flood_bench: a real `aimaster serve`'s RSS before and after a registration
// flood with big fields (issue 12): N registrations from one peer, each with
// the largest host accepted (255 bytes) and a distinct task index, plus 3 MiB
// hosts (refused); once with the default limits, once with the per-peer rate
// limit off (so only --max-sessions bounds what is kept).
// Usage: flood_bench [--bin DIR] [--registrations N]
#include <grpcpp/create_channel.h>
#include <signal.h>

#include <iostream>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "bench/bench_util.h"
#include "elasticbatch/v1/elasticbatch.grpc.pb.h"
#include "tests/testing/subprocess.h"
#include "tests/testing/temp_files.h"

ABSL_FLAG(std::string, bin, "", "directory holding aimaster (default: this program's)");
ABSL_FLAG(int, registrations, 20000, "registrations in each flood");

constexpr char kUsage[] =
    "Usage: flood_bench [--bin DIR] [--registrations N]\nMaster RSS before and after a "
    "flood of registrations with big fields.";

namespace elasticbatch::bench {
namespace {

struct Flood {
  uint64_t rss_before = 0;
  uint64_t rss_after = 0;
  int accepted = 0;
  int refused = 0;
  double seconds = 0;
};

Flood Run(const std::string& aimaster, const std::string& dir, int n,
          const std::vector<std::string>& extra) {
  std::vector<std::string> argv = {aimaster,           "serve",
                                   "--port=0",         "--host=127.0.0.1",
                                   "--records",        "1000",
                                   "--input",          "table=odps://bench/t",
                                   "--output",         "out=" + dir + "/out",
                                   "--state-dir",      dir + "/state",
                                   "--log-level=error"};
  argv.insert(argv.end(), extra.begin(), extra.end());
  auto p = testing::Subprocess::Start(argv);
  absl::StatusOr<std::string> line =
      p.ok() ? (*p)->ReadStdoutLine(absl::Seconds(60)) : absl::UnknownError("");
  if (!line.ok()) {
    std::cerr << "aimaster serve did not start\n";
    std::exit(1);
  }
  const std::string address = std::vector<std::string>(absl::StrSplit(*line, ' ')).back();
  auto stub = v1::AIMaster::NewStub(
      grpc::CreateChannel(address, grpc::InsecureChannelCredentials()));
  Flood f;
  f.rss_before = RssBytes((*p)->pid());
  const absl::Time start = absl::Now();
  for (int i = 0; i < n; ++i) {
    v1::RegisterWorkerRequest req;
    req.set_task_type("worker");
    req.set_task_index(static_cast<uint32_t>(i));
    req.set_pid(i);
    // One in 100 with a 3 MiB host (always refused).
    req.set_host(std::string(i % 100 == 0 ? (3 << 20) : 255, 'h'));
    v1::RegisterWorkerResponse resp;
    grpc::ClientContext ctx;
    (stub->RegisterWorker(&ctx, req, &resp).ok() ? f.accepted : f.refused)++;
  }
  f.seconds = absl::ToDoubleSeconds(absl::Now() - start);
  f.rss_after = RssBytes((*p)->pid());
  (*p)->Signal(SIGTERM);
  (void)(*p)->Wait(absl::Seconds(30));
  return f;
}

}  // namespace
}  // namespace elasticbatch::bench

int main(int argc, char** argv) {
  using namespace elasticbatch;
  using namespace elasticbatch::bench;
  if (std::optional<int> exit = ParseFlags(argc, argv, "flood_bench", kUsage))
    return *exit;
  const std::string aimaster = BinDir(absl::GetFlag(FLAGS_bin), argv[0]) + "/aimaster";
  const int n = absl::GetFlag(FLAGS_registrations);
  testing::TempDir dir;
  Report report("flood");
  report.Row({"limits", "registrations", "accepted", "refused", "RSS before", "RSS after",
              "time"});
  const std::pair<const char*, std::vector<std::string>> cases[] = {
      {"default", {}}, {"no_rate_limit", {"--registrations-per-second=0"}}};
  for (const auto& [name, extra] : cases) {
    const Flood f = Run(aimaster, absl::StrCat(dir.path(), "/", name), n, extra);
    report.Row({name, absl::StrCat(n), absl::StrCat(f.accepted), absl::StrCat(f.refused),
                Mb(f.rss_before), Mb(f.rss_after), absl::StrFormat("%.1fs", f.seconds)});
    report.Figure(absl::StrCat(name, "_rss_before_bytes"),
                  static_cast<double>(f.rss_before));
    report.Figure(absl::StrCat(name, "_rss_after_bytes"),
                  static_cast<double>(f.rss_after));
    report.Figure(absl::StrCat(name, "_accepted"), f.accepted);
  }
  report.Print();
  return 0;
}
