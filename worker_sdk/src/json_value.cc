#include "worker_sdk/src/json_value.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/strip.h"
#include "google/protobuf/util/json_util.h"

namespace elasticbatch::internal {
namespace {

constexpr int kMaxDepth = 64;

}  // namespace

absl::StatusOr<google::protobuf::Value> ParseJson(absl::string_view text,
                                                  absl::string_view what) {
  google::protobuf::Value value;
  const std::string input(absl::StripAsciiWhitespace(text));
  if (input.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(what, " is empty, expected JSON"));
  }
  // The parser's cost grows steeply with nesting; configuration never nests deep.
  int depth = 0, deepest = 0;
  bool in_string = false;
  for (size_t i = 0; i < input.size(); ++i) {
    const char c = input[i];
    if (in_string) {
      if (c == '\\')
        ++i;
      else if (c == '"')
        in_string = false;
    } else if (c == '"') {
      in_string = true;
    } else if (c == '{' || c == '[') {
      deepest = std::max(deepest, ++depth);
    } else if (c == '}' || c == ']') {
      --depth;
    }
  }
  if (deepest > kMaxDepth) {
    return absl::InvalidArgumentError(
        absl::StrCat(what, " nests deeper than ", kMaxDepth, " levels"));
  }
  auto status = google::protobuf::util::JsonStringToMessage(input, &value);
  if (!status.ok()) {
    // protobuf adds a second line with a caret; keep errors on one line.
    std::string why(status.message());
    why = why.substr(0, why.find('\n'));
    return absl::InvalidArgumentError(absl::StrCat(what, " is not valid JSON: ", why));
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
      // The shortest spelling that reads back as the same number (0.1, not
      // 0.10000000000000001).
      for (int precision = 1; precision <= 17; ++precision) {
        std::string text = absl::StrFormat("%.*g", precision, d);
        if (std::strtod(text.c_str(), nullptr) == d) return text;
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
