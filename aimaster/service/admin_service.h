// AdminService: operator-facing gRPC service (status, workers, shards, stop).
// Thread-safe.
#ifndef ELASTICBATCH_AIMASTER_SERVICE_ADMIN_SERVICE_H_
#define ELASTICBATCH_AIMASTER_SERVICE_ADMIN_SERVICE_H_

#include <functional>

#include "aimaster/core/job_coordinator.h"
#include "aimaster/service/authorization.h"
#include "elasticbatch/v1/admin.grpc.pb.h"

namespace elasticbatch::aimaster {

// Fills the worker list; run mode adds launched-but-unregistered attempts.
using WorkerListProvider = std::function<void(v1::ListWorkersResponse*)>;

class AdminService final : public v1::Admin::CallbackService {
 public:
  // `workers` may be empty: the list then comes from the coordinator's sessions.
  // `authorizer` checks every call: reading needs a worker or the admin
  // token, StopJob the admin token.
  AdminService(JobCoordinator* coordinator, const Authorizer* authorizer,
               WorkerListProvider workers = nullptr);

  grpc::ServerUnaryReactor* GetJobStatus(grpc::CallbackServerContext* ctx,
                                         const v1::GetJobStatusRequest* request,
                                         v1::JobStatus* response) override;
  grpc::ServerUnaryReactor* ListWorkers(grpc::CallbackServerContext* ctx,
                                        const v1::ListWorkersRequest* request,
                                        v1::ListWorkersResponse* response) override;
  grpc::ServerUnaryReactor* ListShards(grpc::CallbackServerContext* ctx,
                                       const v1::ListShardsRequest* request,
                                       v1::ListShardsResponse* response) override;
  grpc::ServerUnaryReactor* StopJob(grpc::CallbackServerContext* ctx,
                                    const v1::StopJobRequest* request,
                                    v1::StopJobResponse* response) override;

 private:
  JobCoordinator* const coordinator_;
  const Authorizer* const authorizer_;
  WorkerListProvider workers_;
};

// The coordinator's progress as a JobStatus message.
void FillJobStatus(const JobCoordinator& coordinator, v1::JobStatus* out);
// The fleet's instances and attempts with their sessions' throughput (run mode).
void FillWorkersFromFleet(const JobCoordinator& coordinator,
                          v1::ListWorkersResponse* out);
// One instance per task index, from the coordinator's sessions.
void FillWorkersFromSessions(const JobCoordinator& coordinator,
                             v1::ListWorkersResponse* out);

}  // namespace elasticbatch::aimaster

#endif  // ELASTICBATCH_AIMASTER_SERVICE_ADMIN_SERVICE_H_
