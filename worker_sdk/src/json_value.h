// Internal: JSON text to google::protobuf::Value, with one-line errors.
#ifndef ELASTICBATCH_WORKER_SDK_SRC_JSON_VALUE_H_
#define ELASTICBATCH_WORKER_SDK_SRC_JSON_VALUE_H_

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "google/protobuf/struct.pb.h"

namespace elasticbatch::internal {

// INVALID_ARGUMENT "<what> is not valid JSON: <why>".
absl::StatusOr<google::protobuf::Value> ParseJson(absl::string_view text,
                                                  absl::string_view what);

// The JSON spelling of a scalar value.
std::string JsonScalarText(const google::protobuf::Value& v);

}  // namespace elasticbatch::internal

#endif  // ELASTICBATCH_WORKER_SDK_SRC_JSON_VALUE_H_
