// deploy/kubernetes/ (the plain-Kubernetes mode) against the code: the Role
// grants exactly what PodLauncher calls, the worker template loads as the
// master will load it, and the master's Job passes the flags, downward-API
// variables, mounts and metrics annotations the code reads.
#include <yaml-cpp/yaml.h>

#include <map>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "aimaster/launch/kubernetes/pod_launcher.h"
#include "aimaster/launch/kubernetes/pod_template.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace elasticbatch::kube {
namespace {

const std::string kDir = std::string(EB_SOURCE_DIR) + "/deploy/kubernetes/";

std::vector<YAML::Node> Documents(const std::string& file) {
  std::vector<YAML::Node> docs;
  EXPECT_NO_THROW(docs = YAML::LoadAllFromFile(kDir + file)) << file;
  return docs;
}

YAML::Node OfKind(const std::string& file, const std::string& kind) {
  for (const YAML::Node& d : Documents(file)) {
    if (d["kind"] && d["kind"].as<std::string>() == kind) return d;
  }
  ADD_FAILURE() << "no " << kind << " in " << file;
  return YAML::Node();
}

std::string Arg(const YAML::Node& container, const std::string& name) {
  for (const YAML::Node& a : container["args"]) {
    const std::string arg = a.as<std::string>();
    if (absl::StartsWith(arg, "--" + name + "=")) return arg.substr(name.size() + 3);
  }
  return "";
}

TEST(DeployPlainManifestTest, TheRoleGrantsExactlyWhatTheLauncherCalls) {
  const YAML::Node role = OfKind("rbac.yaml", "Role");
  std::map<std::string, std::vector<std::string>> granted;
  for (const YAML::Node& rule : role["rules"]) {
    ASSERT_EQ(rule["apiGroups"].size(), 1u);
    EXPECT_EQ(rule["apiGroups"][0].as<std::string>(), "");
    std::vector<std::string> verbs;
    for (const YAML::Node& v : rule["verbs"]) verbs.push_back(v.as<std::string>());
    std::sort(verbs.begin(), verbs.end());
    for (const YAML::Node& r : rule["resources"]) granted[r.as<std::string>()] = verbs;
  }
  EXPECT_EQ(granted, kPodLauncherRbacRules);
  const YAML::Node binding = OfKind("rbac.yaml", "RoleBinding");
  const YAML::Node account = OfKind("rbac.yaml", "ServiceAccount");
  EXPECT_EQ(binding["roleRef"]["name"].as<std::string>(),
            role["metadata"]["name"].as<std::string>());
  EXPECT_EQ(binding["subjects"][0]["name"].as<std::string>(),
            account["metadata"]["name"].as<std::string>());
}

TEST(DeployPlainManifestTest, TheWorkerTemplateLoadsAndMountsTheSharedVolume) {
  absl::StatusOr<nlohmann::json> tmpl = LoadPodTemplate(kDir + "worker-template.yaml");
  ASSERT_TRUE(tmpl.ok()) << tmpl.status();
  const nlohmann::json& c = (*tmpl)["spec"]["containers"][WorkerContainerIndex(*tmpl)];
  EXPECT_EQ(c["name"], "elasticbatch");
  ASSERT_TRUE(c.contains("volumeMounts"));
  EXPECT_EQ(c["volumeMounts"][0]["mountPath"], "/data");
}

TEST(DeployPlainManifestTest, TheMasterJobPassesWhatTheCodeReads) {
  const YAML::Node job = OfKind("master-job.yaml", "Job");
  const YAML::Node pod = job["spec"]["template"];
  const YAML::Node spec = pod["spec"];
  EXPECT_EQ(spec["serviceAccountName"].as<std::string>(),
            OfKind("rbac.yaml", "ServiceAccount")["metadata"]["name"].as<std::string>());
  EXPECT_EQ(spec["restartPolicy"].as<std::string>(), "OnFailure");
  const YAML::Node c = spec["containers"][0];
  EXPECT_EQ(Arg(c, "launcher"), "kubernetes");
  EXPECT_TRUE(CheckJobNameForPods(Arg(c, "job-id")).ok()) << Arg(c, "job-id");
  // The template comes from the ConfigMap mounted where --pod-template looks.
  std::map<std::string, std::string> mounts;
  for (const YAML::Node& m : c["volumeMounts"]) {
    mounts[m["name"].as<std::string>()] = m["mountPath"].as<std::string>();
  }
  EXPECT_EQ(Arg(c, "pod-template"), mounts["worker-template"] + "/worker.yaml");
  // The job directory and data are on the volume the workers mount at /data.
  for (const char* flag : {"job-dir", "input", "output"}) {
    EXPECT_THAT(Arg(c, flag), ::testing::HasSubstr("/data/")) << flag;
  }
  EXPECT_EQ(mounts["data"], "/data");
  std::map<std::string, std::string> field_refs;
  for (const YAML::Node& e : c["env"]) {
    field_refs[e["name"].as<std::string>()] =
        e["valueFrom"]["fieldRef"]["fieldPath"].as<std::string>();
  }
  EXPECT_EQ(field_refs,
            (std::map<std::string, std::string>{{"POD_IP", "status.podIP"},
                                                {"POD_NAME", "metadata.name"},
                                                {"POD_UID", "metadata.uid"}}));
  // Prometheus scrapes the port the master serves metrics on.
  const YAML::Node annotations = pod["metadata"]["annotations"];
  EXPECT_EQ(annotations["prometheus.io/scrape"].as<std::string>(), "true");
  EXPECT_TRUE(absl::EndsWith(Arg(c, "metrics-address"),
                             ":" + annotations["prometheus.io/port"].as<std::string>()));
}

}  // namespace
}  // namespace elasticbatch::kube
