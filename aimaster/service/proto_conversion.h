// Conversions between elasticbatch.v1 messages and core types.
#ifndef ELASTICBATCH_AIMASTER_SERVICE_PROTO_CONVERSION_H_
#define ELASTICBATCH_AIMASTER_SERVICE_PROTO_CONVERSION_H_

#include <vector>

#include "absl/time/time.h"
#include "aimaster/core/job_coordinator.h"
#include "elasticbatch/v1/admin.pb.h"
#include "elasticbatch/v1/elasticbatch.pb.h"
#include "google/protobuf/duration.pb.h"
#include "google/protobuf/repeated_field.h"

namespace elasticbatch::aimaster {

inline LeaseRef FromProto(const v1::LeaseRef& l) {
  return LeaseRef{l.shard_id(), l.attempt()};
}

inline void ToProto(const LeaseRef& l, v1::LeaseRef* out) {
  out->set_shard_id(l.shard_id);
  out->set_attempt(l.attempt);
}

inline void ToProto(absl::Duration d, google::protobuf::Duration* out) {
  const int64_t nanos = absl::ToInt64Nanoseconds(d);
  out->set_seconds(nanos / 1'000'000'000);
  out->set_nanos(static_cast<int32_t>(nanos % 1'000'000'000));
}

inline absl::Duration FromProto(const google::protobuf::Duration& d) {
  return absl::Seconds(d.seconds()) + absl::Nanoseconds(d.nanos());
}

inline std::vector<LeaseRef> FromProto(
    const google::protobuf::RepeatedPtrField<v1::LeaseRef>& leases) {
  std::vector<LeaseRef> out;
  out.reserve(static_cast<size_t>(leases.size()));
  for (const v1::LeaseRef& l : leases) out.push_back(FromProto(l));
  return out;
}

inline std::vector<ProgressReport> FromProto(
    const google::protobuf::RepeatedPtrField<v1::ShardProgress>& progress) {
  std::vector<ProgressReport> out;
  out.reserve(static_cast<size_t>(progress.size()));
  for (const v1::ShardProgress& p : progress) {
    out.push_back({FromProto(p.lease()), p.records_done(), p.units_done(), p.started()});
  }
  return out;
}

inline std::vector<CommitRequest> FromProto(
    const google::protobuf::RepeatedPtrField<v1::ShardCompletion>& commits) {
  std::vector<CommitRequest> out;
  out.reserve(static_cast<size_t>(commits.size()));
  for (const v1::ShardCompletion& c : commits) {
    out.push_back({FromProto(c.lease()), c.records()});
  }
  return out;
}

inline v1::ShardUnit ToProto(ShardUnit unit) {
  return unit == ShardUnit::kBytes ? v1::SHARD_UNIT_BYTES : v1::SHARD_UNIT_RECORDS;
}

inline void ToProto(const ShardDescriptor& d, const std::string& channel,
                    v1::Shard* out) {
  out->set_shard_id(d.id);
  out->set_channel(channel);
  out->set_source(*d.source);
  out->set_begin(d.begin);
  out->set_end(d.end);
  out->set_unit(ToProto(d.unit));
}

inline void ToProto(const CommitResult& r, v1::CommitResult* out) {
  ToProto(r.lease, out->mutable_lease());
  switch (r.decision) {
    case CommitDecision::kGranted:
      out->set_decision(v1::CommitResult::GRANTED);
      break;
    case CommitDecision::kAlreadyCommitted:
      out->set_decision(v1::CommitResult::ALREADY_COMMITTED);
      break;
    case CommitDecision::kLeaseLost:
      out->set_decision(v1::CommitResult::LEASE_LOST);
      break;
  }
  out->set_reason(r.reason);
}

inline void ToProto(const WorkerCommand& c, v1::WorkerCommand* out) {
  const bool cancel = c.kind == WorkerCommand::Kind::kCancelShard;
  out->set_kind(cancel ? v1::WorkerCommand::CANCEL_SHARD : v1::WorkerCommand::STOP);
  if (cancel) ToProto(c.lease, out->mutable_lease());
  out->set_reason(c.reason);
  out->set_job_finished(c.job_finished);
}

}  // namespace elasticbatch::aimaster

#endif  // ELASTICBATCH_AIMASTER_SERVICE_PROTO_CONVERSION_H_
