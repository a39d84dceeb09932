#include "elasticbatch/worker.h"

#include <cstdlib>

#include "absl/status/status.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/rpc/client_channel.h"
#include "elasticbatch/environment_contract.h"
#include "elasticbatch/task_info.h"
#include "worker_sdk/src/worker_core.h"

namespace elasticbatch {

Worker::Worker(std::shared_ptr<internal::WorkerCore> core) : core_(std::move(core)) {}

Worker::~Worker() {
  if (core_) core_->Stop();
}

absl::StatusOr<std::unique_ptr<Worker>> Worker::Create(const WorkerOptions& options) {
  absl::StatusOr<std::shared_ptr<internal::WorkerCore>> core =
      internal::WorkerCore::Start(options);
  if (!core.ok()) return core.status();
  return std::unique_ptr<Worker>(new Worker(std::move(*core)));
}

absl::StatusOr<std::unique_ptr<Worker>> internal::WorkerFactory::Create(
    const WorkerOptions& options, std::unique_ptr<MasterClient> master,
    std::shared_ptr<const Clock> clock) {
  absl::StatusOr<std::shared_ptr<WorkerCore>> core =
      WorkerCore::Start(options, std::move(master), std::move(clock));
  if (!core.ok()) return core.status();
  return std::unique_ptr<Worker>(new Worker(std::move(*core)));
}

absl::StatusOr<std::unique_ptr<Worker>> Worker::FromEnvironment(
    const WorkerOptions& overrides) {
  WorkerOptions options = overrides;
  absl::StatusOr<TaskInfo> task = TaskInfo::FromEnvironment();
  if (!task.ok()) return task.status();
  if (task->type != "worker") {
    return absl::InvalidArgumentError(absl::StrCat(
        kElasticBatchConfigVar, " says this is the ", task->type, " task, not a worker"));
  }
  options.task_index = task->index;
  if (options.master_address.empty()) {
    const char* addr = std::getenv(kAimasterAddrVar);
    if (addr == nullptr || *addr == '\0') {
      return absl::InvalidArgumentError(
          absl::StrCat(kAimasterAddrVar, " is not set: where is the AIMaster?"));
    }
    options.master_address = addr;
  }
  absl::StatusOr<rpc::ClientSecurity> security = rpc::WorkerSecurityFromEnvironment();
  if (!security.ok()) return security.status();
  if (options.token.empty()) options.token = security->token;
  options.tls = options.tls || security->tls;
  if (options.tls_ca_file.empty()) options.tls_ca_file = security->tls_ca_file;
  if (options.tls_cert_file.empty()) options.tls_cert_file = security->tls_cert_file;
  if (options.tls_key_file.empty()) options.tls_key_file = security->tls_key_file;
  if (options.tls_server_name.empty())
    options.tls_server_name = security->tls_server_name;
  if (const char* attempt = std::getenv(kAttemptVar);
      attempt != nullptr && *attempt != '\0') {
    if (!absl::SimpleAtoi(attempt, &options.attempt)) {
      return absl::InvalidArgumentError(
          absl::StrCat(kAttemptVar, "=", attempt, " is not a non-negative integer"));
    }
  }
  return Create(options);
}

absl::StatusOr<std::optional<Shard>> Worker::NextShard() { return core_->NextShard(); }

ShardRange::Iterator ShardRange::begin() {
  if (!started_) {
    started_ = true;
    Advance();
  }
  return Iterator(this);
}

void ShardRange::Advance() {
  // Release the previous shard before waiting: an unfinished one goes back to
  // the master now rather than when the next one arrives.
  current_ = absl::UnknownError("no shard");
  if (failed_) {
    done_ = true;
    return;
  }
  absl::StatusOr<std::optional<Shard>> next = worker_->NextShard();
  if (!next.ok()) {
    current_ = next.status();
    failed_ = true;
  } else if (!next->has_value()) {
    done_ = true;
  } else {
    current_ = std::move(**next);
  }
}
bool Worker::job_over() const { return core_->ended(); }
bool Worker::job_succeeded() const { return core_->job_succeeded(); }
std::string Worker::end_reason() const { return core_->end_reason(); }
const std::string& Worker::input_channel() const { return core_->input_channel(); }
const std::string& Worker::output_channel() const { return core_->output_channel(); }
const std::string& Worker::input_root() const { return core_->input_root(); }
const std::string& Worker::output_dir() const { return core_->output_dir(); }
uint64_t Worker::total_shards() const { return core_->total_shards(); }
uint32_t Worker::task_index() const { return core_->task_index(); }

}  // namespace elasticbatch
