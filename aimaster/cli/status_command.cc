// aimaster status / stop: talk to a running master's Admin service.
#include <grpcpp/create_channel.h>

#include <chrono>
#include <iostream>
#include <optional>
#include <string>

#include "absl/flags/flag.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "aimaster/cli/commands.h"
#include "aimaster/cli/security_flags.h"
#include "aimaster/core/job_coordinator.h"
#include "aimaster/core/worker_fleet.h"
#include "elasticbatch/v1/admin.grpc.pb.h"

ABSL_FLAG(std::string, addr, "127.0.0.1:23456", "HOST:PORT of a running aimaster");
ABSL_FLAG(bool, shards, false, "status: also list in-flight and quarantined shards");
ABSL_FLAG(std::string, reason, "requested by an operator",
          "stop: why the job is stopped");

namespace elasticbatch::aimaster {
namespace {

// A connection to --addr, secured as the flags and environment say.
struct Connection {
  rpc::ClientSecurity security;
  std::unique_ptr<v1::Admin::Stub> stub;

  // A call's context: a deadline and the token.
  void Prepare(grpc::ClientContext* ctx) const {
    ctx->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    rpc::AttachToken(security, ctx);
  }
  int Error(const grpc::Status& s) const {
    std::cerr << "aimaster: "
              << rpc::DescribeCallError(s, absl::GetFlag(FLAGS_addr), security) << "\n";
    return 1;
  }
};

absl::StatusOr<Connection> Connect() {
  absl::StatusOr<rpc::ClientSecurity> security = ClientSecurityFromFlags();
  if (!security.ok()) return security.status();
  absl::StatusOr<std::shared_ptr<grpc::Channel>> channel = rpc::NewClientChannel(
      absl::GetFlag(FLAGS_addr), *security, grpc::ChannelArguments());
  if (!channel.ok()) return channel.status();
  return Connection{*std::move(security), v1::Admin::NewStub(*channel)};
}

// The core's name of a proto job state; "unknown" for a state this build
// does not know.
std::string StateName(v1::JobState s) {
  switch (s) {
    case v1::JOB_STATE_RUNNING:
      return std::string(JobStateName(JobState::kRunning));
    case v1::JOB_STATE_SUCCEEDED:
      return std::string(JobStateName(JobState::kSucceeded));
    case v1::JOB_STATE_FAILED:
      return std::string(JobStateName(JobState::kFailed));
    default:
      return "unknown";
  }
}

// The core's state for a proto worker state; none for a state this build
// does not know.
std::optional<InstanceState> FromProto(v1::WorkerState s) {
  switch (s) {
    case v1::WORKER_STATE_PENDING:
      return InstanceState::kPending;
    case v1::WORKER_STATE_STARTING:
      return InstanceState::kStarting;
    case v1::WORKER_STATE_RUNNING:
      return InstanceState::kRunning;
    case v1::WORKER_STATE_SUCCEEDED:
      return InstanceState::kSucceeded;
    case v1::WORKER_STATE_FAILED:
      return InstanceState::kFailed;
    case v1::WORKER_STATE_STOPPED:
      return InstanceState::kStopped;
    default:
      return std::nullopt;
  }
}

// Named as the core names it, so that `status` and `run` spell states alike.
std::string WorkerStateName(v1::WorkerState s) {
  const std::optional<InstanceState> state = FromProto(s);
  return state ? std::string(InstanceStateName(*state)) : "?";
}

void PrintStatus(const v1::JobStatus& s) {
  std::cout << absl::StrFormat(
      "job %s: %s%s\nshards: %d/%d committed, %d quarantined, %d leased, %d pending\n"
      "records: %d committed, %.1f records/s, %.2f shards/s\n",
      s.job_id(), StateName(s.state()), s.reason().empty() ? "" : " (" + s.reason() + ")",
      s.committed_shards(), s.total_shards(), s.quarantined_shards(), s.leased_shards(),
      s.pending_shards(), s.committed_records(), s.records_per_second(),
      s.shards_per_second());
}

}  // namespace

int StatusCommand(const cli::ParsedCommandLine&) {
  absl::StatusOr<Connection> connection = Connect();
  if (!connection.ok()) return cli::ReportUsageError("aimaster", connection.status());
  const Connection& c = *connection;
  v1::JobStatus status;
  {
    grpc::ClientContext ctx;
    c.Prepare(&ctx);
    grpc::Status s = c.stub->GetJobStatus(&ctx, v1::GetJobStatusRequest(), &status);
    if (!s.ok()) return c.Error(s);
  }
  PrintStatus(status);
  v1::ListWorkersResponse workers;
  {
    grpc::ClientContext ctx;
    c.Prepare(&ctx);
    grpc::Status s = c.stub->ListWorkers(&ctx, v1::ListWorkersRequest(), &workers);
    if (!s.ok()) return c.Error(s);
  }
  std::cout << absl::StrFormat("%-7s %-10s %8s %8s %10s %10s %9s %8s\n", "worker",
                               "state", "attempts", "shards", "records", "records/s",
                               "restarts", "backups");
  for (const v1::WorkerInstanceInfo& w : workers.instances()) {
    double rate = 0;
    for (const v1::WorkerAttemptInfo& a : w.attempts())
      rate = std::max(rate, a.records_per_second());
    std::cout << absl::StrFormat("%-7d %-10s %8d %8d %10d %10.1f %9d %8d\n",
                                 w.task_index(), WorkerStateName(w.state()),
                                 w.attempts_size(), w.shards_committed(),
                                 w.records_committed(), rate, w.restarts(), w.backups());
  }
  if (absl::GetFlag(FLAGS_shards)) {
    for (auto filter :
         {v1::ListShardsRequest::ACTIVE, v1::ListShardsRequest::QUARANTINED}) {
      v1::ListShardsRequest req;
      req.set_filter(filter);
      v1::ListShardsResponse shards;
      grpc::ClientContext ctx;
      c.Prepare(&ctx);
      grpc::Status s = c.stub->ListShards(&ctx, req, &shards);
      if (!s.ok()) return c.Error(s);
      for (const v1::ShardInfo& info : shards.shards()) {
        std::cout << absl::StrFormat(
            "shard %d %s:%s [%d,%d) %s, %d lease(s), %d failure(s)\n",
            info.shard().shard_id(), info.shard().channel(), info.shard().source(),
            info.shard().begin(), info.shard().end(),
            filter == v1::ListShardsRequest::QUARANTINED ? "quarantined" : "active",
            info.leases_size(), info.failures());
        for (const std::string& e : info.errors())
          std::cout << "    error: " << e << "\n";
      }
    }
  }
  return 0;
}

int StopCommand(const cli::ParsedCommandLine&) {
  absl::StatusOr<Connection> connection = Connect();
  if (!connection.ok()) return cli::ReportUsageError("aimaster", connection.status());
  const Connection& c = *connection;
  v1::StopJobRequest req;
  req.set_reason(absl::GetFlag(FLAGS_reason));
  v1::StopJobResponse resp;
  grpc::ClientContext ctx;
  c.Prepare(&ctx);
  grpc::Status s = c.stub->StopJob(&ctx, req, &resp);
  if (!s.ok()) return c.Error(s);
  PrintStatus(resp.status());
  return 0;
}

}  // namespace elasticbatch::aimaster
