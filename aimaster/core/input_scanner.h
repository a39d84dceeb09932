// Lists the files of an input channel for sharding.
//
//   absl::StatusOr<std::vector<SourceFile>> files = ListSourceFiles("/ml/input/data/x");
//
// The rule (what a user can rely on):
//   * A file yields itself (relative path ""). A directory yields every regular
//     file below it, recursively, sorted by relative path as a byte string.
//   * Names starting with '.' or '_' are skipped at every level (markers such as
//     _SUCCESS, _manifest.jsonl and hidden files, as in Hadoop), before anything
//     else is checked.
//   * Symbolic links are followed, to files and to directories. Every real file
//     (device and inode) is listed once, under the first of its paths in sorted
//     order; every real directory is entered once. Other paths to the same
//     file or directory are skipped and reported in `duplicates`.
//   * A directory link that points at itself or at one of its ancestors (the
//     input's own ancestors included: `up -> ..`) is a loop: FAILED_PRECONDITION
//     naming the link. Nothing is skipped silently: an entry that cannot be
//     read (dangling link, link cycle, no permission) or is neither a regular
//     file nor a directory (fifo, socket, device) is an error naming it.
//   * Empty files are kept here and skipped by the enumerator.
// Errors: NOT_FOUND (the input does not exist), PERMISSION_DENIED, and
// FAILED_PRECONDITION, each naming the path; CANCELLED when `cancelled` said so.
#ifndef ELASTICBATCH_AIMASTER_CORE_INPUT_SCANNER_H_
#define ELASTICBATCH_AIMASTER_CORE_INPUT_SCANNER_H_

#include <functional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "aimaster/core/shard_enumerator.h"

namespace elasticbatch::aimaster {

struct ListOptions {
  // Polled now and then; when it returns true the listing stops with CANCELLED
  // (a long scan must not outlive a SIGTERM). Default: never.
  std::function<bool()> cancelled;
  // When set, receives one line per skipped duplicate path ("b/x (same file as
  // a/x)"). Default: not reported.
  std::vector<std::string>* duplicates = nullptr;
  // Directory levels below the input at most. Default: 256.
  int max_depth = 256;
};

absl::StatusOr<std::vector<SourceFile>> ListSourceFiles(const std::string& path,
                                                        const ListOptions& options = {});

}  // namespace elasticbatch::aimaster

#endif  // ELASTICBATCH_AIMASTER_CORE_INPUT_SCANNER_H_
