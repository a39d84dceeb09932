#include "aimaster/launch/kubernetes/kube_client.h"

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/aimaster/launch/kubernetes/fake_api_server.h"
#include "tests/testing/temp_files.h"
#include "tests/testing/test_pki.h"

namespace elasticbatch::kube {
namespace {

using nlohmann::json;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::UnorderedElementsAre;

constexpr char kPodsPath[] = "/api/v1/namespaces/ns/pods";
const ResourceKind kJobs{"inference.kubedl.io", "v1alpha1", "elasticbatchjobs"};

json Pod(const std::string& name, json labels = json::object()) {
  return {
      {"apiVersion", "v1"},
      {"kind", "Pod"},
      {"metadata", {{"name", name}, {"labels", std::move(labels)}}},
      {"spec", {{"containers", json::array({{{"name", "w"}, {"image", "busybox"}}})}}}};
}

std::vector<std::string> Names(const std::vector<json>& objects) {
  std::vector<std::string> out;
  for (const json& o : objects) out.push_back(o["metadata"]["name"].get<std::string>());
  return out;
}

// Records the waits the client asks for instead of sleeping.
class RecordedSleeps {
 public:
  std::function<void(absl::Duration)> Sleeper() {
    return [this](absl::Duration d) {
      absl::MutexLock lock(&mu_);
      waits_.push_back(d);
    };
  }
  std::vector<absl::Duration> waits() const {
    absl::MutexLock lock(&mu_);
    return waits_;
  }

 private:
  mutable absl::Mutex mu_;
  std::vector<absl::Duration> waits_ ABSL_GUARDED_BY(mu_);
};

class KubeClientTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(server_.Start().ok());
    KubeConfig config;
    config.server = server_.url();
    config.token = "test-token";
    config.source = "test config";
    KubeClientOptions options;
    options.sleep = sleeps_.Sleeper();
    absl::StatusOr<std::unique_ptr<KubeClient>> client =
        KubeClient::Create(config, std::move(options));
    ASSERT_TRUE(client.ok()) << client.status();
    client_ = *std::move(client);
  }

  testing::FakeApiServer server_;
  RecordedSleeps sleeps_;
  std::unique_ptr<KubeClient> client_;
};

TEST_F(KubeClientTest, CreateGetListDelete) {
  absl::StatusOr<json> created = client_->Create(kPods, "ns", Pod("w-0"));
  ASSERT_TRUE(created.ok()) << created.status();
  EXPECT_EQ((*created)["metadata"]["name"], "w-0");
  EXPECT_EQ((*created)["metadata"]["namespace"], "ns");
  EXPECT_FALSE((*created)["metadata"]["uid"].get<std::string>().empty());
  EXPECT_FALSE((*created)["metadata"]["resourceVersion"].get<std::string>().empty());

  absl::StatusOr<json> got = client_->Get(kPods, "ns", "w-0");
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ((*got)["metadata"]["uid"], (*created)["metadata"]["uid"]);
  EXPECT_EQ((*got)["metadata"]["resourceVersion"],
            (*created)["metadata"]["resourceVersion"]);

  json generated = Pod("");
  generated["metadata"].erase("name");
  generated["metadata"]["generateName"] = "backup-";
  absl::StatusOr<json> backup = client_->Create(kPods, "ns", generated);
  ASSERT_TRUE(backup.ok()) << backup.status();
  const std::string backup_name = (*backup)["metadata"]["name"];
  EXPECT_TRUE(absl::StartsWith(backup_name, "backup-")) << backup_name;
  EXPECT_EQ(backup_name.size(), std::string("backup-").size() + 5);

  absl::StatusOr<KubeList> list = client_->List(kPods, "ns");
  ASSERT_TRUE(list.ok()) << list.status();
  EXPECT_THAT(Names(list->items), UnorderedElementsAre("w-0", backup_name));
  EXPECT_EQ(list->resource_version, std::to_string(server_.resource_version()));

  ASSERT_TRUE(client_->Delete(kPods, "ns", "w-0").ok());
  absl::StatusOr<json> gone = client_->Get(kPods, "ns", "w-0");
  EXPECT_EQ(gone.status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(HttpStatusOf(gone.status()), 404);
  EXPECT_EQ(gone.status().message(),
            "get pods \"w-0\" in namespace \"ns\": not found (HTTP 404): pods \"w-0\" "
            "not found");
  EXPECT_EQ(client_->Delete(kPods, "ns", "w-0").code(), absl::StatusCode::kNotFound);
  // Every request carried the token.
  for (const testing::FakeRequest& r : server_.Requests()) {
    EXPECT_EQ(r.authorization, "Bearer test-token") << r.method << " " << r.path;
  }
}

TEST_F(KubeClientTest, CreateConflictsAndInvalidObjects) {
  ASSERT_TRUE(client_->Create(kPods, "ns", Pod("w-0")).ok());
  absl::StatusOr<json> again = client_->Create(kPods, "ns", Pod("w-0"));
  EXPECT_EQ(again.status().code(), absl::StatusCode::kAlreadyExists) << again.status();
  EXPECT_EQ(HttpStatusOf(again.status()), 409);
  EXPECT_THAT(again.status().message(), HasSubstr("already exists"));

  json nameless = Pod("");
  nameless["metadata"].erase("name");
  absl::StatusOr<json> invalid = client_->Create(kPods, "ns", nameless);
  EXPECT_EQ(invalid.status().code(), absl::StatusCode::kInvalidArgument)
      << invalid.status();
  EXPECT_EQ(HttpStatusOf(invalid.status()), 422);
  EXPECT_THAT(invalid.status().message(), HasSubstr("metadata.name: Required value"));
  // Neither is retried.
  EXPECT_EQ(server_.CountRequests("POST", kPodsPath), 3);
  EXPECT_THAT(sleeps_.waits(), IsEmpty());
}

TEST_F(KubeClientTest, DeletePreconditionsAreSent) {
  absl::StatusOr<json> created = client_->Create(kPods, "ns", Pod("w-0"));
  ASSERT_TRUE(created.ok());
  absl::Status stale = client_->Delete(kPods, "ns", "w-0", {.uid = "someone-else"});
  EXPECT_EQ(stale.code(), absl::StatusCode::kAborted) << stale;
  EXPECT_THAT(stale.message(), HasSubstr("Precondition failed: UID"));
  EXPECT_TRUE(server_.Get(kPodsPath, "w-0").has_value());
  EXPECT_TRUE(client_
                  ->Delete(kPods, "ns", "w-0",
                           {.uid = (*created)["metadata"]["uid"].get<std::string>(),
                            .propagation_policy = "Background"})
                  .ok());
  EXPECT_FALSE(server_.Get(kPodsPath, "w-0").has_value());
}

TEST_F(KubeClientTest, MergePatchOfAnAnnotationOnACustomResource) {
  json job = {
      {"apiVersion", "inference.kubedl.io/v1alpha1"},
      {"kind", "ElasticBatchJob"},
      {"metadata", {{"name", "j"}, {"annotations", {{"keep", "1"}, {"drop", "2"}}}}},
      {"spec", {{"x", 1}}}};
  absl::StatusOr<json> created = client_->Create(kJobs, "ns", job);
  ASSERT_TRUE(created.ok()) << created.status();
  absl::StatusOr<json> patched = client_->MergePatch(
      kJobs, "ns", "j",
      {{"metadata", {{"annotations", {{"aimaster", "ready"}, {"drop", nullptr}}}}}});
  ASSERT_TRUE(patched.ok()) << patched.status();
  EXPECT_EQ((*patched)["metadata"]["annotations"],
            json({{"keep", "1"}, {"aimaster", "ready"}}));
  EXPECT_EQ((*patched)["spec"], json({{"x", 1}}));
  EXPECT_EQ((*patched)["metadata"]["uid"], (*created)["metadata"]["uid"]);
  EXPECT_NE((*patched)["metadata"]["resourceVersion"],
            (*created)["metadata"]["resourceVersion"]);
  EXPECT_EQ(
      server_.CountRequests(
          "PATCH", "/apis/inference.kubedl.io/v1alpha1/namespaces/ns/elasticbatchjobs/j"),
      1);

  absl::StatusOr<json> missing = client_->MergePatch(kJobs, "ns", "nope", json::object());
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(
      missing.status().message(),
      HasSubstr(
          "patch elasticbatchjobs.inference.kubedl.io \"nope\" in namespace \"ns\""));
}

TEST_F(KubeClientTest, LabelSelectors) {
  ASSERT_TRUE(
      client_->Create(kPods, "ns", Pod("a", {{"job", "j"}, {"role", "worker"}})).ok());
  ASSERT_TRUE(
      client_->Create(kPods, "ns", Pod("b", {{"job", "j"}, {"role", "backup"}})).ok());
  ASSERT_TRUE(client_->Create(kPods, "ns", Pod("c", {{"job", "k"}})).ok());
  ASSERT_TRUE(client_->Create(kPods, "other", Pod("d", {{"job", "j"}})).ok());
  const auto names = [&](const std::string& selector) {
    absl::StatusOr<KubeList> list =
        client_->List(kPods, "ns", {.label_selector = selector});
    EXPECT_TRUE(list.ok()) << list.status();
    return list.ok() ? Names(list->items) : std::vector<std::string>{"error"};
  };
  EXPECT_THAT(names("job=j"), ElementsAre("a", "b"));
  EXPECT_THAT(names("job==j,role!=backup"), ElementsAre("a"));
  EXPECT_THAT(names("role!=backup"), ElementsAre("a", "c"));
  EXPECT_THAT(names("role in (worker, backup)"), ElementsAre("a", "b"));
  EXPECT_THAT(names("job notin (j)"), ElementsAre("c"));
  EXPECT_THAT(names("role"), ElementsAre("a", "b"));
  EXPECT_THAT(names("!role"), ElementsAre("c"));
  EXPECT_THAT(names("job=j,role in (backup)"), ElementsAre("b"));

  absl::StatusOr<KubeList> bad = client_->List(kPods, "ns", {.label_selector = "a b c"});
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument) << bad.status();
  EXPECT_THAT(bad.status().message(), HasSubstr("unable to parse requirement"));
}

TEST_F(KubeClientTest, RetriesTooManyRequestsHonouringRetryAfter) {
  server_.InjectErrors("POST", kPodsPath, 429, 2, "3");
  absl::StatusOr<json> created = client_->Create(kPods, "ns", Pod("w-0"));
  ASSERT_TRUE(created.ok()) << created.status();
  EXPECT_EQ(server_.CountRequests("POST", kPodsPath), 3);
  EXPECT_THAT(sleeps_.waits(), ElementsAre(absl::Seconds(3), absl::Seconds(3)));
}

TEST_F(KubeClientTest, RetriesServerErrorsWithGrowingJitteredBackoff) {
  server_.InjectErrors("GET", kPodsPath, 500, 3);
  absl::StatusOr<KubeList> list = client_->List(kPods, "ns");
  ASSERT_TRUE(list.ok()) << list.status();
  EXPECT_EQ(server_.CountRequests("GET", kPodsPath), 4);
  const std::vector<absl::Duration> waits = sleeps_.waits();
  ASSERT_EQ(waits.size(), 3u);
  // Backoff ceilings 200ms, 400ms, 800ms; each wait in [ceiling/2, ceiling].
  absl::Duration ceiling = absl::Milliseconds(200);
  for (absl::Duration wait : waits) {
    EXPECT_GE(wait, ceiling / 2);
    EXPECT_LE(wait, ceiling);
    ceiling *= 2;
  }
}

TEST_F(KubeClientTest, GivesUpAfterTheBound) {
  server_.InjectErrors("GET", kPodsPath, 503, 100);
  absl::StatusOr<json> got = client_->Get(kPods, "ns", "w-0");
  EXPECT_EQ(got.status().code(), absl::StatusCode::kUnavailable) << got.status();
  EXPECT_EQ(HttpStatusOf(got.status()), 503);
  EXPECT_THAT(got.status().message(), HasSubstr("(gave up after 5 attempts)"));
  EXPECT_EQ(server_.CountRequests("GET", kPodsPath), 5);
  EXPECT_EQ(sleeps_.waits().size(), 4u);
}

TEST_F(KubeClientTest, ALongRetryAfterIsCapped) {
  server_.InjectErrors("GET", kPodsPath, 429, 1, "3600");
  ASSERT_TRUE(client_->List(kPods, "ns").ok());
  EXPECT_THAT(sleeps_.waits(), ElementsAre(absl::Seconds(60)));
}

TEST(KubeClientDeadlineTest, RetriesStopAtTheCallDeadline) {
  testing::FakeApiServer server;
  ASSERT_TRUE(server.Start().ok());
  server.InjectErrors("GET", kPodsPath, 500, 1000);
  // A fake clock that the recorded sleeps advance: 10 attempts would be
  // allowed, the deadline ends the call first.
  absl::Mutex mu;
  absl::Time now = absl::UnixEpoch();
  std::vector<absl::Duration> waits;
  KubeClientOptions options;
  options.max_attempts = 10;
  options.initial_backoff = absl::Seconds(4);
  options.max_backoff = absl::Seconds(4);
  options.call_deadline = absl::Seconds(10);
  options.now = [&] {
    absl::MutexLock lock(&mu);
    return now;
  };
  options.sleep = [&](absl::Duration d) {
    absl::MutexLock lock(&mu);
    waits.push_back(d);
    now += d;
  };
  KubeConfig config;
  config.server = server.url();
  absl::StatusOr<std::unique_ptr<KubeClient>> client =
      KubeClient::Create(config, options);
  ASSERT_TRUE(client.ok());
  absl::StatusOr<KubeList> list = (*client)->List(kPods, "ns");
  EXPECT_EQ(list.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(list.status().message(), HasSubstr("call deadline reached after"));
  EXPECT_EQ(HttpStatusOf(list.status()), 500);
  absl::MutexLock lock(&mu);
  // Waits of 2..4s each; the last one that fits ends at most at 10s.
  EXPECT_GE(waits.size(), 2u);
  EXPECT_LE(waits.size(), 4u);
  EXPECT_LE(now - absl::UnixEpoch(), absl::Seconds(10));
  EXPECT_EQ(server.CountRequests("GET", kPodsPath), static_cast<int>(waits.size()) + 1);
}

TEST_F(KubeClientTest, ConcurrentCallsFromManyThreads) {
  constexpr int kThreads = 4;
  constexpr int kPerThread = 10;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([this, t] {
      for (int i = 0; i < kPerThread; ++i) {
        const std::string name = absl::StrCat("w-", t, "-", i);
        EXPECT_TRUE(client_->Create(kPods, "ns", Pod(name)).ok());
        EXPECT_TRUE(client_->Get(kPods, "ns", name).ok());
      }
    });
  }
  for (std::thread& t : threads) t.join();
  absl::StatusOr<KubeList> list = client_->List(kPods, "ns");
  ASSERT_TRUE(list.ok());
  EXPECT_EQ(list->items.size(), static_cast<size_t>(kThreads * kPerThread));
}

// One raw HTTP/1.1 exchange with the fake, for what the client never sends.
std::string RawExchange(int port, const std::string& request) {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  // Bounded: a fake that never answers fails the test instead of hanging it.
  timeval timeout = {60, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof(timeout));
  sockaddr_in addr = {};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(static_cast<uint16_t>(port));
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    close(fd);
    return "";
  }
  send(fd, request.data(), request.size(), MSG_NOSIGNAL);
  std::string response;
  char buffer[4096];
  for (ssize_t n; (n = recv(fd, buffer, sizeof(buffer), 0)) > 0;)
    response.append(buffer, n);
  close(fd);
  return response;
}

TEST_F(KubeClientTest, TheFakeRefusesAPatchThatIsNotAMergePatch) {
  ASSERT_TRUE(client_->Create(kPods, "ns", Pod("w-0")).ok());
  const std::string body = R"({"metadata":{"labels":{"a":"b"}}})";
  const std::string response = RawExchange(
      server_.port(), absl::StrCat("PATCH ", kPodsPath,
                                   "/w-0 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
                                   "Content-Type: application/json\r\nContent-Length: ",
                                   body.size(), "\r\n\r\n", body));
  EXPECT_TRUE(absl::StartsWith(response, "HTTP/1.1 415 ")) << response;
  EXPECT_THAT(response, HasSubstr(R"("reason":"UnsupportedMediaType")"));
  EXPECT_THAT(response, HasSubstr(R"("kind":"Status")"));
}

TEST_F(KubeClientTest, ACreateIsNotRetriedAfterAServerError) {
  // The server may have made the pod before failing; a retry could make a
  // second one (with generateName) or fail with AlreadyExists.
  server_.InjectErrors("POST", kPodsPath, 500, 1);
  absl::StatusOr<json> created = client_->Create(kPods, "ns", Pod("w-0"));
  EXPECT_EQ(created.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(server_.CountRequests("POST", kPodsPath), 1);
}

TEST_F(KubeClientTest, ForbiddenNamesTheVerbResourceNamespaceAndRule) {
  server_.InjectErrors("POST", kPodsPath, 403, 1);
  absl::StatusOr<json> created = client_->Create(kPods, "ns", Pod("w-0"));
  EXPECT_EQ(created.status().code(), absl::StatusCode::kPermissionDenied);
  EXPECT_THAT(
      created.status().message(),
      HasSubstr("forbidden: cannot create pods \"w-0\" in namespace \"ns\" (the Role "
                "needs verbs [create] on resource \"pods\"): pods is forbidden: User "
                "\"system:serviceaccount:test:aimaster\""));
  EXPECT_FALSE(absl::StrContains(created.status().message(), "\n"));

  server_.InjectErrors("PATCH", "/apis/inference.kubedl.io", 403, 1);
  absl::StatusOr<json> patched = client_->MergePatch(kJobs, "ns", "j", json::object());
  EXPECT_THAT(
      patched.status().message(),
      HasSubstr("forbidden: cannot patch elasticbatchjobs.inference.kubedl.io \"j\" in "
                "namespace \"ns\" (the Role needs verbs [patch] on resource "
                "\"elasticbatchjobs\" in apiGroup \"inference.kubedl.io\")"));

  server_.InjectErrors("GET", kPodsPath, 403, 1);
  absl::StatusOr<KubeList> list = client_->List(kPods, "ns");
  EXPECT_THAT(
      list.status().message(),
      HasSubstr("forbidden: cannot list pods in namespace \"ns\" (the Role needs verbs "
                "[list] on resource \"pods\")"));
  EXPECT_THAT(sleeps_.waits(), IsEmpty());
}

TEST_F(KubeClientTest, MergePatchAddsALabelToAPod) {
  ASSERT_TRUE(client_->Create(kPods, "ns", Pod("w-0")).ok());
  EXPECT_TRUE(
      client_->MergePatch(kPods, "ns", "w-0", {{"metadata", {{"labels", {{"a", "b"}}}}}})
          .ok());
  EXPECT_EQ(server_.Get(kPodsPath, "w-0").value()["metadata"]["labels"]["a"], "b");
}

TEST(KubeClientConfigTest, TokenFileIsReadOnEveryRequest) {
  testing::FakeApiServer server;
  ASSERT_TRUE(server.Start().ok());
  testing::TempDir dir;
  testing::WriteFileOrDie(dir.path() + "/token", "first\n");
  KubeConfig config;
  config.server = server.url();
  config.token_file = dir.path() + "/token";
  absl::StatusOr<std::unique_ptr<KubeClient>> client = KubeClient::Create(config);
  ASSERT_TRUE(client.ok());
  ASSERT_TRUE((*client)->List(kPods, "ns").ok());
  testing::WriteFileOrDie(dir.path() + "/token", "second\n");
  ASSERT_TRUE((*client)->List(kPods, "ns").ok());
  const std::vector<testing::FakeRequest> requests = server.Requests();
  ASSERT_EQ(requests.size(), 2u);
  EXPECT_EQ(requests[0].authorization, "Bearer first");
  EXPECT_EQ(requests[1].authorization, "Bearer second");

  ASSERT_EQ(unlink((dir.path() + "/token").c_str()), 0);
  absl::StatusOr<KubeList> list = (*client)->List(kPods, "ns");
  EXPECT_EQ(list.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(
      list.status().message(),
      HasSubstr(absl::StrCat("list pods in namespace \"ns\": cannot read the API token "
                             "file ",
                             dir.path(), "/token")));
  EXPECT_EQ(server.Requests().size(), 2u);
}

TEST(KubeClientConfigTest, UnauthorizedNamesTheCredentialsSource) {
  testing::FakeApiServer server({.required_token = "right"});
  ASSERT_TRUE(server.Start().ok());
  KubeConfig config;
  config.server = server.url();
  config.token = "wrong";
  config.source = "kubeconfig /k (context c)";
  absl::StatusOr<std::unique_ptr<KubeClient>> client = KubeClient::Create(config);
  ASSERT_TRUE(client.ok());
  absl::StatusOr<KubeList> list = (*client)->List(kPods, "ns");
  EXPECT_EQ(list.status().code(), absl::StatusCode::kUnauthenticated);
  EXPECT_THAT(
      list.status().message(),
      HasSubstr("unauthorized: the API server refused the credentials of kubeconfig /k "
                "(context c)"));
}

TEST(KubeClientConfigTest, RefusesAServerThatIsNotHttp) {
  KubeConfig config;
  config.server = "ftp://x";
  config.source = "test";
  EXPECT_EQ(KubeClient::Create(config).status().code(),
            absl::StatusCode::kInvalidArgument);
}

// A port nothing listens on (bound, then closed).
int ClosedPort() {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr = {};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof(addr);
  bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
  getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  close(fd);
  return ntohs(addr.sin_port);
}

TEST(KubeClientConfigTest, AnUnreachableServerIsRetriedThenAOneLineError) {
  KubeConfig config;
  config.server = absl::StrCat("https://127.0.0.1:", ClosedPort());
  RecordedSleeps sleeps;
  KubeClientOptions options;
  options.sleep = sleeps.Sleeper();
  options.max_attempts = 3;
  absl::StatusOr<std::unique_ptr<KubeClient>> client =
      KubeClient::Create(config, options);
  ASSERT_TRUE(client.ok());
  absl::StatusOr<json> got = (*client)->Get(kPods, "ns", "w-0");
  EXPECT_EQ(got.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(
      got.status().message(),
      HasSubstr(absl::StrCat("get pods \"w-0\" in namespace \"ns\": cannot reach the API "
                             "server ",
                             config.server)));
  EXPECT_THAT(got.status().message(), HasSubstr("(gave up after 3 attempts)"));
  EXPECT_FALSE(absl::StrContains(got.status().message(), "\n"));
  EXPECT_EQ(sleeps.waits().size(), 2u);
  EXPECT_FALSE(HttpStatusOf(got.status()).has_value());
}

class KubeClientTlsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    absl::StatusOr<testing::TestCa> ca =
        testing::TestCa::Create(dir_.path() + "/ca", "Kube CA");
    ASSERT_TRUE(ca.ok()) << ca.status();
    ca_ = *ca;
    absl::StatusOr<testing::CertPair> server_pair =
        ca_->Issue(dir_.path() + "/server", "apiserver", "IP:127.0.0.1,DNS:localhost");
    ASSERT_TRUE(server_pair.ok()) << server_pair.status();
    server_pair_ = *server_pair;
    absl::StatusOr<testing::CertPair> client_pair =
        ca_->Issue(dir_.path() + "/client", "aimaster", "");
    ASSERT_TRUE(client_pair.ok()) << client_pair.status();
    client_pair_ = *client_pair;
  }

  testing::TempDir dir_;
  std::optional<testing::TestCa> ca_;
  testing::CertPair server_pair_;
  testing::CertPair client_pair_;
};

TEST_F(KubeClientTlsTest, HttpsWithTheClusterCaAndAClientCertificate) {
  testing::FakeApiServer server({.tls_cert_file = server_pair_.cert_file,
                                 .tls_key_file = server_pair_.key_file,
                                 .client_ca_file = ca_->cert_file()});
  ASSERT_TRUE(server.Start().ok());
  ASSERT_TRUE(absl::StartsWith(server.url(), "https://"));

  // Files.
  KubeConfig config;
  config.server = server.url();
  config.ca_file = ca_->cert_file();
  config.client_cert_file = client_pair_.cert_file;
  config.client_key_file = client_pair_.key_file;
  absl::StatusOr<std::unique_ptr<KubeClient>> client = KubeClient::Create(config);
  ASSERT_TRUE(client.ok());
  absl::StatusOr<json> created = (*client)->Create(kPods, "ns", Pod("w-0"));
  ASSERT_TRUE(created.ok()) << created.status();

  // PEM text, as from *-data fields.
  KubeConfig data;
  data.server = server.url();
  data.ca_pem = testing::ReadFileOrEmpty(ca_->cert_file());
  data.client_cert_pem = testing::ReadFileOrEmpty(client_pair_.cert_file);
  data.client_key_pem = testing::ReadFileOrEmpty(client_pair_.key_file);
  client = KubeClient::Create(data);
  ASSERT_TRUE(client.ok());
  absl::StatusOr<json> got = (*client)->Get(kPods, "ns", "w-0");
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ((*got)["metadata"]["uid"], (*created)["metadata"]["uid"]);
}

TEST_F(KubeClientTlsTest, AServerCertificateFromAnotherCaIsRefusedAtOnce) {
  testing::FakeApiServer server(
      {.tls_cert_file = server_pair_.cert_file, .tls_key_file = server_pair_.key_file});
  ASSERT_TRUE(server.Start().ok());
  absl::StatusOr<testing::TestCa> other =
      testing::TestCa::Create(dir_.path() + "/other", "Other CA");
  ASSERT_TRUE(other.ok());
  KubeConfig config;
  config.server = server.url();
  config.ca_file = other->cert_file();
  RecordedSleeps sleeps;
  KubeClientOptions options;
  options.sleep = sleeps.Sleeper();
  absl::StatusOr<std::unique_ptr<KubeClient>> client =
      KubeClient::Create(config, options);
  ASSERT_TRUE(client.ok());
  absl::StatusOr<KubeList> list = (*client)->List(kPods, "ns");
  EXPECT_EQ(list.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(list.status().message(),
              HasSubstr(absl::StrCat("list pods in namespace \"ns\": TLS with ",
                                     server.url(), " failed: ")));
  EXPECT_FALSE(absl::StrContains(list.status().message(), "\n"));
  // A certificate that does not verify is not retried.
  EXPECT_THAT(sleeps.waits(), IsEmpty());
  EXPECT_EQ(server.CountRequests("", "/"), 0);
}

}  // namespace
}  // namespace elasticbatch::kube
