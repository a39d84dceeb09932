#include "common/cli/command_line.h"

#include <algorithm>
#include <iostream>

#include "absl/flags/reflection.h"
#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/strip.h"

namespace elasticbatch::cli {
namespace {

std::string Dashed(absl::string_view flag_name) {
  return absl::StrReplaceAll(flag_name, {{"_", "-"}});
}

}  // namespace

void CommandLineParser::AddRepeated(absl::Flag<std::vector<std::string>>* flag) {
  repeated_[std::string(absl::GetFlagReflectionHandle(*flag).Name())] = flag;
}

absl::StatusOr<ParsedCommandLine> CommandLineParser::Parse(int argc, char** argv) const {
  ParsedCommandLine parsed;
  std::map<std::string, std::vector<std::string>> repeated_values;
  for (int i = 1; i < argc; ++i) {
    absl::string_view arg = argv[i];
    if (arg == "--") {
      for (int j = i + 1; j < argc; ++j) parsed.after_dashes.emplace_back(argv[j]);
      break;
    }
    if (arg.size() < 2 || arg[0] != '-') {
      parsed.positional.emplace_back(arg);
      continue;
    }
    absl::string_view body = arg;
    if (!absl::ConsumePrefix(&body, "--")) absl::ConsumePrefix(&body, "-");
    std::string name;
    std::string value;
    bool has_value = false;
    if (size_t eq = body.find('='); eq != absl::string_view::npos) {
      name = std::string(body.substr(0, eq));
      value = std::string(body.substr(eq + 1));
      has_value = true;
    } else {
      name = std::string(body);
    }
    name = absl::StrReplaceAll(name, {{"-", "_"}});
    if (name == "help" || name == "h") {
      parsed.help = true;
      continue;
    }
    absl::CommandLineFlag* flag = absl::FindCommandLineFlag(name);
    // --nofoo and --no-foo turn a bool flag off.
    for (absl::string_view prefix : {"no_", "no"}) {
      if (flag != nullptr || has_value || !absl::StartsWith(name, prefix)) continue;
      const std::string positive = name.substr(prefix.size());
      absl::CommandLineFlag* negated = absl::FindCommandLineFlag(positive);
      if (negated != nullptr && negated->IsOfType<bool>()) {
        flag = negated;
        name = positive;
        value = "false";
        has_value = true;
      }
    }
    if (flag == nullptr || flag->IsRetired()) {
      return absl::InvalidArgumentError(
          absl::StrCat("unknown flag --", Dashed(name), " (see --help)"));
    }
    if (!has_value) {
      if (flag->IsOfType<bool>()) {
        value = "true";
      } else if (i + 1 < argc) {
        value = argv[++i];
      } else {
        return absl::InvalidArgumentError(
            absl::StrCat("flag --", Dashed(name), " needs a value"));
      }
    }
    if (repeated_.count(name) > 0) {
      repeated_values[name].push_back(value);
      continue;
    }
    std::string error;
    if (!flag->ParseFrom(value, &error)) {
      // Abseil prefixes "Illegal value '...' specified for flag '...'; ".
      if (size_t cut = error.find("; "); cut != std::string::npos)
        error = error.substr(cut + 2);
      return absl::InvalidArgumentError(
          absl::StrCat("bad value '", value, "' for --", Dashed(name), ": ", error));
    }
  }
  for (auto& [name, values] : repeated_values) {
    absl::SetFlag(repeated_.at(name), values);
  }
  return parsed;
}

void PrintFlags(std::ostream& out, const std::vector<std::string>& file_fragments) {
  std::vector<absl::CommandLineFlag*> flags;
  for (const auto& [name, flag] : absl::GetAllFlags()) {
    const std::string file = flag->Filename();
    const bool wanted =
        std::any_of(file_fragments.begin(), file_fragments.end(),
                    [&](const std::string& f) { return absl::StrContains(file, f); });
    if (wanted && !flag->IsRetired()) flags.push_back(flag);
  }
  std::sort(flags.begin(), flags.end(),
            [](auto* a, auto* b) { return a->Name() < b->Name(); });
  for (const absl::CommandLineFlag* flag : flags) {
    out << "  --" << Dashed(flag->Name()) << "\n      " << flag->Help();
    const std::string def = flag->DefaultValue();
    if (!def.empty()) out << " (default: " << def << ")";
    out << "\n";
  }
}

int ReportUsageError(const std::string& program, const absl::Status& status) {
  std::cerr << program << ": " << status.message() << "\n";
  return kExitUsage;
}

}  // namespace elasticbatch::cli
