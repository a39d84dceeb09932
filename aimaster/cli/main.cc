// aimaster: the ElasticBatch master. Wiring only; the logic lives in core/.
#include <iostream>
#include <string>

#include "absl/flags/declare.h"
#include "absl/synchronization/mutex.h"
#include "aimaster/cli/commands.h"
#include "common/cli/command_line.h"
#include "common/cli/logging.h"
#include "common/cli/signal_watcher.h"

ABSL_DECLARE_FLAG(std::vector<std::string>, input);
ABSL_DECLARE_FLAG(std::vector<std::string>, output);
ABSL_DECLARE_FLAG(std::vector<std::string>, hp);

namespace {

constexpr char kUsage[] =
    R"(aimaster - the ElasticBatch master: dynamic shard dispatch for distributed
offline inference.

Usage:
  aimaster run --workers N --input CH=PATH --output CH[=PATH] [--hp NAME=VALUE ...]
               [--job-dir DIR] [flags] -- CMD
      A whole job on this machine: the master and N worker processes running
      `sh -c CMD` in the job's usercode directory with the platform's
      environment contract. Shows live progress and a per-worker summary;
      exits 0 when the job succeeded, 1 when it failed.
  aimaster serve --input CH=PATH --output CH=PATH [flags]
      Standalone master: shards the input and serves workers on --port until
      all data is done; exits 0 when the job succeeded, 1 when it failed.
      The first line of output is "listening on HOST:PORT".
  aimaster status [--addr HOST:PORT] [--shards]
      Progress, workers and (with --shards) active and quarantined shards.
  aimaster stop [--addr HOST:PORT] [--reason TEXT]
      Ends a running job now; it fails with the reason unless all data is done.
  aimaster version | help

Exit codes: 0 success, 1 job failed or master unreachable, 2 configuration error.

Flags:
)";

int Main(int argc, char** argv) {
  namespace cli = elasticbatch::cli;
  cli::BlockTerminationSignals();
  // Debian's Abseil checks every mutex acquisition for deadlock cycles; the
  // tests keep that check, production binaries skip its cost.
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  cli::CommandLineParser parser;
  parser.AddRepeated(&FLAGS_input);
  parser.AddRepeated(&FLAGS_output);
  parser.AddRepeated(&FLAGS_hp);
  absl::StatusOr<cli::ParsedCommandLine> parsed = parser.Parse(argc, argv);
  if (!parsed.ok()) return cli::ReportUsageError("aimaster", parsed.status());
  const std::string command = parsed->positional.empty() ? "help" : parsed->positional[0];
  if (parsed->help || command == "help") {
    std::cout << kUsage;
    cli::PrintFlags(std::cout, {"aimaster/cli/", "common/cli/"});
    return cli::kExitOk;
  }
  if (absl::Status s = cli::InitLogging("aimaster"); !s.ok()) {
    return cli::ReportUsageError("aimaster", s);
  }
  if (command == "version") {
    std::cout << "aimaster " << ELASTICBATCH_VERSION << "\n";
    return cli::kExitOk;
  }
  if (command == "serve") return elasticbatch::aimaster::ServeCommand(*parsed);
  if (command == "run") return elasticbatch::aimaster::RunCommand(*parsed);
  if (command == "status") return elasticbatch::aimaster::StatusCommand(*parsed);
  if (command == "stop") return elasticbatch::aimaster::StopCommand(*parsed);
  return cli::ReportUsageError("aimaster",
                               absl::InvalidArgumentError("unknown command '" + command +
                                                          "' (see aimaster --help)"));
}

}  // namespace

int main(int argc, char** argv) { return Main(argc, argv); }
