#include "aimaster/launch/kubernetes/kube_config.h"

#include <cstdlib>
#include <string>

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/temp_files.h"

namespace elasticbatch::kube {
namespace {

using ::testing::HasSubstr;

constexpr char kCaPem[] =
    "-----BEGIN CERTIFICATE-----\nMIIBfake\n-----END CERTIFICATE-----\n";
constexpr char kKeyPem[] =
    "-----BEGIN PRIVATE KEY-----\nMIIBfake\n-----END PRIVATE KEY-----\n";

// A kubeconfig with one cluster, one user and one context; `cluster` and
// `user` are the bodies (indented YAML lines).
std::string Kubeconfig(const std::string& cluster, const std::string& user,
                       const std::string& context_extra = "") {
  return absl::StrCat(
      "apiVersion: v1\nkind: Config\ncurrent-context: main\n"
      "clusters:\n- name: c1\n  cluster:\n",
      cluster, "users:\n- name: u1\n  user:\n", user,
      "contexts:\n- name: main\n  context:\n    cluster: c1\n    user: u1\n",
      context_extra);
}

// One line, INVALID_ARGUMENT, naming the file and the field.
void ExpectOneLineError(const absl::StatusOr<KubeConfig>& config, const std::string& file,
                        const std::string& field) {
  ASSERT_FALSE(config.ok());
  EXPECT_EQ(config.status().code(), absl::StatusCode::kInvalidArgument)
      << config.status();
  EXPECT_THAT(config.status().message(), HasSubstr(file));
  EXPECT_THAT(config.status().message(), HasSubstr(field));
  EXPECT_FALSE(absl::StrContains(config.status().message(), "\n")) << config.status();
}

class KubeConfigTest : public ::testing::Test {
 protected:
  std::string Write(const std::string& name, const std::string& content) {
    const std::string path = dir_.path() + "/" + name;
    testing::WriteFileOrDie(path, content);
    return path;
  }

  testing::TempDir dir_;
};

TEST_F(KubeConfigTest, TokenAndCaFileRelativeToTheKubeconfig) {
  Write("k/ca.crt", kCaPem);
  const std::string path =
      Write("k/config", Kubeconfig("    server: https://10.0.0.1:6443/\n"
                                   "    certificate-authority: ca.crt\n",
                                   "    token: abc123\n", "    namespace: jobs\n"));
  absl::StatusOr<KubeConfig> config = LoadKubeconfig(path);
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->server, "https://10.0.0.1:6443");
  EXPECT_EQ(config->ca_file, dir_.path() + "/k/ca.crt");
  EXPECT_EQ(config->token, "abc123");
  EXPECT_EQ(config->default_namespace, "jobs");
  EXPECT_THAT(config->source, HasSubstr(path));
}

TEST_F(KubeConfigTest, DataFieldsAreDecoded) {
  const std::string path = Write(
      "config",
      Kubeconfig(
          absl::StrCat("    server: https://k8s:443\n    certificate-authority-data: ",
                       absl::Base64Escape(kCaPem), "\n"),
          absl::StrCat("    client-certificate-data: ", absl::Base64Escape(kCaPem),
                       "\n    client-key-data: ", absl::Base64Escape(kKeyPem), "\n")));
  absl::StatusOr<KubeConfig> config = LoadKubeconfig(path);
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->ca_pem, kCaPem);
  EXPECT_EQ(config->client_cert_pem, kCaPem);
  EXPECT_EQ(config->client_key_pem, kKeyPem);
  EXPECT_TRUE(config->ca_file.empty());
  EXPECT_EQ(config->default_namespace, "default");
}

TEST_F(KubeConfigTest, ClientCertificateFilesAndTokenFile) {
  Write("tls/client.crt", kCaPem);
  Write("tls/client.key", kKeyPem);
  Write("token", "tok\n");
  const std::string path =
      Write("config", Kubeconfig("    server: http://127.0.0.1:8080\n",
                                 absl::StrCat("    client-certificate: tls/client.crt\n"
                                              "    client-key: ",
                                              dir_.path(),
                                              "/tls/client.key\n"
                                              "    tokenFile: token\n")));
  absl::StatusOr<KubeConfig> config = LoadKubeconfig(path);
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->server, "http://127.0.0.1:8080");
  EXPECT_EQ(config->client_cert_file, dir_.path() + "/tls/client.crt");
  EXPECT_EQ(config->client_key_file, dir_.path() + "/tls/client.key");
  EXPECT_EQ(config->token_file, dir_.path() + "/token");
  EXPECT_TRUE(config->token.empty());
}

TEST_F(KubeConfigTest, ContextOverridePicksAnotherClusterAndUser) {
  const std::string path =
      Write("config",
            "current-context: a\n"
            "clusters:\n"
            "- {name: ca, cluster: {server: 'https://a:443'}}\n"
            "- {name: cb, cluster: {server: 'https://b:443'}}\n"
            "users:\n- {name: ua, user: {token: ta}}\n- {name: ub, user: {token: tb}}\n"
            "contexts:\n"
            "- {name: a, context: {cluster: ca, user: ua}}\n"
            "- {name: b, context: {cluster: cb, user: ub, namespace: nb}}\n");
  absl::StatusOr<KubeConfig> a = LoadKubeconfig(path);
  ASSERT_TRUE(a.ok()) << a.status();
  EXPECT_EQ(a->server, "https://a:443");
  EXPECT_EQ(a->token, "ta");
  absl::StatusOr<KubeConfig> b = LoadKubeconfig(path, "b");
  ASSERT_TRUE(b.ok()) << b.status();
  EXPECT_EQ(b->server, "https://b:443");
  EXPECT_EQ(b->token, "tb");
  EXPECT_EQ(b->default_namespace, "nb");
  ExpectOneLineError(LoadKubeconfig(path, "nope"), path,
                     "no entry named \"nope\" in contexts");
}

TEST_F(KubeConfigTest, EachBadFileOrFieldIsAOneLineErrorNamingIt) {
  const std::string missing = dir_.path() + "/absent";
  ExpectOneLineError(LoadKubeconfig(missing), missing, "cannot read");

  const std::string not_yaml = Write("bad-yaml", "clusters: [\n  - {name: c1\n");
  ExpectOneLineError(LoadKubeconfig(not_yaml), not_yaml, "not valid YAML");

  const std::string scalar = Write("scalar", "just a string\n");
  ExpectOneLineError(LoadKubeconfig(scalar), scalar, "not a kubeconfig");

  const std::string no_server =
      Write("no-server", Kubeconfig("    foo: bar\n", "    token: t\n"));
  ExpectOneLineError(LoadKubeconfig(no_server), no_server, "clusters[0].cluster.server");

  const std::string ftp =
      Write("ftp", Kubeconfig("    server: ftp://x\n", "    token: t\n"));
  ExpectOneLineError(LoadKubeconfig(ftp), ftp, "clusters[0].cluster.server");

  const std::string no_ca =
      Write("no-ca",
            Kubeconfig("    server: https://x\n    certificate-authority: nowhere.crt\n",
                       "    token: t\n"));
  ExpectOneLineError(LoadKubeconfig(no_ca), no_ca,
                     "clusters[0].cluster.certificate-authority");

  Write("not-pem.crt", "garbage");
  const std::string not_pem =
      Write("not-pem",
            Kubeconfig("    server: https://x\n    certificate-authority: not-pem.crt\n",
                       "    token: t\n"));
  ExpectOneLineError(LoadKubeconfig(not_pem), not_pem, "holds no PEM block");

  const std::string bad_b64 =
      Write("bad-b64",
            Kubeconfig("    server: https://x\n    certificate-authority-data: '!!!'\n",
                       "    token: t\n"));
  ExpectOneLineError(LoadKubeconfig(bad_b64), bad_b64,
                     "clusters[0].cluster.certificate-authority-data: not valid base64");

  const std::string bad_key = Write(
      "bad-key",
      Kubeconfig(
          "    server: https://x\n",
          absl::StrCat("    client-certificate-data: ", absl::Base64Escape(kCaPem),
                       "\n    client-key-data: ", absl::Base64Escape("not pem"), "\n")));
  ExpectOneLineError(LoadKubeconfig(bad_key), bad_key,
                     "users[0].user.client-key-data: does not decode to PEM");

  const std::string no_key =
      Write("no-key", Kubeconfig("    server: https://x\n",
                                 absl::StrCat("    client-certificate-data: ",
                                              absl::Base64Escape(kCaPem), "\n")));
  ExpectOneLineError(LoadKubeconfig(no_key), no_key,
                     "client-certificate without client-key");

  const std::string no_token_file = Write(
      "no-token-file", Kubeconfig("    server: https://x\n", "    tokenFile: gone\n"));
  ExpectOneLineError(LoadKubeconfig(no_token_file), no_token_file,
                     "users[0].user.tokenFile");

  const std::string exec =
      Write("exec",
            Kubeconfig("    server: https://x\n", "    exec:\n      command: gcloud\n"));
  ExpectOneLineError(LoadKubeconfig(exec), exec, "users[0].user.exec: not supported");

  const std::string insecure =
      Write("insecure",
            Kubeconfig("    server: https://x\n    insecure-skip-tls-verify: true\n",
                       "    token: t\n"));
  ExpectOneLineError(LoadKubeconfig(insecure), insecure, "insecure-skip-tls-verify");

  const std::string token_map =
      Write("token-map", Kubeconfig("    server: https://x\n", "    token: {a: b}\n"));
  ExpectOneLineError(LoadKubeconfig(token_map), token_map,
                     "users[0].user.token: not a string");

  const std::string no_context = Write("no-context", "clusters: []\n");
  ExpectOneLineError(LoadKubeconfig(no_context), no_context, "current-context");

  const std::string no_user =
      Write("no-user",
            "current-context: m\nclusters:\n- {name: c, cluster: {server: 'https://x'}}\n"
            "contexts:\n- {name: m, context: {cluster: c, user: ghost}}\n");
  ExpectOneLineError(LoadKubeconfig(no_user), no_user,
                     "no entry named \"ghost\" in users");
}

// Sets (or unsets, for nullptr) an environment variable for one test.
class ScopedEnv {
 public:
  ScopedEnv(const char* name, const char* value) : name_(name) {
    const char* old = std::getenv(name);
    if (old != nullptr) old_ = old;
    had_ = old != nullptr;
    if (value != nullptr) {
      setenv(name, value, 1);
    } else {
      unsetenv(name);
    }
  }
  ~ScopedEnv() {
    if (had_) {
      setenv(name_.c_str(), old_.c_str(), 1);
    } else {
      unsetenv(name_.c_str());
    }
  }

 private:
  std::string name_;
  std::string old_;
  bool had_ = false;
};

TEST_F(KubeConfigTest, InClusterFromTheServiceAccountDirectory) {
  Write("sa/token", "sa-token\n");
  Write("sa/ca.crt", kCaPem);
  Write("sa/namespace", "batch\n");
  ScopedEnv host("KUBERNETES_SERVICE_HOST", "10.96.0.1");
  ScopedEnv port("KUBERNETES_SERVICE_PORT", "443");
  absl::StatusOr<KubeConfig> config = InClusterConfig(dir_.path() + "/sa");
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->server, "https://10.96.0.1:443");
  EXPECT_EQ(config->token_file, dir_.path() + "/sa/token");
  EXPECT_EQ(config->ca_file, dir_.path() + "/sa/ca.crt");
  EXPECT_EQ(config->default_namespace, "batch");

  ScopedEnv v6("KUBERNETES_SERVICE_HOST", "fd00::1");
  config = InClusterConfig(dir_.path() + "/sa");
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->server, "https://[fd00::1]:443");
}

TEST_F(KubeConfigTest, InClusterErrorsNameWhatIsMissing) {
  {
    ScopedEnv host("KUBERNETES_SERVICE_HOST", nullptr);
    absl::StatusOr<KubeConfig> config = InClusterConfig(dir_.path());
    ExpectOneLineError(config, "in-cluster", "KUBERNETES_SERVICE_HOST");
  }
  ScopedEnv host("KUBERNETES_SERVICE_HOST", "10.96.0.1");
  ScopedEnv port("KUBERNETES_SERVICE_PORT", "443");
  ExpectOneLineError(InClusterConfig(dir_.path() + "/none"), dir_.path() + "/none/token",
                     "token: cannot read");
  Write("sa/token", "t");
  ExpectOneLineError(InClusterConfig(dir_.path() + "/sa"), dir_.path() + "/sa/ca.crt",
                     "ca.crt");
}

TEST_F(KubeConfigTest, ResolveTakesTheFlagThenKubeconfigVariable) {
  const std::string flag =
      Write("flag", Kubeconfig("    server: https://flag\n", "    token: f\n"));
  const std::string env =
      Write("env", Kubeconfig("    server: https://env\n", "    token: e\n"));
  ScopedEnv kubeconfig("KUBECONFIG", absl::StrCat(":", env, ":", flag).c_str());
  absl::StatusOr<KubeConfig> config = ResolveKubeConfig(flag);
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->server, "https://flag");
  config = ResolveKubeConfig("");
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->server, "https://env");

  ScopedEnv unset("KUBECONFIG", nullptr);
  ScopedEnv host("KUBERNETES_SERVICE_HOST", nullptr);
  ExpectOneLineError(ResolveKubeConfig(""), "in-cluster", "--kubeconfig");
}

}  // namespace
}  // namespace elasticbatch::kube
