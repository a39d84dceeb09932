// PaiEnvironment::FromVariables over PAI_HPS, PAI_HPS_<NAME>, PAI_USER_ARGS,
// NVIDIA_VISIBLE_DEVICES and a config dir holding hyperparameters.json and
// training_job.json. The input is those pieces separated by 0xff bytes:
//   PAI_HPS | hyperparameters.json | training_job.json | PAI_USER_ARGS |
//   NVIDIA_VISIBLE_DEVICES | a name to look up | PAI_HPS_<that name>
// Invariants: never crashes; every getter answers OK, NOT_FOUND or
// INVALID_ARGUMENT; GetString is NOT_FOUND exactly when HasHyperparameter is false.
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <fstream>
#include <string>

#include "absl/status/status.h"
#include "elasticbatch/environment_contract.h"
#include "elasticbatch/pai_environment.h"
#include "fuzz/fuzz_check.h"

namespace elasticbatch::fuzz {
namespace {

// A config dir of this process's own, made once.
const std::string& ConfigDir() {
  static const std::string* dir = [] {
    std::string tmpl =
        std::string(std::getenv("TMPDIR") ? std::getenv("TMPDIR") : "/tmp") +
        "/eb-fuzz-pai-XXXXXX";
    FUZZ_CHECK(mkdtemp(tmpl.data()) != nullptr, "mkdtemp %s", tmpl.c_str());
    return new std::string(tmpl);
  }();
  return *dir;
}

// Writes `text` as `name` in the config dir, or removes it when empty.
void PutFile(const char* name, const std::string& text) {
  const std::string path = ConfigDir() + "/" + name;
  if (text.empty()) {
    unlink(path.c_str());
    return;
  }
  std::ofstream(path, std::ios::binary | std::ios::trunc) << text;
}

void CheckAnswer(const absl::Status& s) {
  FUZZ_CHECK(s.ok() || s.code() == absl::StatusCode::kNotFound ||
                 s.code() == absl::StatusCode::kInvalidArgument,
             "%s", s.ToString().c_str());
}

}  // namespace
}  // namespace elasticbatch::fuzz

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace elasticbatch;
  fuzz::FuzzInput in(data, size);
  PaiEnvironment::Variables vars;
  const std::string hps = in.String(4096);
  if (!hps.empty()) vars[kHyperparametersVar] = hps;
  fuzz::PutFile(kHyperparametersFile, in.String(4096));
  fuzz::PutFile(kTrainingJobFile, in.String(4096));
  vars[kConfigDirVar] = fuzz::ConfigDir();
  vars[kUserArgsVar] = in.String(512);
  vars[kVisibleDevicesVar] = in.String(64);
  const std::string name = in.String(64);
  const std::string env_value = in.String(256);
  if (!env_value.empty()) vars[HyperparameterVariable(name)] = env_value;

  absl::StatusOr<PaiEnvironment> env = PaiEnvironment::FromVariables(vars);
  if (!env.ok()) {
    FUZZ_CHECK(env.status().code() == absl::StatusCode::kInvalidArgument, "%s",
               env.status().ToString().c_str());
    return 0;
  }
  (void)env->UserArgList();
  FUZZ_CHECK(env->gpu_count() >= 0, "gpu_count %d", env->gpu_count());
  for (const std::string& n : {name, std::string("epochs"), std::string("lr")}) {
    fuzz::CheckAnswer(env->GetInt(n).status());
    fuzz::CheckAnswer(env->GetDouble(n).status());
    fuzz::CheckAnswer(env->GetBool(n).status());
    absl::StatusOr<std::string> s = env->GetString(n);
    fuzz::CheckAnswer(s.status());
    // Set but structured is INVALID_ARGUMENT ("not a scalar"), not NOT_FOUND.
    FUZZ_CHECK(absl::IsNotFound(s.status()) == !env->HasHyperparameter(n),
               "GetString %s but Has %d", s.status().ToString().c_str(),
               env->HasHyperparameter(n));
    fuzz::CheckAnswer(env->GetInt(n, 7).status());
    fuzz::CheckAnswer(env->GetDouble(n, 0.5).status());
    fuzz::CheckAnswer(env->GetBool(n, true).status());
    fuzz::CheckAnswer(env->GetString(n, "d").status());
  }
  return 0;
}
