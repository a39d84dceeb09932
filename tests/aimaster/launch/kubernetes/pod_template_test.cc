#include "aimaster/launch/kubernetes/pod_template.h"

#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/temp_files.h"

namespace elasticbatch::kube {
namespace {

using nlohmann::json;
using ::testing::HasSubstr;

json Yaml(const std::string& text) {
  absl::StatusOr<json> j = YamlToJson(YAML::Load(text));
  EXPECT_TRUE(j.ok()) << j.status();
  return j.ok() ? *j : json();
}

TEST(YamlToJsonTest, PlainScalarsTakeTheirTypeAndQuotedOnesStayStrings) {
  const json j = Yaml(
      "a: 1\nb: -2.5\nc: true\nd: ~\ne: \"1\"\nf: '07'\ng: hello\nh: [1, x]\n"
      "i: 1e3\nj: 0.\nk: '- x'\nl: 1.2.3\n");
  EXPECT_EQ(j["a"], 1);
  EXPECT_EQ(j["b"], -2.5);
  EXPECT_EQ(j["c"], true);
  EXPECT_TRUE(j["d"].is_null());
  EXPECT_EQ(j["e"], "1");
  EXPECT_EQ(j["f"], "07");
  EXPECT_EQ(j["g"], "hello");
  EXPECT_EQ(j["h"], json::array({1, "x"}));
  EXPECT_EQ(j["i"], 1000.0);
  EXPECT_EQ(j["j"], 0.0);
  EXPECT_EQ(j["k"], "- x");
  EXPECT_EQ(j["l"], "1.2.3");
}

TEST(YamlToJsonTest, RefusesDeepNesting) {
  std::string text;
  for (int i = 0; i < 70; ++i) text += "[";
  for (int i = 0; i < 70; ++i) text += "]";
  absl::StatusOr<json> j = YamlToJson(YAML::Load(text));
  ASSERT_FALSE(j.ok());
  EXPECT_THAT(j.status().message(), HasSubstr("nested deeper"));
}

constexpr char kTemplate[] = R"(
apiVersion: v1
kind: Pod
metadata:
  name: ignored
  labels: {app: scoring}
  annotations: {prometheus.io/scrape: "true"}
spec:
  restartPolicy: Always
  containers:
  - name: sidecar
    image: busybox
  - name: elasticbatch
    image: registry/scoring:1
    command: [python, main.py]
    args: [--fast]
    env:
    - {name: MODEL, value: big}
    - {name: AIMASTER_ADDR, value: wrong:1}
)";

TEST(PodTemplateTest, LoadsAPodAndBuildsAWorkerPodFromIt) {
  testing::TempDir dir;
  const std::string path = dir.path() + "/worker.yaml";
  testing::WriteFileOrDie(path, kTemplate);
  absl::StatusOr<json> tmpl = LoadPodTemplate(path);
  ASSERT_TRUE(tmpl.ok()) << tmpl.status();
  EXPECT_EQ(WorkerContainerIndex(*tmpl), 1u);

  WorkerPod pod;
  pod.name = "j-worker-3-1";
  pod.ns = "ns";
  pod.job_name = "j";
  pod.index = 3;
  pod.attempt = 1;
  pod.labels = {{kRoleLabel, "backup"}};
  pod.env = {"AIMASTER_ADDR=10.0.0.1:23456", "ELASTICBATCH_ATTEMPT=1",
             "ELASTICBATCH_TOKEN=secret-value"};
  pod.secret_env = {{"ELASTICBATCH_TOKEN", "ELASTICBATCH_TOKEN"}};
  pod.secret_name = "j-worker-env";
  pod.owner = OwnerReference{"v1", "Pod", "master", "uid-1"};
  pod.termination_grace_seconds = 7;
  const json p = BuildWorkerPod(*tmpl, pod);
  EXPECT_EQ(p["metadata"]["name"], "j-worker-3-1");
  EXPECT_EQ(p["metadata"]["namespace"], "ns");
  EXPECT_EQ(p["metadata"]["labels"]["app"], "scoring");
  EXPECT_EQ(p["metadata"]["labels"][kJobLabel], "j");
  EXPECT_EQ(p["metadata"]["labels"][kInstanceLabel], "3");
  EXPECT_EQ(p["metadata"]["labels"][kAttemptLabel], "1");
  EXPECT_EQ(p["metadata"]["labels"][kRoleLabel], "backup");
  EXPECT_EQ(p["metadata"]["annotations"]["prometheus.io/scrape"], "true");
  EXPECT_EQ(p["metadata"]["ownerReferences"][0]["uid"], "uid-1");
  EXPECT_EQ(p["metadata"]["ownerReferences"][0]["controller"], false);
  EXPECT_EQ(p["spec"]["restartPolicy"], "Never");
  EXPECT_EQ(p["spec"]["terminationGracePeriodSeconds"], 7);
  const json& c = p["spec"]["containers"][1];
  EXPECT_EQ(c["command"], json::array({"python", "main.py"}));
  EXPECT_EQ(c["args"], json::array({"--fast"}));
  EXPECT_FALSE(p["spec"]["containers"][0].contains("env"));
  // The template's own variable stays; ours replace theirs; the token is a
  // secret reference and its value appears nowhere in the pod.
  EXPECT_EQ(c["env"][0], json({{"name", "MODEL"}, {"value", "big"}}));
  EXPECT_EQ(c["env"][1], json({{"name", "AIMASTER_ADDR"}, {"value", "10.0.0.1:23456"}}));
  EXPECT_EQ(c["env"][2], json({{"name", "ELASTICBATCH_ATTEMPT"}, {"value", "1"}}));
  EXPECT_EQ(c["env"][3]["valueFrom"]["secretKeyRef"]["name"], "j-worker-env");
  EXPECT_EQ(c["env"].size(), 4u);
  EXPECT_EQ(p.dump().find("secret-value"), std::string::npos);
}

TEST(PodTemplateTest, ACommandReplacesTheContainersOwn) {
  absl::StatusOr<json> tmpl = PodPartOfTemplate(
      {{"template", {{"spec", {{"containers", {{{"name", "a"}, {"args", {"x"}}}}}}}}}},
      "t");
  ASSERT_TRUE(tmpl.ok()) << tmpl.status();
  WorkerPod pod;
  pod.name = "p";
  pod.command = "sed s/a/b/";
  pod.working_dir = "/job/usercode";
  const json p = BuildWorkerPod(*tmpl, pod);
  EXPECT_EQ(p["spec"]["containers"][0]["command"],
            json::array({"sh", "-c", "sed s/a/b/"}));
  EXPECT_FALSE(p["spec"]["containers"][0].contains("args"));
  EXPECT_EQ(p["spec"]["containers"][0]["workingDir"], "/job/usercode");
}

TEST(PodTemplateTest, BadTemplatesAreOneLineErrorsNamingTheField) {
  testing::TempDir dir;
  const auto load = [&](const std::string& text) {
    const std::string path = dir.path() + "/t.yaml";
    testing::WriteFileOrDie(path, text);
    return LoadPodTemplate(path).status();
  };
  EXPECT_THAT(load("spec: {containers: []}").message(), HasSubstr("spec.containers"));
  EXPECT_THAT(load("kind: Pod").message(), HasSubstr("spec: missing"));
  EXPECT_THAT(load("spec: {containers: [{image: x}]}").message(),
              HasSubstr("containers[0].name"));
  EXPECT_THAT(load("spec: {containers: [{name: a}, {name: a}]}").message(),
              HasSubstr("'a' twice"));
  EXPECT_THAT(
      load("metadata: {labels: {tier: 1}}\nspec: {containers: [{name: a}]}").message(),
      HasSubstr("quote it"));
  EXPECT_THAT(load("a: [").message(), HasSubstr("not valid YAML"));
  EXPECT_THAT(load("spec: {containers: [{name: a}]}\n---\nb: 1\n").message(),
              HasSubstr("one document"));
  EXPECT_THAT(LoadPodTemplate(dir.path() + "/missing.yaml").status().message(),
              HasSubstr("cannot be read"));
  for (const char* text : {"a: [", "kind: Pod"}) {
    const std::string message(load(text).message());
    EXPECT_EQ(message.find('\n'), std::string::npos) << message;
  }
}

TEST(PodExitCodeTest, FromTheWorkerContainerOrAsKilled) {
  const json running = {{"status", {{"phase", "Running"}}}};
  EXPECT_EQ(PodExitCode(running), std::nullopt);
  const json spec = {{"containers", {{{"name", "side"}}, {{"name", "elasticbatch"}}}}};
  json failed = {
      {"spec", spec},
      {"status",
       {{"phase", "Failed"},
        {"containerStatuses",
         {{{"name", "side"}, {"state", {{"terminated", {{"exitCode", 0}}}}}},
          {{"name", "elasticbatch"},
           {"state",
            {{"terminated", {{"exitCode", 137}, {"reason", "OOMKilled"}}}}}}}}}}};
  EXPECT_EQ(PodExitCode(failed), 137);
  EXPECT_EQ(PodEndReason(failed), "OOMKilled");
  const json evicted = {{"status", {{"phase", "Failed"}, {"reason", "Evicted"}}}};
  EXPECT_EQ(PodExitCode(evicted), 137);
  EXPECT_EQ(PodEndReason(evicted), "Evicted");
  const json done = {{"status", {{"phase", "Succeeded"}}}};
  EXPECT_EQ(PodExitCode(done), 0);
  json failed_with_zero = failed;
  failed_with_zero["status"]["containerStatuses"][1]["state"]["terminated"]["exitCode"] = 0;
  EXPECT_EQ(PodExitCode(failed_with_zero), 137);
  json hostile = failed;
  hostile["status"]["containerStatuses"][1]["state"]["terminated"]["exitCode"] = 100000;
  EXPECT_EQ(PodExitCode(hostile), 137);
  hostile["status"]["containerStatuses"] = "nonsense";
  EXPECT_EQ(PodExitCode(hostile), 137);
}

}  // namespace
}  // namespace elasticbatch::kube
