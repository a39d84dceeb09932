#include "common/cli/logging.h"

#include <grpc/support/log.h>

#include <cstdlib>

#include "absl/flags/flag.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "spdlog/sinks/stdout_sinks.h"
#include "spdlog/spdlog.h"

ABSL_FLAG(std::string, log_level, "",
          "Log level: trace, debug, info, warn, error, critical or off. Overrides "
          "ELASTICBATCH_LOG_LEVEL; info when neither is set");

namespace elasticbatch::cli {

absl::Status InitLogging(const std::string& name) {
  std::string level = absl::GetFlag(FLAGS_log_level);
  std::string source = "--log-level";
  if (level.empty()) {
    const char* env = std::getenv("ELASTICBATCH_LOG_LEVEL");
    level = env != nullptr ? env : "";
    source = "ELASTICBATCH_LOG_LEVEL";
  }
  if (level.empty()) level = "info";
  level = absl::AsciiStrToLower(level);
  const spdlog::level::level_enum parsed = spdlog::level::from_str(level);
  // from_str maps anything unknown to "off"; only "off" itself may mean off.
  if (parsed == spdlog::level::off && level != "off") {
    return absl::InvalidArgumentError(
        absl::StrCat("unknown log level '", level, "' in ", source,
                     " (use trace, debug, info, warn, error, critical or off)"));
  }
  auto logger = std::make_shared<spdlog::logger>(
      name, std::make_shared<spdlog::sinks::stderr_sink_mt>());
  logger->set_pattern("%Y-%m-%d %H:%M:%S.%e %n %^%l%$: %v");
  logger->set_level(parsed);
  logger->flush_on(spdlog::level::info);
  spdlog::set_default_logger(std::move(logger));
  // gRPC's own log lines (a failed TLS handshake, say) would break the
  // one-line error contract: every failure that matters reaches us as a
  // status, so they are kept for --log-level=debug.
  gpr_set_log_function([](gpr_log_func_args* args) {
    spdlog::debug("grpc: {}:{}: {}", args->file != nullptr ? args->file : "?", args->line,
                  args->message != nullptr ? args->message : "");
  });
  return absl::OkStatus();
}

}  // namespace elasticbatch::cli
