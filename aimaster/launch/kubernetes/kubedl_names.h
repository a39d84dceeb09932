// The names KubeDL's ElasticBatchJob controller uses, in one place: the
// KubeDL mode reads and writes exactly these, and a test checks the manifests
// in deploy/ against them so the docs cannot drift from the code. Each one is
// sourced in KUBEDL_CONTRACT.md (section in brackets).
#ifndef ELASTICBATCH_AIMASTER_LAUNCH_KUBERNETES_KUBEDL_NAMES_H_
#define ELASTICBATCH_AIMASTER_LAUNCH_KUBERNETES_KUBEDL_NAMES_H_

#include <array>
#include <string_view>

namespace elasticbatch::kube::kubedl {

// The custom resource [1].
inline constexpr std::string_view kGroup = "inference.kubedl.io";
inline constexpr std::string_view kVersion = "v1alpha1";
inline constexpr std::string_view kApiVersion = "inference.kubedl.io/v1alpha1";
inline constexpr std::string_view kKind = "ElasticBatchJob";
inline constexpr std::string_view kPlural = "elasticbatchjobs";
inline constexpr std::string_view kReplicaSpecsField = "elasticBatchReplicaSpecs";
// Replica types as keys of the spec (AIMaster exactly so) [1].
inline constexpr std::string_view kAimasterReplica = "AIMaster";
inline constexpr std::string_view kWorkerReplica = "Worker";

// Labels on KubeDL's pods [2]; replica-type values are lower case.
inline constexpr std::string_view kGroupNameLabel = "group-name";
inline constexpr std::string_view kJobNameLabel = "job-name";
inline constexpr std::string_view kReplicaTypeLabel = "replica-type";
inline constexpr std::string_view kReplicaIndexLabel = "replica-index";
inline constexpr std::string_view kAimasterLabelValue = "aimaster";
inline constexpr std::string_view kWorkerLabelValue = "worker";

// Job annotations [3], [4].
inline constexpr std::string_view kAimasterGateAnnotation = "aimaster";
inline constexpr std::string_view kAimasterGateReady = "ready";
inline constexpr std::string_view kErrorMonitoringAnnotation =
    "pai.ai/enable-error-monitoring";
inline constexpr std::string_view kRestartPodAnnotation =
    "kubedl.io/immediately-restart-pod";
inline constexpr std::string_view kStartWorkerAnnotation =
    "kubedl.io/immediately-start-worker";
inline constexpr std::string_view kLastFailoverAnnotation =
    "kubedl.io/last-failover-timestamp";
inline constexpr std::string_view kPreemptProtectorFinalizer =
    "kubedl.io/preempt-protector";

// The container KubeDL configures (env, port, exit code) [5.1], [4.5].
inline constexpr std::string_view kContainerName = "elasticbatch";
// The AIMaster's port [5.3].
inline constexpr std::string_view kPortName = "elstcbatch-port";
inline constexpr int kDefaultPort = 23456;
// Env KubeDL gives the AIMaster [5.2] (workers get ElASTICBATCH_CONFIG, see
// elasticbatch/environment_contract.h).
inline constexpr std::string_view kJobNameEnv = "JOB_NAME";
inline constexpr std::string_view kNamespaceEnv = "NAMESPACE";
inline constexpr std::string_view kJobTypeEnv = "JOB_TYPE";
inline constexpr std::string_view kJobTypeValue = "ELASTICBATCH";

// Run policy [6.4], [6.5].
inline constexpr std::string_view kCleanPodPolicyAll = "All";
inline constexpr std::string_view kRestartPolicyExitCode = "ExitCode";
// Pod reasons KubeDL's ExitCode policy retries (matched on pod.status.reason);
// the exit codes are WorkerFleet's RestartPolicy::kExitCode.
inline constexpr std::array<std::string_view, 4> kRetryablePodReasons = {
    "OOMKilled", "Killed", "Evicted", "UnexpectedAdmissionError"};

}  // namespace elasticbatch::kube::kubedl

#endif  // ELASTICBATCH_AIMASTER_LAUNCH_KUBERNETES_KUBEDL_NAMES_H_
