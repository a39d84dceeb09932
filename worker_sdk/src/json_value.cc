#include "json_value.h"

#include <cmath>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/strip.h"
#include "google/protobuf/util/json_util.h"

namespace elasticbatch::internal {

absl::StatusOr<google::protobuf::Value> ParseJson(absl::string_view text,
                                                  absl::string_view what) {
  google::protobuf::Value value;
  const std::string input(absl::StripAsciiWhitespace(text));
  if (input.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(what, " is empty, expected JSON"));
  }
  auto status = google::protobuf::util::JsonStringToMessage(input, &value);
  if (!status.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat(what, " is not valid JSON: ", std::string(status.message())));
  }
  return value;
}

std::string JsonScalarText(const google::protobuf::Value& v) {
  switch (v.kind_case()) {
    case google::protobuf::Value::kStringValue:
      return v.string_value();
    case google::protobuf::Value::kBoolValue:
      return v.bool_value() ? "true" : "false";
    case google::protobuf::Value::kNumberValue: {
      const double d = v.number_value();
      if (std::floor(d) == d && std::fabs(d) < 9.007199254740992e15) {
        return absl::StrCat(static_cast<int64_t>(d));
      }
      return absl::StrFormat("%.17g", d);
    }
    case google::protobuf::Value::kNullValue:
      return "null";
    default:
      return "(structure)";
  }
}

}  // namespace elasticbatch::internal
