// FakeApiServer: an in-process stand-in for the Kubernetes API server, for
// the parts of the API the master uses, with the real server's semantics:
//
//   - namespaced collections /api/v1/namespaces/NS/PLURAL and
//     /apis/GROUP/VERSION/namespaces/NS/PLURAL, objects kept as JSON exactly
//     as sent (ownerReferences included; there is no garbage collector);
//   - create sets metadata.uid, creationTimestamp, resourceVersion (one
//     global counter) and the namespace; generateName; 409 AlreadyExists;
//     422 Invalid without a name; 404 NotFound;
//   - PATCH with application/merge-patch+json (RFC 7386; 415 otherwise);
//   - DELETE with preconditions (409 Conflict);
//   - list with labelSelector (a=b, a==b, a!=b, a in (x,y), a notin (x,y),
//     a, !a) and the list's resourceVersion;
//   - watch (?watch=1): chunked newline-delimited events after
//     resourceVersion (the current objects as ADDED when it is empty or "0"),
//     BOOKMARK events when allowWatchBookmarks=true, an ERROR event with a
//     410 Status when the version is older than the compaction point, the end
//     of the stream after timeoutSeconds;
//   - errors as Status objects ({"kind":"Status","status":"Failure",...}).
//
// Not modelled: cluster-scoped objects, subresources (/status), other patch
// types, resourceVersion preconditions on update, garbage collection, and the
// DELETED event a real watch sends when an object stops matching its label
// selector.
//
// Test hooks: injected failures, request counts, dropping every open watch,
// compaction, and direct changes to objects (a kubelet writing pod status)
// that watches see.
//
//   FakeApiServer server;
//   ASSERT_TRUE(server.Start().ok());
//   KubeConfig config{.server = server.url()};
//   server.InjectErrors("POST", "/api/v1/namespaces/ns/pods", 429, 2, "1");
//
// Plain HTTP on 127.0.0.1, or HTTPS with a certificate (optionally requiring
// a client certificate signed by a CA). One thread per connection, at most
// kMaxConnections at once. Thread-safe; the destructor stops the server.
#ifndef ELASTICBATCH_TESTS_AIMASTER_LAUNCH_KUBERNETES_FAKE_API_SERVER_H_
#define ELASTICBATCH_TESTS_AIMASTER_LAUNCH_KUBERNETES_FAKE_API_SERVER_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "nlohmann/json.hpp"

namespace elasticbatch::testing {

struct FakeApiServerOptions {
  // HTTPS when set: the server's certificate and key (PEM files).
  std::string tls_cert_file = "";
  std::string tls_key_file = "";
  // With TLS: require a client certificate signed by this CA.
  std::string client_ca_file = "";
  // A bearer token every request must carry (401 otherwise); empty: none.
  std::string required_token = "";
  // How often watches that allow them get a BOOKMARK. Default: 1s.
  absl::Duration bookmark_interval = absl::Seconds(1);
  // Pods deleted after a kubelet took them (spec.nodeName set) are only
  // marked (metadata.deletionTimestamp and deletionGracePeriodSeconds, a
  // MODIFIED event) and stay until the kubelet removes them, as on a real
  // cluster; gracePeriodSeconds=0 still removes at once. Default: off (every
  // delete removes at once).
  bool graceful_pod_deletion = false;
};

// One request as the server saw it.
struct FakeRequest {
  std::string method = "";
  std::string path = "";   // without the query
  std::string query = "";  // raw, without '?'
  std::string authorization = "";
  int status = 0;  // what it was answered with
};

class FakeApiServer {
 public:
  static constexpr int kMaxConnections = 64;

  explicit FakeApiServer(FakeApiServerOptions options = {});
  ~FakeApiServer();
  FakeApiServer(const FakeApiServer&) = delete;
  FakeApiServer& operator=(const FakeApiServer&) = delete;

  // Listens on 127.0.0.1 (an ephemeral port).
  absl::Status Start();
  // Closes every connection and joins every thread.
  void Stop();

  // "http://127.0.0.1:PORT" or "https://127.0.0.1:PORT".
  std::string url() const;
  int port() const { return port_; }

  // The next `count` requests with `method` ("" = any) whose path starts
  // with `path_prefix` get `status` with a Status body (and Retry-After
  // when `retry_after` is not empty).
  void InjectErrors(const std::string& method, const std::string& path_prefix, int status,
                    int count, const std::string& retry_after = "");
  // Forgets every injected failure not yet served.
  void ClearInjectedErrors();
  // Requests so far with `method` ("" = any) whose path starts with `path_prefix`.
  int CountRequests(const std::string& method, const std::string& path_prefix) const;
  std::vector<FakeRequest> Requests() const;
  // Watch streams open now.
  int OpenWatches() const;

  // Cuts every open watch connection (as a load balancer or a restarting
  // API server would).
  void DropWatches();
  // Forgets history: a watch from a version older than the current one gets
  // 410 Gone.
  void Compact();
  // Sends a BOOKMARK to every watch that allows them, now.
  void SendBookmarks();
  // The current global resourceVersion.
  int64_t resource_version() const;

  // Direct access, as a controller or kubelet would change objects;
  // `collection` is a collection path ("/api/v1/namespaces/ns/pods").
  // Watches see the changes.
  std::optional<nlohmann::json> Get(const std::string& collection,
                                    const std::string& name) const;
  std::vector<nlohmann::json> List(const std::string& collection) const;
  // Creates or replaces (server fields set as for a create / an update).
  nlohmann::json Put(const std::string& collection, nlohmann::json object);
  // Changes an existing object in place; false when there is none.
  bool Mutate(const std::string& collection, const std::string& name,
              const std::function<void(nlohmann::json&)>& change);
  bool Remove(const std::string& collection, const std::string& name);
  // What GET .../pods/NAME/log answers for an existing pod (the kubelet's log
  // file, say), with tailLines and limitBytes applied; unset or nullopt: "".
  void SetPodLogSource(std::function<std::optional<std::string>(const std::string& ns,
                                                                const std::string& pod)>
                           source);

 private:
  struct Connection;
  struct Event {
    int64_t version;
    std::string collection;
    std::string type;
    nlohmann::json object;
  };
  struct Injected {
    std::string method;
    std::string path_prefix;
    int status;
    int remaining;
    std::string retry_after;
  };
  struct Response {
    int status = 200;
    nlohmann::json body;
    std::string retry_after;
    // A text/plain answer (a log) instead of `body`.
    std::optional<std::string> text;
  };
  struct Collection {
    std::map<std::string, nlohmann::json> objects;
  };

  void AcceptLoop();
  void Serve(Connection* connection);
  // Handles one parsed request; false when the connection must close.
  bool Handle(Connection* connection, const std::string& method,
              const std::string& target,
              const std::map<std::string, std::string>& headers, const std::string& body);
  Response HandleObjectRequest(const std::string& method, const std::string& collection,
                               const std::string& name, const std::string& query,
                               const std::map<std::string, std::string>& headers,
                               const std::string& body);
  Response PodLog(const std::string& collection, const std::string& ns,
                  const std::string& name,
                  const std::map<std::string, std::string>& params);
  // Streams a watch; false when the connection must close.
  bool ServeWatch(Connection* connection, const std::string& collection,
                  const std::map<std::string, std::string>& query);

  nlohmann::json StoreLocked(const std::string& collection, nlohmann::json object,
                             const std::string& type) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  nlohmann::json CreateLocked(const std::string& collection, nlohmann::json object)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void RemoveLocked(const std::string& collection, const std::string& name)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const FakeApiServerOptions options_;
  void* ssl_ctx_ = nullptr;  // SSL_CTX*, with TLS
  int listen_fd_ = -1;
  int port_ = 0;
  std::thread accept_thread_;

  mutable absl::Mutex mu_;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::vector<std::unique_ptr<Connection>> connections_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, Collection> collections_ ABSL_GUARDED_BY(mu_);
  std::vector<Event> events_ ABSL_GUARDED_BY(mu_);
  int64_t version_ ABSL_GUARDED_BY(mu_) = 100;
  int64_t compacted_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t uid_counter_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t drop_generation_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t bookmark_generation_ ABSL_GUARDED_BY(mu_) = 0;
  int open_watches_ ABSL_GUARDED_BY(mu_) = 0;
  std::vector<Injected> injected_ ABSL_GUARDED_BY(mu_);
  std::vector<FakeRequest> requests_ ABSL_GUARDED_BY(mu_);
  std::function<std::optional<std::string>(const std::string&, const std::string&)>
      pod_log_source_ ABSL_GUARDED_BY(mu_);
};

// RFC 7386: `patch` merged into `target`.
void ApplyMergePatch(nlohmann::json& target, const nlohmann::json& patch);

// Whether `labels` (a JSON object or null) match a label selector; false with
// `error` set when the selector does not parse.
bool MatchesLabelSelector(const std::string& selector, const nlohmann::json& labels,
                          std::string* error);

}  // namespace elasticbatch::testing

#endif  // ELASTICBATCH_TESTS_AIMASTER_LAUNCH_KUBERNETES_FAKE_API_SERVER_H_
