// AimasterService: the worker-facing gRPC service, a thin adapter from
// elasticbatch.v1 messages to JobCoordinator calls on gRPC's callback API.
// Answers that depend on journalled changes wait in the DurabilityQueue, and
// long-polling acquires are parked here until work appears or they time out;
// no reaction ever blocks.
//
// Thread-safe.
#ifndef ELASTICBATCH_AIMASTER_SERVICE_AIMASTER_SERVICE_H_
#define ELASTICBATCH_AIMASTER_SERVICE_AIMASTER_SERVICE_H_

#include <list>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "aimaster/core/job_coordinator.h"
#include "aimaster/service/authorization.h"
#include "aimaster/service/durability_queue.h"
#include "elasticbatch/v1/elasticbatch.grpc.pb.h"

namespace elasticbatch::aimaster {

class AimasterService final : public v1::AIMaster::CallbackService {
 public:
  // `authorizer` checks every call (a worker token or the admin token).
  AimasterService(JobCoordinator* coordinator, DurabilityQueue* durability,
                  const Authorizer* authorizer);
  ~AimasterService() override;

  grpc::ServerUnaryReactor* RegisterWorker(grpc::CallbackServerContext* ctx,
                                           const v1::RegisterWorkerRequest* request,
                                           v1::RegisterWorkerResponse* response) override;
  grpc::ServerUnaryReactor* AcquireShards(grpc::CallbackServerContext* ctx,
                                          const v1::AcquireShardsRequest* request,
                                          v1::AcquireShardsResponse* response) override;
  grpc::ServerUnaryReactor* Heartbeat(grpc::CallbackServerContext* ctx,
                                      const v1::HeartbeatRequest* request,
                                      v1::HeartbeatResponse* response) override;
  grpc::ServerUnaryReactor* CommitShard(grpc::CallbackServerContext* ctx,
                                        const v1::CommitShardRequest* request,
                                        v1::CommitShardResponse* response) override;
  grpc::ServerUnaryReactor* FailShard(grpc::CallbackServerContext* ctx,
                                      const v1::FailShardRequest* request,
                                      v1::FailShardResponse* response) override;

  // Retries parked acquires when work may have appeared (the coordinator's
  // work epoch moved) and answers WAIT to those past their deadline.
  void RetryParked();
  // Answers every parked acquire now (at shutdown).
  void ReleaseAllParked();
  // Long-polling acquires waiting right now.
  size_t parked() const;

 private:
  // An acquire's reactor: one whose client goes away (cancelled, deadline
  // passed) while it is parked leaves the queue at once, so work that
  // appears later is not leased to a caller who will never see it.
  class AcquireReactor;
  struct Parked {
    AcquireReactor* reactor;
    grpc::CallbackServerContext* ctx;
    const v1::AcquireShardsRequest* request;
    v1::AcquireShardsResponse* response;
    absl::Time deadline;
    // The coordinator's work epoch when it last answered WAIT.
    uint64_t epoch;
  };
  // Writes `result` into `response`. The outcome replaces an earlier try's;
  // commit decisions, acknowledgements and commands add to what earlier tries
  // of the same long-polled call handed over.
  void FillAcquire(const AcquireResult& result,
                   v1::AcquireShardsResponse* response) const;
  void FinishAfterDurable(grpc::ServerUnaryReactor* reactor, uint64_t seq);
  // The client of `reactor` went away: finish it if it is parked.
  void Unpark(AcquireReactor* reactor);

  JobCoordinator* const coordinator_;
  DurabilityQueue* const durability_;
  const Authorizer* const authorizer_;
  mutable absl::Mutex mu_;
  std::list<Parked> parked_ ABSL_GUARDED_BY(mu_);
};

}  // namespace elasticbatch::aimaster

#endif  // ELASTICBATCH_AIMASTER_SERVICE_AIMASTER_SERVICE_H_
