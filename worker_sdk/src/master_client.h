// Internal: the worker's calls to the AIMaster, one method per RPC, so that
// WorkerCore holds the protocol's logic and not the transport. The gRPC stub
// sits behind NewGrpcMasterClient(); tests put a hand-written fake master
// behind it. A call returns the master's (or the transport's) status as is;
// `timeout` bounds one call. Implementations are thread-safe.
#ifndef ELASTICBATCH_WORKER_SDK_SRC_MASTER_CLIENT_H_
#define ELASTICBATCH_WORKER_SDK_SRC_MASTER_CLIENT_H_

#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "elasticbatch/v1/elasticbatch.pb.h"

namespace elasticbatch::internal {

class MasterClient {
 public:
  virtual ~MasterClient() = default;
  virtual absl::Status RegisterWorker(const v1::RegisterWorkerRequest& request,
                                      v1::RegisterWorkerResponse* response,
                                      absl::Duration timeout) = 0;
  virtual absl::Status AcquireShards(const v1::AcquireShardsRequest& request,
                                     v1::AcquireShardsResponse* response,
                                     absl::Duration timeout) = 0;
  virtual absl::Status Heartbeat(const v1::HeartbeatRequest& request,
                                 v1::HeartbeatResponse* response,
                                 absl::Duration timeout) = 0;
  virtual absl::Status CommitShard(const v1::CommitShardRequest& request,
                                   v1::CommitShardResponse* response,
                                   absl::Duration timeout) = 0;
  virtual absl::Status FailShard(const v1::FailShardRequest& request,
                                 v1::FailShardResponse* response,
                                 absl::Duration timeout) = 0;
};

// A client on an insecure channel to `address` (host:port) that reconnects to
// a restarted master within `max_reconnect_backoff`.
std::unique_ptr<MasterClient> NewGrpcMasterClient(const std::string& address,
                                                  absl::Duration max_reconnect_backoff);

}  // namespace elasticbatch::internal

#endif  // ELASTICBATCH_WORKER_SDK_SRC_MASTER_CLIENT_H_
