// Small helpers shared by the bench programs: process memory, timing, and the
// table + JSON-line report format.
#ifndef ELASTICBATCH_BENCH_BENCH_UTIL_H_
#define ELASTICBATCH_BENCH_BENCH_UTIL_H_

#include <sys/types.h>

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace elasticbatch::bench {

// Parses the flags the bench declared with ABSL_FLAG in bench/ (dashes or
// underscores). Returns the exit code to end with: 0 after --help (which
// prints `usage` and the flags), 2 after one line naming a bad flag; nullopt
// to run.
std::optional<int> ParseFlags(int argc, char** argv, const std::string& program,
                              const std::string& usage);

// The directory holding the ElasticBatch binaries, made absolute (workers run
// elsewhere): `flag` when set, else the directory of this program.
std::string BinDir(const std::string& flag, const char* argv0);

// Resident set size of `pid` (0: this process) in bytes, from /proc.
uint64_t RssBytes(pid_t pid = 0);
// `bytes` as megabytes for a table: "18.5 MB".
std::string Mb(uint64_t bytes);
// CPU time (user + system) consumed so far by `pid` (0: this process), in seconds.
double CpuSeconds(pid_t pid = 0);

// A report: a readable table on stdout, then one JSON line with every figure.
class Report {
 public:
  explicit Report(std::string bench) : bench_(std::move(bench)) {}
  void Row(const std::vector<std::string>& cells) { rows_.push_back(cells); }
  void Figure(const std::string& key, double value) { figures_.push_back({key, value}); }
  void Print() const;

 private:
  std::string bench_;
  std::vector<std::vector<std::string>> rows_;
  std::vector<std::pair<std::string, double>> figures_;
};

}  // namespace elasticbatch::bench

#endif  // ELASTICBATCH_BENCH_BENCH_UTIL_H_
