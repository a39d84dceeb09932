// Informer: keeps a local copy of a collection (the pods of a job, say) in
// step with the API server and tells its owner what changed — list, then
// watch from the list's resourceVersion; a dropped watch resumes from the
// last version seen, a version too old to resume from (410 Gone) lists again.
//
//   Informer informer(client, {.kind = kPods, .ns = "ns",
//                              .label_selector = "elasticbatch.io/job-name=j"},
//                     {.on_add = ..., .on_update = ..., .on_delete = ...});
//   informer.Start();
//   ...
//   informer.Stop();  // returns within about a second
//
// Consistency: after a re-list the owner gets exactly the difference between
// its copy and the new list (adds, updates, deletes, with a delete then an add
// for an object that was replaced under the same name), so the sequence of
// callbacks always describes the copy Snapshot() returns. Objects are keyed
// by metadata.name.
//
// Thread-safe. Callbacks run on the informer's own thread, one at a time, with
// no lock held (they may call Snapshot()).
#ifndef ELASTICBATCH_AIMASTER_LAUNCH_KUBERNETES_INFORMER_H_
#define ELASTICBATCH_AIMASTER_LAUNCH_KUBERNETES_INFORMER_H_

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "aimaster/launch/kubernetes/kube_client.h"
#include "nlohmann/json.hpp"

namespace elasticbatch::kube {

struct InformerOptions {
  ResourceKind kind = {};
  std::string ns = "";
  std::string label_selector = "";
  // Each watch asks the server to end it after this long; the informer then
  // watches again from where it was. Default: 5 minutes.
  absl::Duration watch_timeout = absl::Minutes(5);
  // Waits after a failed list or a watch that failed without delivering
  // anything: doubled from the first to the last. Default: 500ms, 30s.
  absl::Duration initial_retry = absl::Milliseconds(500);
  absl::Duration max_retry = absl::Seconds(30);
};

struct InformerHandlers {
  std::function<void(const nlohmann::json& object)> on_add;
  std::function<void(const nlohmann::json& old_object, const nlohmann::json& object)>
      on_update;
  std::function<void(const nlohmann::json& object)> on_delete;
  // After each list has been applied: the copy is complete as of that list.
  std::function<void()> on_synced;
  // A list or a watch failed (the informer carries on).
  std::function<void(const absl::Status& error)> on_error;
};

class Informer {
 public:
  // `client` is not owned and must outlive the informer.
  Informer(KubeClient* client, InformerOptions options, InformerHandlers handlers);
  ~Informer();
  Informer(const Informer&) = delete;
  Informer& operator=(const Informer&) = delete;

  // Starts the informer's thread (once).
  void Start();
  // Stops it and waits for it: about a second at most, plus a callback that
  // is running. Not from a callback (it would wait for itself).
  void Stop();

  // The current copy.
  std::vector<nlohmann::json> Snapshot() const;
  // True once the first list has been applied.
  bool synced() const;
  // How many lists and watches were started (for tests and metrics).
  int64_t lists() const;
  int64_t watches() const;

 private:
  void Run();
  // Lists and applies the difference; false when the list failed.
  bool Relist(std::string* resource_version);
  void Apply(const WatchEvent& event);

  KubeClient* const client_;
  const InformerOptions options_;
  const InformerHandlers handlers_;
  Cancellation stop_;
  std::thread thread_;

  mutable absl::Mutex mu_;
  std::map<std::string, nlohmann::json> objects_ ABSL_GUARDED_BY(mu_);
  bool synced_ ABSL_GUARDED_BY(mu_) = false;
  int64_t lists_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t watches_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace elasticbatch::kube

#endif  // ELASTICBATCH_AIMASTER_LAUNCH_KUBERNETES_INFORMER_H_
