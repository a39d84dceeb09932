// PodLauncher against the fake API server, with the fake kubelet running
// each pod as a local process.
#include "aimaster/launch/kubernetes/pod_launcher.h"

#include <memory>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/aimaster/launch/kubernetes/fake_api_server.h"
#include "tests/aimaster/launch/kubernetes/fake_kubelet.h"
#include "tests/testing/temp_files.h"
#include "tests/testing/wait.h"

namespace elasticbatch::kube {
namespace {

using aimaster::LauncherEvent;
using aimaster::LaunchSpec;
using nlohmann::json;
using ::testing::HasSubstr;

constexpr char kPodsPath[] = "/api/v1/namespaces/ns/pods";
constexpr char kSecretsPath[] = "/api/v1/namespaces/ns/secrets";
constexpr absl::Duration kPatience = absl::Seconds(60);

// Events as "started 0/0", "exited 0/0 3".
class Recorder {
 public:
  void Record(const LauncherEvent& e) {
    absl::MutexLock lock(&mu_);
    events_.push_back(
        e.kind == LauncherEvent::Kind::kStarted
            ? absl::StrCat("started ", e.index, "/", e.attempt)
            : absl::StrCat("exited ", e.index, "/", e.attempt, " ", e.exit_code));
  }
  std::vector<std::string> events() const {
    absl::MutexLock lock(&mu_);
    return events_;
  }
  bool Has(const std::string& event) const {
    const std::vector<std::string> e = events();
    return std::find(e.begin(), e.end(), event) != e.end();
  }

 private:
  mutable absl::Mutex mu_;
  std::vector<std::string> events_ ABSL_GUARDED_BY(mu_);
};

struct Cluster {
  explicit Cluster(std::function<std::optional<absl::Duration>(const json&)> pending = {})
      : server({.graceful_pod_deletion = true}) {
    EXPECT_TRUE(server.Start().ok());
    kubelet = std::make_unique<testing::FakeKubelet>(
        &server,
        testing::FakeKubeletOptions{
            .ns = "ns", .log_dir = logs.path(), .pending_for = std::move(pending)});
    EXPECT_TRUE(kubelet->Start().ok());
    KubeConfig config;
    config.server = server.url();
    absl::StatusOr<std::unique_ptr<KubeClient>> c = KubeClient::Create(config);
    EXPECT_TRUE(c.ok()) << c.status();
    client = *std::move(c);
  }
  PodLauncherOptions Options() const {
    PodLauncherOptions o;
    o.ns = "ns";
    o.job_name = "j";
    o.pod_template = {
        {"metadata", {{"labels", {{"app", "test"}}}}},
        {"spec", {{"containers", {{{"name", "elasticbatch"}, {"image", "x"}}}}}}};
    o.stop_grace = absl::Seconds(2);
    return o;
  }
  testing::TempDir logs;
  testing::FakeApiServer server;
  std::unique_ptr<testing::FakeKubelet> kubelet;
  std::unique_ptr<KubeClient> client;
};

LaunchSpec Spec(uint32_t index, uint32_t attempt, const std::string& command) {
  LaunchSpec s;
  s.index = index;
  s.attempt = attempt;
  s.command = command;
  s.env = {absl::StrCat("WORKER_INDEX=", index)};
  return s;
}

TEST(PodLauncherTest, ReportsEachPodsExitCodeAfterItsStart) {
  Cluster cluster;
  PodLauncher launcher(cluster.client.get(), cluster.Options());
  Recorder events;
  launcher.SetEventHandler([&](const LauncherEvent& e) { events.Record(e); });
  ASSERT_TRUE(launcher.Start().ok());
  ASSERT_TRUE(launcher.Launch(Spec(0, 0, "exit 0")).ok());
  ASSERT_TRUE(launcher.Launch(Spec(1, 0, "test \"$WORKER_INDEX\" = 1 && exit 3")).ok());
  EXPECT_FALSE(launcher.Launch(Spec(1, 0, "true")).ok());  // that attempt is live
  ASSERT_TRUE(testing::WaitUntil(absl::Now() + kPatience, [&] {
    return events.Has("exited 0/0 0") && events.Has("exited 1/0 3");
  }));
  EXPECT_EQ(launcher.live(), 0u);
  for (int i : {0, 1}) {
    const std::vector<std::string> e = events.events();
    const auto started = std::find(e.begin(), e.end(), absl::StrCat("started ", i, "/0"));
    const auto exited = std::find_if(e.begin(), e.end(), [&](const std::string& s) {
      return absl::StartsWith(s, absl::StrCat("exited ", i, "/0"));
    });
    EXPECT_LT(started, exited);
  }
  const std::optional<json> pod = cluster.server.Get(kPodsPath, "j-worker-1-0");
  ASSERT_TRUE(pod.has_value());
  EXPECT_EQ((*pod)["metadata"]["labels"]["elasticbatch.io/instance"], "1");
  EXPECT_EQ((*pod)["spec"]["restartPolicy"], "Never");
  EXPECT_TRUE(launcher.Cleanup().ok());
  EXPECT_TRUE(cluster.server.List(kPodsPath).empty());
}

TEST(PodLauncherTest, StopDeletesThePodAndItsEndIsReportedOnce) {
  // Index 1 never gets a node: its deletion is immediate.
  Cluster cluster([](const json& pod) -> std::optional<absl::Duration> {
    if (pod["metadata"]["name"] == "j-worker-1-0") return std::nullopt;
    return absl::ZeroDuration();
  });
  PodLauncher launcher(cluster.client.get(), cluster.Options());
  Recorder events;
  launcher.SetEventHandler([&](const LauncherEvent& e) { events.Record(e); });
  ASSERT_TRUE(launcher.Start().ok());
  ASSERT_TRUE(launcher.Launch(Spec(0, 0, "exec sleep 600")).ok());
  ASSERT_TRUE(launcher.Launch(Spec(1, 0, "exec sleep 600")).ok());
  ASSERT_TRUE(testing::WaitUntil(absl::Now() + kPatience, [&] {
    return cluster.kubelet->running() == 1 && events.Has("started 1/0");
  }));
  launcher.Stop(0, 0);
  launcher.Stop(1, 0);
  ASSERT_TRUE(testing::WaitUntil(absl::Now() + kPatience, [&] {
    return events.Has("exited 0/0 143") && events.Has("exited 1/0 137");
  }));
  launcher.Stop(0, 0);  // ended: nothing happens
  EXPECT_EQ(launcher.live(), 0u);
  ASSERT_TRUE(testing::WaitUntil(absl::Now() + kPatience,
                                 [&] { return cluster.server.List(kPodsPath).empty(); }));
  EXPECT_EQ(events.events().size(), 4u);
}

TEST(PodLauncherTest, TheTokenReachesThePodThroughASecretOnly) {
  Cluster cluster;
  PodLauncherOptions options = cluster.Options();
  options.secret_env = {{"ELASTICBATCH_TOKEN", "tok-123456"}};
  options.owner = OwnerReference{"v1", "Pod", "master-pod", "uid-m"};
  PodLauncher launcher(cluster.client.get(), options);
  Recorder events;
  launcher.SetEventHandler([&](const LauncherEvent& e) { events.Record(e); });
  ASSERT_TRUE(launcher.Start().ok());
  // The expected value from a file: the command is in the pod spec.
  testing::WriteFileOrDie(cluster.logs.path() + "/expected", "tok-123456");
  ASSERT_TRUE(
      launcher
          .Launch(Spec(0, 0,
                       absl::StrCat("test \"$ELASTICBATCH_TOKEN\" = \"$(cat ",
                                    cluster.logs.path(), "/expected)\" || exit 9")))
          .ok());
  ASSERT_TRUE(testing::WaitUntil(absl::Now() + kPatience,
                                 [&] { return events.Has("exited 0/0 0"); }));
  const std::optional<json> pod = cluster.server.Get(kPodsPath, "j-worker-0-0");
  ASSERT_TRUE(pod.has_value());
  EXPECT_EQ(pod->dump().find("tok-123456"), std::string::npos);
  EXPECT_EQ((*pod)["metadata"]["ownerReferences"][0]["name"], "master-pod");
  const std::optional<json> secret = cluster.server.Get(kSecretsPath, "j-worker-env");
  ASSERT_TRUE(secret.has_value());
  EXPECT_EQ((*secret)["metadata"]["ownerReferences"][0]["uid"], "uid-m");
  EXPECT_TRUE(launcher.Cleanup().ok());
  EXPECT_FALSE(cluster.server.Get(kSecretsPath, "j-worker-env").has_value());
}

TEST(PodLauncherTest, ACreateTheServerRefusesEndsTheAttemptWith127) {
  Cluster cluster;
  PodLauncher launcher(cluster.client.get(), cluster.Options());
  Recorder events;
  launcher.SetEventHandler([&](const LauncherEvent& e) { events.Record(e); });
  ASSERT_TRUE(launcher.Start().ok());
  cluster.server.InjectErrors("POST", kPodsPath, 403, 1);
  ASSERT_TRUE(launcher.Launch(Spec(0, 0, "true")).ok());
  ASSERT_TRUE(testing::WaitUntil(absl::Now() + kPatience,
                                 [&] { return events.Has("exited 0/0 127"); }));
  EXPECT_EQ(events.events(), std::vector<std::string>{"exited 0/0 127"});
}

TEST(PodLauncherTest, StartFailsInOneLineWhenPodsCannotBeListed) {
  Cluster cluster;
  cluster.server.InjectErrors("GET", kPodsPath, 403, 100);
  PodLauncher launcher(cluster.client.get(), cluster.Options());
  const absl::Status s = launcher.Start();
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.code(), absl::StatusCode::kPermissionDenied) << s;
  EXPECT_THAT(s.message(), HasSubstr("[list"));
  EXPECT_EQ(std::string(s.message()).find('\n'), std::string::npos);
  cluster.server.ClearInjectedErrors();
}

TEST(PodLauncherTest, ARunningPodOfTheSameNameIsAdoptedAnEndedOneReplaced) {
  Cluster cluster;
  {
    // An earlier master's launcher, gone without cleaning up.
    PodLauncher earlier(cluster.client.get(), cluster.Options());
    ASSERT_TRUE(earlier.Start().ok());
    ASSERT_TRUE(earlier.Launch(Spec(0, 0, "exec sleep 600")).ok());
    ASSERT_TRUE(earlier.Launch(Spec(1, 0, "exit 4")).ok());
    ASSERT_TRUE(testing::WaitUntil(absl::Now() + kPatience, [&] {
      const std::optional<json> ended = cluster.server.Get(kPodsPath, "j-worker-1-0");
      return cluster.kubelet->running() == 1 && ended &&
             (*ended)["status"].value("phase", "") == "Failed";
    }));
  }
  const std::string running_uid =
      (*cluster.server.Get(kPodsPath, "j-worker-0-0"))["metadata"]["uid"];
  PodLauncher launcher(cluster.client.get(), cluster.Options());
  Recorder events;
  launcher.SetEventHandler([&](const LauncherEvent& e) { events.Record(e); });
  ASSERT_TRUE(launcher.Start().ok());
  ASSERT_TRUE(launcher.Launch(Spec(0, 0, "exec sleep 600")).ok());
  ASSERT_TRUE(launcher.Launch(Spec(1, 0, "exit 0")).ok());
  ASSERT_TRUE(testing::WaitUntil(absl::Now() + kPatience, [&] {
    return events.Has("started 0/0") && events.Has("exited 1/0 0");
  }));
  EXPECT_EQ((*cluster.server.Get(kPodsPath, "j-worker-0-0"))["metadata"]["uid"],
            running_uid);
  EXPECT_EQ(cluster.kubelet->Runs().size(), 3u);  // the sleeper ran once
  EXPECT_TRUE(launcher.Cleanup().ok());
  EXPECT_TRUE(events.Has("exited 0/0 143"));
  EXPECT_TRUE(cluster.server.List(kPodsPath).empty());
  EXPECT_EQ(cluster.kubelet->running(), 0);
}

TEST(PodLauncherTest, RefusesJobIdsThatCannotNamePods) {
  EXPECT_TRUE(CheckJobNameForPods("scoring-2026").ok());
  for (const char* bad : {"", "Upper", "a_b", "-a", "a-", "a.b",
                          "a-very-long-job-name-that-goes-past-forty-chars"}) {
    EXPECT_FALSE(CheckJobNameForPods(bad).ok()) << bad;
  }
}

}  // namespace
}  // namespace elasticbatch::kube
