// `aimaster serve` in KubeDL mode, end to end: the real master process, the
// fake API server holding an ElasticBatchJob, a fake KubeDL that (like the
// real controller) creates the worker pods only once the job carries
// `aimaster: "ready"`, and the fake kubelet running them as ebatch-worker
// processes. The master must create its Service before it opens the gate,
// and the job must run to its end with every record exactly once.
#include <algorithm>
#include <atomic>
#include <filesystem>
#include <map>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "aimaster/launch/kubernetes/kubedl_master.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/aimaster/launch/kubernetes/fake_api_server.h"
#include "tests/aimaster/launch/kubernetes/fake_kubelet.h"
#include "tests/testing/ports.h"
#include "tests/testing/subprocess.h"
#include "tests/testing/temp_files.h"

namespace elasticbatch {
namespace {

using nlohmann::json;
using ::testing::HasSubstr;

const std::string kAimaster = std::string(EB_BIN_DIR) + "/aimaster";
const std::string kWorker = std::string(EB_BIN_DIR) + "/ebatch-worker";
constexpr char kJobsPath[] =
    "/apis/inference.kubedl.io/v1alpha1/namespaces/batch/elasticbatchjobs";
constexpr char kPodsPath[] = "/api/v1/namespaces/batch/pods";
constexpr char kServicesPath[] = "/api/v1/namespaces/batch/services";
constexpr int kWorkers = 2;

class ServeKubeDLTest : public ::testing::Test {
 protected:
  void SetUp() override {
    for (int f = 0; f < 3; ++f) {
      std::string content;
      for (int i = 0; i < 200; ++i) absl::StrAppend(&content, "rec ", f * 1000 + i, "\n");
      testing::WriteFileOrDie(absl::StrCat(in(), "/part-", f, ".txt"), content);
      for (absl::string_view l : absl::StrSplit(content, '\n', absl::SkipEmpty())) {
        expected_.emplace_back(l);
      }
    }
    std::sort(expected_.begin(), expected_.end());
    std::filesystem::create_directories(out());
    ASSERT_TRUE(server_.Start().ok());
    testing::FakeKubeletOptions kubelet;
    kubelet.ns = "batch";
    kubelet.log_dir = dir_.path() + "/pod-logs";
    std::filesystem::create_directories(kubelet.log_dir);
    kubelet_ = std::make_unique<testing::FakeKubelet>(&server_, kubelet);
    ASSERT_TRUE(kubelet_->Start().ok());
    testing::WriteFileOrDie(
        kubeconfig(), absl::StrCat("apiVersion: v1\nkind: Config\ncurrent-context: t\n"
                                   "clusters:\n- name: c\n  cluster:\n    server: ",
                                   server_.url(),
                                   "\nusers:\n- name: u\n  user:\n    token: t0k3n\n"
                                   "contexts:\n- name: t\n  context:\n    cluster: c\n"
                                   "    user: u\n"));
    job_uid_ = server_.Put(kJobsPath, {{"apiVersion", "inference.kubedl.io/v1alpha1"},
                                       {"kind", "ElasticBatchJob"},
                                       {"metadata", {{"name", "scoring"}}},
                                       {"spec", json::object()}})["metadata"]["uid"];
  }

  void TearDown() override {
    stop_kubedl_ = true;
    if (kubedl_.joinable()) kubedl_.join();
  }

  std::string in() const { return dir_.path() + "/in"; }
  std::string out() const { return dir_.path() + "/out"; }
  std::string kubeconfig() const { return dir_.path() + "/kubeconfig"; }

  // KubeDL's side: once the gate is open, one pod per worker replica with
  // KubeDL's labels, owner and ElASTICBATCH_CONFIG; `port` is the master's
  // (the Service's name does not resolve here).
  void StartFakeKubeDL(int port) {
    kubedl_ = std::thread([this, port] {
      while (!stop_kubedl_) {
        const std::optional<json> job = server_.Get(kJobsPath, "scoring");
        if (job && job->value("metadata", json::object())
                           .value("annotations", json::object())
                           .value("aimaster", "") == "ready") {
          service_at_gate_ = server_.Get(kServicesPath, "scoring-aimaster").has_value();
          for (int i = 0; i < kWorkers; ++i) CreateWorkerPod(i, port);
          return;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
      }
    });
  }

  void CreateWorkerPod(int index, int port) {
    const json env = json::array(
        {{{"name", "AIMASTER_ADDR"}, {"value", absl::StrCat("127.0.0.1:", port)}},
         {{"name", "PAI_INPUT_DATA"}, {"value", in()}},
         {{"name", "PAI_OUTPUT_PREDICTIONS"}, {"value", out()}},
         {{"name", "ElASTICBATCH_CONFIG"},
          {"value", absl::StrCat(R"({"task":{"type":"worker","index":)", index,
                                 R"(},"environment":"cloud"})")}}});
    server_.Put(kPodsPath, {{"apiVersion", "v1"},
                            {"kind", "Pod"},
                            {"metadata",
                             {{"name", absl::StrCat("scoring-worker-", index)},
                              {"labels",
                               {{"group-name", "inference.kubedl.io"},
                                {"job-name", "scoring"},
                                {"replica-type", "worker"},
                                {"replica-index", std::to_string(index)}}},
                              {"ownerReferences",
                               {{{"apiVersion", "inference.kubedl.io/v1alpha1"},
                                 {"kind", "ElasticBatchJob"},
                                 {"name", "scoring"},
                                 {"uid", job_uid_},
                                 {"controller", true}}}}}},
                            {"spec",
                             {{"containers",
                               {{{"name", "elasticbatch"},
                                 {"image", "elasticbatch:0.1.0"},
                                 {"command", {kWorker, "--", "cat"}},
                                 {"env", env}}}}}}});
  }

  testing::ProcessResult Serve(int port, std::vector<std::string> env,
                               std::vector<std::string> extra = {}) {
    std::vector<std::string> argv = {kAimaster,          "serve",
                                     "--host=127.0.0.1", absl::StrCat("--port=", port),
                                     "--kubeconfig",     kubeconfig(),
                                     "--input",          "data=" + in(),
                                     "--output",         "predictions=" + out(),
                                     "--state-dir",      dir_.path() + "/state",
                                     "--shard-bytes=1K", "--heartbeat-interval=200ms",
                                     "--end-grace=2s"};
    argv.insert(argv.end(), extra.begin(), extra.end());
    testing::SubprocessOptions options;
    options.env = std::move(env);
    options.unset_env = {"KUBECONFIG", "KUBERNETES_SERVICE_HOST", "ELASTICBATCH_CONFIG"};
    return testing::RunProcess(argv, absl::Seconds(180), options);
  }

  static std::vector<std::string> KubeDLEnv() {
    return {"JOB_TYPE=ELASTICBATCH", "JOB_NAME=scoring", "NAMESPACE=batch"};
  }

  std::vector<std::string> OutputLines() const {
    std::vector<std::string> lines;
    for (const auto& e : std::filesystem::directory_iterator(out())) {
      if (!absl::StartsWith(e.path().filename().string(), "part-")) continue;
      for (absl::string_view l : absl::StrSplit(
               testing::ReadFileOrEmpty(e.path().string()), '\n', absl::SkipEmpty())) {
        lines.emplace_back(l);
      }
    }
    std::sort(lines.begin(), lines.end());
    return lines;
  }

  testing::TempDir dir_;
  std::vector<std::string> expected_;
  testing::FakeApiServer server_;
  std::unique_ptr<testing::FakeKubelet> kubelet_;
  std::string job_uid_;
  std::thread kubedl_;
  std::atomic<bool> stop_kubedl_{false};
  std::atomic<bool> service_at_gate_{false};
};

TEST_F(ServeKubeDLTest, CreatesItsServiceOpensTheGateAndServesKubeDLsWorkers) {
  const int port = testing::FreeLoopbackPort();
  StartFakeKubeDL(port);
  const testing::ProcessResult r = Serve(port, KubeDLEnv());
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_THAT(r.err, HasSubstr("Service scoring-aimaster created"));
  EXPECT_EQ(OutputLines(), expected_);
  EXPECT_TRUE(service_at_gate_) << "the gate opened before the Service existed";

  const std::optional<json> service = server_.Get(kServicesPath, "scoring-aimaster");
  ASSERT_TRUE(service.has_value());
  const json& labels = (*service)["metadata"]["labels"];
  EXPECT_FALSE(labels.contains("group-name") && labels.contains("job-name"))
      << "KubeDL would adopt it";
  EXPECT_EQ(labels["elasticbatch.io/job-name"], "scoring");
  const json& owner = (*service)["metadata"]["ownerReferences"][0];
  EXPECT_EQ(owner["kind"], "ElasticBatchJob");
  EXPECT_EQ(owner["uid"], job_uid_);
  EXPECT_EQ(owner["controller"], false);
  EXPECT_EQ((*service)["spec"]["selector"], json({{"group-name", "inference.kubedl.io"},
                                                  {"job-name", "scoring"},
                                                  {"replica-type", "aimaster"}}));
  const json& p = (*service)["spec"]["ports"][0];
  EXPECT_EQ(p["name"], "elstcbatch-port");
  EXPECT_EQ(p["port"], 23456);
  EXPECT_EQ(p["targetPort"], port);

  // Nothing was called beyond what the Role in deploy/ grants.
  for (const testing::FakeRequest& request : server_.Requests()) {
    if (request.authorization != "Bearer t0k3n") continue;  // the kubelet's
    const std::vector<std::string> parts =
        absl::StrSplit(request.path, '/', absl::SkipEmpty());
    // api v1 namespaces NS PLURAL [NAME] | apis GROUP v1alpha1 namespaces NS PLURAL
    // [NAME]
    const bool core = parts[0] == "api";
    const size_t plural_at = core ? 4 : 5;
    ASSERT_GT(parts.size(), plural_at) << request.path;
    const std::string resource = (core ? "" : parts[1]) + "/" + parts[plural_at];
    const bool object = parts.size() > plural_at + 1;
    const std::string verb = request.method == "GET"     ? (object ? "get" : "list")
                             : request.method == "POST"  ? "create"
                             : request.method == "PATCH" ? "patch"
                                                         : "delete";
    const auto rule = kube::kKubeDLMasterRbacRules.find(resource);
    ASSERT_NE(rule, kube::kKubeDLMasterRbacRules.end()) << request.path;
    EXPECT_THAT(rule->second, ::testing::Contains(verb))
        << request.method << " " << request.path;
  }

  // A restarted master (same job, same state) keeps the Service as it is.
  const int gate_patches = server_.CountRequests("PATCH", kJobsPath);
  const testing::ProcessResult again = Serve(port, KubeDLEnv());
  EXPECT_EQ(again.exit_code, 0) << again.err;
  EXPECT_THAT(again.err, HasSubstr("Service scoring-aimaster kept"));
  EXPECT_EQ(server_.CountRequests("PATCH", kJobsPath), gate_patches);
  EXPECT_EQ(server_.CountRequests("POST", kServicesPath), 1);
}

TEST_F(ServeKubeDLTest, AForeignServiceOfItsNameStopsItBeforeTheGateOpens) {
  server_.Put(kServicesPath, {{"metadata", {{"name", "scoring-aimaster"}}},
                              {"spec", {{"selector", {{"app", "other"}}}}}});
  const testing::ProcessResult r = Serve(testing::FreeLoopbackPort(), KubeDLEnv());
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_THAT(r.err,
              HasSubstr("Service scoring-aimaster in namespace batch exists and was "
                        "not made by this job's master"));
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
  EXPECT_EQ(server_.CountRequests("PATCH", kJobsPath), 0);
  EXPECT_EQ((*server_.Get(kServicesPath, "scoring-aimaster"))["spec"]["selector"]["app"],
            "other");
}

TEST_F(ServeKubeDLTest, AMissingRoleRuleIsOneLineNamingIt) {
  server_.InjectErrors("PATCH", kJobsPath, 403, 100);
  const testing::ProcessResult r = Serve(testing::FreeLoopbackPort(), KubeDLEnv());
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_THAT(r.err,
              HasSubstr("the Role needs verbs [patch] on resource "
                        "\"elasticbatchjobs\" in apiGroup \"inference.kubedl.io\""));
  server_.ClearInjectedErrors();
}

TEST_F(ServeKubeDLTest, KubeDLsEnvironmentMustNameTheJob) {
  testing::ProcessResult r = Serve(testing::FreeLoopbackPort(),
                                   {"JOB_TYPE=ELASTICBATCH", "NAMESPACE=batch"}, {});
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_THAT(r.err, HasSubstr("needs JOB_NAME"));
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
  r = Serve(testing::FreeLoopbackPort(), {}, {"--kubedl"});
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_THAT(r.err, HasSubstr("--kubedl needs KubeDL's environment"));
  // Refused before anything reached the cluster (the kubelet's watch aside).
  for (const testing::FakeRequest& request : server_.Requests()) {
    EXPECT_NE(request.authorization, "Bearer t0k3n")
        << request.method << " " << request.path;
  }
}

}  // namespace
}  // namespace elasticbatch
