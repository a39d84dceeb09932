// Job tokens: the shared secrets that authenticate workers and operators to
// the master. Every RPC carries one as gRPC metadata
// `authorization: Bearer <token>` (the ecosystem's convention).
//
//   absl::StatusOr<std::string> token = ReadTokenFile("/var/run/secrets/eb/token");
//   Authenticator auth(*token, /*admin_token=*/"");
//   Role role = auth.RoleOf(BearerHeader(*token));   // Role::kWorker
//
// Thread-safe: everything here is immutable after construction.
#ifndef ELASTICBATCH_COMMON_AUTH_TOKEN_H_
#define ELASTICBATCH_COMMON_AUTH_TOKEN_H_

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace elasticbatch::auth {

// The metadata key (gRPC keys are lower case).
inline constexpr char kAuthorizationKey[] = "authorization";
// Shortest token accepted from a file: 32 characters (a generated one has 64
// hex digits, 256 random bits).
inline constexpr size_t kMinTokenChars = 32;
// Longest token accepted: far above any real one, small enough to keep a
// hostile header cheap to compare.
inline constexpr size_t kMaxTokenChars = 1024;

// A fresh token: 256 bits from the kernel's CSPRNG as 64 lowercase hex digits.
std::string GenerateToken();

// Reads a token from `path` (symlinks are followed: Kubernetes mounts Secrets
// through them). Surrounding whitespace, such as the newline `echo` adds, is
// dropped. INVALID_ARGUMENT (naming the file) when the token is shorter than
// kMinTokenChars, longer than kMaxTokenChars or holds a character that is not
// printable ASCII; NOT_FOUND / PERMISSION_DENIED / FAILED_PRECONDITION when
// the file cannot be read or is not a regular file.
absl::StatusOr<std::string> ReadTokenFile(const std::string& path);

// Writes `token` and a newline to `path`, readable and writable by the owner
// only (0600, also when the file existed with wider permissions). Refuses a
// symlink or a non-regular file at `path`. The error names the file.
absl::Status WriteTokenFile(const std::string& path, absl::string_view token);

// Checks a token given directly (an environment variable), as ReadTokenFile
// checks a file's. `source` names where it came from in the error.
absl::Status ValidateToken(absl::string_view token, absl::string_view source);

// "Bearer <token>": the metadata value a client sends.
std::string BearerHeader(absl::string_view token);

// True when `presented` equals `expected`. Takes the same time whatever
// `presented` holds (it depends only on expected.size()), so a caller cannot
// find the token a byte at a time by timing refusals.
bool TokensEqual(absl::string_view presented, absl::string_view expected);

// What a caller may do.
enum class Role {
  kNone,    // no or a wrong token: nothing
  kWorker,  // the worker service, and reading the job's status
  kAdmin,   // everything
};

absl::string_view RoleName(Role role);

// Maps an `authorization` metadata value to a Role.
class Authenticator {
 public:
  // No tokens at all: authentication is off and every caller is kAdmin
  // (`aimaster serve --insecure`, or a loopback-only master). With a worker
  // token only, that token is also the admin token. An admin token alone is
  // refused by the caller's configuration check, not here.
  Authenticator(std::string worker_token, std::string admin_token);

  bool enabled() const { return !worker_token_.empty() || !admin_token_.empty(); }

  // The role of a caller that sent `authorization` (empty when absent).
  // Accepts "Bearer <token>" with the scheme in any case, as RFC 6750 allows.
  Role RoleOf(absl::string_view authorization) const;

 private:
  std::string worker_token_;
  std::string admin_token_;
};

}  // namespace elasticbatch::auth

#endif  // ELASTICBATCH_COMMON_AUTH_TOKEN_H_
