// The `banyan tokenize` and `banyan chat-template` commands (the CLI contract other tools
// rely on), as functions the CLI calls with its streams.
//
//   banyan tokenize --tokenizer DIR
//     stdin:  JSONL {"text": str, "add_special_tokens": bool (default true)}
//     stdout: one line {"ids": [...]} per input line
//   banyan chat-template --tokenizer DIR
//     stdin:  JSONL {"messages": [...], "add_generation_prompt": bool (default false), ...}
//             (any other key, such as "tools" or "enable_thinking", is a template variable)
//     stdout: one line {"text": str} per input line
//
// Blank input lines are skipped. A bad line (invalid JSON or UTF-8, missing or mistyped
// field, a template error) produces {"error": "..."} on stdout in its place and a message
// naming the line on stderr; processing continues. Returns 0 when every line succeeded, 1
// otherwise (also when the tokenizer cannot be loaded, reported on stderr).
#pragma once

#include <filesystem>
#include <iosfwd>

namespace banyan::core {

int tokenize_cli(const std::filesystem::path& dir, std::istream& in, std::ostream& out, std::ostream& err);
int chat_template_cli(const std::filesystem::path& dir, std::istream& in, std::ostream& out, std::ostream& err);

}  // namespace banyan::core
