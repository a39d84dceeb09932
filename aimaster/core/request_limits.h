// RequestLimits: the bounds the master puts on what a worker may send, keep
// and be answered, so that no request (hostile or buggy) can grow the
// master's memory or journal without bound, or make it lease everything.
// Each limit is a flag of `aimaster serve` and `run`; a request over one is
// refused with INVALID_ARGUMENT (malformed) or RESOURCE_EXHAUSTED (too many,
// retry later) and changes nothing.
//
//   RequestLimits limits;
//   limits.max_shards_per_call = 32;
//   CoordinatorOptions options;
//   options.limits = limits;
//
// Plain data; CapText is thread-safe.
#ifndef ELASTICBATCH_AIMASTER_CORE_REQUEST_LIMITS_H_
#define ELASTICBATCH_AIMASTER_CORE_REQUEST_LIMITS_H_

#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace elasticbatch::aimaster {

struct RequestLimits {
  // Largest request message the server accepts (gRPC's receive limit; larger
  // ones fail with RESOURCE_EXHAUSTED before any handler runs). Default: 4MiB.
  size_t max_message_bytes = 4 << 20;
  // An AcquireShards call's max_shards is lowered to this. Default: 64.
  uint32_t max_shards_per_call = 64;
  // An AcquireShards answer stops adding shards once their encoded size
  // would pass this (it always carries at least one). Default: 1MiB.
  size_t max_answer_bytes = 1 << 20;
  // Leases one session may hold at once; lists of leases in its requests
  // (progress, commits, held leases) may not be longer, confirmations not
  // longer than twice this. Default: 1024.
  uint32_t max_leases_per_session = 1024;
  // Error texts (FailShard) and reasons (StopJob) are cut to this many bytes
  // before they are kept or journalled. Default: 16KiB.
  size_t max_error_bytes = 16 << 10;
  // Sessions the master remembers (live, and ended ones not yet forgotten);
  // a registration past it is RESOURCE_EXHAUSTED. Default: 10000.
  uint32_t max_sessions = 10000;
  // Sessions remembered for one task index. Default: 16.
  uint32_t max_sessions_per_index = 16;
  // An ended session (superseded, failed) is forgotten this long after it
  // ended, a live one silent this long and holding no lease too (its worker
  // hears NOT_FOUND and registers again). Default: 10min.
  absl::Duration session_retention = absl::Minutes(10);
  // Registrations per second one peer (host) may make on average, and in a
  // burst (a node's worth of workers starting at once); 0 turns the limit
  // off. Default: 10/s, bursts of 256.
  double registrations_per_second = 10;
  uint32_t registration_burst = 256;
  // Peers whose registration rate is tracked at once; beyond it the idlest
  // are forgotten first. Default: 10000.
  size_t max_tracked_peers = 10000;
};

// Host names are DNS names: at most this long.
inline constexpr size_t kMaxHostBytes = 255;

// `text` if it fits in `max_bytes`, else its last `max_bytes` bytes after a
// note of how many were cut (the tail of an error is what explains it).
std::string CapText(absl::string_view text, size_t max_bytes);

// INVALID_ARGUMENT when a request's lists of leases are longer than a
// session can hold: `leases` (progress, commits, held leases) each at most
// max_leases_per_session, `published` at most twice that (confirmations of
// leases already given back wait for their acknowledgement).
absl::Status CheckLeaseLists(const RequestLimits& limits,
                             std::initializer_list<size_t> leases, size_t published);

}  // namespace elasticbatch::aimaster

#endif  // ELASTICBATCH_AIMASTER_CORE_REQUEST_LIMITS_H_
