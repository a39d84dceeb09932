#include "elasticbatch/task_info.h"

#include <cmath>
#include <cstdlib>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "elasticbatch/environment_contract.h"
#include "worker_sdk/src/json_value.h"

namespace elasticbatch {

absl::StatusOr<TaskInfo> TaskInfo::FromEnvironment() {
  for (const char* var : {kElasticBatchConfigVar, kKubeDlElasticBatchConfigVar}) {
    if (const char* value = std::getenv(var); value != nullptr) return Parse(value, var);
  }
  return absl::NotFoundError(
      absl::StrCat(kElasticBatchConfigVar, " (or KubeDL's ", kKubeDlElasticBatchConfigVar,
                   ") is not set: not running as an ElasticBatch task"));
}

absl::StatusOr<TaskInfo> TaskInfo::Parse(absl::string_view json,
                                         absl::string_view variable) {
  absl::StatusOr<google::protobuf::Value> parsed = internal::ParseJson(json, variable);
  if (!parsed.ok()) return parsed.status();
  auto error = [&](absl::string_view problem) {
    return absl::InvalidArgumentError(absl::StrCat(variable, ": ", problem));
  };
  if (!parsed->has_struct_value()) return error("expected a JSON object");
  const auto& top = parsed->struct_value().fields();
  auto task_it = top.find("task");
  if (task_it == top.end()) return error("missing \"task\"");
  if (!task_it->second.has_struct_value()) return error("\"task\" must be an object");
  const auto& task = task_it->second.struct_value().fields();

  TaskInfo info;
  auto type_it = task.find("type");
  if (type_it == task.end()) return error("missing \"task.type\"");
  if (type_it->second.kind_case() != google::protobuf::Value::kStringValue) {
    return error("\"task.type\" must be a string");
  }
  info.type = absl::AsciiStrToLower(type_it->second.string_value());
  if (info.type != "worker" && info.type != "aimaster") {
    return error(absl::StrCat("unknown task type \"", type_it->second.string_value(),
                              "\" (expected \"worker\" or \"aimaster\")"));
  }
  auto index_it = task.find("index");
  if (index_it == task.end()) return error("missing \"task.index\"");
  if (index_it->second.kind_case() != google::protobuf::Value::kNumberValue) {
    return error("\"task.index\" must be a number");
  }
  const double index = index_it->second.number_value();
  if (std::floor(index) != index) {
    return error(absl::StrCat("\"task.index\" must be an integer, not ", index));
  }
  if (index < 0)
    return error(absl::StrCat("\"task.index\" must not be negative (", index, ")"));
  if (index > 4294967295.0) return error("\"task.index\" is too large");
  info.index = static_cast<uint32_t>(index);
  if (auto env_it = top.find("environment"); env_it != top.end()) {
    if (env_it->second.kind_case() != google::protobuf::Value::kStringValue) {
      return error("\"environment\" must be a string");
    }
    info.environment = env_it->second.string_value();
  }
  return info;
}

}  // namespace elasticbatch
