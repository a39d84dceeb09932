#include "tests/aimaster/launch/kubernetes/fake_kubelet.h"

#include <fstream>
#include <sstream>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "aimaster/launch/kubernetes/pod_template.h"
#include "spdlog/spdlog.h"

namespace elasticbatch::testing {
namespace {

using aimaster::LauncherEvent;
using nlohmann::json;

constexpr char kNode[] = "fake-node";
constexpr char kPodIp[] = "127.0.0.1";

std::string Str(const json& object, const char* key) {
  if (!object.is_object()) return "";
  const auto it = object.find(key);
  return it != object.end() && it->is_string() ? it->get<std::string>() : "";
}

const json& Field(const json& object, const char* key) {
  static const json kNull = nullptr;
  if (!object.is_object()) return kNull;
  const auto it = object.find(key);
  return it == object.end() ? kNull : *it;
}

std::string ShellQuote(const std::string& word) {
  return absl::StrCat("'", absl::StrReplaceAll(word, {{"'", "'\\''"}}), "'");
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

std::string Now() {
  return absl::FormatTime("%Y-%m-%dT%H:%M:%SZ", absl::Now(), absl::UTCTimeZone());
}

}  // namespace

FakeKubelet::FakeKubelet(FakeApiServer* server, FakeKubeletOptions options)
    : server_(server), options_(std::move(options)) {}

FakeKubelet::~FakeKubelet() { Stop(); }

std::string FakeKubelet::PodsPath() const {
  return absl::StrCat("/api/v1/namespaces/", options_.ns, "/pods");
}

absl::Status FakeKubelet::Start() {
  kube::KubeConfig config;
  config.server = server_->url();
  config.token = options_.token;
  absl::StatusOr<std::unique_ptr<kube::KubeClient>> client =
      kube::KubeClient::Create(config);
  if (!client.ok()) return client.status();
  client_ = *std::move(client);
  aimaster::LocalLauncherOptions launcher_options;
  launcher_options.stop_grace = options_.max_grace;
  launcher_ = std::make_unique<aimaster::LocalLauncher>(launcher_options);
  launcher_->SetEventHandler([this](const LauncherEvent& e) { OnProcess(e); });
  kube::InformerOptions informer_options;
  informer_options.kind = kube::kPods;
  informer_options.ns = options_.ns;
  informer_options.initial_retry = absl::Milliseconds(50);
  kube::InformerHandlers handlers;
  handlers.on_add = [this](const json& pod) { OnPod(pod, false); };
  handlers.on_update = [this](const json&, const json& pod) { OnPod(pod, false); };
  handlers.on_delete = [this](const json& pod) { OnPod(pod, true); };
  handlers.on_error = [](const absl::Status& s) {
    spdlog::warn("fake kubelet: watching pods: {}", s.ToString());
  };
  informer_ = std::make_unique<kube::Informer>(client_.get(), informer_options,
                                               std::move(handlers));
  informer_->Start();
  // `kubectl logs`: what the container wrote.
  server_->SetPodLogSource(
      [dir = options_.log_dir](const std::string&, const std::string& pod) {
        return std::optional<std::string>(ReadFile(absl::StrCat(dir, "/", pod, ".log")));
      });
  timer_ = std::thread([this] { TimerLoop(); });
  return absl::OkStatus();
}

void FakeKubelet::Stop() {
  {
    absl::MutexLock lock(&mu_);
    if (stopping_) return;
    stopping_ = true;
  }
  if (timer_.joinable()) timer_.join();
  if (informer_) informer_->Stop();
  if (launcher_) {
    // Pods still running when the test ends are killed with the node.
    launcher_->StopAll();
    launcher_.reset();
  }
}

std::vector<KubeletRun> FakeKubelet::Runs() const {
  absl::MutexLock lock(&mu_);
  return runs_;
}

int FakeKubelet::running() const {
  absl::MutexLock lock(&mu_);
  return running_;
}

void FakeKubelet::OnPod(const json& pod, bool deleted) {
  const json& meta = Field(pod, "metadata");
  const std::string name = Str(meta, "name");
  const std::string uid = Str(meta, "uid");
  std::optional<uint32_t> stop;
  {
    absl::MutexLock lock(&mu_);
    if (stopping_) return;
    auto it = pods_.find(name);
    if (deleted) {
      if (it == pods_.end() || it->second.uid != uid) return;
      if (it->second.started && !it->second.ended) {
        it->second.terminating = true;
        stop = it->second.id;
      } else if (!it->second.started) {
        pods_.erase(it);
      }
    } else if (it == pods_.end() || it->second.uid != uid) {
      if (it != pods_.end() && it->second.started && !it->second.ended) {
        stop = it->second.id;  // replaced under its name: the old one goes
      }
      if (!Str(Field(pod, "spec"), "nodeName").empty()) return;  // another node's
      PodState state;
      state.uid = uid;
      state.id = next_id_++;
      const std::optional<absl::Duration> pending =
          options_.pending_for ? options_.pending_for(pod)
                               : std::optional<absl::Duration>(absl::ZeroDuration());
      state.start_at = pending ? absl::Now() + *pending : absl::InfiniteFuture();
      by_id_[state.id] = name;
      pods_[name] = state;
      server_->Mutate(PodsPath(), name, [&](json& p) {
        if (Str(Field(p, "metadata"), "uid") != uid) return;
        p["spec"]["nodeName"] = kNode;
        p["status"] = {{"phase", "Pending"}, {"hostIP", kPodIp}};
      });
    } else if (meta.contains("deletionTimestamp") && !it->second.terminating) {
      it->second.terminating = true;
      if (it->second.started && !it->second.ended) {
        stop = it->second.id;
      } else {
        // Nothing runs: the kubelet confirms the deletion at once.
        server_->Remove(PodsPath(), name);
        pods_.erase(it);
      }
    }
  }
  if (stop) launcher_->Stop(*stop, 0);
}

void FakeKubelet::TimerLoop() {
  while (true) {
    std::vector<std::string> due;
    {
      absl::MutexLock lock(&mu_);
      const auto stopping = [this]()
                                ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return stopping_; };
      if (mu_.AwaitWithTimeout(absl::Condition(&stopping), absl::Milliseconds(20)))
        return;
      const absl::Time now = absl::Now();
      for (auto& [name, state] : pods_) {
        if (!state.started && !state.terminating && state.start_at <= now) {
          state.started = true;
          due.push_back(name);
        }
      }
    }
    for (const std::string& name : due) StartContainer(name);
  }
}

void FakeKubelet::StartContainer(const std::string& name) {
  const std::optional<json> pod = server_->Get(PodsPath(), name);
  absl::MutexLock lock(&mu_);
  auto it = pods_.find(name);
  if (it == pods_.end() || !pod ||
      Str(Field(*pod, "metadata"), "uid") != it->second.uid) {
    return;
  }
  PodState& state = it->second;
  const auto fail = [&](const std::string& reason, const std::string& message) {
    spdlog::warn("fake kubelet: pod {}: {}", name, message);
    state.ended = true;
    server_->Mutate(PodsPath(), name, [&](json& p) {
      p["status"]["phase"] = "Failed";
      p["status"]["reason"] = reason;
      p["status"]["message"] = message;
    });
  };
  const json& spec = Field(*pod, "spec");
  const json& container = spec["containers"][kube::WorkerContainerIndex(*pod)];
  std::vector<std::string> words;
  for (const char* part : {"command", "args"}) {
    for (const json& w : Field(container, part)) {
      if (w.is_string()) words.push_back(ShellQuote(w.get<std::string>()));
    }
  }
  if (words.empty()) return fail("ContainerCannotRun", "the container has no command");
  std::vector<std::string> env;
  for (const json& e : Field(container, "env")) {
    const std::string var = Str(e, "name");
    const json& from = Field(e, "valueFrom");
    if (from.is_null()) {
      env.push_back(absl::StrCat(var, "=", Str(e, "value")));
      continue;
    }
    if (const json& ref = Field(from, "secretKeyRef"); !ref.is_null()) {
      const std::optional<json> secret = server_->Get(
          absl::StrCat("/api/v1/namespaces/", options_.ns, "/secrets"), Str(ref, "name"));
      std::string value;
      if (!secret || !absl::Base64Unescape(
                         Str(Field(*secret, "data"), Str(ref, "key").c_str()), &value)) {
        return fail("CreateContainerConfigError",
                    absl::StrCat("secret ", Str(ref, "name"), " or its key ",
                                 Str(ref, "key"), " not found"));
      }
      env.push_back(absl::StrCat(var, "=", value));
      continue;
    }
    const std::string path = Str(Field(from, "fieldRef"), "fieldPath");
    const json& meta = Field(*pod, "metadata");
    if (path == "metadata.name" || path == "metadata.namespace" ||
        path == "metadata.uid") {
      env.push_back(absl::StrCat(var, "=", Str(meta, path.substr(9).c_str())));
    } else if (path == "status.podIP" || path == "status.hostIP") {
      env.push_back(absl::StrCat(var, "=", kPodIp));
    } else if (path == "spec.nodeName") {
      env.push_back(absl::StrCat(var, "=", kNode));
    } else {
      return fail("CreateContainerConfigError",
                  absl::StrCat("env ", var, ": unsupported valueFrom"));
    }
  }
  aimaster::LaunchSpec launch;
  launch.index = state.id;
  launch.attempt = 0;
  launch.command = absl::StrJoin(words, " ");
  launch.working_dir = Str(container, "workingDir").empty()
                           ? options_.log_dir
                           : Str(container, "workingDir");
  launch.env = std::move(env);
  launch.log_path = absl::StrCat(options_.log_dir, "/", name, ".log");
  runs_.push_back({name, state.uid, absl::Now(), std::nullopt});
  ++running_;
  // Running before the process can end: the end's status comes after.
  const std::string container_name = Str(container, "name");
  server_->Mutate(PodsPath(), name, [&](json& p) {
    p["status"]["phase"] = "Running";
    p["status"]["podIP"] = kPodIp;
    p["status"]["containerStatuses"] =
        json::array({{{"name", container_name},
                      {"ready", true},
                      {"restartCount", 0},
                      {"state", {{"running", {{"startedAt", Now()}}}}}}});
  });
  if (absl::Status s = launcher_->Launch(launch); !s.ok()) {
    --running_;
    runs_.back().exit_code = 128;
    fail("ContainerCannotRun", std::string(s.message()));
  }
}

void FakeKubelet::OnProcess(const LauncherEvent& event) {
  if (event.kind != LauncherEvent::Kind::kExited) return;
  absl::MutexLock lock(&mu_);
  const auto id = by_id_.find(event.index);
  if (id == by_id_.end()) return;
  const std::string name = id->second;
  const auto it = pods_.find(name);
  if (it == pods_.end() || it->second.id != event.index) return;
  PodState& state = it->second;
  state.ended = true;
  --running_;
  for (KubeletRun& run : runs_) {
    if (run.uid == state.uid) run.exit_code = event.exit_code;
  }
  const std::string uid = state.uid;
  server_->Mutate(PodsPath(), name, [&](json& p) {
    if (Str(Field(p, "metadata"), "uid") != uid) return;
    json& statuses = p["status"]["containerStatuses"];
    const std::string container_name =
        statuses.is_array() && !statuses.empty() ? Str(statuses[0], "name") : "";
    p["status"]["phase"] = event.exit_code == 0 ? "Succeeded" : "Failed";
    p["status"]["containerStatuses"] =
        json::array({{{"name", container_name},
                      {"ready", false},
                      {"restartCount", 0},
                      {"state",
                       {{"terminated",
                         {{"exitCode", event.exit_code},
                          {"reason", event.exit_code == 0 ? "Completed" : "Error"},
                          {"finishedAt", Now()}}}}}}});
  });
  if (state.terminating) {
    const std::optional<json> pod = server_->Get(PodsPath(), name);
    if (pod && Str(Field(*pod, "metadata"), "uid") == uid)
      server_->Remove(PodsPath(), name);
    pods_.erase(it);
  }
}

}  // namespace elasticbatch::testing
