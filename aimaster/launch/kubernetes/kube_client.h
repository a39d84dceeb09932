// KubeClient: the calls the AIMaster makes to the Kubernetes API server —
// get, list, create, merge-patch, delete and watch of namespaced objects — over
// libcurl, with objects as nlohmann::json.
//
//   absl::StatusOr<std::unique_ptr<KubeClient>> client = KubeClient::Create(config);
//   absl::StatusOr<nlohmann::json> pod = (*client)->Create(kPods, "ns", pod_json);
//   absl::StatusOr<KubeList> pods =
//       (*client)->List(kPods, "ns", {.label_selector = "elasticbatch.io/job-name=j"});
//
// Retries: a call that gets 429 or a 5xx answer, or cannot reach the server,
// is tried again after a jittered exponential backoff (or the server's
// Retry-After), up to KubeClientOptions::max_attempts times and within the
// call's deadline. A create is retried only when the server cannot have acted
// on it (429, connection refused), so a retry never makes a second object.
//
// Errors are one line and name the verb, the resource and the namespace, with
// the server's own message; the code follows the HTTP status (403
// PERMISSION_DENIED, 404 NOT_FOUND, 409 ALREADY_EXISTS or ABORTED for a
// conflict, 410 ABORTED, 422 INVALID_ARGUMENT, 429 RESOURCE_EXHAUSTED, 5xx and
// network UNAVAILABLE, timeouts DEADLINE_EXCEEDED); HttpStatusOf() gives the
// HTTP status back. A 403 says which Role rule is missing:
//   forbidden: cannot create pods in namespace "ns" (the Role needs verbs
//   [create] on resource "pods"): pods is forbidden: User "x" cannot ...
//
// Thread-safe: calls may run concurrently from any threads (each uses its own
// connection; idle connections are kept for reuse).
#ifndef ELASTICBATCH_AIMASTER_LAUNCH_KUBERNETES_KUBE_CLIENT_H_
#define ELASTICBATCH_AIMASTER_LAUNCH_KUBERNETES_KUBE_CLIENT_H_

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "aimaster/launch/kubernetes/kube_config.h"
#include "nlohmann/json.hpp"

namespace elasticbatch::kube {

// A kind of namespaced object: where its collection is in the API.
struct ResourceKind {
  // "" for the core group (/api/v1), else e.g. "inference.kubedl.io".
  std::string group = "";
  std::string version = "";
  // The collection's name in URLs and RBAC rules: "pods".
  std::string plural = "";
};

inline const ResourceKind kPods{"", "v1", "pods"};
inline const ResourceKind kServices{"", "v1", "services"};
// A pod's log (the pods/log subresource; RBAC names it so).
inline const ResourceKind kPodLogs{"", "v1", "pods/log"};

// "/api/v1/namespaces/NS/pods" or "/apis/G/V/namespaces/NS/PLURAL".
std::string CollectionPath(const ResourceKind& kind, const std::string& ns);

// Asks a long call (a watch, a list with its retries) to stop. Cancel() is
// seen within about a second by a watch and at once by a backoff wait.
// Thread-safe.
class Cancellation {
 public:
  // Idempotent.
  void Cancel() {
    absl::MutexLock lock(&mu_);
    cancelled_ = true;
  }
  bool cancelled() const {
    absl::MutexLock lock(&mu_);
    return cancelled_;
  }
  // Waits up to `d`; true when cancelled.
  bool WaitFor(absl::Duration d) const {
    absl::MutexLock lock(&mu_);
    return mu_.AwaitWithTimeout(absl::Condition(&cancelled_), d);
  }

 private:
  mutable absl::Mutex mu_;
  bool cancelled_ ABSL_GUARDED_BY(mu_) = false;
};

struct KubeClientOptions {
  // Tries per call, the first included. Default: 5.
  int max_attempts = 5;
  // The first retry's backoff, doubled each time up to max_backoff; each wait
  // is drawn uniformly from [b/2, b]. Default: 200ms, 10s.
  absl::Duration initial_backoff = absl::Milliseconds(200);
  absl::Duration max_backoff = absl::Seconds(10);
  // A Retry-After longer than this is cut to it. Default: 60s.
  absl::Duration max_retry_after = absl::Seconds(60);
  // One HTTP exchange (not a watch). Default: 30s.
  absl::Duration request_timeout = absl::Seconds(30);
  // A whole call with its retries and waits. Default: 2 minutes.
  absl::Duration call_deadline = absl::Minutes(2);
  // Establishing a connection, TLS included. Default: 10s.
  absl::Duration connect_timeout = absl::Seconds(10);
  // A watch that receives nothing (no event, no bookmark) for this long is
  // taken as dropped. The server sends bookmarks about once a minute.
  // Default: 3 minutes.
  absl::Duration watch_idle_timeout = absl::Minutes(3);
  // Largest response body accepted (a list). Default: 256 MiB.
  size_t max_response_bytes = 256u << 20;
  // Waits between retries; tests record them instead of sleeping. Default
  // (unset): a wait that a Cancellation passed to the call cuts short.
  std::function<void(absl::Duration)> sleep;
  // The clock call deadlines are measured with. Default (unset): absl::Now.
  std::function<absl::Time()> now;
  std::string user_agent = "elasticbatch-aimaster";
};

struct KubeList {
  std::vector<nlohmann::json> items;
  // Where a watch of the same collection picks up.
  std::string resource_version = "";
};

struct ListOptions {
  // "app=x,tier!=db,env in (a,b),gpu"; empty: every object.
  std::string label_selector = "";
  // Stops the retries early (CANCELLED). Not owned; may be null.
  const Cancellation* cancel = nullptr;
};

struct DeleteOptions {
  // Preconditions: delete only this incarnation / this version.
  std::string uid = "";
  std::string resource_version = "";
  // "Background", "Foreground", "Orphan"; empty: the server's default.
  std::string propagation_policy = "";
  // How long a pod's containers get between SIGTERM and SIGKILL; unset: the
  // pod's own terminationGracePeriodSeconds.
  std::optional<int64_t> grace_period_seconds = std::nullopt;
};

struct WatchEvent {
  // "ADDED", "MODIFIED", "DELETED", "BOOKMARK" (ERROR events end the watch
  // with an error instead).
  std::string type = "";
  nlohmann::json object = nullptr;
};

struct WatchOptions {
  // Events after this version; empty: the current objects first, as ADDED.
  std::string resource_version = "";
  std::string label_selector = "";
  bool allow_bookmarks = true;
  // The server ends the watch after this long (OK). Default: 5 minutes.
  absl::Duration timeout = absl::Minutes(5);
  // Ends the watch (OK) within about a second. Not owned; may be null.
  const Cancellation* cancel = nullptr;
};

// The HTTP status an error from KubeClient carries (410 for a watch's
// "too old resource version" ERROR event too); nullopt for other errors.
std::optional<int> HttpStatusOf(const absl::Status& status);

class KubeClient {
 public:
  using EventHandler = std::function<bool(const WatchEvent&)>;

  // Checks `config` (server URL) and prepares libcurl. The client reads
  // config.token_file on every request.
  static absl::StatusOr<std::unique_ptr<KubeClient>> Create(
      KubeConfig config, KubeClientOptions options = {});
  ~KubeClient();
  KubeClient(const KubeClient&) = delete;
  KubeClient& operator=(const KubeClient&) = delete;

  const KubeConfig& config() const { return config_; }

  absl::StatusOr<nlohmann::json> Get(const ResourceKind& kind, const std::string& ns,
                                     const std::string& name);
  absl::StatusOr<KubeList> List(const ResourceKind& kind, const std::string& ns,
                                const ListOptions& options = {});
  // POST: `object` needs metadata.name or metadata.generateName. Returns the
  // object as stored (uid, resourceVersion, name filled in).
  absl::StatusOr<nlohmann::json> Create(const ResourceKind& kind, const std::string& ns,
                                        const nlohmann::json& object);
  // PATCH with an RFC 7386 merge patch (a null value removes a field).
  absl::StatusOr<nlohmann::json> MergePatch(const ResourceKind& kind,
                                            const std::string& ns,
                                            const std::string& name,
                                            const nlohmann::json& patch);
  absl::Status Delete(const ResourceKind& kind, const std::string& ns,
                      const std::string& name, const DeleteOptions& options = {});
  // The last `tail_lines` lines of a pod container's log, at most
  // `limit_bytes` of them (GET pods/NAME/log: RBAC verb get on pods/log).
  absl::StatusOr<std::string> PodLog(const std::string& ns, const std::string& name,
                                     const std::string& container, int64_t tail_lines,
                                     int64_t limit_bytes);

  // Streams the collection's changes to `on_event` (on this thread) until the
  // server ends the watch (OK), `on_event` returns false or options.cancel
  // fires (OK), or an error: the server's answer, an ERROR event (410 for a
  // version too old to resume from: list again), a dropped connection
  // (UNAVAILABLE) or nothing heard for watch_idle_timeout. Not retried: the
  // caller resumes from the last version it saw (see Informer).
  absl::Status Watch(const ResourceKind& kind, const std::string& ns,
                     const WatchOptions& options, const EventHandler& on_event);

 private:
  struct Request;
  struct Response;
  KubeClient(KubeConfig config, KubeClientOptions options);

  // A request's method, RBAC verb and target; the path is the object's when
  // `name` is given, else the collection's.
  static Request MakeRequest(const char* method, const char* verb,
                             const ResourceKind& kind, const std::string& ns,
                             const std::string& name);
  // One call with retries; parses the JSON body of a 2xx answer.
  absl::StatusOr<nlohmann::json> Call(const Request& request);
  // One HTTP exchange (no retries).
  Response Perform(const Request& request, const std::string& token,
                   absl::Duration timeout);
  absl::StatusOr<std::string> BearerToken() const;
  void* TakeHandle();
  void ReturnHandle(void* handle);
  absl::Duration Backoff(int retry);

  const KubeConfig config_;
  const KubeClientOptions options_;

  absl::Mutex mu_;
  // Idle curl handles: each keeps its connections open for the next call.
  std::vector<void*> idle_handles_ ABSL_GUARDED_BY(mu_);
  uint64_t jitter_state_ ABSL_GUARDED_BY(mu_);
};

}  // namespace elasticbatch::kube

#endif  // ELASTICBATCH_AIMASTER_LAUNCH_KUBERNETES_KUBE_CLIENT_H_
