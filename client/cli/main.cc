// retrace: the command-line client of the retrace service. See `retrace --help`.
#include <unistd.h>

#include <cstdlib>
#include <iostream>
#include <string>
#include <vector>

#include "client/cli/cli.h"

int main(int argc, char** argv) {
  const char* env_server = std::getenv("RETRACE_SERVER");
  const char* env_token = std::getenv("RETRACE_TOKEN");
  const std::vector<std::string> args(argv + 1, argv + argc);
  const int status = retrace::cli::RunCli(args, env_server != nullptr ? env_server : "",
                                          isatty(STDERR_FILENO) == 1, std::cout, std::cerr,
                                          env_token != nullptr ? env_token : "");
  std::cout.flush();
  return status;
}
