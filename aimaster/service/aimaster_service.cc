#include "aimaster/service/aimaster_service.h"

#include <algorithm>
#include <atomic>

#include "aimaster/service/proto_conversion.h"
#include "aimaster/service/status_conversion.h"

namespace elasticbatch::aimaster {
namespace {

// Bounds a long-poll so a parked call never outlives a sane client deadline.
constexpr absl::Duration kMaxWait = absl::Seconds(30);
// Answer a little before the client's own deadline so it gets WAIT, not an error.
constexpr absl::Duration kDeadlineMargin = absl::Milliseconds(100);

// A WAIT may be held back until work appears; cancellations go out at once.
bool WorthParking(const AcquireResult& result) {
  return result.outcome == AcquireOutcome::kWait && result.commands.empty();
}

// The caller's host, without the port (a new connection must not make a new
// peer): "ipv4:10.0.0.7:5123" -> "ipv4:10.0.0.7", "ipv6:[::1]:5123" ->
// "ipv6:[::1]"; anything else as it is.
std::string PeerHost(const std::string& peer) {
  const bool ipv4 = peer.rfind("ipv4:", 0) == 0;
  const bool ipv6 = peer.rfind("ipv6:", 0) == 0;
  if (!ipv4 && !ipv6) return peer;
  const size_t colon = peer.rfind(':');
  if (colon <= 4 || (ipv6 && peer[colon - 1] != ']')) return peer;
  return peer.substr(0, colon);
}

}  // namespace

class AimasterService::AcquireReactor final : public grpc::ServerUnaryReactor {
 public:
  explicit AcquireReactor(AimasterService* service) {
    service_.store(service, std::memory_order_release);
  }
  void OnCancel() override { service_.load(std::memory_order_acquire)->Unpark(this); }
  void OnDone() override { delete this; }

 private:
  // Set once, then only read. Atomic for ThreadSanitizer's sake: gRPC calls
  // OnCancel on one of its own threads once the handler that built the
  // reactor has returned, and orders the two inside libgrpc++, which is not
  // instrumented, so TSan saw the constructor's write race with OnCancel's
  // read. The release/acquire pair states that order where TSan sees it.
  std::atomic<AimasterService*> service_;
};

AimasterService::AimasterService(JobCoordinator* coordinator, DurabilityQueue* durability,
                                 const Authorizer* authorizer)
    : coordinator_(coordinator), durability_(durability), authorizer_(authorizer) {}

AimasterService::~AimasterService() { ReleaseAllParked(); }

void AimasterService::FinishAfterDurable(grpc::ServerUnaryReactor* reactor,
                                         uint64_t seq) {
  durability_->AfterDurable(
      seq, [reactor](absl::Status s) { reactor->Finish(ToGrpcStatus(s)); });
}

grpc::ServerUnaryReactor* AimasterService::RegisterWorker(
    grpc::CallbackServerContext* ctx, const v1::RegisterWorkerRequest* request,
    v1::RegisterWorkerResponse* response) {
  grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
  if (grpc::Status denied =
          authorizer_->Check(ctx, auth::Role::kWorker, "RegisterWorker");
      !denied.ok()) {
    reactor->Finish(denied);
    return reactor;
  }
  WorkerIdentity who;
  who.task_type = request->task_type();
  who.task_index = request->task_index();
  who.attempt = request->attempt();
  who.host = request->host();
  who.pid = request->pid();
  std::vector<HeldLease> held;
  for (const v1::HeldLease& h : request->held_leases()) {
    held.push_back({FromProto(h.lease()), h.published(), h.records(), h.started()});
  }
  absl::StatusOr<Registration> reg =
      coordinator_->Register(who, held, PeerHost(ctx->peer()));
  if (!reg.ok()) {
    reactor->Finish(ToGrpcStatus(reg.status()));
    return reactor;
  }
  const CoordinatorOptions& options = coordinator_->options();
  const JobProgress progress = coordinator_->Progress();
  response->set_session_id(reg->session);
  ToProto(options.heartbeat_interval, response->mutable_heartbeat_interval());
  ToProto(options.lease_timeout, response->mutable_lease_timeout());
  v1::JobInfo* job = response->mutable_job();
  job->set_job_id(options.job_id);
  job->set_job_uid(options.job_uid);
  job->set_input_channel(options.input_channel);
  job->set_output_channel(options.output_channel);
  job->set_total_shards(progress.total_shards);
  job->set_unit(ToProto(coordinator_->enumerator().unit()));
  for (const LeaseRef& l : reg->reclaimed) ToProto(l, response->add_reclaimed());
  for (const LeaseRef& l : reg->refused) ToProto(l, response->add_refused());
  FinishAfterDurable(reactor, reg->durable_seq);
  return reactor;
}

void AimasterService::FillAcquire(const AcquireResult& result,
                                  v1::AcquireShardsResponse* response) const {
  // The outcome replaces an earlier try's; what a try handed over is kept.
  response->clear_outcome();
  response->clear_shards();
  response->clear_retry_after();
  response->clear_job_succeeded();
  response->clear_end_reason();
  switch (result.outcome) {
    case AcquireOutcome::kShards:
      response->set_outcome(v1::AcquireShardsResponse::SHARDS);
      for (const GrantedShard& g : result.shards) {
        v1::Shard* s = response->add_shards();
        ToProto(g.leased.shard, coordinator_->options().input_channel, s);
        s->set_attempt(g.leased.attempt);
        s->set_speculative(g.leased.speculative);
        s->set_output_name(g.output_name);
      }
      break;
    case AcquireOutcome::kWait:
      response->set_outcome(v1::AcquireShardsResponse::WAIT);
      ToProto(result.retry_after, response->mutable_retry_after());
      break;
    case AcquireOutcome::kEnd:
      response->set_outcome(v1::AcquireShardsResponse::END);
      response->set_job_succeeded(result.job_succeeded);
      response->set_end_reason(result.end_reason);
      break;
  }
  for (const CommitResult& r : result.commit_results) {
    ToProto(r, response->add_commit_results());
  }
  for (const LeaseRef& l : result.confirmed) ToProto(l, response->add_confirmed());
  for (const WorkerCommand& c : result.commands) ToProto(c, response->add_commands());
}

grpc::ServerUnaryReactor* AimasterService::AcquireShards(
    grpc::CallbackServerContext* ctx, const v1::AcquireShardsRequest* request,
    v1::AcquireShardsResponse* response) {
  auto* reactor = new AcquireReactor(this);
  if (grpc::Status denied = authorizer_->Check(ctx, auth::Role::kWorker, "AcquireShards");
      !denied.ok()) {
    reactor->Finish(denied);
    return reactor;
  }
  // Read before asking: work that appears after this read wakes the call even
  // if it appears before the call is parked.
  const uint64_t epoch = coordinator_->work_epoch();
  absl::StatusOr<AcquireResult> result = coordinator_->Acquire(
      request->session_id(), request->max_shards(), FromProto(request->published()),
      FromProto(request->progress()), FromProto(request->commits()));
  if (!result.ok()) {
    reactor->Finish(ToGrpcStatus(result.status()));
    return reactor;
  }
  durability_->RequestSync(result->durable_seq);
  FillAcquire(*result, response);
  const absl::Duration wait = std::min(FromProto(request->wait()), kMaxWait);
  if (WorthParking(*result) && wait > absl::ZeroDuration()) {
    absl::Time deadline = absl::Now() + wait;
    const absl::Time client_deadline = absl::FromChrono(ctx->deadline());
    deadline = std::min(deadline, client_deadline - kDeadlineMargin);
    if (deadline > absl::Now()) {
      absl::MutexLock lock(&mu_);
      parked_.push_back({reactor, ctx, request, response, deadline, epoch});
      return reactor;
    }
  }
  reactor->Finish(grpc::Status::OK);
  return reactor;
}

void AimasterService::RetryParked() {
  const uint64_t epoch = coordinator_->work_epoch();
  const absl::Time now = absl::Now();
  std::list<Parked> due;
  {
    absl::MutexLock lock(&mu_);
    for (auto it = parked_.begin(); it != parked_.end();) {
      if (it->epoch != epoch || it->deadline <= now) {
        auto next = std::next(it);
        due.splice(due.end(), parked_, it);
        it = next;
      } else {
        ++it;
      }
    }
  }
  std::list<Parked> still_waiting;
  for (Parked& p : due) {
    if (p.ctx->IsCancelled()) {
      // Gone between its cancellation and now: hand it nothing.
      p.reactor->Finish(grpc::Status::CANCELLED);
      continue;
    }
    absl::StatusOr<AcquireResult> result =
        coordinator_->Acquire(p.request->session_id(), p.request->max_shards(), {}, {});
    if (!result.ok()) {
      p.reactor->Finish(ToGrpcStatus(result.status()));
      continue;
    }
    FillAcquire(*result, p.response);
    if (WorthParking(*result) && p.deadline > now) {
      p.epoch = epoch;
      still_waiting.push_back(p);
      continue;
    }
    p.reactor->Finish(grpc::Status::OK);
  }
  if (!still_waiting.empty()) {
    absl::MutexLock lock(&mu_);
    parked_.splice(parked_.end(), still_waiting);
  }
}

void AimasterService::Unpark(AcquireReactor* reactor) {
  {
    absl::MutexLock lock(&mu_);
    auto it = std::find_if(parked_.begin(), parked_.end(),
                           [&](const Parked& p) { return p.reactor == reactor; });
    // Not parked: answered already, or being retried right now (the retry
    // sees the cancellation).
    if (it == parked_.end()) return;
    parked_.erase(it);
  }
  reactor->Finish(grpc::Status::CANCELLED);
}

size_t AimasterService::parked() const {
  absl::MutexLock lock(&mu_);
  return parked_.size();
}

void AimasterService::ReleaseAllParked() {
  std::list<Parked> all;
  {
    absl::MutexLock lock(&mu_);
    all.swap(parked_);
  }
  for (Parked& p : all) p.reactor->Finish(grpc::Status::OK);
}

grpc::ServerUnaryReactor* AimasterService::Heartbeat(grpc::CallbackServerContext* ctx,
                                                     const v1::HeartbeatRequest* request,
                                                     v1::HeartbeatResponse* response) {
  grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
  if (grpc::Status denied = authorizer_->Check(ctx, auth::Role::kWorker, "Heartbeat");
      !denied.ok()) {
    reactor->Finish(denied);
    return reactor;
  }
  absl::StatusOr<HeartbeatResult> result =
      coordinator_->Heartbeat(request->session_id(), FromProto(request->progress()),
                              FromProto(request->published()));
  if (!result.ok()) {
    reactor->Finish(ToGrpcStatus(result.status()));
    return reactor;
  }
  for (const WorkerCommand& c : result->commands) ToProto(c, response->add_commands());
  for (const LeaseRef& l : result->confirmed) ToProto(l, response->add_confirmed());
  durability_->RequestSync(result->durable_seq);
  reactor->Finish(grpc::Status::OK);
  return reactor;
}

grpc::ServerUnaryReactor* AimasterService::CommitShard(
    grpc::CallbackServerContext* ctx, const v1::CommitShardRequest* request,
    v1::CommitShardResponse* response) {
  grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
  if (grpc::Status denied = authorizer_->Check(ctx, auth::Role::kWorker, "CommitShard");
      !denied.ok()) {
    reactor->Finish(denied);
    return reactor;
  }
  absl::StatusOr<CommitCallResult> result =
      coordinator_->Commit(request->session_id(), FromProto(request->commits()),
                           FromProto(request->published()));
  if (!result.ok()) {
    reactor->Finish(ToGrpcStatus(result.status()));
    return reactor;
  }
  for (const CommitResult& r : result->results) ToProto(r, response->add_results());
  for (const LeaseRef& l : result->confirmed) ToProto(l, response->add_confirmed());
  for (const WorkerCommand& c : result->commands) ToProto(c, response->add_commands());
  durability_->RequestSync(result->durable_seq);
  reactor->Finish(grpc::Status::OK);
  return reactor;
}

grpc::ServerUnaryReactor* AimasterService::FailShard(grpc::CallbackServerContext* ctx,
                                                     const v1::FailShardRequest* request,
                                                     v1::FailShardResponse* response) {
  grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
  if (grpc::Status denied = authorizer_->Check(ctx, auth::Role::kWorker, "FailShard");
      !denied.ok()) {
    reactor->Finish(denied);
    return reactor;
  }
  absl::StatusOr<FailResult> result = coordinator_->Fail(
      request->session_id(), FromProto(request->lease()), request->error());
  if (!result.ok()) {
    reactor->Finish(ToGrpcStatus(result.status()));
    return reactor;
  }
  response->set_outcome(result->quarantined ? v1::FailShardResponse::QUARANTINED
                                            : v1::FailShardResponse::REQUEUED);
  response->set_failures(result->failures);
  for (const WorkerCommand& c : result->commands) ToProto(c, response->add_commands());
  FinishAfterDurable(reactor, result->durable_seq);
  // The shard went back to the queue: a parked acquire may take it now.
  RetryParked();
  return reactor;
}

}  // namespace elasticbatch::aimaster
