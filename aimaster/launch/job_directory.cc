#include "aimaster/launch/job_directory.h"

#include <cmath>
#include <filesystem>

#include "absl/status/status.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "aimaster/core/job_outputs.h"
#include "elasticbatch/environment_contract.h"
#include "nlohmann/json.hpp"

namespace elasticbatch::aimaster {
namespace fs = std::filesystem;
namespace {

enum class HyperparameterType { kInteger, kBoolean, kDecimal, kString };

// The one typing rule of hyperparameter values: integers, decimals and
// true/false keep their type; anything else is a string.
HyperparameterType TypeOfHyperparameter(const std::string& value, int64_t* integer,
                                        double* decimal) {
  if (absl::SimpleAtoi(value, integer)) return HyperparameterType::kInteger;
  if (value == "true" || value == "false") return HyperparameterType::kBoolean;
  if (absl::SimpleAtod(value, decimal) && std::isfinite(*decimal) &&
      value.find_first_not_of("0123456789+-.eE") == std::string::npos) {
    return HyperparameterType::kDecimal;
  }
  return HyperparameterType::kString;
}

absl::Status Failed(const std::string& what, const std::string& path,
                    std::error_code ec) {
  return absl::FailedPreconditionError(absl::StrCat(what, " ", path, ": ", ec.message()));
}

// Points `link` at `target` (absolute), replacing an older link.
absl::Status Link(const fs::path& target, const fs::path& link) {
  std::error_code ec;
  if (fs::is_symlink(fs::symlink_status(link, ec))) fs::remove(link, ec);
  if (fs::exists(link, ec)) {
    return absl::FailedPreconditionError(
        absl::StrCat(link.string(), " exists and is not a link; use a fresh --job-dir"));
  }
  fs::create_symlink(target, link, ec);
  if (ec) return Failed("cannot link", link.string(), ec);
  return absl::OkStatus();
}

std::vector<std::string> Names(
    const std::vector<std::pair<std::string, std::string>>& v) {
  std::vector<std::string> out;
  for (const auto& [name, value] : v) out.push_back(name);
  return out;
}

// The platform's PAI_HPS format: {"epochs": 10, "model": "resnet"}.
std::string HyperparametersJson(
    const std::vector<std::pair<std::string, std::string>>& entries) {
  std::string out = "{";
  for (size_t i = 0; i < entries.size(); ++i) {
    absl::StrAppend(&out, i == 0 ? "" : ", ", JsonQuote(entries[i].first), ": ",
                    HyperparameterJson(entries[i].second));
  }
  return out + "}";
}

// The value HyperparameterJson writes, as a JSON value (same typing rule).
nlohmann::ordered_json HyperparameterValue(const std::string& value) {
  int64_t integer = 0;
  double decimal = 0;
  switch (TypeOfHyperparameter(value, &integer, &decimal)) {
    case HyperparameterType::kInteger:
      return integer;
    case HyperparameterType::kBoolean:
      return value == "true";
    case HyperparameterType::kDecimal:
      return decimal;
    case HyperparameterType::kString:
      break;
  }
  return value;
}

nlohmann::ordered_json StringObject(
    const std::vector<std::pair<std::string, std::string>>& entries) {
  nlohmann::ordered_json out = nlohmann::ordered_json::object();
  for (const auto& [name, value] : entries) out[name] = value;
  return out;
}

// <config>/training_job.json: the job as the platform describes it to its
// workers (one line of JSON).
std::string TrainingJobJson(const JobDirectorySpec& spec) {
  nlohmann::ordered_json hps = nlohmann::ordered_json::object();
  for (const auto& [name, value] : spec.hyperparameters) {
    hps[name] = HyperparameterValue(value);
  }
  nlohmann::ordered_json job;
  job["job_id"] = spec.job_id;
  job["job_type"] = "ElasticBatch";
  job["workers"] = spec.workers;
  job["command"] = spec.command;
  job["inputs"] = StringObject(spec.inputs);
  job["outputs"] = StringObject(spec.outputs);
  job["hyperparameters"] = std::move(hps);
  job["created"] = absl::FormatTime(absl::RFC3339_sec, absl::Now(), absl::UTCTimeZone());
  // Bytes that are not UTF-8 (a file name, say) become U+FFFD, as JsonQuote does.
  return job.dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace) +
         "\n";
}

}  // namespace

std::string HyperparameterJson(const std::string& value) {
  int64_t integer = 0;
  double decimal = 0;
  switch (TypeOfHyperparameter(value, &integer, &decimal)) {
    case HyperparameterType::kInteger:
      return absl::StrCat(integer);
    case HyperparameterType::kBoolean:
    case HyperparameterType::kDecimal:
      return value;
    case HyperparameterType::kString:
      break;
  }
  return JsonQuote(value);
}

absl::StatusOr<JobDirectory> JobDirectory::Create(const JobDirectorySpec& spec) {
  if (absl::Status s = CheckNames(spec); !s.ok()) return s;
  JobDirectory d;
  if (absl::Status s = d.MakeLayout(spec); !s.ok()) return s;
  if (absl::Status s = d.LinkInputs(spec.inputs); !s.ok()) return s;
  if (absl::Status s = d.LinkOutputs(spec.outputs); !s.ok()) return s;
  const std::string hps = HyperparametersJson(spec.hyperparameters);
  d.AddHyperparameterEnvironment(spec.hyperparameters, hps);
  if (absl::Status s = WriteFileAtomically(
          absl::StrCat(d.config_dir_, "/", kHyperparametersFile), hps + "\n");
      !s.ok()) {
    return s;
  }
  if (absl::Status s = WriteFileAtomically(
          absl::StrCat(d.config_dir_, "/", kTrainingJobFile), TrainingJobJson(spec));
      !s.ok()) {
    return s;
  }
  return d;
}

absl::Status JobDirectory::CheckNames(const JobDirectorySpec& spec) {
  if (absl::Status s = CheckEnvNamesDistinct(Names(spec.inputs), "input channel");
      !s.ok()) {
    return s;
  }
  if (absl::Status s = CheckEnvNamesDistinct(Names(spec.outputs), "output channel");
      !s.ok()) {
    return s;
  }
  return CheckEnvNamesDistinct(Names(spec.hyperparameters), "hyperparameter");
}

absl::Status JobDirectory::MakeLayout(const JobDirectorySpec& spec) {
  std::error_code ec;
  const fs::path root = fs::absolute(spec.root, ec);
  root_ = root.string();
  usercode_ = (root / "usercode").string();
  config_dir_ = (root / "input" / "config").string();
  logs_dir_ = (root / "logs").string();
  for (const fs::path& dir : {root / "input" / "config", root / "input" / "data",
                              root / "output", root / "logs"}) {
    fs::create_directories(dir, ec);
    if (ec) return Failed("cannot create", dir.string(), ec);
  }
  const fs::path code = fs::absolute(spec.code_dir.empty() ? "." : spec.code_dir, ec);
  if (!fs::is_directory(code, ec)) {
    return absl::InvalidArgumentError(
        absl::StrCat("code directory ", code.string(), " is not a directory"));
  }
  return Link(code, usercode_);
}

absl::Status JobDirectory::LinkInputs(
    const std::vector<std::pair<std::string, std::string>>& inputs) {
  std::error_code ec;
  for (const auto& [name, path] : inputs) {
    const fs::path source = fs::absolute(path, ec);
    const fs::path channel = fs::path(root_) / "input" / "data" / name;
    std::string value;
    if (fs::is_directory(source, ec)) {
      if (absl::Status s = Link(source, channel); !s.ok()) return s;
      value = channel.string() + "/";
    } else if (fs::exists(source, ec)) {
      fs::create_directories(channel, ec);
      if (ec) return Failed("cannot create", channel.string(), ec);
      const fs::path file = channel / source.filename();
      if (absl::Status s = Link(source, file); !s.ok()) return s;
      value = file.string();
    } else {
      value = path;  // not a local path: a table or URL the worker understands
    }
    common_env_.push_back(absl::StrCat(InputVariable(name), "=", value));
  }
  return absl::OkStatus();
}

absl::Status JobDirectory::LinkOutputs(
    const std::vector<std::pair<std::string, std::string>>& outputs) {
  std::error_code ec;
  for (const auto& [name, path] : outputs) {
    const fs::path target = fs::absolute(path, ec);
    const fs::path channel = fs::path(root_) / "output" / name;
    fs::create_directories(target, ec);
    if (ec) return Failed("cannot create output", target.string(), ec);
    if (fs::weakly_canonical(target, ec) != fs::weakly_canonical(channel, ec)) {
      if (absl::Status s = Link(target, channel); !s.ok()) return s;
    }
    common_env_.push_back(absl::StrCat(OutputVariable(name), "=", channel.string(), "/"));
  }
  return absl::OkStatus();
}

void JobDirectory::AddHyperparameterEnvironment(
    const std::vector<std::pair<std::string, std::string>>& hyperparameters,
    const std::string& hps_json) {
  for (const auto& [name, value] : hyperparameters) {
    common_env_.push_back(absl::StrCat(HyperparameterVariable(name), "=", value));
  }
  common_env_.push_back(absl::StrCat(kUserArgsVar, "=", UserArgs(hyperparameters)));
  common_env_.push_back(absl::StrCat(kHyperparametersVar, "=", hps_json));
  common_env_.push_back(absl::StrCat(kWorkingDirVar, "=", usercode_));
  common_env_.push_back(absl::StrCat(kConfigDirVar, "=", config_dir_));
}

std::string JobDirectory::LogPath(uint32_t index, uint32_t attempt) const {
  return absl::StrFormat("%s/worker-%d-%d.log", logs_dir_, index, attempt);
}

std::vector<std::string> JobDirectory::WorkerEnvironment(
    uint32_t index, uint32_t attempt, const std::string& master_address) const {
  std::vector<std::string> env = common_env_;
  env.push_back(absl::StrCat(kElasticBatchConfigVar,
                             "={\"task\":{\"type\":\"worker\",\"index\":", index,
                             "},\"environment\":\"local\"}"));
  env.push_back(absl::StrCat(kAimasterAddrVar, "=", master_address));
  env.push_back(absl::StrCat(kAttemptVar, "=", attempt));
  return env;
}

}  // namespace elasticbatch::aimaster
