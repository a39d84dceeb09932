// Command-line parsing for ElasticBatch binaries on top of Abseil flags.
//
// Flags are declared with ABSL_FLAG as usual; this parser only drives them, so
// that a bad flag ends with one clear line and exit code 2 (Abseil's own parser
// exits 1), flag names may be spelled with dashes (--lease-timeout for
// lease_timeout), and list flags may be repeated (--input a=x --input b=y).
//
//   elasticbatch::cli::CommandLineParser parser;
//   parser.AddRepeated(&FLAGS_input);
//   absl::StatusOr<ParsedCommandLine> parsed = parser.Parse(argc, argv);
//   if (!parsed.ok()) return ExitWithUsageError(parsed.status());
//
// Not thread-safe: call once from main() before other threads start.
#ifndef ELASTICBATCH_TOOLS_CLI_COMMAND_LINE_H_
#define ELASTICBATCH_TOOLS_CLI_COMMAND_LINE_H_

#include <map>
#include <ostream>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/status/statusor.h"

namespace elasticbatch::cli {

// Exit codes shared by every ElasticBatch binary.
inline constexpr int kExitOk = 0;
inline constexpr int kExitFailure = 1;
inline constexpr int kExitUsage = 2;

struct ParsedCommandLine {
  // Arguments that are not flags and come before "--" (subcommands).
  std::vector<std::string> positional;
  // Everything after the first "--", verbatim.
  std::vector<std::string> after_dashes;
  // --help or -h was given.
  bool help = false;
};

class CommandLineParser {
 public:
  // Lets `flag` appear several times; every occurrence appends one element
  // (commas inside a value are kept, unlike Abseil's list syntax).
  void AddRepeated(absl::Flag<std::vector<std::string>>* flag);

  // Parses argv[1..]. Errors are INVALID_ARGUMENT with a one-line message that
  // names the flag.
  absl::StatusOr<ParsedCommandLine> Parse(int argc, char** argv) const;

 private:
  std::map<std::string, absl::Flag<std::vector<std::string>>*> repeated_;
};

// Prints every flag whose defining file path contains one of `file_fragments`,
// sorted by name, spelled with dashes, with its help text and default.
void PrintFlags(std::ostream& out, const std::vector<std::string>& file_fragments);

// Prints "<program>: <message>" on stderr and returns kExitUsage.
int ReportUsageError(const std::string& program, const absl::Status& status);

}  // namespace elasticbatch::cli

#endif  // ELASTICBATCH_TOOLS_CLI_COMMAND_LINE_H_
