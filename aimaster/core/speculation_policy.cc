#include "aimaster/core/speculation_policy.h"

#include <algorithm>

namespace elasticbatch::aimaster {
namespace {

// A started lease's time left, from its own progress; without progress yet,
// at least as long as it has run and not shorter than a usual shard.
struct Estimate {
  absl::Duration left;
  absl::Duration total;
};

Estimate EstimateOf(absl::Time started_at, uint64_t units_done, uint64_t units,
                    absl::Duration median, absl::Time now) {
  const absl::Duration elapsed = now - started_at;
  absl::Duration total;
  if (units_done > 0 && units > 0) {
    total = elapsed / std::min(1.0, static_cast<double>(units_done) / units);
  } else {
    total = std::max(elapsed * 2, median);
  }
  return Estimate{std::max(total - elapsed, absl::ZeroDuration()), total};
}

// The best candidate so far: the most time, ties to the smallest shard id;
// nothing with no time at all.
class Best {
 public:
  explicit Best(absl::Duration floor) : value_(floor) {}
  void Consider(uint64_t id, absl::Duration value) {
    if (value > value_ || (value == value_ && id_ && id < *id_)) {
      value_ = value;
      id_ = id;
    }
  }
  const std::optional<uint64_t>& id() const { return id_; }
  absl::Duration value() const { return value_; }

 private:
  absl::Duration value_;
  std::optional<uint64_t> id_;
};

}  // namespace

void SpeculationPolicy::Forget(uint64_t shard_id) {
  running_.erase(shard_id);
  auto it = prefetched_by_shard_.find(shard_id);
  if (it == prefetched_by_shard_.end()) return;
  const auto [session, granted_at] = it->second;
  prefetched_by_shard_.erase(it);
  auto q = prefetched_.find(session);
  q->second.by_grant.erase({granted_at, shard_id});
  q->second.by_id.erase(shard_id);
  if (q->second.by_id.empty()) prefetched_.erase(q);
}

void SpeculationPolicy::Update(uint64_t shard_id, uint64_t units,
                               absl::Span<const LeaseState> leases) {
  Forget(shard_id);
  const bool sole = leases.size() == 1;
  for (const LeaseState& l : leases) {
    if (l.commit_granted) continue;  // it is done but for the publishing
    if (l.started_at) {
      RunningShard& r = running_[shard_id];
      r.units = units;
      r.leases.push_back({l.session, *l.started_at, l.units_done, sole});
    } else if (sole) {
      Prefetched& q = prefetched_[l.session];
      q.by_grant.insert({l.granted_at, shard_id});
      q.by_id.insert(shard_id);
      prefetched_by_shard_[shard_id] = {l.session, l.granted_at};
    }
  }
}

absl::flat_hash_map<SessionId, SpeculationPolicy::Pace> SpeculationPolicy::Paces(
    absl::Duration median, absl::Time now) const {
  absl::flat_hash_map<SessionId, Pace> pace;
  for (const auto& [id, shard] : running_) {
    for (const Running& l : shard.leases) {
      const Estimate e = EstimateOf(l.started_at, l.units_done, shard.units, median, now);
      Pace& p = pace[l.session];
      p.busy_for = std::max(p.busy_for, e.left);
      p.shard_time = std::max(p.shard_time, e.total);
    }
  }
  return pace;
}

std::optional<uint64_t> SpeculationPolicy::PickStraggler(SessionId for_session,
                                                         absl::Duration median,
                                                         double multiplier,
                                                         absl::Time now) const {
  const absl::flat_hash_map<SessionId, Pace> pace = Paces(median, now);
  Best best(absl::ZeroDuration());
  for (const auto& [id, shard] : running_) {
    const Running& l = shard.leases[0];
    if (!l.sole || l.session == for_session) continue;
    best.Consider(id,
                  EstimateOf(l.started_at, l.units_done, shard.units, median, now).left);
  }
  // Prefetched shards wait for their worker's running work, then take a shard
  // time each, in the order they were leased: the k-th is done after
  // busy_for + k x shard_time, so a session's last one is its candidate (its
  // smallest id when a shard takes no time, all of them tying).
  for (const auto& [session, queue] : prefetched_) {
    if (session == for_session) continue;
    auto it = pace.find(session);
    const absl::Duration busy_for =
        it == pace.end() ? absl::ZeroDuration() : it->second.busy_for;
    const absl::Duration shard_time =
        it == pace.end() || it->second.shard_time == absl::ZeroDuration()
            ? median
            : it->second.shard_time;
    const int64_t queued = static_cast<int64_t>(queue.by_grant.size());
    if (shard_time > absl::ZeroDuration()) {
      best.Consider(queue.by_grant.rbegin()->second, busy_for + shard_time * queued);
    } else if (shard_time == absl::ZeroDuration()) {
      best.Consider(*queue.by_id.begin(), busy_for);
    } else {  // a clock stepped back: the first one waits longest
      best.Consider(queue.by_grant.begin()->second, busy_for + shard_time);
    }
  }
  if (!best.id() || best.value() <= median * multiplier) return std::nullopt;
  return best.id();
}

std::optional<uint64_t> SpeculationPolicy::PickStealable(SessionId for_session,
                                                         absl::Duration median,
                                                         absl::Duration min_wait,
                                                         absl::Time now) const {
  const absl::flat_hash_map<SessionId, Pace> pace = Paces(median, now);
  Best best(min_wait);
  for (const auto& [session, queue] : prefetched_) {
    if (session == for_session) continue;
    auto it = pace.find(session);
    if (it == pace.end()) continue;  // its holder is idle: it will start it now
    // Every prefetched shard of the session waits as long: the smallest id wins.
    best.Consider(*queue.by_id.begin(), it->second.busy_for);
  }
  return best.id();
}

}  // namespace elasticbatch::aimaster
