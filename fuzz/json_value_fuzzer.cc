// The SDK's JSON parser (PAI_HPS, hyperparameters.json, training_job.json,
// ELASTICBATCH_CONFIG all go through it). Invariants: never crashes; errors
// are INVALID_ARGUMENT on one line; a parsed scalar's JSON spelling
// (JsonScalarText) parses back to the same value.
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "fuzz/fuzz_check.h"
#include "google/protobuf/struct.pb.h"
#include "worker_sdk/src/json_value.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using google::protobuf::Value;
  const absl::string_view text(reinterpret_cast<const char*>(data), size);
  absl::StatusOr<Value> value = elasticbatch::internal::ParseJson(text, "input");
  if (!value.ok()) {
    FUZZ_CHECK(value.status().code() == absl::StatusCode::kInvalidArgument, "%s",
               value.status().ToString().c_str());
    FUZZ_CHECK(value.status().message().find('\n') == absl::string_view::npos,
               "two-line error: %s", value.status().ToString().c_str());
    return 0;
  }
  const std::string spelled = elasticbatch::internal::JsonScalarText(*value);
  if (value->kind_case() == Value::kNumberValue) {
    absl::StatusOr<Value> again = elasticbatch::internal::ParseJson(spelled, "again");
    FUZZ_CHECK(again.ok() && again->kind_case() == Value::kNumberValue, "'%s': %s",
               spelled.c_str(), again.status().ToString().c_str());
    FUZZ_CHECK(again->number_value() == value->number_value(),
               "'%s' reads %.17g not %.17g", spelled.c_str(), again->number_value(),
               value->number_value());
  } else if (value->kind_case() == Value::kBoolValue) {
    FUZZ_CHECK(spelled == "true" || spelled == "false", "'%s'", spelled.c_str());
  }
  // Structures are walked as the getters do.
  if (value->kind_case() == Value::kStructValue) {
    for (const auto& [name, v] : value->struct_value().fields()) {
      (void)elasticbatch::internal::JsonScalarText(v);
    }
  }
  return 0;
}
