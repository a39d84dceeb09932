// Flag value types shared by the binaries.
#ifndef ELASTICBATCH_TOOLS_CLI_FLAG_TYPES_H_
#define ELASTICBATCH_TOOLS_CLI_FLAG_TYPES_H_

#include <cstdint>
#include <string>

#include "absl/strings/string_view.h"

namespace elasticbatch::cli {

// A byte count written as 1048576, 64KiB, 4MiB, 1GiB, 512K, 16M, 2G or 1T
// (K/M/G/T are binary multiples, as in most storage tools).
struct ByteSize {
  uint64_t bytes = 0;
};

bool AbslParseFlag(absl::string_view text, ByteSize* out, std::string* error);
std::string AbslUnparseFlag(ByteSize size);

}  // namespace elasticbatch::cli

#endif  // ELASTICBATCH_TOOLS_CLI_FLAG_TYPES_H_
