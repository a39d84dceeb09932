#include "aimaster/launch/kubernetes/pod_template.h"

#include <fstream>
#include <set>
#include <sstream>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace elasticbatch::kube {
namespace {

using nlohmann::json;

constexpr int kMaxDepth = 64;
// A template is a small hand-written file; anything bigger is a mistake.
constexpr std::streamsize kMaxTemplateBytes = 1 << 20;

bool IsDecimal(const std::string& s) {
  // [-+]? ( digits [. digits*] | . digits ) ( [eE] [-+]? digits )?
  size_t i = 0;
  if (i < s.size() && (s[i] == '-' || s[i] == '+')) ++i;
  size_t digits = 0;
  while (i < s.size() && absl::ascii_isdigit(static_cast<unsigned char>(s[i])))
    ++i, ++digits;
  if (i < s.size() && s[i] == '.') {
    ++i;
    while (i < s.size() && absl::ascii_isdigit(static_cast<unsigned char>(s[i]))) {
      ++i, ++digits;
    }
  }
  if (digits == 0) return false;
  if (i < s.size() && (s[i] == 'e' || s[i] == 'E')) {
    ++i;
    if (i < s.size() && (s[i] == '-' || s[i] == '+')) ++i;
    size_t exponent = 0;
    while (i < s.size() && absl::ascii_isdigit(static_cast<unsigned char>(s[i]))) {
      ++i, ++exponent;
    }
    if (exponent == 0) return false;
  }
  return i == s.size();
}

json PlainScalar(const std::string& s) {
  if (s.empty() || s == "~" || s == "null" || s == "Null" || s == "NULL") return nullptr;
  if (s == "true" || s == "True" || s == "TRUE") return true;
  if (s == "false" || s == "False" || s == "FALSE") return false;
  int64_t i = 0;
  const bool integer =
      !s.empty() && s.find_first_not_of("+-0123456789") == std::string::npos;
  if (integer && absl::SimpleAtoi(s, &i)) return i;
  double d = 0;
  if (IsDecimal(s) && absl::SimpleAtod(s, &d)) return d;
  return s;
}

absl::StatusOr<json> Convert(const YAML::Node& node, int depth) {
  if (depth > kMaxDepth) {
    return absl::InvalidArgumentError(
        absl::StrCat("nested deeper than ", kMaxDepth, " levels"));
  }
  switch (node.Type()) {
    case YAML::NodeType::Undefined:
    case YAML::NodeType::Null:
      return json(nullptr);
    case YAML::NodeType::Scalar: {
      const std::string& tag = node.Tag();
      // "!" marks a quoted scalar, which is always a string.
      if (tag == "!" || tag == "tag:yaml.org,2002:str") return json(node.Scalar());
      return PlainScalar(node.Scalar());
    }
    case YAML::NodeType::Sequence: {
      json out = json::array();
      for (const YAML::Node& item : node) {
        absl::StatusOr<json> v = Convert(item, depth + 1);
        if (!v.ok()) return v.status();
        out.push_back(*std::move(v));
      }
      return out;
    }
    case YAML::NodeType::Map: {
      json out = json::object();
      for (const auto& kv : node) {
        if (!kv.first.IsScalar()) {
          return absl::InvalidArgumentError("a mapping key is not a plain value");
        }
        absl::StatusOr<json> v = Convert(kv.second, depth + 1);
        if (!v.ok()) return v.status();
        out[kv.first.Scalar()] = *std::move(v);
      }
      return out;
    }
  }
  return json(nullptr);
}

const json* Find(const json& object, const char* key) {
  if (!object.is_object()) return nullptr;
  const auto it = object.find(key);
  return it == object.end() ? nullptr : &*it;
}

std::string StringAt(const json& object, const char* key) {
  const json* v = Find(object, key);
  return v != nullptr && v->is_string() ? v->get<std::string>() : std::string();
}

// The status entry of the worker's container, or null.
const json* WorkerContainerStatus(const json& pod) {
  const json* status = Find(pod, "status");
  const json* statuses = status ? Find(*status, "containerStatuses") : nullptr;
  if (statuses == nullptr || !statuses->is_array() || statuses->empty()) return nullptr;
  std::string name;
  const json* spec = Find(pod, "spec");
  const json* containers = spec ? Find(*spec, "containers") : nullptr;
  if (containers != nullptr && containers->is_array() && !containers->empty()) {
    name = StringAt((*containers)[WorkerContainerIndex(pod)], "name");
  }
  for (const json& s : *statuses) {
    if (StringAt(s, "name") == name) return &s;
  }
  return &(*statuses)[0];
}

const json* Terminated(const json& pod) {
  const json* container = WorkerContainerStatus(pod);
  const json* state = container ? Find(*container, "state") : nullptr;
  const json* terminated = state ? Find(*state, "terminated") : nullptr;
  return terminated != nullptr && terminated->is_object() ? terminated : nullptr;
}

}  // namespace

absl::StatusOr<json> YamlToJson(const YAML::Node& node) { return Convert(node, 0); }

absl::StatusOr<json> PodPartOfTemplate(const json& document, const std::string& what) {
  const auto bad = [&](const std::string& why) {
    return absl::InvalidArgumentError(absl::StrCat(what, ": ", why));
  };
  if (!document.is_object())
    return bad("not a mapping (expected a Pod or a PodTemplate)");
  json pod = document;
  if (const json* t = Find(document, "template")) pod = *t;
  if (!pod.is_object()) return bad("template: not a mapping");
  const json* spec = Find(pod, "spec");
  if (spec == nullptr || !spec->is_object()) return bad("spec: missing (expected a Pod)");
  const json* containers = Find(*spec, "containers");
  if (containers == nullptr || !containers->is_array() || containers->empty()) {
    return bad("spec.containers: missing or empty");
  }
  std::set<std::string> names;
  for (size_t i = 0; i < containers->size(); ++i) {
    const json& c = (*containers)[i];
    const std::string name = StringAt(c, "name");
    if (name.empty()) return bad(absl::StrCat("spec.containers[", i, "].name: missing"));
    if (!names.insert(name).second) {
      return bad(absl::StrCat("spec.containers[", i, "].name: '", name, "' twice"));
    }
    if (const json* env = Find(c, "env"); env != nullptr && !env->is_array()) {
      return bad(absl::StrCat("spec.containers[", i, "].env: not a list"));
    }
  }
  if (const json* meta = Find(pod, "metadata"); meta != nullptr && !meta->is_object()) {
    return bad("metadata: not a mapping");
  }
  for (const char* field : {"labels", "annotations"}) {
    const json* meta = Find(pod, "metadata");
    const json* map = meta ? Find(*meta, field) : nullptr;
    if (map == nullptr || map->is_null()) continue;
    if (!map->is_object())
      return bad(absl::StrCat("metadata.", field, ": not a mapping"));
    for (const auto& [k, v] : map->items()) {
      if (!v.is_string()) {
        return bad(absl::StrCat("metadata.", field, ".", k,
                                ": not a string (quote it: \"", v.dump(), "\")"));
      }
    }
  }
  json part = json::object();
  part["metadata"] = Find(pod, "metadata") ? pod["metadata"] : json::object();
  if (part["metadata"].is_null()) part["metadata"] = json::object();
  part["spec"] = pod["spec"];
  return part;
}

absl::StatusOr<json> LoadPodTemplate(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return absl::InvalidArgumentError(
        absl::StrCat("--pod-template ", path, ": cannot be read"));
  }
  std::string text;
  text.resize(static_cast<size_t>(kMaxTemplateBytes) + 1);
  in.read(text.data(), kMaxTemplateBytes + 1);
  text.resize(static_cast<size_t>(in.gcount()));
  if (static_cast<std::streamsize>(text.size()) > kMaxTemplateBytes) {
    return absl::InvalidArgumentError(
        absl::StrCat("--pod-template ", path, ": larger than 1 MiB"));
  }
  std::vector<YAML::Node> documents;
  try {
    documents = YAML::LoadAll(text);
  } catch (const YAML::Exception& e) {
    return absl::InvalidArgumentError(
        absl::StrCat("--pod-template ", path, ": not valid YAML: ", e.what()));
  }
  if (documents.size() != 1) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--pod-template ", path, ": expected one document, found ", documents.size()));
  }
  absl::StatusOr<json> document = YamlToJson(documents[0]);
  if (!document.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("--pod-template ", path, ": ", document.status().message()));
  }
  return PodPartOfTemplate(*document, absl::StrCat("--pod-template ", path));
}

size_t WorkerContainerIndex(const json& pod) {
  const json& containers = pod["spec"]["containers"];
  for (size_t i = 0; i < containers.size(); ++i) {
    if (StringAt(containers[i], "name") == "elasticbatch") return i;
  }
  return 0;
}

json BuildWorkerPod(const json& pod_part, const WorkerPod& pod) {
  json object = json::object();
  object["apiVersion"] = "v1";
  object["kind"] = "Pod";
  object["metadata"] = pod_part.value("metadata", json::object());
  json& meta = object["metadata"];
  for (const char* server_field :
       {"generateName", "uid", "resourceVersion", "creationTimestamp", "ownerReferences",
        "deletionTimestamp", "deletionGracePeriodSeconds", "managedFields", "selfLink"}) {
    meta.erase(server_field);
  }
  meta["name"] = pod.name;
  if (!pod.ns.empty()) meta["namespace"] = pod.ns;
  if (!meta.contains("labels") || !meta["labels"].is_object())
    meta["labels"] = json::object();
  meta["labels"][kJobLabel] = pod.job_name;
  meta["labels"][kInstanceLabel] = std::to_string(pod.index);
  meta["labels"][kAttemptLabel] = std::to_string(pod.attempt);
  for (const auto& [k, v] : pod.labels) meta["labels"][k] = v;
  if (pod.owner) {
    meta["ownerReferences"] = json::array({{{"apiVersion", pod.owner->api_version},
                                            {"kind", pod.owner->kind},
                                            {"name", pod.owner->name},
                                            {"uid", pod.owner->uid},
                                            {"controller", false},
                                            {"blockOwnerDeletion", false}}});
  }

  object["spec"] = pod_part["spec"];
  json& spec = object["spec"];
  spec["restartPolicy"] = "Never";
  spec.erase("nodeName");  // the scheduler's to choose
  if (pod.termination_grace_seconds) {
    spec["terminationGracePeriodSeconds"] = *pod.termination_grace_seconds;
  }
  json& container = spec["containers"][WorkerContainerIndex(object)];

  std::set<std::string> ours;
  json env = json::array();
  for (const std::string& entry : pod.env) {
    const size_t eq = entry.find('=');
    const std::string name = entry.substr(0, eq);
    const std::string value = eq == std::string::npos ? "" : entry.substr(eq + 1);
    if (pod.secret_env.count(name) != 0 || !ours.insert(name).second) continue;
    env.push_back({{"name", name}, {"value", value}});
  }
  for (const auto& [name, key] : pod.secret_env) {
    ours.insert(name);
    env.push_back(
        {{"name", name},
         {"valueFrom", {{"secretKeyRef", {{"name", pod.secret_name}, {"key", key}}}}}});
  }
  // The template's own variables first (they may be referred to by ours),
  // without those we set.
  json merged = json::array();
  if (container.contains("env") && container["env"].is_array()) {
    for (const json& e : container["env"]) {
      if (ours.count(StringAt(e, "name")) == 0) merged.push_back(e);
    }
  }
  for (json& e : env) merged.push_back(std::move(e));
  container["env"] = std::move(merged);
  if (!pod.command.empty()) {
    container["command"] = json::array({"sh", "-c", pod.command});
    container.erase("args");
  }
  if (!pod.working_dir.empty()) container["workingDir"] = pod.working_dir;
  object.erase("status");
  return object;
}

std::optional<int> PodExitCode(const json& pod) {
  const json* status = Find(pod, "status");
  const std::string phase = status ? StringAt(*status, "phase") : "";
  if (phase != "Succeeded" && phase != "Failed") return std::nullopt;
  if (const json* terminated = Terminated(pod)) {
    const json* code = Find(*terminated, "exitCode");
    if (code != nullptr && code->is_number_integer()) {
      const int64_t c = code->get<int64_t>();
      // A failed pod whose container says 0 (a deadline, an eviction after
      // the exit) did not finish its work as far as we know: killed.
      if (c > 0 && c <= 255) return static_cast<int>(c);
      if (c == 0 && phase == "Succeeded") return 0;
    }
  }
  return phase == "Succeeded" ? 0 : 137;
}

std::string PodEndReason(const json& pod) {
  if (const json* terminated = Terminated(pod)) {
    const std::string reason = StringAt(*terminated, "reason");
    if (!reason.empty()) return reason;
  }
  const json* status = Find(pod, "status");
  return status ? StringAt(*status, "reason") : "";
}

}  // namespace elasticbatch::kube
