#include "worker_sdk/src/worker_core.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <optional>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/auth/token.h"
#include "elasticbatch/pai_environment.h"
#include "worker_sdk/src/json_value.h"

namespace elasticbatch::internal {
namespace {

constexpr absl::Duration kInitialBackoff = absl::Milliseconds(50);
// Confirmations ride on other calls; one that waits this long gets its own.
constexpr absl::Duration kConfirmationDelay = absl::Milliseconds(50);
constexpr absl::Duration kMaxLongPoll = absl::Seconds(1);

// The job instance an end marker names, or nullopt (no marker, unreadable,
// not ours to parse). Reads at most a few KiB: the marker is one JSON line.
std::optional<std::string> ReadMarkerJobUid(const std::string& path) {
  const int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0) return std::nullopt;
  std::string text(64 << 10, '\0');
  size_t got = 0;
  while (got < text.size()) {
    const ssize_t n = read(fd, text.data() + got, text.size() - got);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    got += static_cast<size_t>(n);
  }
  close(fd);
  text.resize(got);
  absl::StatusOr<google::protobuf::Value> json = ParseJson(text, path);
  if (!json.ok() || !json->has_struct_value()) return std::nullopt;
  const auto& fields = json->struct_value().fields();
  auto it = fields.find("job_uid");
  if (it == fields.end() || !it->second.has_string_value()) return std::nullopt;
  return it->second.string_value();
}

// A source path relative to the input root that cannot leave it.
absl::Status CheckRelativeSource(const std::string& source) {
  if (source.empty()) return absl::OkStatus();  // the channel itself
  if (source.size() > 4096)
    return absl::InvalidArgumentError("a source path over 4096 bytes");
  if (source.find('\0') != std::string::npos) {
    return absl::InvalidArgumentError("a NUL byte in its source path");
  }
  if (source[0] == '/') {
    return absl::InvalidArgumentError(absl::StrCat(
        "an absolute source path '", absl::CHexEscape(source.substr(0, 200)), "'"));
  }
  for (absl::string_view part : absl::StrSplit(source, '/')) {
    // The master never lists hidden or marker names ('.', '_'), nor "..".
    if (part.empty() || part[0] == '.' || part[0] == '_') {
      return absl::InvalidArgumentError(
          absl::StrCat("source path '", absl::CHexEscape(source.substr(0, 200)),
                       "', which is not a plain relative path"));
    }
  }
  return absl::OkStatus();
}

// A shard's output name: one plain file name in the output directory.
absl::Status CheckOutputName(const std::string& name) {
  const bool plain = !name.empty() && name.size() <= 255 && name[0] != '.' &&
                     name[0] != '_' && std::all_of(name.begin(), name.end(), [](char c) {
                       return absl::ascii_isalnum(static_cast<unsigned char>(c)) ||
                              c == '.' || c == '-' || c == '_';
                     });
  if (plain) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrCat("output name '",
                                                 absl::CHexEscape(name.substr(0, 200)),
                                                 "', which is not a plain file name"));
}

bool Transient(absl::StatusCode code) {
  return code == absl::StatusCode::kUnavailable || code == absl::StatusCode::kCancelled ||
         code == absl::StatusCode::kDeadlineExceeded ||
         code == absl::StatusCode::kResourceExhausted;
}

absl::Duration FromProto(const google::protobuf::Duration& d) {
  return absl::Seconds(d.seconds()) + absl::Nanoseconds(d.nanos());
}

void SetLease(const LeaseKey& key, v1::LeaseRef* out) {
  out->set_shard_id(key.first);
  out->set_attempt(key.second);
}

}  // namespace

WorkerCore::WorkerCore(const WorkerOptions& options, std::unique_ptr<MasterClient> master,
                       std::shared_ptr<const Clock> clock)
    : options_(options),
      master_(std::move(master)),
      clock_(std::move(clock)),
      rng_(std::random_device{}()) {
  char host[256] = {0};
  gethostname(host, sizeof(host) - 1);
  host_ = host;
}

WorkerCore::~WorkerCore() { Stop(); }

absl::Status WorkerCore::CheckOptions(const WorkerOptions& options) {
  if (options.prefetch > 1024) {
    return absl::InvalidArgumentError("prefetch must be at most 1024");
  }
  if (options.rpc_timeout <= absl::ZeroDuration() ||
      options.max_backoff <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError("rpc_timeout and max_backoff must be positive");
  }
  return absl::OkStatus();
}

absl::StatusOr<std::shared_ptr<WorkerCore>> WorkerCore::Start(
    const WorkerOptions& options) {
  if (options.master_address.empty()) {
    return absl::InvalidArgumentError(
        "no master address: set AIMASTER_ADDR or WorkerOptions::master_address");
  }
  // Checked before a channel is made from them.
  if (absl::Status s = CheckOptions(options); !s.ok()) return s;
  rpc::ClientSecurity security;
  security.token = options.token;
  security.tls = options.tls;
  security.tls_ca_file = options.tls_ca_file;
  security.tls_cert_file = options.tls_cert_file;
  security.tls_key_file = options.tls_key_file;
  security.tls_server_name = options.tls_server_name;
  if (!security.token.empty()) {
    if (absl::Status s = auth::ValidateToken(security.token, "WorkerOptions::token");
        !s.ok()) {
      return s;
    }
  }
  absl::StatusOr<std::unique_ptr<MasterClient>> master =
      NewGrpcMasterClient(options.master_address, security, options.max_backoff);
  if (!master.ok()) return master.status();
  static const RealClock* const kRealClock = new RealClock();
  return Start(options, *std::move(master),
               std::shared_ptr<const Clock>(std::shared_ptr<const Clock>(), kRealClock));
}

absl::StatusOr<std::shared_ptr<WorkerCore>> WorkerCore::Start(
    const WorkerOptions& options, std::unique_ptr<MasterClient> master,
    std::shared_ptr<const Clock> clock) {
  if (absl::Status s = CheckOptions(options); !s.ok()) return s;
  auto core = std::shared_ptr<WorkerCore>(
      new WorkerCore(options, std::move(master), std::move(clock)));
  absl::Status registered = core->Register(0);
  if (!registered.ok()) {
    if (Transient(registered.code())) {
      return absl::UnavailableError(absl::StrCat("cannot reach the master at ",
                                                 options.master_address, ": ",
                                                 registered.message()));
    }
    return registered;
  }
  // Channel roots: as given, else from the environment contract.
  absl::StatusOr<PaiEnvironment> env = PaiEnvironment::FromEnvironment();
  if (!env.ok()) return env.status();
  core->input_root_ = options.input_root;
  if (core->input_root_.empty()) {
    core->input_root_ = env->Input(core->input_channel_).value_or("");
  }
  core->output_dir_ = options.output_dir;
  if (core->output_dir_.empty()) {
    core->output_dir_ = env->Output(core->output_channel_).value_or("");
  }
  core->thread_ = std::thread([raw = core.get()] { raw->Run(); });
  return core;
}

void WorkerCore::Stop() {
  {
    absl::MutexLock lock(&mu_);
    if (stopping_) return;
    stopping_ = true;
  }
  if (thread_.joinable()) thread_.join();
  // Send outstanding confirmations until acknowledged, briefly: the master
  // needs them to count the shards as committed (a lost one only costs a
  // redo of its shard). Wall time, whatever the clock: this bounds how long
  // the Worker's destructor blocks.
  const absl::Time give_up = absl::Now() + absl::Seconds(2);
  while (absl::Now() < give_up) {
    v1::HeartbeatRequest req;
    {
      absl::MutexLock lock(&mu_);
      if (published_.empty() || session_ == 0) return;
      req.set_session_id(session_);
      TakeConfirmations(req.mutable_published());
    }
    v1::HeartbeatResponse resp;
    if (!master_->Heartbeat(req, &resp, give_up - absl::Now()).ok()) return;
    Acknowledge(resp.confirmed());
    absl::SleepFor(absl::Milliseconds(5));
  }
}

bool WorkerCore::BackOffUnlessStopped(absl::Duration* backoff) {
  absl::MutexLock lock(&mu_);
  // Full jitter: a uniform wait in [0, backoff], so restarted workers spread out.
  const absl::Duration wait = absl::Nanoseconds(static_cast<int64_t>(
      rng_() % static_cast<uint64_t>(absl::ToInt64Nanoseconds(*backoff) + 1)));
  *backoff = std::min(*backoff * 2, options_.max_backoff);
  auto stop = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return stopping_; };
  return !clock_->AwaitWithDeadline(&mu_, absl::Condition(&stop), clock_->Now() + wait);
}

bool WorkerCore::JobEndedOnDisk() {
  // A marker that does not name our job instance may be an earlier job's
  // (same output directory, same job id): believing it would end a live job.
  if (output_dir_.empty() || job_uid_.empty()) return false;
  for (const bool succeeded : {true, false}) {
    const std::string path = output_dir_ + (succeeded ? "/_SUCCESS" : "/_FAILED");
    std::optional<std::string> uid = ReadMarkerJobUid(path);
    if (uid.has_value() && *uid == job_uid_) {
      MarkEnded(succeeded,
                absl::StrCat("the master is gone and left its verdict in ", path));
      return true;
    }
  }
  return false;
}

absl::Status WorkerCore::JobOverStatus() const {
  return absl::AbortedError(absl::StrCat("the job is over (", end_reason(), ")"));
}

absl::Status WorkerCore::ValidateShard(const v1::Shard& shard) const {
  auto bad = [&](const std::string& why) {
    return absl::InvalidArgumentError(
        absl::StrCat("the master sent shard ", shard.shard_id(), " attempt ",
                     shard.attempt(), " with ", why, "; refusing to process it"));
  };
  if (shard.attempt() == 0) return bad("attempt 0");
  if (shard.channel() != input_channel_) {
    return bad(absl::StrCat("channel '", absl::CHexEscape(shard.channel().substr(0, 64)),
                            "' (the job's input channel is '", input_channel_, "')"));
  }
  if (shard.unit() != v1::SHARD_UNIT_BYTES && shard.unit() != v1::SHARD_UNIT_RECORDS) {
    return bad("an unknown unit");
  }
  if (shard.begin() > shard.end()) return bad("begin after end");
  if (absl::Status s = CheckRelativeSource(shard.source()); !s.ok()) {
    return bad(std::string(s.message()));
  }
  if (absl::Status s = CheckOutputName(shard.output_name()); !s.ok()) {
    return bad(std::string(s.message()));
  }
  return absl::OkStatus();
}

absl::Status WorkerCore::Register(uint64_t stale_session) {
  absl::MutexLock registering(&register_mu_);
  v1::RegisterWorkerRequest req;
  std::vector<LeaseKey> sent_published;
  {
    absl::MutexLock lock(&mu_);
    if (stale_session != 0 && session_ != stale_session) return absl::OkStatus();
    req.set_task_type("worker");
    req.set_task_index(options_.task_index);
    req.set_attempt(options_.attempt);
    req.set_host(host_);
    req.set_pid(getpid());
    for (const auto& [key, state] : held_) {
      v1::HeldLease* h = req.add_held_leases();
      SetLease(key, h->mutable_lease());
      h->set_records(state->records.load());
      h->set_started(state->started.load());
    }
    for (const auto& [key, published] : published_) {
      v1::HeldLease* h = req.add_held_leases();
      SetLease(key, h->mutable_lease());
      h->set_published(true);
      h->set_records(published.first);
      sent_published.push_back(key);
    }
  }
  const absl::Time started = clock_->Now();
  absl::Duration backoff = kInitialBackoff;
  v1::RegisterWorkerResponse resp;
  while (true) {
    resp.Clear();
    absl::Status s = master_->RegisterWorker(req, &resp, options_.rpc_timeout);
    if (s.ok()) break;
    if (!Transient(s.code())) return s;
    // A certificate that does not verify will not verify on a retry either;
    // a registered worker keeps retrying (the master may be mid-rotation).
    if (stale_session == 0 && s.GetPayload(kTlsHandshakeFailurePayload).has_value()) {
      return absl::UnavailableError(absl::StrCat("TLS handshake failed: ", s.message()));
    }
    if (JobEndedOnDisk()) return JobOverStatus();
    if (clock_->Now() - started > options_.master_lost_timeout) return s;
    if (!BackOffUnlessStopped(&backoff)) return s;
  }
  absl::MutexLock lock(&mu_);
  if (!job_uid_.empty() && resp.job().job_uid() != job_uid_) {
    // Same address, another job instance (a master started over with a fresh
    // state dir): our leases and outputs mean nothing to it.
    const absl::Status other = absl::FailedPreconditionError(absl::StrCat(
        "the master at ", options_.master_address, " now runs another job instance (",
        resp.job().job_uid(), ", not ", job_uid_, "): stopping"));
    FatalLocked(other);
    return other;
  }
  if (input_channel_.empty()) {
    job_uid_ = resp.job().job_uid();
    input_channel_ = resp.job().input_channel();
    output_channel_ = resp.job().output_channel();
    total_shards_ = resp.job().total_shards();
    heartbeat_interval_ = FromProto(resp.heartbeat_interval());
    lease_timeout_ = FromProto(resp.lease_timeout());
    if (heartbeat_interval_ <= absl::ZeroDuration())
      heartbeat_interval_ = absl::Seconds(2);
  }
  session_ = resp.session_id();
  for (const v1::LeaseRef& r : resp.refused()) {
    const LeaseKey key{r.shard_id(), r.attempt()};
    DropLocked(key, /*cancelled=*/true);
    published_.erase(key);
  }
  // Published leases sent with the registration were confirmed by it.
  for (const LeaseKey& key : sent_published) published_.erase(key);
  return absl::OkStatus();
}

absl::Status WorkerCore::CallMaster(
    const std::function<absl::Status(absl::Duration, uint64_t)>& rpc) {
  absl::Time lost_since = absl::InfinitePast();
  absl::Duration backoff = kInitialBackoff;
  while (true) {
    uint64_t session;
    {
      absl::MutexLock lock(&mu_);
      session = session_;
    }
    absl::Status s = rpc(options_.rpc_timeout, session);
    if (s.ok()) return s;
    if (absl::IsNotFound(s)) {
      // The master restarted (or forgot us): register again with our leases.
      absl::Status r = Register(session);
      if (!r.ok()) return r;
      continue;
    }
    if (!Transient(s.code())) return s;
    const absl::Time now = clock_->Now();
    if (lost_since == absl::InfinitePast()) lost_since = now;
    if (JobEndedOnDisk()) return JobOverStatus();
    if (now - lost_since > options_.master_lost_timeout) {
      return absl::UnavailableError(
          absl::StrCat("the master at ", options_.master_address, " was unreachable for ",
                       absl::FormatDuration(now - lost_since), ": ", s.message()));
    }
    if (!BackOffUnlessStopped(&backoff)) return s;
  }
}

void WorkerCore::FillProgress(
    google::protobuf::RepeatedPtrField<v1::ShardProgress>* out) {
  for (const auto& [key, state] : held_) {
    v1::ShardProgress* p = out->Add();
    SetLease(key, p->mutable_lease());
    p->set_records_done(state->records.load());
    p->set_units_done(state->units.load());
    p->set_started(state->started.load());
  }
  // Granted and published, not yet confirmed: keep the grant alive.
  for (const auto& [key, published] : published_) {
    v1::ShardProgress* p = out->Add();
    SetLease(key, p->mutable_lease());
    p->set_records_done(published.first);
    p->set_started(true);
  }
}

void WorkerCore::TakeConfirmations(
    google::protobuf::RepeatedPtrField<v1::LeaseRef>* out) {
  const absl::Time now = clock_->Now();
  for (auto& [key, published] : published_) {
    SetLease(key, out->Add());
    published.second = now;
  }
}

void WorkerCore::Acknowledge(
    const google::protobuf::RepeatedPtrField<v1::LeaseRef>& confirmed) {
  if (confirmed.empty()) return;
  absl::MutexLock lock(&mu_);
  for (const v1::LeaseRef& l : confirmed) published_.erase({l.shard_id(), l.attempt()});
}

void WorkerCore::DropLocked(const LeaseKey& key, bool cancelled) {
  auto it = held_.find(key);
  if (it == held_.end()) return;
  std::shared_ptr<ShardState> state = it->second;
  if (cancelled) state->cancelled = true;
  state->finished = true;
  held_.erase(it);
  queue_.erase(std::remove(queue_.begin(), queue_.end(), state), queue_.end());
}

void WorkerCore::MarkEnded(bool succeeded, const std::string& reason) {
  absl::MutexLock lock(&mu_);
  if (ended_) return;
  ended_ = true;
  succeeded_ = succeeded;
  end_reason_ = reason;
  // The job is over: whatever is queued or in progress is moot.
  for (auto& [key, state] : held_) {
    state->cancelled = true;
    state->finished = true;
  }
  held_.clear();
  queue_.clear();
}

bool WorkerCore::ended() const {
  absl::MutexLock lock(&mu_);
  return ended_;
}

void WorkerCore::MarkFatal(const absl::Status& status) {
  absl::MutexLock lock(&mu_);
  FatalLocked(status);
}

void WorkerCore::FatalLocked(const absl::Status& status) {
  if (!fatal_.ok()) return;
  fatal_ = status;
  // Without a master nothing can be committed: stop working on held shards.
  for (auto& [key, state] : held_) {
    state->cancelled = true;
    state->finished = true;
  }
  held_.clear();
  queue_.clear();
}

std::string WorkerCore::ResolveInput(const std::string& source) const {
  if (input_root_.empty()) return source;
  if (source.empty()) return input_root_;
  if (input_root_.back() == '/') return input_root_ + source;
  return absl::StrCat(input_root_, "/", source);
}

void WorkerCore::Run() {
  while (true) {
    bool heartbeat = false;
    uint32_t acquire = 0;
    {
      absl::MutexLock lock(&mu_);
      auto wanted = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) -> uint32_t {
        const uint32_t have = static_cast<uint32_t>(queue_.size());
        const uint32_t want = std::max<uint32_t>(options_.prefetch, waiters_ > 0 ? 1 : 0);
        return ended_ || have >= want ? 0 : want - have;
      };
      auto oldest_confirmation = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
        absl::Time oldest = absl::InfiniteFuture();
        for (const auto& [key, p] : published_) oldest = std::min(oldest, p.second);
        return oldest;
      };
      auto ready = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
        if (stopping_ || ended_ || !fatal_.ok()) return true;
        const absl::Time now = clock_->Now();
        return (wanted() > 0 && now >= next_acquire_) ||
               now - oldest_confirmation() >= kConfirmationDelay ||
               now - last_heartbeat_ >= heartbeat_interval_;
      };
      while (!ready()) {
        absl::Time wake = last_heartbeat_ + heartbeat_interval_;
        if (wanted() > 0) wake = std::min(wake, next_acquire_);
        wake = std::min(wake, oldest_confirmation() + kConfirmationDelay);
        clock_->AwaitWithDeadline(&mu_, absl::Condition(&ready), wake);
      }
      if (stopping_ || ended_ || !fatal_.ok()) return;
      const absl::Time now = clock_->Now();
      acquire = now >= next_acquire_ ? wanted() : 0;
      heartbeat = now - last_heartbeat_ >= heartbeat_interval_ ||
                  (acquire == 0 && now - oldest_confirmation() >= kConfirmationDelay);
    }
    if (heartbeat) HeartbeatOnce();
    if (acquire > 0) AcquireOnce(acquire);
  }
}

bool WorkerCore::AcquireOnce(uint32_t max_shards) {
  v1::AcquireShardsResponse resp;
  bool user_waiting;
  {
    absl::MutexLock lock(&mu_);
    user_waiting = waiters_ > 0 && queue_.empty();
  }
  // Long-poll only for a waiting user; prefetching must not delay heartbeats.
  const absl::Duration wait = user_waiting
                                  ? std::min(heartbeat_interval_ / 2, kMaxLongPoll)
                                  : absl::ZeroDuration();
  absl::Status s = CallMaster([&](absl::Duration timeout, uint64_t session) {
    v1::AcquireShardsRequest req;
    req.set_session_id(session);
    req.set_max_shards(max_shards);
    req.mutable_wait()->set_seconds(absl::ToInt64Seconds(wait));
    req.mutable_wait()->set_nanos(
        static_cast<int32_t>(absl::ToInt64Nanoseconds(wait) % 1'000'000'000));
    {
      absl::MutexLock lock(&mu_);
      FillProgress(req.mutable_progress());
      TakeConfirmations(req.mutable_published());
    }
    resp.Clear();
    return master_->AcquireShards(req, &resp, timeout);
  });
  if (!s.ok()) {
    absl::MutexLock lock(&mu_);
    if (!ended_ && !stopping_) FatalLocked(s);
    return false;
  }
  Acknowledge(resp.confirmed());
  HandleCommands(resp.commands());
  if (resp.outcome() == v1::AcquireShardsResponse::END) {
    MarkEnded(resp.job_succeeded(), resp.end_reason());
    return true;
  }
  std::vector<std::pair<LeaseKey, absl::Status>> refused;
  {
    absl::MutexLock lock(&mu_);
    const absl::Time now = clock_->Now();
    last_heartbeat_ = now;  // the call renewed every lease it listed
    if (resp.outcome() == v1::AcquireShardsResponse::WAIT) {
      next_acquire_ = now + std::clamp(FromProto(resp.retry_after()),
                                       absl::Milliseconds(10), absl::Seconds(5));
      return true;
    }
    next_acquire_ = absl::InfinitePast();
    for (const v1::Shard& shard : resp.shards()) {
      if (absl::Status valid = ValidateShard(shard); !valid.ok()) {
        refused.push_back({{shard.shard_id(), shard.attempt()}, valid});
        continue;
      }
      auto state = std::make_shared<ShardState>();
      state->shard = shard;
      state->unit = shard.unit() == v1::SHARD_UNIT_RECORDS ? ShardUnit::kRecords
                                                           : ShardUnit::kBytes;
      state->input_path = ResolveInput(shard.source());
      held_[state->key()] = state;
      queue_.push_back(std::move(state));
    }
  }
  // Loudly: the master records the error (and quarantines the shard if it
  // keeps coming back like this); nothing of it is processed here.
  for (const auto& [key, error] : refused) (void)ReportFailure(key, error, true);
  return true;
}

void WorkerCore::HeartbeatOnce() {
  v1::HeartbeatResponse resp;
  absl::Status s = CallMaster([&](absl::Duration timeout, uint64_t session) {
    v1::HeartbeatRequest req;
    req.set_session_id(session);
    {
      absl::MutexLock lock(&mu_);
      FillProgress(req.mutable_progress());
      TakeConfirmations(req.mutable_published());
    }
    resp.Clear();
    return master_->Heartbeat(req, &resp, timeout);
  });
  {
    absl::MutexLock lock(&mu_);
    last_heartbeat_ = clock_->Now();
    if (!s.ok()) {
      if (!ended_ && !stopping_) FatalLocked(s);
      return;
    }
  }
  Acknowledge(resp.confirmed());
  HandleCommands(resp.commands());
}

void WorkerCore::HandleCommands(
    const google::protobuf::RepeatedPtrField<v1::WorkerCommand>& commands) {
  for (const v1::WorkerCommand& c : commands) {
    if (c.kind() == v1::WorkerCommand::CANCEL_SHARD) {
      absl::MutexLock lock(&mu_);
      DropLocked({c.lease().shard_id(), c.lease().attempt()}, /*cancelled=*/true);
    } else if (c.kind() == v1::WorkerCommand::STOP) {
      MarkEnded(c.job_finished(), c.reason());
    }
  }
}

absl::StatusOr<std::optional<Shard>> WorkerCore::NextShard() {
  absl::MutexLock lock(&mu_);
  ++waiters_;
  auto ready = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return !queue_.empty() || ended_ || !fatal_.ok() || stopping_;
  };
  mu_.Await(absl::Condition(&ready));
  --waiters_;
  if (!fatal_.ok()) return fatal_;
  if (ended_ || stopping_) return std::optional<Shard>();
  std::shared_ptr<ShardState> state = queue_.front();
  queue_.pop_front();
  state->started = true;
  return std::optional<Shard>(Shard(shared_from_this(), std::move(state)));
}

absl::Status WorkerCore::Commit(const std::shared_ptr<ShardState>& state,
                                const std::function<absl::Status()>& publish) {
  if (state->finished && !state->cancelled) {
    return absl::FailedPreconditionError(absl::StrCat(
        "shard ", state->shard.shard_id(), " was already committed or failed"));
  }
  const LeaseKey key = state->key();
  if (state->cancelled) {
    absl::MutexLock lock(&mu_);
    DropLocked(key, true);
    return absl::AbortedError(
        absl::StrCat("the lease of shard ", key.first, " was lost; output discarded"));
  }
  v1::CommitShardResponse resp;
  absl::Status s = CallMaster([&](absl::Duration timeout, uint64_t session) {
    v1::CommitShardRequest req;
    req.set_session_id(session);
    v1::ShardCompletion* c = req.add_commits();
    SetLease(key, c->mutable_lease());
    c->set_records(state->records.load());
    {
      absl::MutexLock lock(&mu_);
      TakeConfirmations(req.mutable_published());
    }
    resp.Clear();
    return master_->CommitShard(req, &resp, timeout);
  });
  if (!s.ok()) {
    if (absl::IsFailedPrecondition(s)) MarkFatal(s);
    return s;
  }
  Acknowledge(resp.confirmed());
  HandleCommands(resp.commands());
  if (resp.results_size() != 1) return absl::InternalError("malformed commit answer");
  const v1::CommitResult& result = resp.results(0);
  if (result.decision() != v1::CommitResult::GRANTED) {
    absl::MutexLock lock(&mu_);
    DropLocked(key, true);
    return absl::AbortedError(absl::StrCat("shard ", key.first,
                                           " not committed by attempt ", key.second, ": ",
                                           result.reason()));
  }
  if (absl::Status published = publish(); !published.ok()) {
    // We hold the grant but could not publish: give the shard back. When the
    // master no longer knows the grant (it restarted and another attempt
    // committed, or the job is over and its staging dir is gone), this
    // attempt simply lost.
    absl::Status f = ReportFailure(key, published, /*cancelled=*/true);
    if (absl::IsFailedPrecondition(f) || ended()) {
      return absl::AbortedError(absl::StrCat("shard ", key.first, " attempt ", key.second,
                                             " lost its grant: ", f.message()));
    }
    return published;
  }
  absl::MutexLock lock(&mu_);
  published_[key] = {state->records.load(), clock_->Now()};
  state->finished = true;
  held_.erase(key);
  return absl::OkStatus();
}

absl::Status WorkerCore::ReportFailure(const LeaseKey& key, const absl::Status& error,
                                       bool cancelled) {
  v1::FailShardResponse resp;
  absl::Status s = CallMaster([&](absl::Duration timeout, uint64_t session) {
    v1::FailShardRequest req;
    req.set_session_id(session);
    SetLease(key, req.mutable_lease());
    req.set_error(error.ToString());
    resp.Clear();
    return master_->FailShard(req, &resp, timeout);
  });
  {
    absl::MutexLock lock(&mu_);
    DropLocked(key, cancelled);
  }
  if (s.ok()) HandleCommands(resp.commands());
  return s;
}

absl::Status WorkerCore::Fail(const std::shared_ptr<ShardState>& state,
                              const absl::Status& error) {
  absl::Status s = ReportFailure(state->key(), error, /*cancelled=*/false);
  // FAILED_PRECONDITION: the lease was gone already; the shard is requeued anyway.
  if (s.ok() || absl::IsFailedPrecondition(s)) return absl::OkStatus();
  return s;
}

void WorkerCore::Abandon(const std::shared_ptr<ShardState>& state) {
  absl::MutexLock lock(&mu_);
  if (!state->finished) DropLocked(state->key(), false);
}

bool WorkerCore::job_succeeded() const {
  absl::MutexLock lock(&mu_);
  return succeeded_;
}

std::string WorkerCore::end_reason() const {
  absl::MutexLock lock(&mu_);
  return end_reason_;
}

}  // namespace elasticbatch::internal
