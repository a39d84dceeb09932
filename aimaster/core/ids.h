// Names shared by the core's parts: a worker session and a lease of a shard.
//
//   LeaseRef lease{/*shard_id=*/7, /*attempt=*/2};
//   absl::flat_hash_set<LeaseRef> seen = {lease};
#ifndef ELASTICBATCH_AIMASTER_CORE_IDS_H_
#define ELASTICBATCH_AIMASTER_CORE_IDS_H_

#include <cstdint>
#include <utility>

namespace elasticbatch::aimaster {

// One registration of a worker process: random, never reused by a restarted
// master.
using SessionId = uint64_t;

// One lease of a shard: the attempt number is the fencing token.
struct LeaseRef {
  uint64_t shard_id = 0;
  uint32_t attempt = 0;
  friend bool operator==(const LeaseRef& a, const LeaseRef& b) {
    return a.shard_id == b.shard_id && a.attempt == b.attempt;
  }
  template <typename H>
  friend H AbslHashValue(H h, const LeaseRef& l) {
    return H::combine(std::move(h), l.shard_id, l.attempt);
  }
};

}  // namespace elasticbatch::aimaster

#endif  // ELASTICBATCH_AIMASTER_CORE_IDS_H_
