#include "elasticbatch/environment_contract.h"

#include <map>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"

namespace elasticbatch {

std::string EnvName(absl::string_view name) {
  std::string out(name);
  for (char& c : out) {
    c = absl::ascii_toupper(static_cast<unsigned char>(c));
    if (!absl::ascii_isupper(static_cast<unsigned char>(c)) &&
        !absl::ascii_isdigit(static_cast<unsigned char>(c)) && c != '_') {
      c = '_';
    }
  }
  return out;
}

absl::Status CheckEnvNamesDistinct(const std::vector<std::string>& names,
                                   absl::string_view what) {
  std::map<std::string, std::string> seen;
  for (const std::string& name : names) {
    auto [it, inserted] = seen.emplace(EnvName(name), name);
    if (!inserted) {
      return absl::InvalidArgumentError(
          absl::StrCat(what, " names '", it->second, "' and '", name, "' both become ",
                       it->first, " in the environment; rename one"));
    }
  }
  return absl::OkStatus();
}

}  // namespace elasticbatch
