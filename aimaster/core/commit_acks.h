// CommitAcks: when a worker may hear that a shard it published is committed.
// Its confirmation is acknowledged only once the journal record of the
// shard's commit is durable, so calls never wait for the disk: a later answer
// carries the acknowledgement.
//
//   CommitAcks acks;
//   acks.Journalled(/*shard_id=*/7, /*seq=*/42);
//   acks.Await(session, lease, 42);
//   std::vector<LeaseRef> now_durable = acks.Take(session, journal->durable_seq());
//
// Not thread-safe: the JobCoordinator serialises all calls under its mutex.
#ifndef ELASTICBATCH_AIMASTER_CORE_COMMIT_ACKS_H_
#define ELASTICBATCH_AIMASTER_CORE_COMMIT_ACKS_H_

#include <cstdint>
#include <deque>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "aimaster/core/ids.h"

namespace elasticbatch::aimaster {

class CommitAcks {
 public:
  // The commit of `shard_id` was appended to the journal as record `seq`.
  void Journalled(uint64_t shard_id, uint64_t seq);
  // Forgets commits durable by `durable`.
  void Prune(uint64_t durable);
  // The record of `shard_id`'s commit if it may not be durable yet (as of the
  // last Prune), else 0: a re-sent confirmation waits for the same record.
  uint64_t UndurableSeq(uint64_t shard_id) const;

  // `session` confirmed `lease`; acknowledge it once record `seq` is durable
  // (0: at once).
  void Await(SessionId session, LeaseRef lease, uint64_t seq);
  // The confirmations of `session` durable by `durable`, now acknowledged.
  std::vector<LeaseRef> Take(SessionId session, uint64_t durable);
  bool Awaiting(SessionId session) const;
  // Drops what `session` still awaits (the session is forgotten).
  void Forget(SessionId session) { awaiting_.erase(session); }

 private:
  // Commits journalled but maybe not durable: (sequence, shard) in order, and
  // shard -> sequence.
  std::deque<std::pair<uint64_t, uint64_t>> undurable_;
  absl::flat_hash_map<uint64_t, uint64_t> undurable_seq_;
  absl::flat_hash_map<SessionId, absl::flat_hash_map<LeaseRef, uint64_t>> awaiting_;
};

}  // namespace elasticbatch::aimaster

#endif  // ELASTICBATCH_AIMASTER_CORE_COMMIT_ACKS_H_
