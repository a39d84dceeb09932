// The files a finished job leaves in its primary output channel:
//   _manifest.jsonl    one line per committed shard, in commit order:
//                      {"shard","source","begin","end","unit","output","records",
//                       "attempt","worker"}
//   _quarantine.jsonl  one line per quarantined shard with every error
//   _SUCCESS           written last when the job succeeded, and
//   _FAILED            written last when it failed; each one JSON line naming
//                      the job instance: {"job_id","job_uid","state","reason"}
// The staging directory _temporary/ is removed on success. Workers believe an
// end marker only when it names their own job instance (job_uid).
#ifndef ELASTICBATCH_AIMASTER_CORE_JOB_OUTPUTS_H_
#define ELASTICBATCH_AIMASTER_CORE_JOB_OUTPUTS_H_

#include <optional>
#include <string>

#include "absl/status/status.h"
#include "aimaster/core/shard_enumerator.h"

namespace elasticbatch::aimaster {

inline constexpr char kStagingDirName[] = "_temporary";

// How a job instance ended.
struct JobVerdict {
  std::string job_id;
  // The job instance (Journal::job_uid()).
  std::string job_uid;
  bool succeeded = false;
  std::string reason;
};

// Reads the journal in `state_dir` and writes the files above into
// `output_dir`, each atomically (temporary file, fsync, rename).
absl::Status WriteJobOutputs(const std::string& output_dir, const std::string& state_dir,
                             const ShardEnumerator& shards,
                             const std::string& input_channel, const JobVerdict& verdict);

// Checks the primary output channel before a job instance (`job_uid`) serves.
// An end marker of another job instance (or one that names none) is refused:
// its workers would take it for this job's verdict. One of this instance's
// own (a resumed job) is removed: the verdict is written again at the end. A
// new instance (`resumed` false) also refuses an output that already holds
// results (part files, manifests): they would mix with its own. Errors are
// FAILED_PRECONDITION naming the file and the way out.
absl::Status PrepareOutputChannel(const std::string& output_dir,
                                  const std::string& job_uid, bool resumed);

// The job instance an end marker names; nullopt when the file is missing,
// unreadable, too large or names none.
std::optional<std::string> EndMarkerJobUid(const std::string& path);

// Writes `content` to `path` through a temporary file, fsync and rename. Safe
// in a directory others can write: no link planted there is followed.
absl::Status WriteFileAtomically(const std::string& path, const std::string& content);

// OK when a file can be created and written in `dir` (a probe file with an
// unpredictable name, created with O_EXCL|O_NOFOLLOW and removed again);
// FAILED_PRECONDITION naming the directory otherwise.
absl::Status ProbeWritableDirectory(const std::string& dir);

// `s` as a JSON string literal, quotes included.
std::string JsonQuote(const std::string& s);

}  // namespace elasticbatch::aimaster

#endif  // ELASTICBATCH_AIMASTER_CORE_JOB_OUTPUTS_H_
