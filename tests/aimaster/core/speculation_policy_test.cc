// SpeculationPolicy: its incremental picks equal a full scan of every active
// shard (the way the ShardTable decided before the policy kept an index),
// over random lease histories on a fake clock.
#include "aimaster/core/speculation_policy.h"

#include <algorithm>
#include <cstdint>
#include <limits>
#include <map>
#include <optional>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "aimaster/core/shard_enumerator.h"
#include "aimaster/core/shard_table.h"
#include "gtest/gtest.h"

namespace elasticbatch::aimaster {
namespace {

// One current lease, as the table's snapshot shows it.
struct RefLease {
  SessionId session = 0;
  absl::Time granted_at;
  std::optional<absl::Time> started_at;
  uint64_t units_done = 0;
  bool commit_granted = false;
};
using Active = std::map<uint64_t, std::vector<RefLease>>;

Active ActiveLeases(const ShardTable& table, absl::Time now) {
  bool truncated = false;
  Active out;
  for (const ShardSnapshot& s :
       table.Snapshot(false, std::numeric_limits<size_t>::max(), now, &truncated)) {
    std::vector<RefLease>& leases = out[s.shard.id];
    for (const ShardSnapshot::LeaseView& l : s.leases) {
      std::optional<absl::Time> started;
      if (l.running_for) started = now - *l.running_for;
      leases.push_back({l.session, now - l.age, started, l.units_done, l.commit_granted});
    }
  }
  return out;
}

// The reference: a scan and a sort of every active shard.
std::optional<uint64_t> ReferenceStraggler(const Active& active,
                                           const ShardEnumerator& shards,
                                           SessionId for_session, double multiplier,
                                           std::optional<absl::Duration> median,
                                           absl::Time now) {
  if (!median) return std::nullopt;
  struct Estimate {
    absl::Duration left;
    absl::Duration total;
  };
  auto estimate = [&](uint64_t id, const RefLease& l) {
    const absl::Duration elapsed = now - *l.started_at;
    const uint64_t units = shards.ShardUnits(id);
    absl::Duration total;
    if (l.units_done > 0 && units > 0) {
      total = elapsed / std::min(1.0, static_cast<double>(l.units_done) / units);
    } else {
      total = std::max(elapsed * 2, *median);
    }
    return Estimate{std::max(total - elapsed, absl::ZeroDuration()), total};
  };
  struct Pace {
    absl::Duration busy_for = absl::ZeroDuration();
    absl::Duration shard_time = absl::ZeroDuration();
  };
  absl::flat_hash_map<SessionId, Pace> pace;
  for (const auto& [id, leases] : active) {
    for (const RefLease& l : leases) {
      if (!l.started_at || l.commit_granted) continue;
      const Estimate e = estimate(id, l);
      Pace& p = pace[l.session];
      p.busy_for = std::max(p.busy_for, e.left);
      p.shard_time = std::max(p.shard_time, e.total);
    }
  }
  std::optional<uint64_t> best;
  absl::Duration best_left = absl::ZeroDuration();
  auto consider = [&](uint64_t id, absl::Duration left) {
    if (left > best_left || (left == best_left && best && id < *best)) {
      best_left = left;
      best = id;
    }
  };
  std::vector<std::pair<absl::Time, uint64_t>> unstarted;
  for (const auto& [id, leases] : active) {
    if (leases.size() != 1) continue;
    const RefLease& l = leases[0];
    if (l.session == for_session || l.commit_granted) continue;
    if (l.started_at) {
      consider(id, estimate(id, l).left);
    } else {
      unstarted.push_back({l.granted_at, id});
    }
  }
  std::sort(unstarted.begin(), unstarted.end());
  absl::flat_hash_map<SessionId, int> queued_seen;
  for (const auto& [granted, id] : unstarted) {
    const RefLease& l = active.at(id)[0];
    auto it = pace.find(l.session);
    const absl::Duration busy_for =
        it == pace.end() ? absl::ZeroDuration() : it->second.busy_for;
    const absl::Duration shard_time =
        it == pace.end() || it->second.shard_time == absl::ZeroDuration()
            ? *median
            : it->second.shard_time;
    consider(id, busy_for + shard_time * (++queued_seen[l.session]));
  }
  if (!best || best_left <= *median * multiplier) return std::nullopt;
  return best;
}

std::optional<uint64_t> ReferenceStealable(const Active& active,
                                           const ShardEnumerator& shards,
                                           SessionId for_session, absl::Duration min_wait,
                                           std::optional<absl::Duration> median,
                                           absl::Time now) {
  if (!median) return std::nullopt;
  absl::flat_hash_map<SessionId, absl::Duration> busy_for;
  for (const auto& [id, leases] : active) {
    for (const RefLease& l : leases) {
      if (!l.started_at || l.commit_granted) continue;
      const absl::Duration elapsed = now - *l.started_at;
      const uint64_t units = shards.ShardUnits(id);
      absl::Duration total = std::max(elapsed * 2, *median);
      if (l.units_done > 0 && units > 0) {
        total = elapsed / std::min(1.0, static_cast<double>(l.units_done) / units);
      }
      absl::Duration& b = busy_for[l.session];
      b = std::max(b, total - elapsed);
    }
  }
  std::optional<uint64_t> best;
  absl::Duration best_wait = min_wait;
  for (const auto& [id, leases] : active) {
    if (leases.size() != 1) continue;
    const RefLease& l = leases[0];
    if (l.session == for_session || l.started_at || l.commit_granted) continue;
    auto it = busy_for.find(l.session);
    if (it == busy_for.end()) continue;
    if (it->second > best_wait || (it->second == best_wait && best && id < *best)) {
      best_wait = it->second;
      best = id;
    }
  }
  return best;
}

// Random lease histories: every decision the table makes (for every session,
// several multipliers and waits) equals the reference scan's.
TEST(SpeculationPolicyTest, IncrementalPicksEqualAFullScan) {
  constexpr int kSeeds = 60;
  constexpr int kSteps = 400;
  constexpr SessionId kSessions = 5;
  // 7 units per shard, the last shard 3: estimates from progress differ.
  const ShardEnumerator shards = *ShardEnumerator::ForRecords(40 * 7 + 3, 7);
  int picks = 0;
  int stragglers = 0;
  int stealable = 0;
  for (int seed = 0; seed < kSeeds; ++seed) {
    std::mt19937_64 rng(seed);
    auto uniform = [&](uint64_t n) { return n == 0 ? 0 : rng() % n; };
    ShardTable table(&shards, {3});
    absl::Time now = absl::FromUnixSeconds(1'000'000);
    auto random_lease = [&](SessionId s) -> std::optional<LeaseRef> {
      std::vector<LeaseRef> held = table.LeasesOf(s);
      if (held.empty()) return std::nullopt;
      return held[uniform(held.size())];
    };
    for (int step = 0; step < kSteps; ++step) {
      const SessionId s = 1 + uniform(kSessions);
      const std::optional<LeaseRef> lease = random_lease(s);
      switch (uniform(12)) {
        case 0:
          table.Acquire(s, 1 + static_cast<uint32_t>(uniform(3)), now);
          break;
        case 1:
        case 2:
          if (lease) {
            const uint64_t units = uniform(shards.ShardUnits(lease->shard_id) + 2);
            (void)table.RecordProgress(s, *lease, units, units, now);
          }
          break;
        case 3:
          if (lease) (void)table.Renew(s, *lease, now);
          break;
        case 4:
          if (lease) (void)table.RequestCommit(s, *lease, 1, now);
          break;
        case 5:
          if (lease) (void)table.ConfirmPublished(s, *lease, now);
          break;
        case 6:
          if (lease) (void)table.Fail(s, *lease, "boom", now);
          break;
        case 7:
          if (uniform(4) == 0) {
            table.ExpireLeases(now, absl::Seconds(20));
          } else if (uniform(4) == 0) {
            table.ReleaseSession(s, "gone", uniform(2) == 0, now);
          }
          break;
        case 8:
          if (table.LeaseCount(s) == 0 || uniform(3) == 0) {
            if (std::optional<uint64_t> id = table.PickStraggler(s, 1.0, now)) {
              table.LeaseDuplicate(*id, s, now);
            }
          }
          break;
        case 9:
          if (std::optional<absl::Duration> median = table.MedianShardTime()) {
            if (std::optional<uint64_t> id = table.PickStealable(s, *median, now)) {
              RevokedLease revoked;
              table.Steal(*id, s, now, &revoked);
            }
          }
          break;
        case 10:
          (void)table.Reclaim(
              s, {uniform(shards.shard_count()), 1 + static_cast<uint32_t>(uniform(5))},
              uniform(2) == 0, now);
          break;
        default:
          // Coarse steps, so that estimates often tie.
          now += absl::Milliseconds(500) * static_cast<int64_t>(uniform(5));
          break;
      }
      const Active active = ActiveLeases(table, now);
      const std::optional<absl::Duration> median = table.MedianShardTime();
      for (SessionId for_session = 0; for_session <= kSessions + 1; ++for_session) {
        SCOPED_TRACE(
            absl::StrCat("seed ", seed, " step ", step, " for session ", for_session));
        for (double multiplier : {0.0, 0.5, 1.0, 3.0}) {
          const std::optional<uint64_t> got =
              table.PickStraggler(for_session, multiplier, now);
          ASSERT_EQ(got, ReferenceStraggler(active, shards, for_session, multiplier,
                                            median, now));
          ++picks;
          stragglers += got ? 1 : 0;
        }
        for (absl::Duration min_wait : {absl::ZeroDuration(), absl::Seconds(1),
                                        median.value_or(absl::Seconds(2))}) {
          const std::optional<uint64_t> got =
              table.PickStealable(for_session, min_wait, now);
          ASSERT_EQ(got, ReferenceStealable(active, shards, for_session, min_wait, median,
                                            now));
          ++picks;
          stealable += got ? 1 : 0;
        }
      }
      if (table.finished()) break;
    }
  }
  // The histories reach the interesting cases, not only "nothing to take".
  EXPECT_GT(picks, 10'000);
  EXPECT_GT(stragglers, picks / 20);
  EXPECT_GT(stealable, picks / 50);
}

}  // namespace
}  // namespace elasticbatch::aimaster
