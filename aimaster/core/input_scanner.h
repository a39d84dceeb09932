// Lists the files of an input channel for sharding.
#ifndef ELASTICBATCH_AIMASTER_CORE_INPUT_SCANNER_H_
#define ELASTICBATCH_AIMASTER_CORE_INPUT_SCANNER_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "shard_enumerator.h"

namespace elasticbatch::aimaster {

// A file yields itself (relative path ""); a directory yields every regular file
// below it, recursively, sorted by relative path. Names starting with '.' or '_'
// are skipped at every level (markers such as _SUCCESS, _manifest.jsonl and
// hidden files, as in Hadoop). Empty files are kept here and skipped by the
// enumerator. NOT_FOUND / PERMISSION_DENIED / FAILED_PRECONDITION name the path.
absl::StatusOr<std::vector<SourceFile>> ListSourceFiles(const std::string& path);

}  // namespace elasticbatch::aimaster

#endif  // ELASTICBATCH_AIMASTER_CORE_INPUT_SCANNER_H_
