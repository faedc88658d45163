#include "core/tokenizer/tokenizer_cli.h"

#include <banyan/error.h>

#include <istream>
#include <optional>
#include <nlohmann/json.hpp>
#include <ostream>
#include <string>

#include "core/tokenizer/chat_template.h"
#include "core/tokenizer/tokenizer.h"

namespace banyan::core {
namespace {

using Json = nlohmann::ordered_json;

std::string dump(const Json& j) { return j.dump(-1, ' ', false, Json::error_handler_t::replace); }

// Runs handle(json) -> result object for every non-blank line.
template <class Handle>
int run_lines(const char* command, const std::filesystem::path& dir, std::istream& in, std::ostream& out,
              std::ostream& err, Handle handle) {
  std::optional<Tokenizer> tok;
  try {
    tok.emplace(Tokenizer::load(dir));
  } catch (const std::exception& e) {
    err << "banyan " << command << ": " << e.what() << "\n";
    return 1;
  }
  int status = 0;
  std::string line;
  size_t lineno = 0;
  while (std::getline(in, line)) {
    ++lineno;
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    try {
      Json request;
      try {
        request = Json::parse(line);
      } catch (const Json::parse_error& e) {
        throw Error(std::string("invalid JSON: ") + e.what());
      }
      if (!request.is_object()) throw Error("expected a JSON object");
      out << dump(handle(*tok, request)) << "\n";
    } catch (const std::exception& e) {
      out << dump(Json{{"error", e.what()}}) << "\n";
      err << "banyan " << command << ": line " << lineno << ": " << e.what() << "\n";
      status = 1;
    }
    out.flush();
  }
  return status;
}

bool optional_bool(const Json& request, const char* key, bool dflt) {
  if (!request.contains(key) || request[key].is_null()) return dflt;
  if (!request[key].is_boolean()) throw Error(std::string("\"") + key + "\" must be true or false");
  return request[key].get<bool>();
}

}  // namespace

int tokenize_cli(const std::filesystem::path& dir, std::istream& in, std::ostream& out, std::ostream& err) {
  return run_lines("tokenize", dir, in, out, err, [](const Tokenizer& tok, const Json& request) {
    if (!request.contains("text") || !request["text"].is_string()) throw Error("\"text\" must be a string");
    const bool add = optional_bool(request, "add_special_tokens", true);
    return Json{{"ids", tok.encode(request["text"].get<std::string>(), add)}};
  });
}

int chat_template_cli(const std::filesystem::path& dir, std::istream& in, std::ostream& out, std::ostream& err) {
  return run_lines("chat-template", dir, in, out, err, [](const Tokenizer& tok, const Json& request) {
    if (!request.contains("messages") || !request["messages"].is_array())
      throw Error("\"messages\" must be an array");
    const bool agp = optional_bool(request, "add_generation_prompt", false);
    Json extra = Json::object();
    for (auto it = request.begin(); it != request.end(); ++it)
      if (it.key() != "messages" && it.key() != "add_generation_prompt") extra[it.key()] = it.value();
    return Json{{"text", render_chat(tok, request["messages"].dump(), agp, extra.dump())}};
  });
}

}  // namespace banyan::core
