#include "common/auth/token.h"

#include <fcntl.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"

namespace elasticbatch::auth {
namespace {

// A token file is a few dozen bytes; anything bigger is not one.
constexpr size_t kMaxTokenFileBytes = 16 * 1024;

void FillRandom(char* p, size_t n) {
  while (n > 0) {
    const ssize_t got = getrandom(p, n, 0);
    if (got < 0 && errno == EINTR) continue;
    // A token that is not random would be no secret: stop rather than
    // hand one out.
    if (got <= 0) std::abort();
    p += got;
    n -= static_cast<size_t>(got);
  }
}

absl::Status FileError(const std::string& path, int error) {
  const std::string message =
      absl::StrCat("cannot read token file ", path, ": ", std::strerror(error));
  if (error == ENOENT) return absl::NotFoundError(message);
  if (error == EACCES || error == EPERM) return absl::PermissionDeniedError(message);
  return absl::FailedPreconditionError(message);
}

}  // namespace

absl::Status WriteTokenFile(const std::string& path, absl::string_view token) {
  const auto fail = [&](int error) {
    return absl::FailedPreconditionError(
        absl::StrCat("cannot write token file ", path, ": ", std::strerror(error)));
  };
  // O_NONBLOCK: a FIFO planted at `path` must not block us (fstat refuses it).
  const int fd =
      open(path.c_str(), O_WRONLY | O_CREAT | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC, 0600);
  if (fd < 0 && errno == ELOOP) {
    return absl::FailedPreconditionError(
        absl::StrCat("cannot write token file ", path,
                     ": it is a symbolic link; refusing to follow it"));
  }
  if (fd < 0) return fail(errno);
  struct stat st = {};
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    close(fd);
    return absl::FailedPreconditionError(
        absl::StrCat("cannot write token file ", path, ": not a regular file"));
  }
  // Permissions first, contents after: the token is never readable by others,
  // not even for a moment in a file that existed with wider permissions.
  if (fchmod(fd, 0600) != 0 || ftruncate(fd, 0) != 0) {
    const int error = errno;
    close(fd);
    return fail(error);
  }
  const std::string line = absl::StrCat(token, "\n");
  size_t done = 0;
  while (done < line.size()) {
    const ssize_t n = write(fd, line.data() + done, line.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      const int error = errno;
      close(fd);
      return fail(error);
    }
    done += static_cast<size_t>(n);
  }
  if (close(fd) != 0) return fail(errno);
  return absl::OkStatus();
}

std::string GenerateToken() {
  std::string raw(32, '\0');
  FillRandom(raw.data(), raw.size());
  return absl::BytesToHexString(raw);
}

absl::Status ValidateToken(absl::string_view token, absl::string_view source) {
  if (token.size() < kMinTokenChars) {
    return absl::InvalidArgumentError(absl::StrCat(
        "the token in ", source, " has ", token.size(), " characters; at least ",
        kMinTokenChars, " are needed (make one with `openssl rand -hex 32`)"));
  }
  if (token.size() > kMaxTokenChars) {
    return absl::InvalidArgumentError(absl::StrCat(
        "the token in ", source, " is longer than ", kMaxTokenChars, " characters"));
  }
  for (char c : token) {
    // Printable ASCII without space: what an HTTP/2 header value carries
    // unchanged after "Bearer ".
    if (c <= ' ' || c > '~') {
      return absl::InvalidArgumentError(
          absl::StrCat("the token in ", source,
                       " holds a character that is not printable ASCII (or a space)"));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> ReadTokenFile(const std::string& path) {
  const int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
  if (fd < 0) return FileError(path, errno);
  struct stat st;
  if (fstat(fd, &st) != 0) {
    const int error = errno;
    close(fd);
    return FileError(path, error);
  }
  if (!S_ISREG(st.st_mode)) {
    close(fd);
    return absl::FailedPreconditionError(
        absl::StrCat("token file ", path, " is not a regular file"));
  }
  std::string content;
  char buf[4096];
  while (true) {
    const ssize_t got = read(fd, buf, sizeof(buf));
    if (got < 0 && errno == EINTR) continue;
    if (got < 0) {
      const int error = errno;
      close(fd);
      return FileError(path, error);
    }
    if (got == 0) break;
    content.append(buf, static_cast<size_t>(got));
    if (content.size() > kMaxTokenFileBytes) {
      close(fd);
      return absl::InvalidArgumentError(absl::StrCat(
          "token file ", path, " is larger than ", kMaxTokenFileBytes, " bytes"));
    }
  }
  close(fd);
  const absl::string_view token = absl::StripAsciiWhitespace(content);
  if (absl::Status s = ValidateToken(token, absl::StrCat("token file ", path)); !s.ok()) {
    return s;
  }
  return std::string(token);
}

std::string BearerHeader(absl::string_view token) {
  return absl::StrCat("Bearer ", token);
}

bool TokensEqual(absl::string_view presented, absl::string_view expected) {
  // Every byte of `expected` is compared whatever `presented` holds; no
  // early exit, no branch on a secret byte.
  unsigned char diff = presented.size() == expected.size() ? 0 : 1;
  for (size_t i = 0; i < expected.size(); ++i) {
    const unsigned char p =
        i < presented.size() ? static_cast<unsigned char>(presented[i]) : 0;
    diff |= static_cast<unsigned char>(p ^ static_cast<unsigned char>(expected[i]));
  }
  // Keeps the compiler from turning the loop into an early-exit compare.
  volatile unsigned char result = diff;
  return result == 0;
}

absl::string_view RoleName(Role role) {
  switch (role) {
    case Role::kWorker:
      return "worker";
    case Role::kAdmin:
      return "admin";
    case Role::kNone:
      break;
  }
  return "none";
}

Authenticator::Authenticator(std::string worker_token, std::string admin_token)
    : worker_token_(std::move(worker_token)), admin_token_(std::move(admin_token)) {
  if (admin_token_.empty()) admin_token_ = worker_token_;
}

Role Authenticator::RoleOf(absl::string_view authorization) const {
  if (!enabled()) return Role::kAdmin;
  absl::string_view value = absl::StripAsciiWhitespace(authorization);
  constexpr absl::string_view kScheme = "bearer ";
  if (value.size() <= kScheme.size() ||
      !absl::EqualsIgnoreCase(value.substr(0, kScheme.size()), kScheme)) {
    return Role::kNone;
  }
  value = absl::StripLeadingAsciiWhitespace(value.substr(kScheme.size()));
  if (value.size() > kMaxTokenChars) return Role::kNone;
  // Both compared, always, so the time does not tell which one matched.
  const bool admin = TokensEqual(value, admin_token_);
  const bool worker = !worker_token_.empty() && TokensEqual(value, worker_token_);
  if (admin) return Role::kAdmin;
  if (worker) return Role::kWorker;
  return Role::kNone;
}

}  // namespace elasticbatch::auth
