// Authorization of one RPC: who the caller is (from its `authorization:
// Bearer <token>` metadata) and whether that role may make this call.
// Refusals are logged with the peer, rate-limited so that a flood of bad
// calls cannot flood the log.
//
//   if (grpc::Status s = authorizer_->Check(ctx, auth::Role::kWorker); !s.ok()) {
//     reactor->Finish(s);   // UNAUTHENTICATED or PERMISSION_DENIED
//     return reactor;
//   }
//
// Thread-safe.
#ifndef ELASTICBATCH_AIMASTER_SERVICE_AUTHORIZATION_H_
#define ELASTICBATCH_AIMASTER_SERVICE_AUTHORIZATION_H_

#include <grpcpp/grpcpp.h>

#include <atomic>
#include <cstdint>

#include "absl/strings/string_view.h"
#include "common/auth/token.h"

namespace elasticbatch::aimaster {

class Authorizer {
 public:
  explicit Authorizer(auth::Authenticator authenticator)
      : authenticator_(std::move(authenticator)) {}

  bool enabled() const { return authenticator_.enabled(); }

  // OK when the caller's role is at least `needed`; UNAUTHENTICATED for a
  // missing, repeated or wrong token; PERMISSION_DENIED for a role below
  // `needed`. A refusal changes nothing: callers check before acting.
  grpc::Status Check(const grpc::ServerContextBase* ctx, auth::Role needed,
                     absl::string_view method) const;

  // Calls refused so far (for logs and tests).
  uint64_t refused() const { return refused_.load(std::memory_order_relaxed); }

 private:
  auth::Authenticator authenticator_;
  mutable std::atomic<uint64_t> refused_{0};
};

}  // namespace elasticbatch::aimaster

#endif  // ELASTICBATCH_AIMASTER_SERVICE_AUTHORIZATION_H_
