#include "aimaster/service/admin_service.h"

#include <algorithm>
#include <map>

#include "aimaster/service/proto_conversion.h"

namespace elasticbatch::aimaster {

void FillJobStatus(const JobCoordinator& coordinator, v1::JobStatus* out) {
  const JobProgress p = coordinator.Progress();
  out->set_job_id(coordinator.options().job_id);
  switch (p.state) {
    case JobState::kRunning:
      out->set_state(v1::JOB_STATE_RUNNING);
      break;
    case JobState::kSucceeded:
      out->set_state(v1::JOB_STATE_SUCCEEDED);
      break;
    case JobState::kFailed:
      out->set_state(v1::JOB_STATE_FAILED);
      break;
  }
  out->set_reason(p.reason);
  out->set_total_shards(p.total_shards);
  out->set_committed_shards(p.committed_shards);
  out->set_quarantined_shards(p.quarantined_shards);
  out->set_leased_shards(p.leased_shards);
  out->set_pending_shards(p.pending_shards);
  out->set_committed_records(p.committed_records);
  out->set_records_per_second(p.records_per_second);
  out->set_shards_per_second(p.shards_per_second);
  if (p.eta) ToProto(*p.eta, out->mutable_eta());
  ToProto(p.elapsed, out->mutable_elapsed());
  out->set_workers_running(p.workers_running);
  out->set_workers_starting(p.workers_starting);
  out->set_workers_restarting(p.workers_restarting);
  out->set_workers_total(p.workers_total);
  out->set_speculative_leases(p.speculative_leases);
}

void FillWorkersFromSessions(const JobCoordinator& coordinator,
                             v1::ListWorkersResponse* out) {
  std::map<uint32_t, v1::WorkerInstanceInfo> by_index;
  for (const SessionInfo& s : coordinator.Sessions()) {
    v1::WorkerInstanceInfo& inst = by_index[s.who.task_index];
    inst.set_task_index(s.who.task_index);
    v1::WorkerAttemptInfo* a = inst.add_attempts();
    a->set_task_index(s.who.task_index);
    a->set_attempt(s.who.attempt);
    a->set_state(s.live ? v1::WORKER_STATE_RUNNING : v1::WORKER_STATE_STOPPED);
    a->set_host(s.who.host);
    a->set_pid(s.who.pid);
    a->set_shards_committed(s.shards_committed);
    a->set_records_committed(s.records_committed);
    a->set_records_per_second(s.records_per_second);
    a->set_shards_per_second(s.shards_per_second);
    a->set_leases_held(s.leases_held);
    ToProto(s.last_seen, a->mutable_last_seen());
    a->set_exit_code(-1);
    a->set_detail(s.ended_reason);
    inst.set_shards_committed(inst.shards_committed() + s.shards_committed);
    inst.set_records_committed(inst.records_committed() + s.records_committed);
    if (s.live) inst.set_state(v1::WORKER_STATE_RUNNING);
  }
  for (auto& [index, inst] : by_index) {
    if (inst.state() == v1::WORKER_STATE_UNSPECIFIED)
      inst.set_state(v1::WORKER_STATE_STOPPED);
    inst.set_restarts(static_cast<uint32_t>(inst.attempts_size()) - 1);
    *out->add_instances() = std::move(inst);
  }
}

namespace {

v1::WorkerState ToProto(InstanceState s) {
  switch (s) {
    case InstanceState::kPending:
      return v1::WORKER_STATE_PENDING;
    case InstanceState::kStarting:
      return v1::WORKER_STATE_STARTING;
    case InstanceState::kRunning:
      return v1::WORKER_STATE_RUNNING;
    case InstanceState::kRestarting:
      return v1::WORKER_STATE_PENDING;
    case InstanceState::kSucceeded:
      return v1::WORKER_STATE_SUCCEEDED;
    case InstanceState::kFailed:
      return v1::WORKER_STATE_FAILED;
    case InstanceState::kStopped:
      return v1::WORKER_STATE_STOPPED;
  }
  return v1::WORKER_STATE_UNSPECIFIED;
}

v1::WorkerState ToProto(AttemptState s) {
  switch (s) {
    case AttemptState::kStarting:
      return v1::WORKER_STATE_STARTING;
    case AttemptState::kRunning:
      return v1::WORKER_STATE_RUNNING;
    case AttemptState::kSucceeded:
      return v1::WORKER_STATE_SUCCEEDED;
    case AttemptState::kFailed:
      return v1::WORKER_STATE_FAILED;
    case AttemptState::kStopped:
      return v1::WORKER_STATE_STOPPED;
  }
  return v1::WORKER_STATE_UNSPECIFIED;
}

}  // namespace

void FillWorkersFromFleet(const JobCoordinator& coordinator,
                          v1::ListWorkersResponse* out) {
  std::map<SessionId, SessionInfo> sessions;
  for (SessionInfo& s : coordinator.Sessions()) sessions[s.session] = s;
  for (const InstanceInfo& w : coordinator.Workers()) {
    v1::WorkerInstanceInfo* inst = out->add_instances();
    inst->set_task_index(w.index);
    inst->set_state(ToProto(w.state));
    inst->set_restarts(w.restarts);
    inst->set_backups(w.backups);
    for (const AttemptInfo& a : w.attempts) {
      v1::WorkerAttemptInfo* info = inst->add_attempts();
      info->set_task_index(w.index);
      info->set_attempt(a.attempt);
      info->set_state(ToProto(a.state));
      info->set_backup(a.backup);
      info->set_pid(a.pid);
      info->set_exit_code(a.exit_code.value_or(-1));
      info->set_detail(a.detail);
      if (a.registered_at)
        ToProto(*a.registered_at - a.launched_at, info->mutable_startup_time());
      auto it = sessions.find(a.session);
      if (a.session == 0 || it == sessions.end()) continue;
      const SessionInfo& s = it->second;
      info->set_host(s.who.host);
      info->set_shards_committed(s.shards_committed);
      info->set_records_committed(s.records_committed);
      info->set_records_per_second(s.records_per_second);
      info->set_shards_per_second(s.shards_per_second);
      info->set_leases_held(s.leases_held);
      ToProto(s.last_seen, info->mutable_last_seen());
      inst->set_shards_committed(inst->shards_committed() + s.shards_committed);
      inst->set_records_committed(inst->records_committed() + s.records_committed);
    }
  }
}

AdminService::AdminService(JobCoordinator* coordinator, const Authorizer* authorizer,
                           WorkerListProvider workers)
    : coordinator_(coordinator), authorizer_(authorizer), workers_(std::move(workers)) {}

grpc::ServerUnaryReactor* AdminService::GetJobStatus(grpc::CallbackServerContext* ctx,
                                                     const v1::GetJobStatusRequest*,
                                                     v1::JobStatus* response) {
  if (grpc::Status denied = authorizer_->Check(ctx, auth::Role::kWorker, "GetJobStatus");
      !denied.ok()) {
    grpc::ServerUnaryReactor* refused = ctx->DefaultReactor();
    refused->Finish(denied);
    return refused;
  }
  FillJobStatus(*coordinator_, response);
  grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
  reactor->Finish(grpc::Status::OK);
  return reactor;
}

grpc::ServerUnaryReactor* AdminService::ListWorkers(grpc::CallbackServerContext* ctx,
                                                    const v1::ListWorkersRequest*,
                                                    v1::ListWorkersResponse* response) {
  if (grpc::Status denied = authorizer_->Check(ctx, auth::Role::kWorker, "ListWorkers");
      !denied.ok()) {
    grpc::ServerUnaryReactor* refused = ctx->DefaultReactor();
    refused->Finish(denied);
    return refused;
  }
  if (workers_) {
    workers_(response);
  } else if (coordinator_->has_fleet()) {
    FillWorkersFromFleet(*coordinator_, response);
  } else {
    FillWorkersFromSessions(*coordinator_, response);
  }
  grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
  reactor->Finish(grpc::Status::OK);
  return reactor;
}

grpc::ServerUnaryReactor* AdminService::ListShards(grpc::CallbackServerContext* ctx,
                                                   const v1::ListShardsRequest* request,
                                                   v1::ListShardsResponse* response) {
  if (grpc::Status denied = authorizer_->Check(ctx, auth::Role::kWorker, "ListShards");
      !denied.ok()) {
    grpc::ServerUnaryReactor* refused = ctx->DefaultReactor();
    refused->Finish(denied);
    return refused;
  }
  // At most 1000 shards an answer, whatever the caller asks for.
  const size_t limit = request->limit() == 0 ? 1000 : std::min(request->limit(), 1000u);
  const bool quarantined = request->filter() == v1::ListShardsRequest::QUARANTINED;
  bool truncated = false;
  const std::string& channel = coordinator_->options().input_channel;
  for (const ShardSnapshot& s : coordinator_->Shards(quarantined, limit, &truncated)) {
    v1::ShardInfo* info = response->add_shards();
    ToProto(s.shard, channel, info->mutable_shard());
    if (s.quarantined) {
      info->set_state(v1::SHARD_STATE_QUARANTINED);
    } else {
      info->set_state(s.leases.empty() ? v1::SHARD_STATE_PENDING
                                       : v1::SHARD_STATE_LEASED);
    }
    for (const ShardSnapshot::LeaseView& l : s.leases) {
      v1::ShardLeaseInfo* li = info->add_leases();
      ToProto(l.lease, li->mutable_lease());
      if (std::optional<WorkerIdentity> who = coordinator_->SessionIdentity(l.session)) {
        li->set_task_index(who->task_index);
        li->set_worker_attempt(who->attempt);
      }
      li->set_records_done(l.records_done);
      ToProto(l.age, li->mutable_age());
      li->set_speculative(l.speculative);
      li->set_commit_granted(l.commit_granted);
    }
    info->set_failures(static_cast<uint32_t>(s.errors.size()));
    for (const std::string& e : s.errors) info->add_errors(e);
  }
  response->set_truncated(truncated);
  grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
  reactor->Finish(grpc::Status::OK);
  return reactor;
}

grpc::ServerUnaryReactor* AdminService::StopJob(grpc::CallbackServerContext* ctx,
                                                const v1::StopJobRequest* request,
                                                v1::StopJobResponse* response) {
  if (grpc::Status denied = authorizer_->Check(ctx, auth::Role::kAdmin, "StopJob");
      !denied.ok()) {
    grpc::ServerUnaryReactor* refused = ctx->DefaultReactor();
    refused->Finish(denied);
    return refused;
  }
  coordinator_->Stop(request->reason().empty() ? "requested by an operator"
                                               : request->reason());
  FillJobStatus(*coordinator_, response->mutable_status());
  grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
  reactor->Finish(grpc::Status::OK);
  return reactor;
}

}  // namespace elasticbatch::aimaster
