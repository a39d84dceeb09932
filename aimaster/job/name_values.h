// NAME=VALUE lists as the command line gives them (--hp, --input, --output):
// the one parser, so that every such flag splits, refuses and names its
// errors alike.
//
//   NameValueSyntax hp;
//   hp.flag = "hp";
//   absl::StatusOr<NameValues> hps = ParseNameValues({"epochs=10"}, hp);
//
// Thread-compatible (plain functions).
#ifndef ELASTICBATCH_AIMASTER_JOB_NAME_VALUES_H_
#define ELASTICBATCH_AIMASTER_JOB_NAME_VALUES_H_

#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace elasticbatch::aimaster {

// (name, value) in the order given.
using NameValues = std::vector<std::pair<std::string, std::string>>;

struct NameValueSyntax {
  // The flag's name in messages ("--<flag> ..."). Required.
  std::string flag;
  // What the value is, in the usage message ("NAME=<value_word>"). Default: VALUE.
  std::string value_word = "VALUE";
  // Whether "NAME=" (an empty value) is allowed. Default: true.
  bool allow_empty_value = true;
  // What a name names, in the duplicate message ("names <what>'x' twice").
  // Default: nothing.
  std::string what;
  // Checks each name (before duplicates are looked for); its error is
  // returned as is. Default: every name is fine.
  std::function<absl::Status(const std::string& name)> check_name;
};

// INVALID_ARGUMENT naming the flag: an entry without '=' or with an empty
// name (or value, unless allowed), a name given twice, or check_name's error.
absl::StatusOr<NameValues> ParseNameValues(const std::vector<std::string>& entries,
                                           const NameValueSyntax& syntax);

}  // namespace elasticbatch::aimaster

#endif  // ELASTICBATCH_AIMASTER_JOB_NAME_VALUES_H_
