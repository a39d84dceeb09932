#include "aimaster/job/name_values.h"

#include "absl/strings/str_cat.h"

namespace elasticbatch::aimaster {

absl::StatusOr<NameValues> ParseNameValues(const std::vector<std::string>& entries,
                                           const NameValueSyntax& syntax) {
  NameValues out;
  for (const std::string& entry : entries) {
    const size_t eq = entry.find('=');
    if (eq == std::string::npos || eq == 0 ||
        (!syntax.allow_empty_value && eq + 1 == entry.size())) {
      return absl::InvalidArgumentError(absl::StrCat(
          "--", syntax.flag, " '", entry, "' must be NAME=", syntax.value_word));
    }
    std::string name = entry.substr(0, eq);
    if (syntax.check_name) {
      if (absl::Status s = syntax.check_name(name); !s.ok()) return s;
    }
    for (const auto& [seen, value] : out) {
      if (seen == name) {
        return absl::InvalidArgumentError(absl::StrCat(
            "--", syntax.flag, " names ", syntax.what, "'", name, "' twice"));
      }
    }
    out.emplace_back(std::move(name), entry.substr(eq + 1));
  }
  return out;
}

}  // namespace elasticbatch::aimaster
