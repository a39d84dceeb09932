// SpeculationPolicy: what an idle worker takes when nothing is pending. Either
// a shard prefetched by a busy worker that would not start it for a while
// (handover: no work is lost), or a copy of a straggler's shard (speculation:
// the first commit wins).
//
// The ShardTable tells the policy of every change to a shard's leases; the
// policy keeps an index of what the decisions need: the running leases and,
// per session, its prefetched shards in the order they were leased. A
// decision then costs one estimate per running lease (about one per worker)
// and one candidate per session, instead of a scan and a sort of every
// active shard. Time-left estimates are not indexed: they move with `now` at
// each lease's own pace, so no order fixed in advance would rank them.
//
//   SpeculationPolicy policy;
//   policy.Update(/*shard_id=*/7, /*units=*/100,
//                 {{/*session=*/s, granted_at, /*started_at=*/std::nullopt,
//                   /*units_done=*/0, /*commit_granted=*/false}});
//   std::optional<uint64_t> id = policy.PickStealable(idle, median, median, now);
//
// Not thread-safe: the JobCoordinator serialises all calls under its mutex.
#ifndef ELASTICBATCH_AIMASTER_CORE_SPECULATION_POLICY_H_
#define ELASTICBATCH_AIMASTER_CORE_SPECULATION_POLICY_H_

#include <cstdint>
#include <optional>
#include <utility>

#include "absl/container/btree_set.h"
#include "absl/container/flat_hash_map.h"
#include "absl/container/inlined_vector.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "aimaster/core/ids.h"

namespace elasticbatch::aimaster {

// What the decisions need to know of one current lease of a shard.
struct LeaseState {
  SessionId session = 0;
  absl::Time granted_at;
  // Set once the holder began processing the shard (unset: only prefetched).
  std::optional<absl::Time> started_at;
  uint64_t units_done = 0;
  bool commit_granted = false;
};

class SpeculationPolicy {
 public:
  // Replaces what is known of shard `shard_id` by its current `leases` (empty
  // once it has none or is done). `units` is the shard's size in units.
  void Update(uint64_t shard_id, uint64_t units, absl::Span<const LeaseState> leases);

  // The shard, held by one lease only, with the largest estimated time left,
  // if that exceeds `multiplier` x `median` (the median shard time); never
  // one of `for_session`'s own shards, never one whose commit is granted.
  // Ties go to the smallest shard id.
  std::optional<uint64_t> PickStraggler(SessionId for_session, absl::Duration median,
                                        double multiplier, absl::Time now) const;

  // A shard prefetched (leased, not started) by another session that is still
  // busy for longer than `min_wait` with shards it has started: the one whose
  // holder is busy longest, ties to the smallest shard id.
  std::optional<uint64_t> PickStealable(SessionId for_session, absl::Duration median,
                                        absl::Duration min_wait, absl::Time now) const;

 private:
  // A started lease without a commit grant.
  struct Running {
    SessionId session = 0;
    absl::Time started_at;
    uint64_t units_done = 0;
    // The shard's only lease (a straggler candidate).
    bool sole = false;
  };
  struct RunningShard {
    uint64_t units = 0;
    absl::InlinedVector<Running, 1> leases;
  };
  // A session's prefetched shards that are held by no one else.
  struct Prefetched {
    absl::btree_set<std::pair<absl::Time, uint64_t>> by_grant;  // leasing order
    absl::btree_set<uint64_t> by_id;
  };
  // A session's pace: how long its started shards still need, and the longest
  // of their estimated total times.
  struct Pace {
    absl::Duration busy_for = absl::ZeroDuration();
    absl::Duration shard_time = absl::ZeroDuration();
  };

  void Forget(uint64_t shard_id);
  absl::flat_hash_map<SessionId, Pace> Paces(absl::Duration median, absl::Time now) const;

  absl::flat_hash_map<uint64_t, RunningShard> running_;
  absl::flat_hash_map<SessionId, Prefetched> prefetched_;
  // shard -> (holder, granted_at) for every entry of prefetched_.
  absl::flat_hash_map<uint64_t, std::pair<SessionId, absl::Time>> prefetched_by_shard_;
};

}  // namespace elasticbatch::aimaster

#endif  // ELASTICBATCH_AIMASTER_CORE_SPECULATION_POLICY_H_
