// Worker pods from a user's pod template: the template file is read once
// (YAML or JSON), and each worker attempt becomes a Pod object built from it
// with our name, labels, environment contract and owner.
//
//   absl::StatusOr<nlohmann::json> tmpl = LoadPodTemplate("worker.yaml");
//   WorkerPod pod{.name = "j-worker-3-0", .job_name = "j", .index = 3, ...};
//   absl::StatusOr<nlohmann::json> object = BuildWorkerPod(*tmpl, pod);
//
// The template may be a Pod, a PodTemplate (its `template`), or a bare
// {metadata, spec}. The worker runs in the container named `elasticbatch`, or
// the first container when none has that name (KubeDL's rule).
#ifndef ELASTICBATCH_AIMASTER_LAUNCH_KUBERNETES_POD_TEMPLATE_H_
#define ELASTICBATCH_AIMASTER_LAUNCH_KUBERNETES_POD_TEMPLATE_H_

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "nlohmann/json.hpp"
#include "yaml-cpp/yaml.h"

namespace elasticbatch::kube {

// Our labels on every pod the master creates (never KubeDL's: KubeDL adopts
// and deletes pods carrying its group-name + job-name labels).
inline constexpr char kJobLabel[] = "elasticbatch.io/job-name";
inline constexpr char kInstanceLabel[] = "elasticbatch.io/instance";
inline constexpr char kAttemptLabel[] = "elasticbatch.io/attempt";
inline constexpr char kRoleLabel[] = "elasticbatch.io/role";

// A plain YAML document as JSON: quoted scalars stay strings; plain ones
// become null, booleans, integers or decimals when they read as such (YAML
// 1.2 core schema). INVALID_ARGUMENT past 64 levels of nesting.
absl::StatusOr<nlohmann::json> YamlToJson(const YAML::Node& node);

// Reads and checks a pod template file: one document with spec.containers, a
// non-empty list of named containers. INVALID_ARGUMENT (naming the file and
// the field) for anything else.
absl::StatusOr<nlohmann::json> LoadPodTemplate(const std::string& path);

// Checks a parsed template as LoadPodTemplate does and returns its pod part
// ({metadata, spec}). `what` names it in errors.
absl::StatusOr<nlohmann::json> PodPartOfTemplate(const nlohmann::json& document,
                                                 const std::string& what);

// The index of the worker's container in spec.containers.
size_t WorkerContainerIndex(const nlohmann::json& pod);

// A (non-controller) owner of the pods: the master's own pod, say.
struct OwnerReference {
  std::string api_version = "v1";
  std::string kind = "Pod";
  std::string name = "";
  std::string uid = "";
};

struct WorkerPod {
  std::string name = "";
  std::string ns = "";
  std::string job_name = "";
  uint32_t index = 0;
  uint32_t attempt = 0;
  // Extra labels (elasticbatch.io/role, say).
  std::map<std::string, std::string> labels = {};
  // "NAME=VALUE" entries set in the worker's container, replacing any of the
  // same name the template has.
  std::vector<std::string> env = {};
  // NAME -> key: variables read from the Secret `secret_name` (a token is
  // never written into a pod spec).
  std::map<std::string, std::string> secret_env = {};
  std::string secret_name = "";
  // When set, the container runs `sh -c command` instead of its own command.
  std::string command = "";
  // When set, the container's working directory.
  std::string working_dir = "";
  std::optional<OwnerReference> owner = std::nullopt;
  // Between SIGTERM and SIGKILL when the pod is deleted.
  std::optional<int64_t> termination_grace_seconds = std::nullopt;
};

// The Pod object for `pod` from the template's pod part: our name, namespace,
// labels and owner added to the template's, restartPolicy Never (restarts are
// the master's decision), the environment set in the worker's container.
nlohmann::json BuildWorkerPod(const nlohmann::json& pod_part, const WorkerPod& pod);

// What a pod's status says about its end, once it has ended: the worker
// container's exit code, or for a pod that failed without one (evicted,
// rejected at admission) 137, as if killed; nullopt while it has not ended.
std::optional<int> PodExitCode(const nlohmann::json& pod);

// The worker container's termination reason ("OOMKilled", "Error") or the
// pod's ("Evicted"); empty when there is none.
std::string PodEndReason(const nlohmann::json& pod);

}  // namespace elasticbatch::kube

#endif  // ELASTICBATCH_AIMASTER_LAUNCH_KUBERNETES_POD_TEMPLATE_H_
