#include "core/cli/commands.h"

#include "core/tokenizer/tokenizer_cli.h"

#include <iostream>

namespace banyan::cli {

void register_tokenizer_commands(CLI::App& app) {
  static std::string tok_dir, tmpl_dir;
  auto* tok = app.add_subcommand(
      "tokenize",
      "Read JSONL {\"text\", \"add_special_tokens\"} on stdin, write {\"ids\": [...]} per line");
  tok->add_option("--tokenizer", tok_dir, "Directory with tokenizer.json and tokenizer_config.json")
      ->required();
  tok->callback([] {
    g_exit_code = core::tokenize_cli(tok_dir, std::cin, std::cout, std::cerr);
  });

  auto* chat = app.add_subcommand(
      "chat-template",
      "Read JSONL {\"messages\", \"add_generation_prompt\"} on stdin, write {\"text\"} per line");
  chat->add_option("--tokenizer", tmpl_dir, "Directory with tokenizer.json and tokenizer_config.json")
      ->required();
  chat->callback([] {
    g_exit_code = core::chat_template_cli(tmpl_dir, std::cin, std::cout, std::cerr);
  });
}

}  // namespace banyan::cli
