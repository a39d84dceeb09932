#include "aimaster/job/job_summary.h"

#include <cmath>
#include <map>
#include <optional>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "aimaster/core/job_outputs.h"
#include "nlohmann/json.hpp"

namespace elasticbatch::aimaster {
namespace {

using Json = nlohmann::ordered_json;  // keeps the fields in the order written

std::string Eta(const JobProgress& p) {
  if (!p.eta) return "-";
  return absl::FormatDuration(absl::Trunc(*p.eta, absl::Seconds(1)));
}

// Seconds to the millisecond, as the summary has always shown them.
double Seconds(absl::Duration d) {
  return std::round(absl::ToDoubleSeconds(d) * 1000) / 1000;
}

std::map<SessionId, SessionInfo> SessionsById(const JobCoordinator& coordinator) {
  std::map<SessionId, SessionInfo> sessions;
  for (SessionInfo& s : coordinator.Sessions()) sessions[s.session] = s;
  return sessions;
}

// What an attempt committed (nothing when it never registered).
struct Committed {
  uint64_t shards = 0;
  uint64_t records = 0;
};
Committed CommittedBy(const AttemptInfo& a,
                      const std::map<SessionId, SessionInfo>& sessions) {
  if (a.session == 0) return {};
  auto it = sessions.find(a.session);
  if (it == sessions.end()) return {};
  return {it->second.shards_committed, it->second.records_committed};
}

Json AttemptJson(const AttemptInfo& a, const Committed& committed) {
  Json j;
  j["attempt"] = a.attempt;
  j["backup"] = a.backup;
  j["state"] = std::string(AttemptStateName(a.state));
  j["exit_code"] = a.exit_code ? Json(*a.exit_code) : Json(nullptr);
  j["startup_seconds"] =
      a.registered_at ? Json(Seconds(*a.registered_at - a.launched_at)) : Json(nullptr);
  j["shards"] = committed.shards;
  j["records"] = committed.records;
  j["detail"] = a.detail;
  return j;
}

Json WorkerJson(const InstanceInfo& w, const std::map<SessionId, SessionInfo>& sessions) {
  Committed total;
  Json attempts = Json::array();
  for (const AttemptInfo& a : w.attempts) {
    const Committed c = CommittedBy(a, sessions);
    total.shards += c.shards;
    total.records += c.records;
    attempts.push_back(AttemptJson(a, c));
  }
  Json j;
  j["index"] = w.index;
  j["state"] = std::string(InstanceStateName(w.state));
  j["restarts"] = w.restarts;
  j["backups"] = w.backups;
  j["shards"] = total.shards;
  j["records"] = total.records;
  j["failure"] = w.failure;
  j["attempts"] = std::move(attempts);
  return j;
}

}  // namespace

std::string WithThousandsSeparators(uint64_t value) {
  const std::string digits = absl::StrCat(value);
  std::string out;
  for (size_t i = 0; i < digits.size(); ++i) {
    if (i > 0 && (digits.size() - i) % 3 == 0) out.push_back(',');
    out.push_back(digits[i]);
  }
  return out;
}

std::string ProgressLine(const JobProgress& p) {
  std::string line = absl::StrFormat(
      "shards %d/%d", p.committed_shards + p.quarantined_shards, p.total_shards);
  if (p.quarantined_shards > 0)
    absl::StrAppend(&line, " (", p.quarantined_shards, " quarantined)");
  absl::StrAppend(&line, " | ", WithThousandsSeparators(p.committed_records),
                  " records, ",
                  WithThousandsSeparators(static_cast<uint64_t>(p.records_per_second)),
                  "/s | ETA ", Eta(p), " | workers: ", p.workers_running, " running, ",
                  p.workers_starting, " starting, ", p.workers_restarting, " restarting");
  return line;
}

void PrintSummary(const JobCoordinator& coordinator, std::ostream& out) {
  const std::map<SessionId, SessionInfo> sessions = SessionsById(coordinator);
  out << absl::StrFormat("%-6s %-10s %8s %7s %10s %10s %8s %7s %8s  %s\n", "worker",
                         "state", "attempts", "shards", "records", "records/s",
                         "restarts", "backups", "startup", "last exit");
  for (const InstanceInfo& w : coordinator.Workers()) {
    uint64_t shards = 0, records = 0;
    double busy_seconds = 0;
    std::string startup = "-";
    std::string last_exit = "-";
    for (const AttemptInfo& a : w.attempts) {
      const Committed c = CommittedBy(a, sessions);
      shards += c.shards;
      records += c.records;
      if (a.registered_at) {
        startup = absl::StrFormat(
            "%.2fs", absl::ToDoubleSeconds(*a.registered_at - a.launched_at));
        const absl::Time until = a.ended_at.value_or(absl::Now());
        busy_seconds += absl::ToDoubleSeconds(until - *a.registered_at);
      }
      if (a.exit_code) last_exit = absl::StrCat(*a.exit_code);
      if (!a.detail.empty()) last_exit = absl::StrCat(last_exit, " (", a.detail, ")");
    }
    const double rate =
        busy_seconds > 0 ? static_cast<double>(records) / busy_seconds : 0;
    out << absl::StrFormat("%-6d %-10s %8d %7d %10s %10.0f %8d %7d %8s  %s\n", w.index,
                           InstanceStateName(w.state), w.attempts.size(), shards,
                           WithThousandsSeparators(records), rate, w.restarts, w.backups,
                           startup, w.failure.empty() ? last_exit : w.failure);
  }
}

absl::Status WriteSummaryJson(const JobCoordinator& coordinator,
                              const std::string& path) {
  const std::map<SessionId, SessionInfo> sessions = SessionsById(coordinator);
  const JobProgress p = coordinator.Progress();
  Json summary;
  summary["job_id"] = coordinator.options().job_id;
  summary["state"] = std::string(JobStateName(p.state));
  summary["reason"] = p.reason;
  summary["total_shards"] = p.total_shards;
  summary["committed_shards"] = p.committed_shards;
  summary["quarantined_shards"] = p.quarantined_shards;
  summary["committed_records"] = p.committed_records;
  summary["elapsed_seconds"] = Seconds(p.elapsed);
  Json workers = Json::array();
  for (const InstanceInfo& w : coordinator.Workers()) {
    workers.push_back(WorkerJson(w, sessions));
  }
  summary["workers"] = std::move(workers);
  // Bytes that are not UTF-8 (in an error message, say) become U+FFFD, as
  // JsonQuote does.
  return WriteFileAtomically(
      path, summary.dump(-1, ' ', false, Json::error_handler_t::replace) + "\n");
}

}  // namespace elasticbatch::aimaster
