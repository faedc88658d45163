#include "core/cli/commands.h"

#include <banyan/abi.h>

#include <iostream>

namespace banyan::cli {

void register_version(CLI::App& app) {
  auto* cmd = app.add_subcommand("version", "Print Banyan's version and plugin ABI version");
  cmd->callback([] {
    std::cout << "banyan " << BANYAN_VERSION << " (plugin ABI " << BANYAN_ABI_MAJOR << "."
              << BANYAN_ABI_MINOR << ")\n";
  });
}

}  // namespace banyan::cli
