#include "elasticbatch/shard.h"

#include "absl/strings/str_cat.h"
#include "elasticbatch/line_range_reader.h"
#include "elasticbatch/shard_output.h"
#include "worker_sdk/src/worker_core.h"

namespace elasticbatch {

Shard::Shard(std::shared_ptr<internal::WorkerCore> core,
             std::shared_ptr<internal::ShardState> state)
    : core_(std::move(core)), state_(std::move(state)) {}

Shard::Shard(Shard&&) noexcept = default;
Shard& Shard::operator=(Shard&& other) noexcept {
  if (this != &other) {
    if (core_ && state_) core_->Abandon(state_);
    core_ = std::move(other.core_);
    state_ = std::move(other.state_);
  }
  return *this;
}

Shard::~Shard() {
  if (core_ && state_) core_->Abandon(state_);
}

uint64_t Shard::id() const { return state_->shard.shard_id(); }
uint32_t Shard::attempt() const { return state_->shard.attempt(); }
const std::string& Shard::channel() const { return state_->shard.channel(); }
const std::string& Shard::source() const { return state_->shard.source(); }
const std::string& Shard::input_path() const { return state_->input_path; }
uint64_t Shard::begin() const { return state_->shard.begin(); }
uint64_t Shard::end() const { return state_->shard.end(); }
ShardUnit Shard::unit() const { return state_->unit; }
const std::string& Shard::output_name() const { return state_->shard.output_name(); }
bool Shard::speculative() const { return state_->shard.speculative(); }

namespace {

void Report(internal::ShardState& state, uint64_t records, uint64_t units_done) {
  state.records = records;
  if (units_done > 0) state.units = units_done;
}

}  // namespace

void Shard::ReportProgress(uint64_t records, uint64_t units_done) {
  Report(*state_, records, units_done);
}

absl::StatusOr<std::unique_ptr<LineRangeReader>> Shard::OpenLines() {
  if (unit() != ShardUnit::kBytes) {
    return absl::FailedPreconditionError(absl::StrCat(
        "shard ", id(), " is a range of record indexes, not of lines: use RecordRange"));
  }
  LineRangeReader::Options options;
  // The state, not `this`: a Shard moves (it lives in a StatusOr, an optional).
  options.on_record = [state = state_](uint64_t records, uint64_t units_done) {
    Report(*state, records, units_done);
    return !state->cancelled.load();
  };
  return LineRangeReader::Open(input_path(), begin(), end(), std::move(options));
}

absl::StatusOr<std::unique_ptr<ShardOutput>> Shard::OpenOutput() {
  return ShardOutput::Open(*this, core_->output_dir());
}

uint64_t Shard::records() const { return state_->records.load(); }
bool Shard::cancelled() const { return state_->cancelled.load(); }

absl::Status Shard::Commit() {
  return core_->Commit(state_, [] { return absl::OkStatus(); });
}

absl::Status Shard::CommitWith(const std::function<absl::Status()>& publish) {
  return core_->Commit(state_, publish);
}

absl::Status Shard::Fail(const absl::Status& error) { return core_->Fail(state_, error); }

}  // namespace elasticbatch
