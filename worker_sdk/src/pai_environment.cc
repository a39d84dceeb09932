#include "elasticbatch/pai_environment.h"

#include <cmath>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "elasticbatch/environment_contract.h"
#include "worker_sdk/src/json_value.h"

extern char** environ;

namespace elasticbatch {
namespace {

absl::StatusOr<std::optional<std::string>> ReadOptionalFile(const std::string& path) {
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) return std::optional<std::string>();
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::PermissionDeniedError(absl::StrCat("cannot read ", path));
  std::stringstream ss;
  ss << in.rdbuf();
  return std::optional<std::string>(ss.str());
}

int CountGpus(const std::string& devices) {
  const std::string v = absl::AsciiStrToLower(absl::StripAsciiWhitespace(devices));
  if (v.empty() || v == "none" || v == "void" || v == "no") return 0;
  if (v == "all") {
    int n = 0;
    std::error_code ec;
    for (const auto& entry : std::filesystem::directory_iterator("/dev", ec)) {
      const std::string name = entry.path().filename().string();
      int index = 0;
      if (absl::StartsWith(name, "nvidia") && absl::SimpleAtoi(name.substr(6), &index))
        ++n;
    }
    return n;
  }
  int n = 0;
  for (absl::string_view part : absl::StrSplit(v, ',')) {
    if (!absl::StripAsciiWhitespace(part).empty()) ++n;
  }
  return n;
}

}  // namespace

absl::StatusOr<PaiEnvironment> PaiEnvironment::FromEnvironment() {
  Variables vars;
  for (char** e = environ; *e != nullptr; ++e) {
    absl::string_view entry(*e);
    const size_t eq = entry.find('=');
    if (eq != absl::string_view::npos) {
      vars.emplace(std::string(entry.substr(0, eq)), std::string(entry.substr(eq + 1)));
    }
  }
  return FromVariables(vars);
}

absl::StatusOr<PaiEnvironment> PaiEnvironment::FromVariables(const Variables& variables) {
  PaiEnvironment env;
  auto json_object = [](absl::string_view text, absl::string_view what,
                        std::map<std::string, Value>* out) -> absl::Status {
    absl::StatusOr<google::protobuf::Value> parsed = internal::ParseJson(text, what);
    if (!parsed.ok()) return parsed.status();
    if (!parsed->has_struct_value()) {
      return absl::InvalidArgumentError(absl::StrCat(what, " must be a JSON object"));
    }
    for (const auto& [name, v] : parsed->struct_value().fields()) {
      Value value;
      value.source = std::string(what);
      value.text = internal::JsonScalarText(v);
      switch (v.kind_case()) {
        case google::protobuf::Value::kNumberValue:
          value.kind = Value::Kind::kNumber;
          value.number = v.number_value();
          break;
        case google::protobuf::Value::kBoolValue:
          value.kind = Value::Kind::kBool;
          value.boolean = v.bool_value();
          break;
        case google::protobuf::Value::kStringValue:
          value.kind = Value::Kind::kString;
          break;
        default:
          value.kind = Value::Kind::kOther;
      }
      (*out)[name] = std::move(value);
    }
    return absl::OkStatus();
  };

  for (const auto& [name, value] : variables) {
    if (absl::StartsWith(name, kInputPrefix)) {
      env.inputs_[name.substr(sizeof(kInputPrefix) - 1)] = value;
    } else if (absl::StartsWith(name, kOutputPrefix)) {
      env.outputs_[name.substr(sizeof(kOutputPrefix) - 1)] = value;
    } else if (absl::StartsWith(name, kHyperparameterPrefix)) {
      Value v;
      v.kind = Value::Kind::kString;
      v.text = value;
      v.source = name;
      env.env_hps_[name.substr(sizeof(kHyperparameterPrefix) - 1)] = std::move(v);
    }
  }
  auto get = [&](const char* name) {
    auto it = variables.find(name);
    return it == variables.end() ? std::string() : it->second;
  };
  env.user_args_ = get(kUserArgsVar);
  env.working_dir_ = get(kWorkingDirVar);
  env.config_dir_ = get(kConfigDirVar);
  if (variables.count(kHyperparametersVar) > 0) {
    if (absl::Status s =
            json_object(get(kHyperparametersVar), kHyperparametersVar, &env.json_hps_);
        !s.ok()) {
      return s;
    }
  }
  if (!env.config_dir_.empty()) {
    const std::string hp_path = env.config_dir_ + "/" + kHyperparametersFile;
    absl::StatusOr<std::optional<std::string>> hp = ReadOptionalFile(hp_path);
    if (!hp.ok()) return hp.status();
    if (*hp) {
      if (absl::Status s = json_object(**hp, hp_path, &env.file_hps_); !s.ok()) return s;
    }
    const std::string job_path = env.config_dir_ + "/" + kTrainingJobFile;
    absl::StatusOr<std::optional<std::string>> job = ReadOptionalFile(job_path);
    if (!job.ok()) return job.status();
    if (*job) {
      if (absl::Status s = internal::ParseJson(**job, job_path).status(); !s.ok())
        return s;
      env.training_job_json_ = **job;
    }
  }
  env.gpu_count_ = CountGpus(get(kVisibleDevicesVar));
  return env;
}

std::optional<std::string> PaiEnvironment::Input(absl::string_view channel) const {
  auto it = inputs_.find(EnvName(channel));
  if (it == inputs_.end()) return std::nullopt;
  return it->second;
}

std::optional<std::string> PaiEnvironment::Output(absl::string_view channel) const {
  auto it = outputs_.find(EnvName(channel));
  if (it == outputs_.end()) return std::nullopt;
  return it->second;
}

std::vector<std::string> PaiEnvironment::UserArgList() const {
  return ShellSplit(user_args_);
}

std::optional<PaiEnvironment::Value> PaiEnvironment::Find(absl::string_view name) const {
  const std::string env_name = EnvName(name);
  if (auto it = json_hps_.find(std::string(name)); it != json_hps_.end())
    return it->second;
  for (const auto& [original, v] : json_hps_) {
    if (EnvName(original) == env_name) return v;
  }
  if (auto it = env_hps_.find(env_name); it != env_hps_.end()) return it->second;
  if (auto it = file_hps_.find(std::string(name)); it != file_hps_.end())
    return it->second;
  for (const auto& [original, v] : file_hps_) {
    if (EnvName(original) == env_name) return v;
  }
  return std::nullopt;
}

bool PaiEnvironment::HasHyperparameter(absl::string_view name) const {
  return Find(name).has_value();
}

namespace {

absl::Status Mismatch(absl::string_view name, const std::string& text,
                      const std::string& source, absl::string_view expected) {
  return absl::InvalidArgumentError(absl::StrCat("hyperparameter '", name, "' is \"",
                                                 text, "\" (from ", source, "), not ",
                                                 expected));
}

absl::Status Missing(absl::string_view name) {
  return absl::NotFoundError(
      absl::StrCat("hyperparameter '", name, "' is not set (looked in PAI_HPS, ",
                   HyperparameterVariable(name), " and hyperparameters.json)"));
}

}  // namespace

absl::StatusOr<int64_t> PaiEnvironment::GetInt(absl::string_view name) const {
  std::optional<Value> v = Find(name);
  if (!v) return Missing(name);
  if (v->kind == Value::Kind::kNumber) {
    if (std::floor(v->number) == v->number && std::fabs(v->number) < 9.2e18) {
      return static_cast<int64_t>(v->number);
    }
  } else if (v->kind == Value::Kind::kString) {
    int64_t out = 0;
    if (absl::SimpleAtoi(absl::StripAsciiWhitespace(v->text), &out)) return out;
  }
  return Mismatch(name, v->text, v->source, "an integer");
}

absl::StatusOr<double> PaiEnvironment::GetDouble(absl::string_view name) const {
  std::optional<Value> v = Find(name);
  if (!v) return Missing(name);
  if (v->kind == Value::Kind::kNumber) return v->number;
  if (v->kind == Value::Kind::kString) {
    double out = 0;
    if (absl::SimpleAtod(absl::StripAsciiWhitespace(v->text), &out) &&
        std::isfinite(out)) {
      return out;
    }
  }
  return Mismatch(name, v->text, v->source, "a number");
}

absl::StatusOr<bool> PaiEnvironment::GetBool(absl::string_view name) const {
  std::optional<Value> v = Find(name);
  if (!v) return Missing(name);
  if (v->kind == Value::Kind::kBool) return v->boolean;
  if (v->kind == Value::Kind::kString) {
    const std::string t = absl::AsciiStrToLower(absl::StripAsciiWhitespace(v->text));
    if (t == "true" || t == "1") return true;
    if (t == "false" || t == "0") return false;
  }
  return Mismatch(name, v->text, v->source, "a boolean");
}

absl::StatusOr<std::string> PaiEnvironment::GetString(absl::string_view name) const {
  std::optional<Value> v = Find(name);
  if (!v) return Missing(name);
  if (v->kind == Value::Kind::kOther)
    return Mismatch(name, v->text, v->source, "a scalar");
  return v->text;
}

absl::StatusOr<int64_t> PaiEnvironment::GetInt(absl::string_view name,
                                               int64_t default_value) const {
  if (!HasHyperparameter(name)) return default_value;
  return GetInt(name);
}

absl::StatusOr<double> PaiEnvironment::GetDouble(absl::string_view name,
                                                 double default_value) const {
  if (!HasHyperparameter(name)) return default_value;
  return GetDouble(name);
}

absl::StatusOr<bool> PaiEnvironment::GetBool(absl::string_view name,
                                             bool default_value) const {
  if (!HasHyperparameter(name)) return default_value;
  return GetBool(name);
}

absl::StatusOr<std::string> PaiEnvironment::GetString(
    absl::string_view name, absl::string_view default_value) const {
  if (!HasHyperparameter(name)) return std::string(default_value);
  return GetString(name);
}

}  // namespace elasticbatch
