// The files a finished job leaves in its primary output channel:
//   _manifest.jsonl    one line per committed shard, in commit order:
//                      {"shard","source","begin","end","unit","output","records",
//                       "attempt","worker"}
//   _quarantine.jsonl  one line per quarantined shard with every error
//   _SUCCESS           empty, written last, when the job succeeded
//   _FAILED            the reason, written last, when it failed
// The staging directory _temporary/ is removed on success.
#ifndef ELASTICBATCH_AIMASTER_CORE_JOB_OUTPUTS_H_
#define ELASTICBATCH_AIMASTER_CORE_JOB_OUTPUTS_H_

#include <string>

#include "absl/status/status.h"
#include "shard_enumerator.h"

namespace elasticbatch::aimaster {

inline constexpr char kStagingDirName[] = "_temporary";

// Reads the journal in `state_dir` and writes the files above into
// `output_dir`, each atomically (temporary file, fsync, rename).
absl::Status WriteJobOutputs(const std::string& output_dir, const std::string& state_dir,
                             const ShardEnumerator& shards,
                             const std::string& input_channel, bool succeeded,
                             const std::string& reason);

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
