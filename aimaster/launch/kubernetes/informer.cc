#include "aimaster/launch/kubernetes/informer.h"

#include <algorithm>
#include <utility>

#include "spdlog/spdlog.h"

namespace elasticbatch::kube {

using nlohmann::json;

namespace {

std::string MetadataString(const json& object, const char* key) {
  if (!object.is_object()) return "";
  const auto meta = object.find("metadata");
  if (meta == object.end() || !meta->is_object()) return "";
  const auto value = meta->find(key);
  return value != meta->end() && value->is_string() ? value->get<std::string>() : "";
}

}  // namespace

Informer::Informer(KubeClient* client, InformerOptions options, InformerHandlers handlers)
    : client_(client), options_(std::move(options)), handlers_(std::move(handlers)) {}

Informer::~Informer() { Stop(); }

void Informer::Start() {
  if (thread_.joinable() || stop_.cancelled()) return;
  thread_ = std::thread([this] { Run(); });
}

void Informer::Stop() {
  stop_.Cancel();
  if (thread_.joinable()) thread_.join();
}

std::vector<json> Informer::Snapshot() const {
  absl::MutexLock lock(&mu_);
  std::vector<json> out;
  out.reserve(objects_.size());
  for (const auto& [name, object] : objects_) out.push_back(object);
  return out;
}

bool Informer::synced() const {
  absl::MutexLock lock(&mu_);
  return synced_;
}

int64_t Informer::lists() const {
  absl::MutexLock lock(&mu_);
  return lists_;
}

int64_t Informer::watches() const {
  absl::MutexLock lock(&mu_);
  return watches_;
}

bool Informer::Relist(std::string* resource_version) {
  {
    absl::MutexLock lock(&mu_);
    ++lists_;
  }
  absl::StatusOr<KubeList> list =
      client_->List(options_.kind, options_.ns,
                    {.label_selector = options_.label_selector, .cancel = &stop_});
  if (!list.ok()) {
    if (!stop_.cancelled() && handlers_.on_error) handlers_.on_error(list.status());
    return false;
  }
  // The difference between the copy and the list, computed under the lock
  // and delivered without it.
  std::map<std::string, json> fresh;
  for (json& item : list->items) {
    const std::string name = MetadataString(item, "name");
    if (!name.empty()) fresh[name] = std::move(item);
  }
  std::vector<json> added, deleted;
  std::vector<std::pair<json, json>> updated;
  {
    absl::MutexLock lock(&mu_);
    for (const auto& [name, old_object] : objects_) {
      const auto it = fresh.find(name);
      if (it == fresh.end()) {
        deleted.push_back(old_object);
      } else if (MetadataString(it->second, "uid") != MetadataString(old_object, "uid")) {
        // Replaced under the same name while we were not watching.
        deleted.push_back(old_object);
        added.push_back(it->second);
      } else if (MetadataString(it->second, "resourceVersion") !=
                 MetadataString(old_object, "resourceVersion")) {
        updated.emplace_back(old_object, it->second);
      }
    }
    for (const auto& [name, object] : fresh) {
      if (objects_.count(name) == 0) added.push_back(object);
    }
    objects_ = std::move(fresh);
    synced_ = true;
  }
  for (const json& object : deleted) {
    if (handlers_.on_delete) handlers_.on_delete(object);
  }
  for (const json& object : added) {
    if (handlers_.on_add) handlers_.on_add(object);
  }
  for (const auto& [old_object, object] : updated) {
    if (handlers_.on_update) handlers_.on_update(old_object, object);
  }
  if (handlers_.on_synced) handlers_.on_synced();
  *resource_version = list->resource_version;
  return true;
}

void Informer::Apply(const WatchEvent& event) {
  const std::string name = MetadataString(event.object, "name");
  if (name.empty()) return;
  json old_object;
  bool existed = false;
  {
    absl::MutexLock lock(&mu_);
    const auto it = objects_.find(name);
    existed = it != objects_.end();
    if (existed) old_object = it->second;
    if (event.type == "DELETED") {
      objects_.erase(name);
    } else {
      objects_[name] = event.object;
    }
  }
  if (event.type == "DELETED") {
    if (existed && handlers_.on_delete) handlers_.on_delete(event.object);
  } else if (existed) {
    if (handlers_.on_update) handlers_.on_update(old_object, event.object);
  } else if (handlers_.on_add) {
    handlers_.on_add(event.object);
  }
}

void Informer::Run() {
  absl::Duration retry = options_.initial_retry;
  const auto pause = [&] {
    const bool stopped = stop_.WaitFor(retry);
    retry = std::min(retry * 2, options_.max_retry);
    return !stopped;
  };
  std::string resource_version;
  bool need_list = true;
  while (!stop_.cancelled()) {
    if (need_list) {
      if (!Relist(&resource_version)) {
        pause();
        continue;
      }
      need_list = false;
    }
    {
      absl::MutexLock lock(&mu_);
      ++watches_;
    }
    bool delivered = false;
    const absl::Status status = client_->Watch(
        options_.kind, options_.ns,
        {.resource_version = resource_version,
         .label_selector = options_.label_selector,
         .allow_bookmarks = true,
         .timeout = options_.watch_timeout,
         .cancel = &stop_},
        [&](const WatchEvent& event) {
          delivered = true;
          const std::string version = MetadataString(event.object, "resourceVersion");
          if (!version.empty()) resource_version = version;
          if (event.type != "BOOKMARK") Apply(event);
          return !stop_.cancelled();
        });
    if (stop_.cancelled()) break;
    if (status.ok()) {
      retry = options_.initial_retry;
      continue;  // the server ended the watch: carry on from resource_version
    }
    if (HttpStatusOf(status) == 410) {
      spdlog::info("{}: listing again", std::string(status.message()));
      need_list = true;
      // A version that is gone at once after a list means history is being
      // compacted faster than we can list: do not spin.
      if (!delivered) pause();
      continue;
    }
    if (handlers_.on_error) handlers_.on_error(status);
    spdlog::warn("{}", std::string(status.message()));
    // A watch that was working resumes at once; one that keeps failing
    // waits longer each time.
    if (delivered) {
      retry = options_.initial_retry;
    } else {
      pause();
    }
  }
}

}  // namespace elasticbatch::kube
