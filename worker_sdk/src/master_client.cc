#include "worker_sdk/src/master_client.h"

#include <grpcpp/channel.h>
#include <grpcpp/client_context.h>
#include <grpcpp/create_channel.h>

#include "elasticbatch/v1/elasticbatch.grpc.pb.h"

namespace elasticbatch::internal {
namespace {

// The one place the SDK turns a grpc::Status into an absl::Status (the codes
// are the same numbers).
absl::Status ToAbsl(const grpc::Status& s) {
  return absl::Status(static_cast<absl::StatusCode>(s.error_code()), s.error_message());
}

class GrpcMasterClient final : public MasterClient {
 public:
  explicit GrpcMasterClient(std::shared_ptr<grpc::Channel> channel)
      : stub_(v1::AIMaster::NewStub(channel)) {}

  absl::Status RegisterWorker(const v1::RegisterWorkerRequest& request,
                              v1::RegisterWorkerResponse* response,
                              absl::Duration timeout) override {
    grpc::ClientContext ctx;
    SetDeadline(&ctx, timeout);
    return ToAbsl(stub_->RegisterWorker(&ctx, request, response));
  }
  absl::Status AcquireShards(const v1::AcquireShardsRequest& request,
                             v1::AcquireShardsResponse* response,
                             absl::Duration timeout) override {
    grpc::ClientContext ctx;
    SetDeadline(&ctx, timeout);
    return ToAbsl(stub_->AcquireShards(&ctx, request, response));
  }
  absl::Status Heartbeat(const v1::HeartbeatRequest& request,
                         v1::HeartbeatResponse* response,
                         absl::Duration timeout) override {
    grpc::ClientContext ctx;
    SetDeadline(&ctx, timeout);
    return ToAbsl(stub_->Heartbeat(&ctx, request, response));
  }
  absl::Status CommitShard(const v1::CommitShardRequest& request,
                           v1::CommitShardResponse* response,
                           absl::Duration timeout) override {
    grpc::ClientContext ctx;
    SetDeadline(&ctx, timeout);
    return ToAbsl(stub_->CommitShard(&ctx, request, response));
  }
  absl::Status FailShard(const v1::FailShardRequest& request,
                         v1::FailShardResponse* response,
                         absl::Duration timeout) override {
    grpc::ClientContext ctx;
    SetDeadline(&ctx, timeout);
    return ToAbsl(stub_->FailShard(&ctx, request, response));
  }

 private:
  // The transport's deadline is wall time, whatever clock the worker runs on.
  static void SetDeadline(grpc::ClientContext* ctx, absl::Duration timeout) {
    ctx->set_deadline(absl::ToChronoTime(absl::Now() + timeout));
  }

  std::unique_ptr<v1::AIMaster::Stub> stub_;
};

}  // namespace

std::unique_ptr<MasterClient> NewGrpcMasterClient(const std::string& address,
                                                  absl::Duration max_reconnect_backoff) {
  grpc::ChannelArguments args;
  // Reconnect quickly to a restarted master; the worker's own backoff paces retries.
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 100);
  args.SetInt(GRPC_ARG_MIN_RECONNECT_BACKOFF_MS, 100);
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS,
              static_cast<int>(absl::ToInt64Milliseconds(max_reconnect_backoff)));
  return std::make_unique<GrpcMasterClient>(
      grpc::CreateCustomChannel(address, grpc::InsecureChannelCredentials(), args));
}

}  // namespace elasticbatch::internal
