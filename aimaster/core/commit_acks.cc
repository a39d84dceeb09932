#include "aimaster/core/commit_acks.h"

#include <algorithm>

namespace elasticbatch::aimaster {

void CommitAcks::Journalled(uint64_t shard_id, uint64_t seq) {
  undurable_.push_back({seq, shard_id});
  undurable_seq_[shard_id] = seq;
}

void CommitAcks::Prune(uint64_t durable) {
  while (!undurable_.empty() && undurable_.front().first <= durable) {
    auto it = undurable_seq_.find(undurable_.front().second);
    if (it != undurable_seq_.end() && it->second <= durable) undurable_seq_.erase(it);
    undurable_.pop_front();
  }
}

uint64_t CommitAcks::UndurableSeq(uint64_t shard_id) const {
  auto it = undurable_seq_.find(shard_id);
  return it == undurable_seq_.end() ? 0 : it->second;
}

void CommitAcks::Await(SessionId session, LeaseRef lease, uint64_t seq) {
  uint64_t& waits_for = awaiting_[session][lease];
  waits_for = std::max(waits_for, seq);
}

bool CommitAcks::Awaiting(SessionId session) const {
  auto it = awaiting_.find(session);
  return it != awaiting_.end() && !it->second.empty();
}

std::vector<LeaseRef> CommitAcks::Take(SessionId session, uint64_t durable) {
  std::vector<LeaseRef> acks;
  auto s = awaiting_.find(session);
  if (s == awaiting_.end()) return acks;
  Prune(durable);
  for (auto it = s->second.begin(); it != s->second.end();) {
    if (it->second <= durable) {
      acks.push_back(it->first);
      s->second.erase(it++);
    } else {
      ++it;  // its commit is not on disk yet
    }
  }
  return acks;
}

}  // namespace elasticbatch::aimaster
