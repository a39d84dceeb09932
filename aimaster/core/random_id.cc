#include "aimaster/core/random_id.h"

#include <fcntl.h>
#include <sys/random.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>

#include "absl/strings/escaping.h"

namespace elasticbatch::aimaster {
namespace {

bool FromDevUrandom(char* p, size_t n) {
  const int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
  if (fd < 0) return false;
  while (n > 0) {
    const ssize_t got = read(fd, p, n);
    if (got < 0 && errno == EINTR) continue;
    if (got <= 0) break;
    p += got;
    n -= static_cast<size_t>(got);
  }
  close(fd);
  return n == 0;
}

void FillRandom(void* buf, size_t n) {
  auto* p = static_cast<char*>(buf);
  while (n > 0) {
    const ssize_t got = getrandom(p, n, 0);
    if (got < 0 && errno == EINTR) continue;
    if (got <= 0) {
      // Kernels before 3.17 lack getrandom. An id that is not random would
      // silently weaken fencing and authentication, so without any source
      // of randomness the process stops.
      if (!FromDevUrandom(p, n)) std::abort();
      return;
    }
    p += got;
    n -= static_cast<size_t>(got);
  }
}

}  // namespace

uint64_t RandomId64() {
  uint64_t v = 0;
  while (v == 0) FillRandom(&v, sizeof(v));
  return v;
}

std::string RandomHex(size_t bytes) {
  std::string raw(bytes, '\0');
  FillRandom(raw.data(), raw.size());
  return absl::BytesToHexString(raw);
}

}  // namespace elasticbatch::aimaster
