#include "aimaster/launch/job_directory.h"

#include <filesystem>

#include "absl/status/status.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "aimaster/core/job_outputs.h"
#include "elasticbatch/environment_contract.h"

namespace elasticbatch::aimaster {
namespace fs = std::filesystem;
namespace {

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

std::string JsonObject(const std::vector<std::pair<std::string, std::string>>& entries,
                       bool typed) {
  std::string out = "{";
  for (size_t i = 0; i < entries.size(); ++i) {
    absl::StrAppend(
        &out, i == 0 ? "" : ", ", JsonQuote(entries[i].first), ": ",
        typed ? HyperparameterJson(entries[i].second) : JsonQuote(entries[i].second));
  }
  return out + "}";
}

}  // namespace

std::string HyperparameterJson(const std::string& value) {
  int64_t i;
  double d;
  if (absl::SimpleAtoi(value, &i)) return absl::StrCat(i);
  if (value == "true" || value == "false") return value;
  if (absl::SimpleAtod(value, &d) && std::isfinite(d) &&
      value.find_first_not_of("0123456789+-.eE") == std::string::npos) {
    return value;
  }
  return JsonQuote(value);
}

absl::StatusOr<JobDirectory> JobDirectory::Create(const JobDirectorySpec& spec) {
  if (absl::Status s = CheckEnvNamesDistinct(Names(spec.inputs), "input channel");
      !s.ok()) {
    return s;
  }
  if (absl::Status s = CheckEnvNamesDistinct(Names(spec.outputs), "output channel");
      !s.ok()) {
    return s;
  }
  if (absl::Status s =
          CheckEnvNamesDistinct(Names(spec.hyperparameters), "hyperparameter");
      !s.ok()) {
    return s;
  }
  JobDirectory d;
  std::error_code ec;
  const fs::path root = fs::absolute(spec.root, ec);
  d.root_ = root.string();
  d.usercode_ = (root / "usercode").string();
  d.config_dir_ = (root / "input" / "config").string();
  d.logs_dir_ = (root / "logs").string();
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
  if (absl::Status s = Link(code, d.usercode_); !s.ok()) return s;

  std::vector<std::string>& env = d.common_env_;
  for (const auto& [name, path] : spec.inputs) {
    const fs::path source = fs::absolute(path, ec);
    const fs::path channel = root / "input" / "data" / name;
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
    env.push_back(absl::StrCat(InputVariable(name), "=", value));
  }
  for (const auto& [name, path] : spec.outputs) {
    const fs::path target = fs::absolute(path, ec);
    const fs::path channel = root / "output" / name;
    fs::create_directories(target, ec);
    if (ec) return Failed("cannot create output", target.string(), ec);
    if (fs::weakly_canonical(target, ec) != fs::weakly_canonical(channel, ec)) {
      if (absl::Status s = Link(target, channel); !s.ok()) return s;
    }
    env.push_back(absl::StrCat(OutputVariable(name), "=", channel.string(), "/"));
  }
  const std::string user_args = UserArgs(spec.hyperparameters);
  for (const auto& [name, value] : spec.hyperparameters) {
    env.push_back(absl::StrCat(HyperparameterVariable(name), "=", value));
  }
  const std::string hps = JsonObject(spec.hyperparameters, /*typed=*/true);
  env.push_back(absl::StrCat(kUserArgsVar, "=", user_args));
  env.push_back(absl::StrCat(kHyperparametersVar, "=", hps));
  env.push_back(absl::StrCat(kWorkingDirVar, "=", d.usercode_));
  env.push_back(absl::StrCat(kConfigDirVar, "=", d.config_dir_));

  if (absl::Status s =
          WriteFileAtomically(d.config_dir_ + "/" + kHyperparametersFile, hps + "\n");
      !s.ok()) {
    return s;
  }
  const std::string job = absl::StrCat(
      "{\"job_id\": ", JsonQuote(spec.job_id), ", \"job_type\": \"ElasticBatch\", ",
      "\"workers\": ", spec.workers, ", \"command\": ", JsonQuote(spec.command),
      ", \"inputs\": ", JsonObject(spec.inputs, false),
      ", \"outputs\": ", JsonObject(spec.outputs, false), ", \"hyperparameters\": ", hps,
      ", \"created\": ",
      JsonQuote(absl::FormatTime(absl::RFC3339_sec, absl::Now(), absl::UTCTimeZone())),
      "}\n");
  if (absl::Status s = WriteFileAtomically(d.config_dir_ + "/" + kTrainingJobFile, job);
      !s.ok()) {
    return s;
  }
  return d;
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
