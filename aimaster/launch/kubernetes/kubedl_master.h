// The AIMaster's side of KubeDL's ElasticBatchJob (KubeDL mode of `aimaster
// serve`): once the master listens, it gives workers a stable address — the
// Service `<job>-aimaster`, which KubeDL does not create — and opens KubeDL's
// gate (`aimaster: "ready"`), without which KubeDL creates no worker pod.
// What KubeDL does and expects is recorded in KUBEDL_CONTRACT.md (§3, §5.4).
//
//   absl::StatusOr<std::optional<KubeDLJob>> job = KubeDLJobFromEnvironment(getenv);
//   absl::StatusOr<KubeDLAnnouncement> a = AnnounceMaster(client, **job, port);
#ifndef ELASTICBATCH_AIMASTER_LAUNCH_KUBERNETES_KUBEDL_MASTER_H_
#define ELASTICBATCH_AIMASTER_LAUNCH_KUBERNETES_KUBEDL_MASTER_H_

#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "aimaster/launch/kubernetes/kube_client.h"
#include "aimaster/launch/kubernetes/kubedl_names.h"

namespace elasticbatch::kube {

inline const ResourceKind kElasticBatchJobs{std::string(kubedl::kGroup),
                                            std::string(kubedl::kVersion),
                                            std::string(kubedl::kPlural)};

// Every API call of KubeDL mode so far, as Role rules: resource -> verbs,
// sorted (deploy/elasticbatchjob.yaml's Role grants exactly these; a test
// checks it). Keys are "GROUP/RESOURCE", "" for the core group.
inline const std::map<std::string, std::vector<std::string>> kKubeDLMasterRbacRules = {
    {"/services", {"create", "get", "patch"}},
    {"inference.kubedl.io/elasticbatchjobs", {"get", "patch"}},
};

// The job this master serves, from what KubeDL sets on the AIMaster pod.
struct KubeDLJob {
  std::string name = "";
  std::string ns = "";
};

// JOB_TYPE=ELASTICBATCH with JOB_NAME and NAMESPACE: the job; no JOB_TYPE (or
// another one): nullopt. INVALID_ARGUMENT when JOB_TYPE says ELASTICBATCH
// but a name is missing or not a valid object name.
absl::StatusOr<std::optional<KubeDLJob>> KubeDLJobFromEnvironment(
    const std::function<const char*(const char*)>& getenv);

// "<job>-aimaster".
std::string MasterServiceName(const std::string& job);

struct KubeDLAnnouncement {
  std::string job_uid = "";
  // What was done to the Service: "created", "adopted" (ours, updated) or
  // "kept" (ours, already right).
  std::string service = "";
  // False when the job already carried the gate.
  bool gate_opened = false;
};

// Reads the job, creates or adopts the Service `<job>-aimaster` (selecting the
// AIMaster pod by KubeDL's labels, port 23456 named elstcbatch-port to
// `target_port`, a non-controller ownerReference to the job, and none of the
// labels that would make KubeDL adopt it), then merge-patches
// `aimaster: "ready"` onto the job. FAILED_PRECONDITION when a Service of that
// name exists that this job's master did not make; the client's errors
// otherwise (a missing Role rule names itself).
absl::StatusOr<KubeDLAnnouncement> AnnounceMaster(KubeClient* client,
                                                  const KubeDLJob& job, int target_port);

}  // namespace elasticbatch::kube

#endif  // ELASTICBATCH_AIMASTER_LAUNCH_KUBERNETES_KUBEDL_MASTER_H_
