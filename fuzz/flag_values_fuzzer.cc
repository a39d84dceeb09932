// Flag values: byte sizes (--shard-bytes), durations (--lease-timeout and
// the like, absl's parser), and NAME=PATH / NAME=VALUE lists (--input,
// --output, --hp). The input is a selector byte, then the text; for lists,
// entries are separated by 0xff bytes.
// Invariants: never crashes; a parsed byte size unparses to text that parses
// back to the same size; a parsed list has a non-empty name in every entry,
// no name twice, and name=value rejoins to the entry given.
#include <cstddef>
#include <cstdint>
#include <set>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "aimaster/job/name_values.h"
#include "common/cli/flag_types.h"
#include "fuzz/fuzz_check.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace elasticbatch;
  fuzz::FuzzInput in(data, size);
  const uint8_t selector = in.Byte();
  switch (selector % 3) {
    case 0: {
      const std::string text(in.Rest());
      cli::ByteSize size_value;
      std::string error;
      if (cli::AbslParseFlag(text, &size_value, &error)) {
        const std::string spelled = cli::AbslUnparseFlag(size_value);
        cli::ByteSize again;
        FUZZ_CHECK(cli::AbslParseFlag(spelled, &again, &error), "'%s' -> '%s': %s",
                   text.c_str(), spelled.c_str(), error.c_str());
        FUZZ_CHECK(again.bytes == size_value.bytes, "'%s' is %llu, '%s' is %llu",
                   text.c_str(), static_cast<unsigned long long>(size_value.bytes),
                   spelled.c_str(), static_cast<unsigned long long>(again.bytes));
      } else {
        FUZZ_CHECK(!error.empty(), "no error for '%s'", text.c_str());
      }
      break;
    }
    case 1: {
      const std::string text(in.Rest());
      absl::Duration d;
      std::string error;
      if (absl::AbslParseFlag(text, &d, &error)) (void)absl::AbslUnparseFlag(d);
      break;
    }
    default: {
      std::vector<std::string> entries;
      while (!in.empty() && entries.size() < 64) entries.push_back(in.String(256));
      aimaster::NameValueSyntax syntax;
      syntax.flag = "input";
      syntax.allow_empty_value = selector & 8;
      if (selector & 16) {
        syntax.check_name = [](const std::string& name) {
          return name.find('/') == std::string::npos
                     ? absl::OkStatus()
                     : absl::InvalidArgumentError("a name has no '/'");
        };
      }
      absl::StatusOr<aimaster::NameValues> parsed = ParseNameValues(entries, syntax);
      if (!parsed.ok()) {
        FUZZ_CHECK(parsed.status().code() == absl::StatusCode::kInvalidArgument, "%s",
                   parsed.status().ToString().c_str());
        break;
      }
      FUZZ_CHECK(parsed->size() == entries.size(), "%zu of %zu entries", parsed->size(),
                 entries.size());
      std::set<std::string> names;
      for (size_t i = 0; i < parsed->size(); ++i) {
        const auto& [name, value] = (*parsed)[i];
        FUZZ_CHECK(!name.empty(), "empty name in '%s'", entries[i].c_str());
        FUZZ_CHECK(syntax.allow_empty_value || !value.empty(), "empty value in '%s'",
                   entries[i].c_str());
        FUZZ_CHECK(names.insert(name).second, "'%s' twice", name.c_str());
        FUZZ_CHECK(absl::StrCat(name, "=", value) == entries[i],
                   "'%s' split as '%s'='%s'", entries[i].c_str(), name.c_str(),
                   value.c_str());
      }
    }
  }
  return 0;
}
