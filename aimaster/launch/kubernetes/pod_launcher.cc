#include "aimaster/launch/kubernetes/pod_launcher.h"

#include <cmath>
#include <fstream>
#include <set>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "spdlog/spdlog.h"

namespace elasticbatch::kube {
namespace {

using aimaster::LauncherEvent;
using nlohmann::json;

const ResourceKind kSecrets{"", "v1", "secrets"};

// The exit code reported for a pod deleted or evicted before it ended, and
// for an attempt stopped before its pod was created: killed.
constexpr int kKilledExitCode = 137;
constexpr int kStoppedBeforeCreateExitCode = 143;
constexpr int kCannotCreateExitCode = 127;
constexpr size_t kMaxJobNameLength = 40;
// What is kept of an ended pod's log in the job's logs directory.
constexpr int64_t kLogTailLines = 2000;
constexpr int64_t kLogLimitBytes = 1 << 20;

std::string StringAt(const json& object, const char* a, const char* b) {
  if (!object.is_object() || !object.contains(a) || !object[a].is_object()) return "";
  const json& inner = object[a];
  const auto it = inner.find(b);
  return it != inner.end() && it->is_string() ? it->get<std::string>() : "";
}

std::string LabelOf(const json& object, const char* key) {
  if (!object.is_object() || !object.contains("metadata")) return "";
  return StringAt(object["metadata"], "labels", key);
}

bool Transient(absl::StatusCode code) {
  return code == absl::StatusCode::kUnavailable ||
         code == absl::StatusCode::kDeadlineExceeded ||
         code == absl::StatusCode::kResourceExhausted;
}

int64_t GraceSeconds(absl::Duration d) {
  return std::max<int64_t>(1, static_cast<int64_t>(std::ceil(absl::ToDoubleSeconds(d))));
}

}  // namespace

absl::Status CheckJobNameForPods(const std::string& name) {
  const auto bad = [&](const std::string& why) {
    return absl::InvalidArgumentError(
        absl::StrCat("job id '", name, "' cannot name pods: ", why));
  };
  if (name.empty()) return bad("empty");
  if (name.size() > kMaxJobNameLength) {
    return bad(absl::StrCat("longer than ", kMaxJobNameLength, " characters"));
  }
  for (char c : name) {
    if (!(absl::ascii_islower(static_cast<unsigned char>(c)) ||
          absl::ascii_isdigit(static_cast<unsigned char>(c)) || c == '-')) {
      return bad("only lower-case letters, digits and '-' (a DNS label)");
    }
  }
  if (name.front() == '-' || name.back() == '-') return bad("starts or ends with '-'");
  return absl::OkStatus();
}

PodLauncher::PodLauncher(KubeClient* client, PodLauncherOptions options)
    : client_(client),
      options_(std::move(options)),
      secret_name_(options_.job_name + "-worker-env") {}

PodLauncher::~PodLauncher() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
  }
  for (std::thread& t : creators_) t.join();
  if (informer_) informer_->Stop();
}

std::string PodLauncher::PodName(uint32_t index, uint32_t attempt) const {
  return absl::StrCat(options_.job_name, "-worker-", index, "-", attempt);
}

absl::Status PodLauncher::Start() {
  if (absl::Status s = CheckJobNameForPods(options_.job_name); !s.ok()) return s;
  if (!options_.secret_env.empty()) {
    json secret = {
        {"apiVersion", "v1"},
        {"kind", "Secret"},
        {"type", "Opaque"},
        {"metadata",
         {{"name", secret_name_}, {"labels", {{kJobLabel, options_.job_name}}}}}};
    if (options_.owner) {
      secret["metadata"]["ownerReferences"] =
          json::array({{{"apiVersion", options_.owner->api_version},
                        {"kind", options_.owner->kind},
                        {"name", options_.owner->name},
                        {"uid", options_.owner->uid},
                        {"controller", false},
                        {"blockOwnerDeletion", false}}});
    }
    json data = json::object();
    for (const auto& [name, value] : options_.secret_env) {
      data[name] = absl::Base64Escape(value);
    }
    secret["data"] = data;
    absl::StatusOr<json> created = client_->Create(kSecrets, options_.ns, secret);
    if (absl::IsAlreadyExists(created.status())) {
      // Ours from an earlier run of the same job: the values are this run's.
      created =
          client_->MergePatch(kSecrets, options_.ns, secret_name_, {{"data", data}});
    }
    if (!created.ok()) return created.status();
  }

  struct Sync {
    absl::Mutex mu;
    bool synced ABSL_GUARDED_BY(mu) = false;
    absl::Status error ABSL_GUARDED_BY(mu);
  };
  auto sync = std::make_shared<Sync>();
  InformerOptions informer_options;
  informer_options.kind = kPods;
  informer_options.ns = options_.ns;
  informer_options.label_selector = absl::StrCat(kJobLabel, "=", options_.job_name);
  InformerHandlers handlers;
  handlers.on_add = [this](const json& pod) { OnPod(pod, /*deleted=*/false); };
  handlers.on_update = [this](const json&, const json& pod) { OnPod(pod, false); };
  handlers.on_delete = [this](const json& pod) { OnPod(pod, /*deleted=*/true); };
  handlers.on_synced = [sync] {
    absl::MutexLock lock(&sync->mu);
    sync->synced = true;
  };
  handlers.on_error = [sync](const absl::Status& error) {
    {
      absl::MutexLock lock(&sync->mu);
      if (!sync->synced && !Transient(error.code())) {
        sync->error = error;  // Start() returns it
        return;
      }
    }
    spdlog::warn("watching the job's pods: {}", std::string(error.message()));
  };
  informer_ = std::make_unique<Informer>(client_, informer_options, std::move(handlers));
  informer_->Start();
  absl::Status synced;
  {
    absl::MutexLock lock(&sync->mu);
    const auto ready = [&sync]() ABSL_NO_THREAD_SAFETY_ANALYSIS {
      return sync->synced || !sync->error.ok();
    };
    if (!sync->mu.AwaitWithTimeout(absl::Condition(&ready), absl::Minutes(2))) {
      synced = absl::DeadlineExceededError(
          absl::StrCat("cannot list the pods of job ", options_.job_name,
                       " in namespace ", options_.ns, " within 2 minutes"));
    } else {
      synced = sync->error;
    }
  }
  if (!synced.ok()) {
    informer_->Stop();
    informer_.reset();
    if (!options_.secret_env.empty()) {
      (void)client_->Delete(kSecrets, options_.ns, secret_name_);  // nothing uses it
    }
    return synced;
  }
  for (int i = 0; i < std::max(1, options_.create_threads); ++i) {
    creators_.emplace_back([this] { CreateLoop(); });
  }
  return absl::OkStatus();
}

void PodLauncher::SetEventHandler(EventHandler handler) {
  absl::MutexLock lock(&mu_);
  handler_ = std::move(handler);
}

absl::Status PodLauncher::Launch(const aimaster::LaunchSpec& spec) {
  const std::string name = PodName(spec.index, spec.attempt);
  absl::MutexLock lock(&mu_);
  if (stopping_ || creators_.empty()) {
    return absl::FailedPreconditionError("the pod launcher is not running");
  }
  const auto it = attempts_.find(name);
  if (it != attempts_.end() && it->second.state != State::kEnded) {
    return absl::AlreadyExistsError(absl::StrCat("pod ", name, " is already live"));
  }
  Attempt a;
  a.index = spec.index;
  a.attempt = spec.attempt;
  a.spec = spec;
  attempts_[name] = std::move(a);
  queue_.push_back(name);
  return absl::OkStatus();
}

void PodLauncher::CreateLoop() {
  while (true) {
    std::string name;
    aimaster::LaunchSpec spec;
    bool stopped_before_create = false;
    {
      absl::MutexLock lock(&mu_);
      const auto ready = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
        return stopping_ || !queue_.empty();
      };
      mu_.Await(absl::Condition(&ready));
      if (stopping_) return;
      name = queue_.front();
      queue_.pop_front();
      Attempt& a = attempts_[name];
      spec = a.spec;
      if (a.stop_requested) {
        a.state = State::kEnded;
        a.started_reported = true;
        stopped_before_create = true;
      } else {
        a.state = State::kCreating;
      }
    }
    if (stopped_before_create) {
      // Nothing ran: the attempt ends as if stopped.
      Report({LauncherEvent::Kind::kExited, spec.index, spec.attempt, 0,
              kStoppedBeforeCreateExitCode});
      continue;
    }
    absl::StatusOr<std::string> uid = CreatePod(name, spec);
    std::optional<int> exit;
    bool stop_now = false;
    {
      absl::MutexLock lock(&mu_);
      Attempt& a = attempts_[name];
      if (!uid.ok()) {
        spdlog::error("cannot create pod {}: {}", name,
                      std::string(uid.status().message()));
        a.state = State::kEnded;
        a.started_reported = true;
        exit = kCannotCreateExitCode;
      } else {
        a.uid = *uid;
        a.state = State::kCreated;
        stop_now = a.stop_requested;
      }
    }
    if (exit) {
      Report({LauncherEvent::Kind::kExited, spec.index, spec.attempt, 0, *exit});
      continue;
    }
    Report({LauncherEvent::Kind::kStarted, spec.index, spec.attempt, 0, 0});
    // What the watch said about the pod before we knew its uid.
    std::optional<json> current;
    for (const json& pod : informer_->Snapshot()) {
      if (StringAt(pod, "metadata", "name") == name) current = pod;
    }
    bool gone = false;
    {
      absl::MutexLock lock(&mu_);
      gone = seen_pods_.count(name) == 0 && deleted_uids_.count(*uid) != 0;
    }
    if (current && StringAt(*current, "metadata", "uid") == *uid) OnPod(*current, false);
    if (gone) OnPod({{"metadata", {{"name", name}, {"uid", *uid}}}}, /*deleted=*/true);
    {
      absl::MutexLock lock(&mu_);
      Attempt& a = attempts_[name];
      a.started_reported = true;
      exit = a.pending_exit;
      a.pending_exit.reset();
    }
    if (exit) {
      const LauncherEvent end{LauncherEvent::Kind::kExited, spec.index, spec.attempt, 0,
                              *exit};
      Report(end);
      SaveLog(name, spec.log_path, end);
    }
    if (stop_now) DeletePod(name, *uid, GraceSeconds(options_.stop_grace));
  }
}

absl::StatusOr<std::string> PodLauncher::CreatePod(const std::string& name,
                                                   const aimaster::LaunchSpec& spec) {
  WorkerPod pod;
  pod.name = name;
  pod.ns = options_.ns;
  pod.job_name = options_.job_name;
  pod.index = spec.index;
  pod.attempt = spec.attempt;
  pod.labels[kRoleLabel] = spec.attempt == 0 ? "worker" : "retry";
  pod.env = spec.env;
  for (const auto& [var, value] : options_.secret_env) pod.secret_env[var] = var;
  pod.secret_name = secret_name_;
  pod.command = spec.command;
  pod.working_dir = spec.working_dir;
  pod.owner = options_.owner;
  pod.termination_grace_seconds = GraceSeconds(options_.stop_grace);
  const json object = BuildWorkerPod(options_.pod_template, pod);
  // A few rounds: an ended pod of the same name must be gone before ours.
  for (int round = 0; round < 30; ++round) {
    absl::StatusOr<json> created = client_->Create(kPods, options_.ns, object);
    if (created.ok()) return StringAt(*created, "metadata", "uid");
    if (!absl::IsAlreadyExists(created.status())) return created.status();
    absl::StatusOr<json> existing = client_->Get(kPods, options_.ns, name);
    if (absl::IsNotFound(existing.status())) continue;  // gone meanwhile
    if (!existing.ok()) return existing.status();
    const bool ours = LabelOf(*existing, kJobLabel) == options_.job_name;
    if (!ours) {
      return absl::AlreadyExistsError(absl::StrCat(
          "pod ", name, " exists and is not one of job ", options_.job_name, "'s"));
    }
    const bool terminating =
        !StringAt(*existing, "metadata", "deletionTimestamp").empty();
    if (!PodExitCode(*existing) && !terminating) {
      spdlog::info("adopting pod {}, left running by an earlier master", name);
      return StringAt(*existing, "metadata", "uid");
    }
    if (round == 0) spdlog::info("replacing pod {}, which has ended", name);
    DeletePod(name, StringAt(*existing, "metadata", "uid"),
              PodExitCode(*existing) ? 0 : GraceSeconds(options_.stop_grace));
    absl::SleepFor(absl::Seconds(1));
  }
  return absl::DeadlineExceededError(
      absl::StrCat("pod ", name, " of an earlier attempt did not go away"));
}

void PodLauncher::OnPod(const json& pod, bool deleted) {
  const std::string name = StringAt(pod, "metadata", "name");
  const std::string uid = StringAt(pod, "metadata", "uid");
  std::optional<LauncherEvent> event;
  std::string log_path;
  {
    absl::MutexLock lock(&mu_);
    if (deleted) {
      const auto seen = seen_pods_.find(name);
      if (seen != seen_pods_.end() && seen->second == uid) seen_pods_.erase(seen);
      deleted_uids_.insert(uid);
    } else {
      seen_pods_[name] = uid;
    }
    const auto it = attempts_.find(name);
    if (it == attempts_.end()) return;  // not an attempt of this master
    Attempt& a = it->second;
    if (a.state == State::kEnded || a.uid.empty() || a.uid != uid) return;
    std::optional<int> exit = PodExitCode(pod);
    if (!exit && deleted) exit = kKilledExitCode;
    if (!exit) return;
    a.state = State::kEnded;
    const std::string reason = PodEndReason(pod);
    if (*exit != 0 || deleted) {
      spdlog::info("pod {} ended with exit code {}{}{}", name, *exit,
                   reason.empty() ? "" : ", reason ", reason);
    }
    if (!a.started_reported) {
      a.pending_exit = exit;
      return;
    }
    event = LauncherEvent{LauncherEvent::Kind::kExited, a.index, a.attempt, 0, *exit};
    log_path = a.spec.log_path;
  }
  Report(*event);
  if (!deleted) SaveLog(name, log_path, *event);
}

void PodLauncher::SaveLog(const std::string& pod, const std::string& path,
                          const LauncherEvent& end) {
  if (path.empty()) return;
  {
    absl::MutexLock lock(&mu_);
    if (!save_logs_) return;
  }
  const nlohmann::json& containers = options_.pod_template["spec"]["containers"];
  const std::string container =
      containers[WorkerContainerIndex(options_.pod_template)].value("name", "");
  absl::StatusOr<std::string> log =
      client_->PodLog(options_.ns, pod, container, kLogTailLines, kLogLimitBytes);
  if (!log.ok()) {
    if (absl::IsNotFound(log.status())) return;  // deleted meanwhile
    if (absl::IsPermissionDenied(log.status())) {
      // Said once: the Role lacks pods/log; the job goes on without the logs.
      absl::MutexLock lock(&mu_);
      save_logs_ = false;
    }
    spdlog::warn("cannot save the log of pod {}: {}", pod,
                 std::string(log.status().message()));
    return;
  }
  std::ofstream out(path, std::ios::app | std::ios::binary);
  out << "----- pod " << pod << " ended with exit code " << end.exit_code << " (its last "
      << kLogTailLines << " lines at most) -----\n"
      << *log;
  if (!log->empty() && log->back() != '\n') out << '\n';
  if (!out) spdlog::warn("cannot write the log of pod {} to {}", pod, path);
}

void PodLauncher::Report(const LauncherEvent& event) {
  absl::MutexLock order(&report_mu_);
  EventHandler handler;
  {
    absl::MutexLock lock(&mu_);
    handler = handler_;
  }
  if (handler) handler(event);
}

void PodLauncher::DeletePod(const std::string& name, const std::string& uid,
                            int64_t grace_seconds) {
  DeleteOptions options;
  options.uid = uid;
  options.grace_period_seconds = grace_seconds;
  options.propagation_policy = "Background";
  absl::Status s = client_->Delete(kPods, options_.ns, name, options);
  // Already gone, or another incarnation under the name: nothing of ours left.
  if (s.ok() || absl::IsNotFound(s) || HttpStatusOf(s) == 409) return;
  spdlog::warn("cannot delete pod {}: {}", name, std::string(s.message()));
}

void PodLauncher::Stop(uint32_t index, uint32_t attempt) {
  const std::string name = PodName(index, attempt);
  std::string uid;
  {
    absl::MutexLock lock(&mu_);
    const auto it = attempts_.find(name);
    if (it == attempts_.end() || it->second.state == State::kEnded) return;
    it->second.stop_requested = true;
    if (it->second.state != State::kCreated) return;  // the creator sees the flag
    uid = it->second.uid;
  }
  DeletePod(name, uid, GraceSeconds(options_.stop_grace));
}

size_t PodLauncher::live() const {
  absl::MutexLock lock(&mu_);
  size_t n = 0;
  for (const auto& [name, a] : attempts_) n += a.state != State::kEnded ? 1 : 0;
  return n;
}

void PodLauncher::StopAll() {
  std::vector<std::pair<std::string, std::string>> to_delete;
  {
    absl::MutexLock lock(&mu_);
    for (auto& [name, a] : attempts_) {
      if (a.state == State::kEnded) continue;
      a.stop_requested = true;
      if (a.state == State::kCreated) to_delete.emplace_back(name, a.uid);
    }
  }
  for (const auto& [name, uid] : to_delete) {
    DeletePod(name, uid, GraceSeconds(options_.stop_grace));
  }
  absl::MutexLock lock(&mu_);
  const auto all_ended = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    for (const auto& [name, a] : attempts_) {
      if (a.state != State::kEnded) return false;
    }
    return true;
  };
  if (!mu_.AwaitWithTimeout(absl::Condition(&all_ended),
                            options_.stop_grace + absl::Seconds(15))) {
    spdlog::warn("some worker pods had not ended {} after they were deleted",
                 absl::FormatDuration(options_.stop_grace + absl::Seconds(15)));
  }
}

absl::Status PodLauncher::Cleanup() {
  {
    absl::MutexLock lock(&mu_);
    if (cleaned_up_) return absl::OkStatus();
    cleaned_up_ = true;
  }
  if (informer_ == nullptr) return absl::OkStatus();
  StopAll();
  ListOptions list;
  list.label_selector = absl::StrCat(kJobLabel, "=", options_.job_name);
  absl::StatusOr<KubeList> pods = client_->List(kPods, options_.ns, list);
  if (!pods.ok()) return pods.status();
  for (const json& pod : pods->items) {
    // Ended pods go at once; a live one (an earlier master's) gets its grace.
    DeletePod(StringAt(pod, "metadata", "name"), StringAt(pod, "metadata", "uid"),
              PodExitCode(pod) ? 0 : GraceSeconds(options_.stop_grace));
  }
  if (!options_.secret_env.empty()) {
    absl::Status s = client_->Delete(kSecrets, options_.ns, secret_name_);
    if (!s.ok() && !absl::IsNotFound(s)) {
      spdlog::warn("cannot delete secret {}: {}", secret_name_, std::string(s.message()));
    }
  }
  const absl::Duration timeout =
      options_.cleanup_timeout.value_or(options_.stop_grace + absl::Seconds(30));
  absl::MutexLock lock(&mu_);
  const auto none_left = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return seen_pods_.empty();
  };
  if (!mu_.AwaitWithTimeout(absl::Condition(&none_left), timeout)) {
    std::vector<std::string> left;
    for (const auto& [name, uid] : seen_pods_) left.push_back(name);
    return absl::DeadlineExceededError(
        absl::StrCat("pods still there ", absl::FormatDuration(timeout),
                     " after they were deleted: ", absl::StrJoin(left, ", ")));
  }
  return absl::OkStatus();
}

}  // namespace elasticbatch::kube
