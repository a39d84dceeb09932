// KeyedRateLimiter: a token bucket per key (a peer's host, say) on an
// injected clock. Each key may take `rate` tokens per second on average and
// `burst` at once. Memory is bounded: at most `max_keys` buckets are kept; a
// full bucket is forgotten first (it is as good as a new one), then the one
// idle longest.
//
//   KeyedRateLimiter limiter(&clock, {/*rate=*/5, /*burst=*/50, /*max_keys=*/10000});
//   if (!limiter.TryTake("10.0.0.7")) return absl::ResourceExhaustedError(...);
//
// Thread-compatible: the caller serialises calls (the coordinator holds its
// mutex).
#ifndef ELASTICBATCH_AIMASTER_CORE_RATE_LIMITER_H_
#define ELASTICBATCH_AIMASTER_CORE_RATE_LIMITER_H_

#include <cstddef>
#include <cstdint>
#include <string>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "aimaster/core/clock.h"

namespace elasticbatch::aimaster {

class KeyedRateLimiter {
 public:
  struct Options {
    // Tokens per second per key; 0 or less: unlimited. Default: 5.
    double rate = 5;
    // Tokens a key may take at once (bucket size, at least 1). Default: 50.
    uint32_t burst = 50;
    // Buckets kept at most (at least 1). Default: 10000.
    size_t max_keys = 10000;
  };

  // `clock` must outlive the limiter.
  KeyedRateLimiter(const Clock* clock, Options options);

  // Takes a token of `key` if it has one. False: over its rate, refuse.
  bool TryTake(absl::string_view key);
  // When `key` has its next token (now if it has one).
  absl::Duration TimeToNextToken(absl::string_view key) const;
  size_t tracked_keys() const { return buckets_.size(); }

 private:
  struct Bucket {
    double tokens = 0;
    absl::Time refilled;
  };
  double TokensAt(const Bucket& b, absl::Time now) const;
  // Makes room for one more bucket.
  void Evict(absl::Time now);

  const Clock* const clock_;
  const Options options_;
  absl::flat_hash_map<std::string, Bucket> buckets_;
};

}  // namespace elasticbatch::aimaster

#endif  // ELASTICBATCH_AIMASTER_CORE_RATE_LIMITER_H_
