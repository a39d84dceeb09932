// What `aimaster run` reports about a job: the live progress line, the
// per-worker table printed at the end, and <job dir>/summary.json.
//
//   std::cerr << ProgressLine(coordinator.Progress());
//   PrintSummary(coordinator, std::cout);
//   absl::Status s = WriteSummaryJson(coordinator, dir + "/summary.json");
//
// Thread-safe (the coordinator is).
#ifndef ELASTICBATCH_AIMASTER_JOB_JOB_SUMMARY_H_
#define ELASTICBATCH_AIMASTER_JOB_JOB_SUMMARY_H_

#include <cstdint>
#include <ostream>
#include <string>

#include "absl/status/status.h"
#include "aimaster/core/job_coordinator.h"

namespace elasticbatch::aimaster {

// 1234567 -> "1,234,567".
std::string WithThousandsSeparators(uint64_t value);

// "shards 3/10 | 1,200 records, 400/s | ETA 5s | workers: 2 running, ...".
std::string ProgressLine(const JobProgress& progress);

// The per-worker table: state, attempts, shards, records, rate, restarts,
// backups, start-up time and the last exit.
void PrintSummary(const JobCoordinator& coordinator, std::ostream& out);

// The job's outcome and every worker attempt as one line of JSON, for tools
// and tests; written atomically. FAILED_PRECONDITION when it cannot be written.
absl::Status WriteSummaryJson(const JobCoordinator& coordinator, const std::string& path);

}  // namespace elasticbatch::aimaster

#endif  // ELASTICBATCH_AIMASTER_JOB_JOB_SUMMARY_H_
