// aimaster's subcommands. Each returns the process exit code.
#ifndef ELASTICBATCH_AIMASTER_CLI_COMMANDS_H_
#define ELASTICBATCH_AIMASTER_CLI_COMMANDS_H_

#include "common/cli/command_line.h"

namespace elasticbatch::aimaster {

int ServeCommand(const cli::ParsedCommandLine& args);
int RunCommand(const cli::ParsedCommandLine& args);
int StatusCommand(const cli::ParsedCommandLine& args);
int StopCommand(const cli::ParsedCommandLine& args);

}  // namespace elasticbatch::aimaster

#endif  // ELASTICBATCH_AIMASTER_CLI_COMMANDS_H_
