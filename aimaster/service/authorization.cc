#include "aimaster/service/authorization.h"

#include <string>

#include "absl/strings/str_cat.h"
#include "spdlog/spdlog.h"

namespace elasticbatch::aimaster {
namespace {

// Every refusal up to this many is logged, then one in kLogEvery.
constexpr uint64_t kLogFirst = 20;
constexpr uint64_t kLogEvery = 1000;

}  // namespace

grpc::Status Authorizer::Check(const grpc::ServerContextBase* ctx, auth::Role needed,
                               absl::string_view method) const {
  if (!authenticator_.enabled()) return grpc::Status::OK;
  const auto& metadata = ctx->client_metadata();
  const auto range = metadata.equal_range(auth::kAuthorizationKey);
  auth::Role role = auth::Role::kNone;
  // Exactly one header: two could be read differently by a proxy and by us.
  if (range.first != range.second && std::next(range.first) == range.second) {
    const grpc::string_ref value = range.first->second;
    role = authenticator_.RoleOf(absl::string_view(value.data(), value.size()));
  }
  const bool allowed = role == auth::Role::kAdmin || (role == needed);
  if (allowed) return grpc::Status::OK;
  const uint64_t n = refused_.fetch_add(1, std::memory_order_relaxed) + 1;
  const bool unauthenticated = role == auth::Role::kNone;
  if (n <= kLogFirst || n % kLogEvery == 0) {
    spdlog::warn("refused {} from {}: {} ({} refusals so far)", std::string(method),
                 ctx->peer(),
                 unauthenticated ? "missing or wrong token"
                                 : std::string("a ") + std::string(auth::RoleName(role)) +
                                       " token may not make this call",
                 n);
  }
  if (unauthenticated) {
    return grpc::Status(grpc::StatusCode::UNAUTHENTICATED,
                        "missing or wrong token (send authorization: Bearer <token>)");
  }
  return grpc::Status(grpc::StatusCode::PERMISSION_DENIED,
                      absl::StrCat(method, " needs the admin token"));
}

}  // namespace elasticbatch::aimaster
