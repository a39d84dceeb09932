// deploy/elasticbatchjob.yaml against the names KubeDL's controller uses
// (kubedl_names.h) and our own contract: it parses, the job is the resource
// KubeDL watches, and every name the deployment depends on (the container and
// port names, the Service the master creates, the Role's rules, the
// environment of the workers, the token and TLS files) is the one the code
// and KubeDL use, so the manifest cannot drift from either.
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <map>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "aimaster/launch/kubernetes/kubedl_master.h"
#include "aimaster/launch/kubernetes/kubedl_names.h"
#include "common/rpc/client_channel.h"
#include "elasticbatch/environment_contract.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace elasticbatch::kube {
namespace {

const std::string kManifest = std::string(EB_SOURCE_DIR) + "/deploy/elasticbatchjob.yaml";

std::string S(std::string_view v) { return std::string(v); }

// The container named `elasticbatch` of a replica's pod template.
YAML::Node Container(const YAML::Node& replica) {
  for (const YAML::Node& c : replica["template"]["spec"]["containers"]) {
    if (c["name"].as<std::string>() == S(kubedl::kContainerName)) return c;
  }
  return YAML::Node();
}

std::map<std::string, std::string> Env(const YAML::Node& container) {
  std::map<std::string, std::string> env;
  for (const YAML::Node& e : container["env"]) {
    env[e["name"].as<std::string>()] = e["value"] ? e["value"].as<std::string>() : "";
  }
  return env;
}

// The value of `--NAME=VALUE` among a container's args; empty when absent.
std::string Arg(const YAML::Node& container, const std::string& name) {
  for (const YAML::Node& a : container["args"]) {
    const std::string arg = a.as<std::string>();
    if (absl::StartsWith(arg, "--" + name + "=")) return arg.substr(name.size() + 3);
  }
  return "";
}

bool HasFlag(const YAML::Node& container, const std::string& name) {
  for (const YAML::Node& a : container["args"]) {
    const std::string arg = a.as<std::string>();
    if (arg == "--" + name || absl::StartsWith(arg, "--" + name + "=")) return true;
  }
  return false;
}

// True when `path` lies under one of the container's mounts.
bool Mounted(const std::map<std::string, std::string>& mounts, const std::string& path) {
  for (const auto& [volume, at] : mounts) {
    if (absl::StartsWith(path, at + "/")) return true;
  }
  return false;
}

// mountPath + "/" + item path of every file a container sees from a volume,
// by volume name: {volume -> mount path}.
std::map<std::string, std::string> Mounts(const YAML::Node& container) {
  std::map<std::string, std::string> mounts;
  for (const YAML::Node& m : container["volumeMounts"]) {
    mounts[m["name"].as<std::string>()] = m["mountPath"].as<std::string>();
  }
  return mounts;
}

class DeployManifestTest : public ::testing::Test {
 protected:
  void SetUp() override {
    try {
      docs_ = YAML::LoadAllFromFile(kManifest);
    } catch (const YAML::Exception& e) {
      FAIL() << kManifest << ": " << e.what();
    }
    for (const YAML::Node& d : docs_) {
      const std::string kind = d["kind"].as<std::string>();
      if (kind == S(kubedl::kKind)) job_ = d;
      if (kind == "Role") role_ = d;
      if (kind == "RoleBinding") binding_ = d;
      if (kind == "ServiceAccount") account_ = d;
      EXPECT_NE(kind, "Service") << "the master creates its Service itself";
    }
    ASSERT_TRUE(job_) << "no " << kubedl::kKind << " in " << kManifest;
    ASSERT_TRUE(role_ && binding_ && account_) << "RBAC missing in " << kManifest;
    specs_ = job_["spec"][S(kubedl::kReplicaSpecsField)];
    ASSERT_TRUE(specs_[S(kubedl::kAimasterReplica)]) << "the AIMaster key must be exact";
    ASSERT_TRUE(specs_[S(kubedl::kWorkerReplica)]);
    master_ = Container(specs_[S(kubedl::kAimasterReplica)]);
    worker_ = Container(specs_[S(kubedl::kWorkerReplica)]);
    ASSERT_TRUE(master_) << "KubeDL configures only a container named "
                         << kubedl::kContainerName;
    ASSERT_TRUE(worker_);
  }

  std::vector<YAML::Node> docs_;
  YAML::Node job_, role_, binding_, account_, specs_, master_, worker_;
};

TEST_F(DeployManifestTest, TheJobIsWhatKubeDlWatchesAndTheMasterOpensItsGate) {
  EXPECT_EQ(job_["apiVersion"].as<std::string>(), S(kubedl::kApiVersion));
  // The master sets the gate once it can serve; set here, KubeDL would start
  // workers before the master's Service exists.
  EXPECT_FALSE(job_["metadata"]["annotations"] &&
               job_["metadata"]["annotations"][S(kubedl::kAimasterGateAnnotation)]);
  // KubeDL's own failover stays on until the master can ask for restarts.
  EXPECT_FALSE(job_["metadata"]["annotations"] &&
               job_["metadata"]["annotations"][S(kubedl::kErrorMonitoringAnnotation)]);
  EXPECT_EQ(job_["spec"]["cleanPodPolicy"].as<std::string>(),
            S(kubedl::kCleanPodPolicyAll));
  EXPECT_EQ(specs_[S(kubedl::kWorkerReplica)]["restartPolicy"].as<std::string>(),
            S(kubedl::kRestartPolicyExitCode));
  // A master restarted in place resumes from its journal on the volume.
  EXPECT_EQ(specs_[S(kubedl::kAimasterReplica)]["restartPolicy"].as<std::string>(),
            "OnFailure");
  EXPECT_TRUE(Mounted(Mounts(master_), Arg(master_, "state-dir") + "/x"));
}

TEST_F(DeployManifestTest, WorkersDialTheServiceTheMasterCreatesOnKubeDlsPort) {
  bool named_port = false;
  int port = 0;
  for (const YAML::Node& p : master_["ports"]) {
    if (p["name"].as<std::string>() == S(kubedl::kPortName)) {
      named_port = true;
      port = p["containerPort"].as<int>();
    }
  }
  ASSERT_TRUE(named_port) << "KubeDL adds a second port unless one is named "
                          << kubedl::kPortName;
  EXPECT_EQ(Arg(master_, "port"), absl::StrCat(port));
  EXPECT_EQ(Env(worker_)[kAimasterAddrVar],
            absl::StrCat(MasterServiceName(job_["metadata"]["name"].as<std::string>()),
                         ":", kubedl::kDefaultPort));
}

TEST_F(DeployManifestTest, TheMastersRoleGrantsExactlyWhatKubeDlModeCalls) {
  std::map<std::string, std::vector<std::string>> granted;
  for (const YAML::Node& rule : role_["rules"]) {
    std::vector<std::string> verbs;
    for (const YAML::Node& v : rule["verbs"]) verbs.push_back(v.as<std::string>());
    std::sort(verbs.begin(), verbs.end());
    for (const YAML::Node& g : rule["apiGroups"]) {
      for (const YAML::Node& r : rule["resources"]) {
        granted[g.as<std::string>() + "/" + r.as<std::string>()] = verbs;
      }
    }
  }
  EXPECT_EQ(granted, kKubeDLMasterRbacRules);
  const std::string account = account_["metadata"]["name"].as<std::string>();
  EXPECT_EQ(specs_[S(kubedl::kAimasterReplica)]["template"]["spec"]["serviceAccountName"]
                .as<std::string>(),
            account);
  EXPECT_EQ(binding_["subjects"][0]["name"].as<std::string>(), account);
  EXPECT_EQ(binding_["roleRef"]["name"].as<std::string>(),
            role_["metadata"]["name"].as<std::string>());
  EXPECT_FALSE(specs_[S(kubedl::kWorkerReplica)]["template"]["spec"]
                     ["automountServiceAccountToken"]
                         .as<bool>());
}

TEST_F(DeployManifestTest, WorkersGetTheJobTokenAndTheCaButNeverTheAdminToken) {
  const std::map<std::string, std::string> env = Env(worker_);
  EXPECT_EQ(env.count(rpc::kTokenVar), 0u) << "the token belongs in a Secret file";
  ASSERT_EQ(env.count(rpc::kTokenFileVar), 1u);
  ASSERT_EQ(env.count(rpc::kTlsCaVar), 1u);
  // KubeDL provides the index; a manifest value would be overridden.
  EXPECT_EQ(env.count(kKubeDlElasticBatchConfigVar), 0u);

  // The master reads the files its flags name, from the mounts it has.
  const std::map<std::string, std::string> master_mounts = Mounts(master_);
  const std::string token_file = Arg(master_, "token-file");
  const std::string admin_file = Arg(master_, "admin-token-file");
  ASSERT_FALSE(token_file.empty());
  ASSERT_FALSE(admin_file.empty());
  EXPECT_FALSE(Arg(master_, "tls-cert").empty());
  EXPECT_FALSE(Arg(master_, "tls-key").empty());
  EXPECT_FALSE(HasFlag(master_, "insecure"));
  for (const std::string& file :
       {token_file, admin_file, Arg(master_, "tls-cert"), Arg(master_, "tls-key")}) {
    EXPECT_TRUE(Mounted(master_mounts, file)) << file << " is not mounted in the master";
  }

  // The worker's token file is in a mount that carries only the `token` key.
  const std::map<std::string, std::string> worker_mounts = Mounts(worker_);
  bool token_mounted = false;
  for (const YAML::Node& v :
       specs_[S(kubedl::kWorkerReplica)]["template"]["spec"]["volumes"]) {
    if (!v["secret"]) continue;
    const auto mount_at = worker_mounts.find(v["name"].as<std::string>());
    ASSERT_NE(mount_at, worker_mounts.end())
        << "volume " << v["name"] << " is not mounted";
    const std::string& mount = mount_at->second;
    ASSERT_TRUE(v["secret"]["items"]) << "a worker must not mount the whole token Secret";
    for (const YAML::Node& item : v["secret"]["items"]) {
      EXPECT_NE(item["key"].as<std::string>(), "admin-token");
      if (mount + "/" + item["path"].as<std::string>() == env.at(rpc::kTokenFileVar)) {
        token_mounted = true;
      }
    }
  }
  EXPECT_TRUE(token_mounted) << env.at(rpc::kTokenFileVar) << " is not mounted";
  EXPECT_TRUE(Mounted(worker_mounts, env.at(rpc::kTlsCaVar)));
}

}  // namespace
}  // namespace elasticbatch::kube
