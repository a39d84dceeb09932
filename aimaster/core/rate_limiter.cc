#include "aimaster/core/rate_limiter.h"

#include <algorithm>

namespace elasticbatch::aimaster {

KeyedRateLimiter::KeyedRateLimiter(const Clock* clock, Options options)
    : clock_(clock), options_(options) {}

double KeyedRateLimiter::TokensAt(const Bucket& b, absl::Time now) const {
  const double refill = absl::ToDoubleSeconds(now - b.refilled) * options_.rate;
  return std::min(static_cast<double>(std::max<uint32_t>(options_.burst, 1)),
                  b.tokens + std::max(refill, 0.0));
}

void KeyedRateLimiter::Evict(absl::Time now) {
  const double full = static_cast<double>(std::max<uint32_t>(options_.burst, 1));
  auto idlest = buckets_.end();
  for (auto it = buckets_.begin(); it != buckets_.end();) {
    if (TokensAt(it->second, now) >= full) {
      buckets_.erase(it++);
      continue;
    }
    if (idlest == buckets_.end() || it->second.refilled < idlest->second.refilled) {
      idlest = it;
    }
    ++it;
  }
  if (buckets_.size() >= std::max<size_t>(options_.max_keys, 1) &&
      idlest != buckets_.end()) {
    buckets_.erase(idlest);
  }
}

bool KeyedRateLimiter::TryTake(absl::string_view key) {
  if (options_.rate <= 0) return true;
  const absl::Time now = clock_->Now();
  auto it = buckets_.find(key);
  if (it == buckets_.end()) {
    // Eviction scans every bucket, but only when the map is full, and then
    // frees all full buckets at once.
    if (buckets_.size() >= std::max<size_t>(options_.max_keys, 1)) Evict(now);
    it = buckets_
             .emplace(
                 std::string(key),
                 Bucket{static_cast<double>(std::max<uint32_t>(options_.burst, 1)), now})
             .first;
  }
  Bucket& b = it->second;
  b.tokens = TokensAt(b, now);
  b.refilled = now;
  if (b.tokens < 1) return false;
  b.tokens -= 1;
  return true;
}

absl::Duration KeyedRateLimiter::TimeToNextToken(absl::string_view key) const {
  if (options_.rate <= 0) return absl::ZeroDuration();
  auto it = buckets_.find(key);
  if (it == buckets_.end()) return absl::ZeroDuration();
  const double tokens = TokensAt(it->second, clock_->Now());
  if (tokens >= 1) return absl::ZeroDuration();
  return absl::Seconds((1 - tokens) / options_.rate);
}

}  // namespace elasticbatch::aimaster
