// banyan: serve many LoRA adapters over one base model.
#include "core/cli/commands.h"
#include "core/common/crash_handler.h"

#include <banyan/error.h>

#include <iostream>

int main(int argc, char** argv) {
  banyan::core::install_crash_handler();
  CLI::App app{"Banyan: serve many LoRA adapters over one base model, fast, over HTTP.", "banyan"};
  app.require_subcommand(1);
  app.fallthrough(false);
  using namespace banyan::cli;
  register_serve(app);
  register_run_batch(app);
  register_generate(app);
  register_tokenizer_commands(app);
  register_bench(app);
  register_plugins(app);
  register_config(app);
  register_version(app);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : 2;
  } catch (const banyan::Error& e) {
    std::cerr << "error: " << e.what() << "\n";
    return e.code() == banyan::Code::invalid_argument ? 2 : 1;
  } catch (const std::exception& e) {
    std::cerr << "error: " << e.what() << "\n";
    return 1;
  }
  return g_exit_code;
}
