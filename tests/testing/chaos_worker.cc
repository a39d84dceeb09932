#include "tests/testing/chaos_worker.h"

#include <grpcpp/client_context.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <thread>

#include "absl/strings/str_cat.h"

namespace elasticbatch::testing {

ChaosWorker::ChaosWorker(std::shared_ptr<grpc::Channel> channel, ChaosOptions options)
    : stub_(v1::AIMaster::NewStub(std::move(channel))),
      options_(std::move(options)),
      rng_(options_.seed) {}

template <typename Rpc>
bool ChaosWorker::Call(Rpc rpc, bool lease_may_be_gone) {
  absl::Duration backoff = absl::Milliseconds(20);
  while (absl::Now() < deadline_) {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
    grpc::Status s = rpc(&ctx);
    if (s.ok()) return true;
    // The lease was refused when re-registering after a master restart.
    if (lease_may_be_gone && s.error_code() == grpc::StatusCode::FAILED_PRECONDITION) {
      return true;
    }
    if (s.error_code() == grpc::StatusCode::NOT_FOUND) {
      if (!Register()) return false;
      continue;
    }
    if (s.error_code() == grpc::StatusCode::UNAVAILABLE ||
        s.error_code() == grpc::StatusCode::CANCELLED ||
        s.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED) {
      ++stats_.unavailable;
      // A master that is gone for good left its verdict in the output channel.
      if (JobEndedOnDisk()) return false;
      std::this_thread::sleep_for(absl::ToChronoMilliseconds(backoff));
      backoff = std::min(backoff * 2, absl::Milliseconds(500));
      continue;
    }
    // Anything else is a protocol violation in this test.
    std::fprintf(stderr, "chaos worker %u: unexpected status %d: %s\n",
                 options_.task_index, static_cast<int>(s.error_code()),
                 s.error_message().c_str());
    return false;
  }
  return false;
}

void ChaosWorker::Acknowledge(
    const google::protobuf::RepeatedPtrField<v1::LeaseRef>& confirmed) {
  for (const v1::LeaseRef& l : confirmed) {
    auto it = held_.find({l.shard_id(), l.attempt()});
    if (it != held_.end() && it->second.published) {
      held_.erase(it);
      ++stats_.committed;
    }
  }
}

bool ChaosWorker::JobEndedOnDisk() {
  const bool succeeded = std::filesystem::exists(options_.output_dir + "/_SUCCESS");
  if (!succeeded && !std::filesystem::exists(options_.output_dir + "/_FAILED"))
    return false;
  ended_ = true;
  job_succeeded_ = succeeded;
  return true;
}

bool ChaosWorker::Register() {
  absl::Duration backoff = absl::Milliseconds(20);
  while (absl::Now() < deadline_) {
    v1::RegisterWorkerRequest req;
    req.set_task_type("worker");
    req.set_task_index(options_.task_index);
    req.set_host("localhost");
    req.set_pid(getpid());
    for (const auto& [key, held] : held_) {
      v1::HeldLease* h = req.add_held_leases();
      h->mutable_lease()->set_shard_id(key.first);
      h->mutable_lease()->set_attempt(key.second);
      h->set_published(held.published);
    }
    v1::RegisterWorkerResponse resp;
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
    grpc::Status s = stub_->RegisterWorker(&ctx, req, &resp);
    if (s.ok()) {
      session_ = resp.session_id();
      if (held_.size() > 0 || stats_.committed > 0) ++stats_.reregistered;
      for (const v1::LeaseRef& r : resp.refused())
        held_.erase({r.shard_id(), r.attempt()});
      // Published leases were confirmed (or refused) by the registration itself.
      for (auto it = held_.begin(); it != held_.end();) {
        if (it->second.published) {
          ++stats_.committed;
          it = held_.erase(it);
        } else {
          ++it;
        }
      }
      return true;
    }
    ++stats_.unavailable;
    if (JobEndedOnDisk()) return false;
    std::this_thread::sleep_for(absl::ToChronoMilliseconds(backoff));
    backoff = std::min(backoff * 2, absl::Milliseconds(500));
  }
  return false;
}

void ChaosWorker::Heartbeat() {
  if (absl::Now() - last_heartbeat_ < options_.heartbeat_interval) return;
  last_heartbeat_ = absl::Now();
  v1::HeartbeatResponse resp;
  Call([&](grpc::ClientContext* ctx) {
    v1::HeartbeatRequest req;
    req.set_session_id(session_);
    for (const auto& [key, held] : held_) {
      v1::ShardProgress* p = req.add_progress();
      p->mutable_lease()->set_shard_id(key.first);
      p->mutable_lease()->set_attempt(key.second);
      p->set_started(true);
    }
    resp.Clear();
    return stub_->Heartbeat(ctx, req, &resp);
  });
  Acknowledge(resp.confirmed());
  HandleCommands(resp.commands());
}

void ChaosWorker::HandleCommands(
    const google::protobuf::RepeatedPtrField<v1::WorkerCommand>& commands) {
  for (const v1::WorkerCommand& c : commands) {
    if (c.kind() == v1::WorkerCommand::CANCEL_SHARD) {
      held_.erase({c.lease().shard_id(), c.lease().attempt()});
    } else if (c.kind() == v1::WorkerCommand::STOP) {
      ended_ = true;
      job_succeeded_ = c.job_finished();
    }
  }
}

bool ChaosWorker::ProcessShard(const v1::Shard& shard) {
  const auto key = std::make_pair(shard.shard_id(), shard.attempt());
  const int roll = static_cast<int>(rng_() % 100);
  if (roll < options_.abandon_percent) {
    held_.erase(key);  // never renewed again: the lease must expire
    ++stats_.abandoned;
    return true;
  }
  if (roll < options_.abandon_percent + options_.fail_percent) {
    v1::FailShardResponse resp;
    bool ok = Call(
        [&](grpc::ClientContext* ctx) {
          v1::FailShardRequest req;
          req.set_session_id(session_);
          req.mutable_lease()->set_shard_id(shard.shard_id());
          req.mutable_lease()->set_attempt(shard.attempt());
          req.set_error(absl::StrCat("chaos failure by worker ", options_.task_index));
          return stub_->FailShard(ctx, req, &resp);
        },
        /*lease_may_be_gone=*/true);
    held_.erase(key);
    ++stats_.failed;
    return ok;
  }
  if (options_.work_time > absl::ZeroDuration()) {
    const int64_t max_us = absl::ToInt64Microseconds(options_.work_time);
    std::this_thread::sleep_for(std::chrono::microseconds(max_us / 2 + rng_() % max_us));
  }
  // Stage the output, ask for the grant, publish by rename, confirm later.
  const std::string staging =
      absl::StrCat(options_.output_dir, "/_temporary/", shard.output_name(), ".",
                   shard.attempt(), ".", options_.task_index, ".tmp");
  std::filesystem::create_directories(options_.output_dir + "/_temporary");
  {
    std::ofstream out(staging);
    out << "shard " << shard.shard_id() << " [" << shard.begin() << "," << shard.end()
        << ")\n";
  }
  v1::CommitShardResponse resp;
  bool ok = Call([&](grpc::ClientContext* ctx) {
    v1::CommitShardRequest req;
    req.set_session_id(session_);
    v1::ShardCompletion* c = req.add_commits();
    c->mutable_lease()->set_shard_id(shard.shard_id());
    c->mutable_lease()->set_attempt(shard.attempt());
    c->set_records(1);
    resp.Clear();
    return stub_->CommitShard(ctx, req, &resp);
  });
  if (!ok) return false;
  Acknowledge(resp.confirmed());
  HandleCommands(resp.commands());
  if (resp.results_size() == 1 &&
      resp.results(0).decision() == v1::CommitResult::GRANTED && held_.count(key) > 0) {
    std::filesystem::rename(staging, options_.output_dir + "/" + shard.output_name());
    held_[key].published = true;
  } else {
    std::filesystem::remove(staging);
    held_.erase(key);
    ++stats_.lost;
  }
  return true;
}

bool ChaosWorker::Run() {
  deadline_ = absl::Now() + options_.deadline;
  if (!Register()) return ended_;
  while (!ended_ && absl::Now() < deadline_) {
    Heartbeat();
    if (ended_) break;
    v1::AcquireShardsResponse resp;
    const uint32_t batch = 1 + static_cast<uint32_t>(rng_() % options_.max_batch);
    bool ok = Call([&](grpc::ClientContext* ctx) {
      v1::AcquireShardsRequest req;
      req.set_session_id(session_);
      req.set_max_shards(batch);
      req.mutable_wait()->set_nanos(200'000'000);
      for (const auto& [key, held] : held_) {
        if (!held.published) continue;
        v1::LeaseRef* l = req.add_published();
        l->set_shard_id(key.first);
        l->set_attempt(key.second);
      }
      resp.Clear();
      return stub_->AcquireShards(ctx, req, &resp);
    });
    if (!ok) return ended_;
    Acknowledge(resp.confirmed());
    HandleCommands(resp.commands());
    if (resp.outcome() == v1::AcquireShardsResponse::END) {
      ended_ = true;
      job_succeeded_ = resp.job_succeeded();
      break;
    }
    for (const v1::Shard& s : resp.shards())
      held_[{s.shard_id(), s.attempt()}] = {s, false};
    for (const v1::Shard& s : resp.shards()) {
      if (held_.count({s.shard_id(), s.attempt()}) == 0) continue;  // cancelled meanwhile
      if (!ProcessShard(s)) return ended_;
      Heartbeat();
    }
  }
  return ended_;
}

}  // namespace elasticbatch::testing
