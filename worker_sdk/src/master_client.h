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
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "common/rpc/client_channel.h"
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

// A failed call whose TLS handshake failed carries this payload (any value):
// the worker's first registration gives up at once instead of retrying.
inline constexpr char kTlsHandshakeFailurePayload[] = "elasticbatch.dev/tls-handshake";

// A client on a channel to `address` (host:port), insecure or TLS as
// `security` says, that sends its token with every call and reconnects to a
// restarted master within `max_reconnect_backoff`. INVALID_ARGUMENT when a
// TLS file cannot be read.
absl::StatusOr<std::unique_ptr<MasterClient>> NewGrpcMasterClient(
    const std::string& address, const rpc::ClientSecurity& security,
    absl::Duration max_reconnect_backoff);

}  // namespace elasticbatch::internal

#endif  // ELASTICBATCH_WORKER_SDK_SRC_MASTER_CLIENT_H_
