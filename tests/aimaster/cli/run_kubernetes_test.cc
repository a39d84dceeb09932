// `aimaster run --launcher kubernetes` end to end: the real aimaster process
// drives a test cluster — the fake API server, and the fake kubelet running
// each pod as a real local ebatch-worker process. Pods stuck Pending get
// backups, killed and frozen workers are restarted as new pods, the job
// stops early without waiting for pods that never start, and no pod (nor the
// token Secret) outlives the job. Every case checks each input record
// appears exactly once.
#include <signal.h>

#include <algorithm>
#include <filesystem>
#include <map>
#include <set>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "aimaster/launch/kubernetes/pod_launcher.h"
#include "gmock/gmock.h"
#include "google/protobuf/struct.pb.h"
#include "google/protobuf/util/json_util.h"
#include "gtest/gtest.h"
#include "tests/aimaster/launch/kubernetes/fake_api_server.h"
#include "tests/aimaster/launch/kubernetes/fake_kubelet.h"
#include "tests/testing/ports.h"
#include "tests/testing/subprocess.h"
#include "tests/testing/temp_files.h"
#include "tests/testing/wait.h"

namespace elasticbatch {
namespace {

using nlohmann::json;
using ::testing::HasSubstr;

const std::string kAimaster = std::string(EB_BIN_DIR) + "/aimaster";
const std::string kWorker = std::string(EB_BIN_DIR) + "/ebatch-worker";
constexpr char kPodsPath[] = "/api/v1/namespaces/batch/pods";
constexpr char kSecretsPath[] = "/api/v1/namespaces/batch/secrets";
constexpr char kApiToken[] = "api-token-for-the-master";

class RunKubernetesTest : public ::testing::Test {
 protected:
  void SetUp() override {
    for (int f = 0; f < 4; ++f) {
      std::string content;
      for (int i = 0; i < 200; ++i) absl::StrAppend(&content, "rec ", f * 1000 + i, "\n");
      testing::WriteFileOrDie(absl::StrCat(in(), "/part-", f, ".txt"), content);
      for (absl::string_view l : absl::StrSplit(content, '\n', absl::SkipEmpty())) {
        expected_.emplace_back(l);
      }
    }
    std::sort(expected_.begin(), expected_.end());
    testing::WriteFileOrDie(
        template_path(),
        "apiVersion: v1\nkind: Pod\nmetadata:\n  labels: {app: scoring}\n"
        "spec:\n  containers:\n  - name: elasticbatch\n    image: scoring:1\n");
  }

  // Starts the cluster; `pending_for` says how long each pod stays Pending.
  void StartCluster(
      std::function<std::optional<absl::Duration>(const json&)> pending_for = {}) {
    server_ = std::make_unique<testing::FakeApiServer>(testing::FakeApiServerOptions{
        .required_token = kApiToken, .graceful_pod_deletion = true});
    ASSERT_TRUE(server_->Start().ok());
    testing::FakeKubeletOptions kubelet;
    kubelet.ns = "batch";
    kubelet.log_dir = dir_.path() + "/pod-logs";
    std::filesystem::create_directories(kubelet.log_dir);
    kubelet.pending_for = std::move(pending_for);
    kubelet.max_grace = absl::Seconds(3);
    kubelet.token = kApiToken;
    kubelet_ = std::make_unique<testing::FakeKubelet>(server_.get(), kubelet);
    ASSERT_TRUE(kubelet_->Start().ok());
    testing::WriteFileOrDie(
        kubeconfig_path(),
        absl::StrCat("apiVersion: v1\nkind: Config\ncurrent-context: test\n"
                     "clusters:\n- name: c\n  cluster:\n    server: ",
                     server_->url(),
                     "\nusers:\n- name: u\n  user:\n    token: ", kApiToken,
                     "\ncontexts:\n- name: test\n  context:\n    cluster: c\n"
                     "    user: u\n    namespace: batch\n"));
  }

  std::string in() const { return dir_.path() + "/in"; }
  std::string job() const { return dir_.path() + "/job"; }
  std::string out() const { return job() + "/output/out"; }
  std::string template_path() const { return dir_.path() + "/worker.yaml"; }
  std::string kubeconfig_path() const { return dir_.path() + "/kubeconfig"; }

  // As RunTest's: `prelude` with INDEX and ATTEMPT set, then ebatch-worker
  // running `shard_cmd` per shard.
  std::string Script(const std::string& prelude, const std::string& shard_cmd) {
    const std::string path = absl::StrCat(dir_.path(), "/worker-", ++scripts_, ".sh");
    testing::WriteFileOrDie(
        path, absl::StrCat("#!/bin/sh\n",
                           "INDEX=$(echo \"$ELASTICBATCH_CONFIG\" | sed "
                           "'s/.*\"index\":\\([0-9]*\\).*/\\1/')\n",
                           "ATTEMPT=$ELASTICBATCH_ATTEMPT\n", prelude, "\n", "exec ",
                           kWorker, " -- '", shard_cmd, "'\n"));
    return absl::StrCat("sh ", path);
  }

  testing::ProcessResult Run(std::vector<std::string> flags, const std::string& command,
                             bool with_defaults = true) {
    testing::ProcessResult r =
        testing::RunProcess(Argv(std::move(flags), command, with_defaults),
                            absl::Seconds(240), ProcessOptions());
    ReadSummary();
    return r;
  }

  static testing::SubprocessOptions ProcessOptions() {
    testing::SubprocessOptions options;
    options.unset_env = {"ELASTICBATCH_CONFIG",
                         "ElASTICBATCH_CONFIG",
                         "KUBECONFIG",
                         "POD_IP",
                         "POD_NAME",
                         "POD_UID",
                         "KUBERNETES_SERVICE_HOST"};
    return options;
  }

  void ReadSummary() {
    summary_.Clear();
    const std::string text = testing::ReadFileOrEmpty(job() + "/summary.json");
    if (!text.empty()) {
      EXPECT_TRUE(google::protobuf::util::JsonStringToMessage(text, &summary_).ok());
    }
  }

  std::vector<std::string> Argv(std::vector<std::string> flags,
                                const std::string& command, bool with_defaults = true) {
    std::vector<std::string> argv = {kAimaster, "run"};
    if (with_defaults) {
      argv.insert(argv.end(),
                  {"--launcher=kubernetes", "--job-id=scoring", "--kubeconfig",
                   kubeconfig_path(), "--pod-template", template_path(),
                   "--advertise-host=127.0.0.1", "--host=127.0.0.1"});
    }
    argv.insert(argv.end(), {"--job-dir", job(), "--input", "data=" + in(), "--output",
                             "out", "--shard-bytes=1K", "--heartbeat-interval=200ms",
                             "--lease-timeout=10s", "--stop-grace=2s"});
    argv.insert(argv.end(), flags.begin(), flags.end());
    if (!command.empty()) {
      argv.push_back("--");
      argv.push_back(command);
    }
    return argv;
  }

  int PartFiles() const {
    int n = 0;
    if (!std::filesystem::exists(out())) return 0;
    for (const auto& e : std::filesystem::directory_iterator(out())) {
      n += absl::StartsWith(e.path().filename().string(), "part-") ? 1 : 0;
    }
    return n;
  }

  const google::protobuf::Struct& WorkerSummary(int index) const {
    return summary_.fields().at("workers").list_value().values(index).struct_value();
  }
  static double Num(const google::protobuf::Struct& s, const std::string& name) {
    return s.fields().at(name).number_value();
  }
  static std::string Str(const google::protobuf::Struct& s, const std::string& name) {
    return s.fields().at(name).string_value();
  }
  static const google::protobuf::Struct& Attempt(const google::protobuf::Struct& w,
                                                 int k) {
    return w.fields().at("attempts").list_value().values(k).struct_value();
  }
  static int Attempts(const google::protobuf::Struct& w) {
    return w.fields().at("attempts").list_value().values_size();
  }

  void ExpectEveryRecordExactlyOnce() {
    std::vector<std::string> lines;
    for (const auto& e : std::filesystem::directory_iterator(out())) {
      if (!absl::StartsWith(e.path().filename().string(), "part-")) continue;
      for (absl::string_view l : absl::StrSplit(
               testing::ReadFileOrEmpty(e.path().string()), '\n', absl::SkipEmpty())) {
        lines.emplace_back(l);
      }
    }
    std::sort(lines.begin(), lines.end());
    EXPECT_EQ(lines, expected_);
    std::map<std::string, int> per_shard;
    for (absl::string_view l :
         absl::StrSplit(testing::ReadFileOrEmpty(out() + "/_manifest.jsonl"), '\n',
                        absl::SkipEmpty())) {
      const size_t at = l.find("\"shard\":");
      ASSERT_NE(at, absl::string_view::npos) << l;
      ++per_shard[std::string(l.substr(at, l.find_first_of(",}", at) - at))];
    }
    EXPECT_EQ(per_shard.size(),
              static_cast<size_t>(summary_.fields().at("total_shards").number_value()));
    for (const auto& [shard, n] : per_shard) EXPECT_EQ(n, 1) << shard;
  }

  // Nothing of the job is left in the cluster, nor running on the node; and
  // nothing called the API beyond what the Role in deploy/ grants (the
  // kubelet's calls, list and watch pods, are among them).
  void ExpectNothingLeft() {
    for (const testing::FakeRequest& r : server_->Requests()) {
      const std::vector<std::string> parts =
          absl::StrSplit(r.path, '/', absl::SkipEmpty());
      // api v1 namespaces NS PLURAL [NAME]
      ASSERT_GE(parts.size(), 5u) << r.path;
      const std::string resource =
          parts.size() == 7 && parts[6] == "log" ? "pods/log" : parts[4];
      const bool object = parts.size() > 5;
      std::string verb;
      if (r.method == "GET") {
        verb = object ? "get" : absl::StrContains(r.query, "watch=") ? "watch" : "list";
      } else if (r.method == "POST") {
        verb = "create";
      } else if (r.method == "PATCH") {
        verb = "patch";
      } else if (r.method == "DELETE") {
        verb = "delete";
      }
      const auto rule = kube::kPodLauncherRbacRules.find(resource);
      ASSERT_NE(rule, kube::kPodLauncherRbacRules.end()) << r.method << " " << r.path;
      EXPECT_THAT(rule->second, ::testing::Contains(verb)) << r.method << " " << r.path;
    }
    EXPECT_TRUE(server_->List(kPodsPath).empty());
    EXPECT_TRUE(server_->List(kSecretsPath).empty());
    EXPECT_EQ(kubelet_->running(), 0);
  }

  // The pods the kubelet ran, by name.
  std::set<std::string> PodsRun() const {
    std::set<std::string> names;
    for (const testing::KubeletRun& r : kubelet_->Runs()) names.insert(r.pod);
    return names;
  }

  testing::TempDir dir_;
  std::vector<std::string> expected_;
  google::protobuf::Struct summary_;
  int scripts_ = 0;
  std::unique_ptr<testing::FakeApiServer> server_;
  std::unique_ptr<testing::FakeKubelet> kubelet_;
};

TEST_F(RunKubernetesTest, APodStuckPendingGetsABackupPodThatFinishesItsShare) {
  StartCluster([](const json& pod) -> std::optional<absl::Duration> {
    if (pod["metadata"]["name"] == "scoring-worker-0-0") return std::nullopt;
    return absl::ZeroDuration();
  });
  auto r = Run({"--workers=2", "--startup-timeout=1s"}, Script("", "sleep 0.2; cat"));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto& w0 = WorkerSummary(0);
  EXPECT_EQ(Num(w0, "backups"), 1);
  ASSERT_EQ(Attempts(w0), 2);
  EXPECT_EQ(Str(Attempt(w0, 0), "state"), "stopped");
  EXPECT_EQ(Str(Attempt(w0, 1), "state"), "succeeded");
  EXPECT_EQ(PodsRun(),
            (std::set<std::string>{"scoring-worker-0-1", "scoring-worker-1-0"}));
  ExpectEveryRecordExactlyOnce();
  ExpectNothingLeft();
}

TEST_F(RunKubernetesTest, AWorkerKilledMidShardIsRestartedAsANewPod) {
  StartCluster();
  const std::string mark = dir_.path() + "/killed";
  const std::string cmd = Script(
      "",
      absl::StrCat("if [ \"$SHARD_ID\" = 3 ] && mkdir ", mark,
                   " 2>/dev/null; then head -c 10 >/dev/null; kill -9 $PPID; sleep 5; "
                   "fi; cat"));
  auto r = Run({"--workers=2", "--restart-backoff=100ms"}, cmd);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  int restarts = 0;
  for (int i = 0; i < 2; ++i)
    restarts += static_cast<int>(Num(WorkerSummary(i), "restarts"));
  EXPECT_EQ(restarts, 1);
  int killed_pods = 0;
  for (const testing::KubeletRun& run : kubelet_->Runs()) {
    killed_pods += run.exit_code == 128 + SIGKILL ? 1 : 0;
  }
  EXPECT_EQ(killed_pods, 1);
  EXPECT_EQ(PodsRun().size(), 3u);
  // The pods are gone, their logs' tails are in the job directory.
  int logs_with_the_kill = 0;
  for (const auto& e : std::filesystem::directory_iterator(job() + "/logs")) {
    const std::string log = testing::ReadFileOrEmpty(e.path().string());
    EXPECT_THAT(log, HasSubstr("----- pod scoring-worker-")) << e.path();
    logs_with_the_kill += absl::StrContains(log, "ended with exit code 137") ? 1 : 0;
  }
  EXPECT_EQ(logs_with_the_kill, 1);
  ExpectEveryRecordExactlyOnce();
  ExpectNothingLeft();
}

TEST_F(RunKubernetesTest, AFrozenWorkerPodIsDeletedAndReplaced) {
  StartCluster();
  const std::string cmd =
      Script("export INDEX ATTEMPT",
             "if [ \"$INDEX\" = 0 ] && [ \"$ATTEMPT\" = 0 ]; then kill -STOP $PPID; fi; "
             "sleep 0.3; cat");
  auto r = Run({"--workers=2", "--heartbeat-timeout=2s", "--restart-backoff=100ms"}, cmd);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto& w0 = WorkerSummary(0);
  ASSERT_GE(Attempts(w0), 2);
  EXPECT_EQ(Num(w0, "restarts"), 1);
  EXPECT_EQ(Str(Attempt(w0, 0), "state"), "failed");
  EXPECT_THAT(Str(Attempt(w0, 0), "detail"), HasSubstr("no heartbeat for"));
  EXPECT_TRUE(PodsRun().count("scoring-worker-0-1"));
  ExpectEveryRecordExactlyOnce();
  ExpectNothingLeft();
}

TEST_F(RunKubernetesTest, EarlyStopDeletesPodsThatNeverStartedAndExitsZero) {
  // Pods of workers 2 and 3 never get a node; the job must not wait for them.
  StartCluster([](const json& pod) -> std::optional<absl::Duration> {
    const std::string name = pod["metadata"]["name"];
    if (absl::StartsWith(name, "scoring-worker-2-") ||
        absl::StartsWith(name, "scoring-worker-3-")) {
      return std::nullopt;
    }
    return absl::ZeroDuration();
  });
  auto r = Run({"--workers=4", "--startup-timeout=1000s", "--stop-grace=1000s"},
               Script("", "cat"));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  for (int i = 2; i < 4; ++i) {
    const auto& w = WorkerSummary(i);
    EXPECT_EQ(Num(w, "shards"), 0);
    ASSERT_EQ(Attempts(w), 1);
    EXPECT_EQ(Str(Attempt(w, 0), "state"), "stopped");
  }
  EXPECT_EQ(PodsRun(),
            (std::set<std::string>{"scoring-worker-0-0", "scoring-worker-1-0"}));
  ExpectEveryRecordExactlyOnce();
  ExpectNothingLeft();
}

TEST_F(RunKubernetesTest, ARestartedMasterAdoptsTheRunningPodsAndFinishesTheJob) {
  StartCluster();
  // A port both masters use: the pods know the master by its address.
  const int port = testing::FreeLoopbackPort();
  const std::vector<std::string> flags = {"--workers=2", absl::StrCat("--port=", port)};
  const std::string cmd = Script("", "sleep 1; cat");
  auto first = testing::Subprocess::Start(Argv(flags, cmd), ProcessOptions());
  ASSERT_TRUE(first.ok()) << first.status();
  ASSERT_TRUE(testing::WaitUntil(absl::Now() + absl::Seconds(120),
                                 [&] { return PartFiles() >= 1; }));
  (*first)->Signal(SIGKILL);
  ASSERT_TRUE((*first)->Wait(absl::Seconds(60)).ok());
  ASSERT_LT(PartFiles(), 8) << "the job ended before the master was killed";
  EXPECT_EQ(kubelet_->running(), 2);  // the workers outlive the master

  auto r = Run(flags, cmd);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_THAT(r.err, HasSubstr("adopting pod scoring-worker-0-0"));
  // The same two pods did the whole job: none was replaced.
  EXPECT_EQ(PodsRun(),
            (std::set<std::string>{"scoring-worker-0-0", "scoring-worker-1-0"}));
  EXPECT_EQ(kubelet_->Runs().size(), 2u);
  ExpectEveryRecordExactlyOnce();
  ExpectNothingLeft();
}

TEST_F(RunKubernetesTest, ConfigurationErrorsAreOneLineAndExit2) {
  StartCluster();
  const auto expect_error = [&](std::vector<std::string> flags, const std::string& what,
                                bool with_defaults = false) {
    auto r = Run(std::move(flags), "cat", with_defaults);
    EXPECT_EQ(r.exit_code, 2) << r.err;
    EXPECT_THAT(r.err, HasSubstr(what));
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
  };
  expect_error({"--launcher=kubernetes", "--pod-template", template_path()}, "--job-id");
  expect_error(
      {"--launcher=kubernetes", "--job-id=Bad_Name", "--pod-template", template_path()},
      "cannot name pods");
  expect_error({"--launcher=kubernetes", "--job-id=j"}, "--pod-template");
  expect_error({"--launcher=pods"}, "--launcher must be local or kubernetes");
  expect_error({"--pod-template", template_path()}, "--pod-template is for --launcher");
  testing::WriteFileOrDie(dir_.path() + "/bad.yaml", "spec: {containers: []}\n");
  expect_error({"--launcher=kubernetes", "--job-id=j", "--kubeconfig", kubeconfig_path(),
                "--pod-template", dir_.path() + "/bad.yaml"},
               "spec.containers");
  expect_error({"--launcher=kubernetes", "--job-id=j", "--pod-template", template_path(),
                "--kubeconfig", kubeconfig_path()},
               "--advertise-host");
  // A missing RBAC rule: the Role line it needs, before any pod is made.
  server_->InjectErrors("GET", kPodsPath, 403, 1000);
  expect_error({"--workers=1"}, "the Role needs verbs [list] on resource \"pods\"", true);
  server_->ClearInjectedErrors();
  ExpectNothingLeft();
}

}  // namespace
}  // namespace elasticbatch
