// Logging set-up shared by ElasticBatch binaries: spdlog to stderr, level from
// --log-level, else ELASTICBATCH_LOG_LEVEL, else "info".
#ifndef ELASTICBATCH_TOOLS_CLI_LOGGING_H_
#define ELASTICBATCH_TOOLS_CLI_LOGGING_H_

#include <string>

#include "absl/status/status.h"

namespace elasticbatch::cli {

// Configures the default spdlog logger. `name` prefixes every line (e.g.
// "aimaster", "worker-3"). INVALID_ARGUMENT names an unknown level.
absl::Status InitLogging(const std::string& name);

}  // namespace elasticbatch::cli

#endif  // ELASTICBATCH_TOOLS_CLI_LOGGING_H_
