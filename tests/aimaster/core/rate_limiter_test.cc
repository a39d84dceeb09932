// KeyedRateLimiter: a token bucket per key on a fake clock.
#include "aimaster/core/rate_limiter.h"

#include "absl/strings/str_cat.h"
#include "aimaster/core/clock.h"
#include "gtest/gtest.h"

namespace elasticbatch::aimaster {
namespace {

TEST(KeyedRateLimiterTest, BurstThenRate) {
  FakeClock clock;
  KeyedRateLimiter limiter(&clock, {/*rate=*/2, /*burst=*/3, /*max_keys=*/10});
  for (int i = 0; i < 3; ++i) EXPECT_TRUE(limiter.TryTake("a")) << i;
  EXPECT_FALSE(limiter.TryTake("a"));
  EXPECT_EQ(limiter.TimeToNextToken("a"), absl::Milliseconds(500));
  // Another key has its own bucket.
  EXPECT_TRUE(limiter.TryTake("b"));
  clock.Advance(absl::Milliseconds(499));
  EXPECT_FALSE(limiter.TryTake("a"));
  clock.Advance(absl::Milliseconds(1));
  EXPECT_TRUE(limiter.TryTake("a"));
  EXPECT_FALSE(limiter.TryTake("a"));
  // A long pause refills no more than the burst.
  clock.Advance(absl::Hours(1));
  for (int i = 0; i < 3; ++i) EXPECT_TRUE(limiter.TryTake("a")) << i;
  EXPECT_FALSE(limiter.TryTake("a"));
}

TEST(KeyedRateLimiterTest, ZeroRateIsUnlimited) {
  FakeClock clock;
  KeyedRateLimiter limiter(&clock, {/*rate=*/0, /*burst=*/1, /*max_keys=*/1});
  for (int i = 0; i < 1000; ++i) ASSERT_TRUE(limiter.TryTake("a"));
  EXPECT_EQ(limiter.tracked_keys(), 0u);
}

TEST(KeyedRateLimiterTest, KeepsAtMostMaxKeys) {
  FakeClock clock;
  KeyedRateLimiter limiter(&clock, {/*rate=*/1, /*burst=*/2, /*max_keys=*/100});
  // A flood of distinct peers, each empty after two calls.
  for (int i = 0; i < 10000; ++i) {
    const std::string key = absl::StrCat("peer-", i);
    EXPECT_TRUE(limiter.TryTake(key));
    EXPECT_TRUE(limiter.TryTake(key));
    EXPECT_FALSE(limiter.TryTake(key));
    ASSERT_LE(limiter.tracked_keys(), 100u);
    clock.Advance(absl::Milliseconds(1));
  }
  // The flood did not spare the latest peer its limit.
  EXPECT_FALSE(limiter.TryTake("peer-9999"));
}

}  // namespace
}  // namespace elasticbatch::aimaster
