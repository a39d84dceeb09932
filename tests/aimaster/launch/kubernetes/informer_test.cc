#include "aimaster/launch/kubernetes/informer.h"

#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/aimaster/launch/kubernetes/fake_api_server.h"
#include "tests/testing/wait.h"

namespace elasticbatch::kube {
namespace {

using nlohmann::json;
using ::testing::ElementsAre;
using ::testing::UnorderedElementsAre;

constexpr char kPodsPath[] = "/api/v1/namespaces/ns/pods";
// Bounds a test that is failing anyway; a passing one is done far sooner.
constexpr absl::Duration kPatience = absl::Seconds(60);

json Pod(const std::string& name, const std::string& job = "j") {
  return {{"apiVersion", "v1"},
          {"kind", "Pod"},
          {"metadata", {{"name", name}, {"labels", {{"job", job}}}}},
          {"status", {{"phase", "Pending"}}}};
}

std::string NameOf(const json& object) {
  return object["metadata"]["name"].get<std::string>();
}

std::vector<std::string> Names(const std::vector<json>& objects) {
  std::vector<std::string> out;
  for (const json& o : objects) out.push_back(NameOf(o));
  return out;
}

std::unique_ptr<KubeClient> ClientFor(const testing::FakeApiServer& server) {
  KubeConfig config;
  config.server = server.url();
  absl::StatusOr<std::unique_ptr<KubeClient>> client = KubeClient::Create(config);
  EXPECT_TRUE(client.ok()) << client.status();
  return client.ok() ? *std::move(client) : nullptr;
}

TEST(KubeWatchTest, StreamsEventsAndBookmarksAfterTheListVersion) {
  testing::FakeApiServer server({.bookmark_interval = absl::Milliseconds(100)});
  ASSERT_TRUE(server.Start().ok());
  std::unique_ptr<KubeClient> client = ClientFor(server);
  ASSERT_TRUE(client->Create(kPods, "ns", Pod("before")).ok());
  absl::StatusOr<KubeList> list = client->List(kPods, "ns");
  ASSERT_TRUE(list.ok());

  absl::Mutex mu;
  std::vector<std::string> seen;  // "TYPE name-or-version"
  Cancellation cancel;
  std::thread watcher([&] {
    const absl::Status status = client->Watch(
        kPods, "ns",
        {.resource_version = list->resource_version,
         .label_selector = "job=j",
         .cancel = &cancel},
        [&](const WatchEvent& event) {
          absl::MutexLock lock(&mu);
          if (event.type == "BOOKMARK") {
            // One bookmark is enough to show they arrive.
            if (std::find(seen.begin(), seen.end(), "BOOKMARK") == seen.end()) {
              seen.push_back("BOOKMARK");
            }
          } else {
            seen.push_back(absl::StrCat(event.type, " ", NameOf(event.object)));
          }
          return true;
        });
    EXPECT_TRUE(status.ok()) << status;
  });
  ASSERT_TRUE(testing::WaitUntil(absl::Now() + kPatience,
                                 [&] { return server.OpenWatches() == 1; }));
  ASSERT_TRUE(client->Create(kPods, "ns", Pod("w-0")).ok());
  ASSERT_TRUE(client->Create(kPods, "ns", Pod("other", "k")).ok());  // not selected
  ASSERT_TRUE(server.Mutate(kPodsPath, "w-0",
                            [](json& pod) { pod["status"]["phase"] = "Running"; }));
  ASSERT_TRUE(client->Delete(kPods, "ns", "w-0").ok());
  const auto has = [&](const std::vector<std::string>& want) {
    absl::MutexLock lock(&mu);
    std::vector<std::string> events;
    for (const std::string& s : seen) {
      if (s != "BOOKMARK") events.push_back(s);
    }
    return events == want &&
           std::find(seen.begin(), seen.end(), "BOOKMARK") != seen.end();
  };
  EXPECT_TRUE(testing::WaitUntil(absl::Now() + kPatience, [&] {
    return has({"ADDED w-0", "MODIFIED w-0", "DELETED w-0"});
  }));
  cancel.Cancel();
  watcher.join();
  const std::vector<testing::FakeRequest> requests = server.Requests();
  const auto watch = std::find_if(requests.begin(), requests.end(), [](const auto& r) {
    return r.query.find("watch=1") != std::string::npos;
  });
  ASSERT_NE(watch, requests.end());
  EXPECT_NE(watch->query.find("allowWatchBookmarks=true"), std::string::npos)
      << watch->query;
  EXPECT_NE(watch->query.find("resourceVersion=" + list->resource_version),
            std::string::npos);
  EXPECT_NE(watch->query.find("timeoutSeconds="), std::string::npos);
}

TEST(KubeWatchTest, TheServerEndingTheWatchIsOk) {
  testing::FakeApiServer server;
  ASSERT_TRUE(server.Start().ok());
  std::unique_ptr<KubeClient> client = ClientFor(server);
  const absl::Status status =
      client->Watch(kPods, "ns", {.resource_version = "1", .timeout = absl::Seconds(1)},
                    [](const WatchEvent&) { return true; });
  EXPECT_TRUE(status.ok()) << status;
}

TEST(KubeWatchTest, ATooOldVersionIsA410) {
  testing::FakeApiServer server;
  ASSERT_TRUE(server.Start().ok());
  std::unique_ptr<KubeClient> client = ClientFor(server);
  ASSERT_TRUE(client->Create(kPods, "ns", Pod("w-0")).ok());
  server.Compact();
  const absl::Status status = client->Watch(kPods, "ns", {.resource_version = "1"},
                                            [](const WatchEvent&) { return true; });
  EXPECT_EQ(HttpStatusOf(status), 410) << status;
  EXPECT_EQ(status.code(), absl::StatusCode::kAborted);
  EXPECT_THAT(status.message(),
              ::testing::HasSubstr("watch pods in namespace \"ns\": watch error 410"));
}

TEST(KubeWatchTest, AGoneAnswerIsA410Too) {
  // The API server may answer the watch request itself with 410.
  testing::FakeApiServer server;
  ASSERT_TRUE(server.Start().ok());
  std::unique_ptr<KubeClient> client = ClientFor(server);
  server.InjectErrors("GET", kPodsPath, 410, 1);
  const absl::Status status = client->Watch(kPods, "ns", {.resource_version = "1"},
                                            [](const WatchEvent&) { return true; });
  EXPECT_EQ(HttpStatusOf(status), 410) << status;
  EXPECT_THAT(status.message(), ::testing::HasSubstr("gone (HTTP 410)"));
}

TEST(KubeWatchTest, ASilentWatchIsTakenAsDropped) {
  // No bookmarks asked for and no changes: nothing arrives, as on a
  // connection that died without a FIN.
  testing::FakeApiServer server;
  ASSERT_TRUE(server.Start().ok());
  KubeConfig config;
  config.server = server.url();
  KubeClientOptions options;
  options.watch_idle_timeout = absl::Seconds(1);
  absl::StatusOr<std::unique_ptr<KubeClient>> client =
      KubeClient::Create(config, options);
  ASSERT_TRUE(client.ok());
  const absl::Status status =
      (*client)->Watch(kPods, "ns", {.resource_version = "1", .allow_bookmarks = false},
                       [](const WatchEvent&) { return true; });
  EXPECT_EQ(status.code(), absl::StatusCode::kUnavailable) << status;
  EXPECT_THAT(status.message(),
              ::testing::HasSubstr("nothing heard from the API server"));
}

TEST(KubeWatchTest, ADroppedWatchIsUnavailable) {
  testing::FakeApiServer server;
  ASSERT_TRUE(server.Start().ok());
  std::unique_ptr<KubeClient> client = ClientFor(server);
  absl::Status status;
  std::thread watcher([&] {
    status = client->Watch(kPods, "ns", {.resource_version = "1"},
                           [](const WatchEvent&) { return true; });
  });
  ASSERT_TRUE(testing::WaitUntil(absl::Now() + kPatience,
                                 [&] { return server.OpenWatches() == 1; }));
  server.DropWatches();
  watcher.join();
  EXPECT_EQ(status.code(), absl::StatusCode::kUnavailable) << status;
}

// What an informer told its owner, in order.
class Recorder {
 public:
  InformerHandlers Handlers() {
    return {
        .on_add = [this](const json& o) { Add("add " + NameOf(o)); },
        .on_update =
            [this](const json&, const json& o) {
              Add("update " + NameOf(o) + " " + o["status"]["phase"].get<std::string>());
            },
        .on_delete = [this](const json& o) { Add("delete " + NameOf(o)); },
        .on_synced = [this] { Add("synced"); },
        .on_error = nullptr};
  }
  std::vector<std::string> log() const {
    absl::MutexLock lock(&mu_);
    return log_;
  }
  bool Contains(const std::string& entry) const {
    absl::MutexLock lock(&mu_);
    return std::find(log_.begin(), log_.end(), entry) != log_.end();
  }
  size_t Count(const std::string& entry) const {
    absl::MutexLock lock(&mu_);
    return std::count(log_.begin(), log_.end(), entry);
  }

 private:
  void Add(std::string entry) {
    absl::MutexLock lock(&mu_);
    log_.push_back(std::move(entry));
  }
  mutable absl::Mutex mu_;
  std::vector<std::string> log_ ABSL_GUARDED_BY(mu_);
};

class KubeInformerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(server_.Start().ok());
    client_ = ClientFor(server_);
    ASSERT_NE(client_, nullptr);
  }

  std::unique_ptr<Informer> StartInformer() {
    auto informer = std::make_unique<Informer>(
        client_.get(),
        InformerOptions{.kind = kPods,
                        .ns = "ns",
                        .label_selector = "job=j",
                        .initial_retry = absl::Milliseconds(50)},
        recorder_.Handlers());
    informer->Start();
    return informer;
  }

  bool Eventually(const std::function<bool()>& done) {
    return testing::WaitUntil(absl::Now() + kPatience, done);
  }

  testing::FakeApiServer server_{{.bookmark_interval = absl::Milliseconds(200)}};
  std::unique_ptr<KubeClient> client_;
  Recorder recorder_;
};

TEST_F(KubeInformerTest, ListsThenFollowsChanges) {
  ASSERT_TRUE(client_->Create(kPods, "ns", Pod("w-0")).ok());
  ASSERT_TRUE(client_->Create(kPods, "ns", Pod("x", "k")).ok());
  std::unique_ptr<Informer> informer = StartInformer();
  ASSERT_TRUE(
      Eventually([&] { return informer->synced() && server_.OpenWatches() == 1; }));
  EXPECT_THAT(recorder_.log(), ElementsAre("add w-0", "synced"));

  ASSERT_TRUE(client_->Create(kPods, "ns", Pod("w-1")).ok());
  ASSERT_TRUE(server_.Mutate(kPodsPath, "w-0",
                             [](json& p) { p["status"]["phase"] = "Running"; }));
  ASSERT_TRUE(client_->Delete(kPods, "ns", "w-1").ok());
  ASSERT_TRUE(Eventually([&] { return recorder_.Contains("delete w-1"); }));
  EXPECT_THAT(recorder_.log(), ElementsAre("add w-0", "synced", "add w-1",
                                           "update w-0 Running", "delete w-1"));
  EXPECT_THAT(Names(informer->Snapshot()), ElementsAre("w-0"));
  EXPECT_EQ(informer->Snapshot()[0]["status"]["phase"], "Running");
  EXPECT_EQ(informer->lists(), 1);
}

TEST_F(KubeInformerTest, ReconnectsAfterADroppedWatchWithoutListingAgain) {
  std::unique_ptr<Informer> informer = StartInformer();
  ASSERT_TRUE(
      Eventually([&] { return informer->synced() && server_.OpenWatches() == 1; }));
  server_.DropWatches();
  // Changes made while no watch is open arrive through the resumed watch.
  ASSERT_TRUE(client_->Create(kPods, "ns", Pod("w-0")).ok());
  ASSERT_TRUE(Eventually([&] { return recorder_.Contains("add w-0"); }));
  ASSERT_TRUE(Eventually([&] { return server_.OpenWatches() == 1; }));
  ASSERT_TRUE(
      server_.Mutate(kPodsPath, "w-0", [](json& p) { p["status"]["phase"] = "Failed"; }));
  ASSERT_TRUE(Eventually([&] { return recorder_.Contains("update w-0 Failed"); }));
  EXPECT_EQ(informer->lists(), 1);
  EXPECT_GE(informer->watches(), 2);
  EXPECT_EQ(recorder_.Count("add w-0"), 1u);
}

TEST_F(KubeInformerTest, ListsAgainOnGoneAndDeliversTheDifference) {
  ASSERT_TRUE(client_->Create(kPods, "ns", Pod("stays")).ok());
  ASSERT_TRUE(client_->Create(kPods, "ns", Pod("goes")).ok());
  ASSERT_TRUE(client_->Create(kPods, "ns", Pod("replaced")).ok());
  std::unique_ptr<Informer> informer = StartInformer();
  ASSERT_TRUE(
      Eventually([&] { return informer->synced() && server_.OpenWatches() == 1; }));
  // While the watch is down (every request fails until the changes are
  // made), objects change and history is compacted past the informer's
  // version: resuming is impossible and it must list again.
  server_.InjectErrors("GET", kPodsPath, 503, 1000000);
  server_.DropWatches();
  ASSERT_TRUE(server_.Remove(kPodsPath, "goes"));
  ASSERT_TRUE(server_.Remove(kPodsPath, "replaced"));
  server_.Put(kPodsPath, Pod("replaced"));
  server_.Put(kPodsPath, Pod("new"));
  ASSERT_TRUE(server_.Mutate(kPodsPath, "stays",
                             [](json& p) { p["status"]["phase"] = "Running"; }));
  server_.Compact();
  ASSERT_TRUE(Eventually([&] { return server_.OpenWatches() == 0; }));
  server_.ClearInjectedErrors();
  ASSERT_TRUE(Eventually(
      [&] { return informer->lists() == 2 && recorder_.Count("synced") == 2; }));
  const std::vector<std::string> log = recorder_.log();
  const std::vector<std::string> after_relist(log.begin() + 4, log.end());
  EXPECT_THAT(after_relist,
              UnorderedElementsAre("delete goes", "delete replaced", "add replaced",
                                   "add new", "update stays Running", "synced"));
  EXPECT_EQ(after_relist.back(), "synced");
  EXPECT_THAT(Names(informer->Snapshot()), ElementsAre("new", "replaced", "stays"));
  // And it carries on watching from the new list.
  ASSERT_TRUE(Eventually([&] { return server_.OpenWatches() == 1; }));
  ASSERT_TRUE(client_->Create(kPods, "ns", Pod("later")).ok());
  ASSERT_TRUE(Eventually([&] { return recorder_.Contains("add later"); }));
}

TEST_F(KubeInformerTest, StopsPromptlyWhileWatching) {
  std::unique_ptr<Informer> informer = StartInformer();
  ASSERT_TRUE(Eventually([&] { return server_.OpenWatches() == 1; }));
  const absl::Time start = absl::Now();
  informer->Stop();
  // libcurl looks at the cancellation about once a second; the bound is
  // loose so that a loaded machine does not fail it.
  EXPECT_LT(absl::Now() - start, absl::Seconds(20));
  ASSERT_TRUE(Eventually([&] { return server_.OpenWatches() == 0; }));
}

TEST_F(KubeInformerTest, StopsPromptlyWhileTheServerFails) {
  server_.InjectErrors("GET", kPodsPath, 500, 1000);
  std::unique_ptr<Informer> informer = StartInformer();
  ASSERT_TRUE(Eventually([&] { return server_.CountRequests("GET", kPodsPath) >= 2; }));
  const absl::Time start = absl::Now();
  informer->Stop();
  EXPECT_LT(absl::Now() - start, absl::Seconds(20));
  EXPECT_FALSE(informer->synced());
}

}  // namespace
}  // namespace elasticbatch::kube
