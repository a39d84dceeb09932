#include "aimaster/launch/kubernetes/kubedl_master.h"

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "aimaster/launch/kubernetes/pod_template.h"

namespace elasticbatch::kube {
namespace {

using nlohmann::json;

// A DNS-1123 subdomain, as Kubernetes object names are.
bool ValidObjectName(const std::string& name) {
  if (name.empty() || name.size() > 253) return false;
  for (char c : name) {
    if (!(absl::ascii_islower(static_cast<unsigned char>(c)) ||
          absl::ascii_isdigit(static_cast<unsigned char>(c)) || c == '-' || c == '.')) {
      return false;
    }
  }
  return absl::ascii_isalnum(static_cast<unsigned char>(name.front())) &&
         absl::ascii_isalnum(static_cast<unsigned char>(name.back()));
}

// object[key], or null when `object` is not an object or has no such key:
// answers from the API server are read without trusting their shape.
const json& At(const json& object, const std::string& key) {
  static const json kNull = nullptr;
  if (!object.is_object()) return kNull;
  const auto it = object.find(key);
  return it == object.end() ? kNull : *it;
}

std::string Str(const json& value) {
  return value.is_string() ? value.get<std::string>() : "";
}

json OwnerReferences(const KubeDLJob& job, const std::string& uid) {
  return json::array({{{"apiVersion", std::string(kubedl::kApiVersion)},
                       {"kind", std::string(kubedl::kKind)},
                       {"name", job.name},
                       {"uid", uid},
                       {"controller", false},
                       {"blockOwnerDeletion", false}}});
}

json ServiceSpec(const KubeDLJob& job, int target_port) {
  return {{"selector",
           {{std::string(kubedl::kGroupNameLabel), std::string(kubedl::kGroup)},
            {std::string(kubedl::kJobNameLabel), job.name},
            {std::string(kubedl::kReplicaTypeLabel),
             std::string(kubedl::kAimasterLabelValue)}}},
          {"ports", json::array({{{"name", std::string(kubedl::kPortName)},
                                  {"protocol", "TCP"},
                                  {"port", kubedl::kDefaultPort},
                                  {"targetPort", target_port}}})}};
}

}  // namespace

absl::StatusOr<std::optional<KubeDLJob>> KubeDLJobFromEnvironment(
    const std::function<const char*(const char*)>& getenv) {
  const auto get = [&](std::string_view name) {
    const char* v = getenv(std::string(name).c_str());
    return v == nullptr ? std::string() : std::string(v);
  };
  if (get(kubedl::kJobTypeEnv) != kubedl::kJobTypeValue) return std::nullopt;
  KubeDLJob job{get(kubedl::kJobNameEnv), get(kubedl::kNamespaceEnv)};
  for (const auto& [var, value] :
       {std::pair<std::string_view, const std::string*>{kubedl::kJobNameEnv, &job.name},
        {kubedl::kNamespaceEnv, &job.ns}}) {
    if (!ValidObjectName(*value)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "JOB_TYPE=ELASTICBATCH (KubeDL) needs ", std::string(var), " set to the job's ",
          var == kubedl::kJobNameEnv ? "name" : "namespace", ", not '", *value, "'"));
    }
  }
  return job;
}

std::string MasterServiceName(const std::string& job) { return job + "-aimaster"; }

absl::StatusOr<KubeDLAnnouncement> AnnounceMaster(KubeClient* client,
                                                  const KubeDLJob& job, int target_port) {
  KubeDLAnnouncement out;
  absl::StatusOr<json> object = client->Get(kElasticBatchJobs, job.ns, job.name);
  if (!object.ok()) return object.status();
  out.job_uid = Str(At(At(*object, "metadata"), "uid"));
  if (out.job_uid.empty()) {
    return absl::FailedPreconditionError(
        absl::StrCat("the ElasticBatchJob ", job.name, " has no uid"));
  }

  const std::string service_name = MasterServiceName(job.name);
  const json labels = {{kJobLabel, job.name}, {kRoleLabel, "aimaster"}};
  const json wanted_spec = ServiceSpec(job, target_port);
  const json owners = OwnerReferences(job, out.job_uid);
  absl::StatusOr<json> existing = client->Get(kServices, job.ns, service_name);
  if (absl::IsNotFound(existing.status())) {
    const json service = {
        {"apiVersion", "v1"},
        {"kind", "Service"},
        {"metadata",
         {{"name", service_name}, {"labels", labels}, {"ownerReferences", owners}}},
        {"spec", wanted_spec}};
    absl::StatusOr<json> created = client->Create(kServices, job.ns, service);
    if (absl::IsAlreadyExists(created.status())) {
      existing = client->Get(kServices, job.ns, service_name);  // raced: adopt below
    } else if (!created.ok()) {
      return created.status();
    } else {
      out.service = "created";
    }
  }
  if (out.service.empty()) {
    if (!existing.ok()) return existing.status();
    const json& meta = At(*existing, "metadata");
    if (Str(At(At(meta, "labels"), kJobLabel)) != job.name) {
      return absl::FailedPreconditionError(absl::StrCat(
          "Service ", service_name, " in namespace ", job.ns,
          " exists and was not made by this job's master (no label ", kJobLabel, "=",
          job.name, "): delete it, the master creates its own"));
    }
    const json& spec = At(*existing, "spec");
    const json& ports = At(spec, "ports");
    const bool same = At(spec, "selector") == wanted_spec["selector"] &&
                      ports.is_array() && ports.size() == 1 &&
                      At(ports[0], "targetPort") == target_port &&
                      At(ports[0], "name") == kubedl::kPortName &&
                      At(meta, "ownerReferences") == owners;
    if (same) {
      out.service = "kept";
    } else {
      absl::StatusOr<json> patched = client->MergePatch(
          kServices, job.ns, service_name,
          {{"metadata", {{"ownerReferences", owners}}}, {"spec", wanted_spec}});
      if (!patched.ok()) return patched.status();
      out.service = "adopted";
    }
  }

  const std::string gate = std::string(kubedl::kAimasterGateAnnotation);
  if (Str(At(At(At(*object, "metadata"), "annotations"), gate)) !=
      kubedl::kAimasterGateReady) {
    absl::StatusOr<json> patched = client->MergePatch(
        kElasticBatchJobs, job.ns, job.name,
        {{"metadata",
          {{"annotations", {{gate, std::string(kubedl::kAimasterGateReady)}}}}}});
    if (!patched.ok()) return patched.status();
    out.gate_opened = true;
  }
  return out;
}

}  // namespace elasticbatch::kube
