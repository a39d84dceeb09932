#include "worker_sdk/src/master_client.h"

#include <grpcpp/channel.h>
#include <grpcpp/client_context.h>
#include <grpcpp/create_channel.h>

#include "absl/strings/cord.h"
#include "elasticbatch/v1/elasticbatch.grpc.pb.h"

namespace elasticbatch::internal {
namespace {

class GrpcMasterClient final : public MasterClient {
 public:
  GrpcMasterClient(std::shared_ptr<grpc::Channel> channel, std::string address,
                   rpc::ClientSecurity security)
      : stub_(v1::AIMaster::NewStub(channel)),
        address_(std::move(address)),
        security_(std::move(security)) {}

  absl::Status RegisterWorker(const v1::RegisterWorkerRequest& request,
                              v1::RegisterWorkerResponse* response,
                              absl::Duration timeout) override {
    grpc::ClientContext ctx;
    Prepare(&ctx, timeout);
    return ToAbsl(stub_->RegisterWorker(&ctx, request, response));
  }
  absl::Status AcquireShards(const v1::AcquireShardsRequest& request,
                             v1::AcquireShardsResponse* response,
                             absl::Duration timeout) override {
    grpc::ClientContext ctx;
    Prepare(&ctx, timeout);
    return ToAbsl(stub_->AcquireShards(&ctx, request, response));
  }
  absl::Status Heartbeat(const v1::HeartbeatRequest& request,
                         v1::HeartbeatResponse* response,
                         absl::Duration timeout) override {
    grpc::ClientContext ctx;
    Prepare(&ctx, timeout);
    return ToAbsl(stub_->Heartbeat(&ctx, request, response));
  }
  absl::Status CommitShard(const v1::CommitShardRequest& request,
                           v1::CommitShardResponse* response,
                           absl::Duration timeout) override {
    grpc::ClientContext ctx;
    Prepare(&ctx, timeout);
    return ToAbsl(stub_->CommitShard(&ctx, request, response));
  }
  absl::Status FailShard(const v1::FailShardRequest& request,
                         v1::FailShardResponse* response,
                         absl::Duration timeout) override {
    grpc::ClientContext ctx;
    Prepare(&ctx, timeout);
    return ToAbsl(stub_->FailShard(&ctx, request, response));
  }

 private:
  // The transport's deadline is wall time, whatever clock the worker runs on.
  void Prepare(grpc::ClientContext* ctx, absl::Duration timeout) const {
    ctx->set_deadline(absl::ToChronoTime(absl::Now() + timeout));
    rpc::AttachToken(security_, ctx);
  }

  // The one place the SDK turns a grpc::Status into an absl::Status (the
  // codes are the same numbers). A refused token or a failed TLS handshake
  // gets a hint of what to check.
  absl::Status ToAbsl(const grpc::Status& s) const {
    if (s.ok()) return absl::OkStatus();
    const auto code = static_cast<absl::StatusCode>(s.error_code());
    if (rpc::UsesTls(security_) && rpc::IsTlsHandshakeFailure(s)) {
      absl::Status status(code, rpc::DescribeCallError(s, address_, security_));
      status.SetPayload(kTlsHandshakeFailurePayload, absl::Cord("1"));
      return status;
    }
    // A master that closes the connection may be refusing our TLS (or our
    // lack of it), or a proxy in front of it may not be ready yet: retried
    // like any outage, with a hint in case it lasts.
    if (rpc::IsConnectionClosedByMaster(s) ||
        s.error_code() == grpc::StatusCode::UNAUTHENTICATED) {
      return absl::Status(code, rpc::DescribeCallError(s, address_, security_));
    }
    return absl::Status(code, s.error_message());
  }

  std::unique_ptr<v1::AIMaster::Stub> stub_;
  const std::string address_;
  const rpc::ClientSecurity security_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<MasterClient>> NewGrpcMasterClient(
    const std::string& address, const rpc::ClientSecurity& security,
    absl::Duration max_reconnect_backoff) {
  grpc::ChannelArguments args;
  // Reconnect quickly to a restarted master; the worker's own backoff paces
  // retries. GRPC_ARG_MIN_RECONNECT_BACKOFF_MS is left alone: gRPC uses it as
  // the shortest time a connection attempt (TCP connect and TLS handshake) is
  // given, 20s by default. Set low, a master slow to shake hands (loaded by
  // thousands of workers connecting at once, or far away) is never reached:
  // every attempt is cut off before its handshake completes.
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 100);
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS,
              static_cast<int>(absl::ToInt64Milliseconds(max_reconnect_backoff)));
  absl::StatusOr<std::shared_ptr<grpc::Channel>> channel =
      rpc::NewClientChannel(address, security, args);
  if (!channel.ok()) return channel.status();
  return std::unique_ptr<MasterClient>(
      std::make_unique<GrpcMasterClient>(*std::move(channel), address, security));
}

}  // namespace elasticbatch::internal
