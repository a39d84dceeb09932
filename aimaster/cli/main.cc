// aimaster: the ElasticBatch master. Wiring only; the logic lives in core/.
#include <iostream>
#include <string>

#include "absl/strings/str_join.h"
#include "command_line.h"
#include "logging.h"

namespace {

constexpr char kUsage[] =
    R"(aimaster - the ElasticBatch master: dynamic shard dispatch for distributed
offline inference.

Usage:
  aimaster help              show this help
  aimaster version           print the version

Flags:
)";

int Main(int argc, char** argv) {
  namespace cli = elasticbatch::cli;
  cli::CommandLineParser parser;
  absl::StatusOr<cli::ParsedCommandLine> parsed = parser.Parse(argc, argv);
  if (!parsed.ok()) return cli::ReportUsageError("aimaster", parsed.status());
  const std::string command = parsed->positional.empty() ? "help" : parsed->positional[0];
  if (parsed->help || command == "help") {
    std::cout << kUsage;
    cli::PrintFlags(std::cout, {"aimaster/cli/", "tools/cli/"});
    return cli::kExitOk;
  }
  if (absl::Status s = cli::InitLogging("aimaster"); !s.ok()) {
    return cli::ReportUsageError("aimaster", s);
  }
  if (command == "version") {
    std::cout << "aimaster " << ELASTICBATCH_VERSION << "\n";
    return cli::kExitOk;
  }
  return cli::ReportUsageError("aimaster",
                               absl::InvalidArgumentError("unknown command '" + command +
                                                          "' (see aimaster --help)"));
}

}  // namespace

int main(int argc, char** argv) { return Main(argc, argv); }
