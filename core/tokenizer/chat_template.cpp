#include "core/tokenizer/chat_template.h"

#include <banyan/error.h>

#include <nlohmann/json.hpp>

#include "core/tokenizer/jinja_template.h"

namespace banyan::core {
namespace {

using Json = nlohmann::ordered_json;

jinja::Value to_value(const Json& j) {
  switch (j.type()) {
    case Json::value_t::null: return jinja::Value::none();
    case Json::value_t::boolean: return jinja::Value(j.get<bool>());
    case Json::value_t::number_integer: return jinja::Value(j.get<int64_t>());
    case Json::value_t::number_unsigned: return jinja::Value(static_cast<int64_t>(j.get<uint64_t>()));
    case Json::value_t::number_float: return jinja::Value(j.get<double>());
    case Json::value_t::string: return jinja::Value(j.get<std::string>());
    case Json::value_t::array: {
      std::vector<jinja::Value> items;
      for (const Json& x : j) items.push_back(to_value(x));
      return jinja::Value::list(std::move(items));
    }
    case Json::value_t::object: {
      std::vector<std::pair<jinja::Value, jinja::Value>> items;
      for (auto it = j.begin(); it != j.end(); ++it) items.emplace_back(jinja::Value(it.key()), to_value(it.value()));
      return jinja::Value::dict(std::move(items));
    }
    default: throw Error("chat template: unsupported JSON value");
  }
}

Json parse(const std::string& text, const char* what) {
  try {
    return Json::parse(text);
  } catch (const Json::parse_error& e) {
    throw Error(std::string("chat template: ") + what + " is not valid JSON: " + e.what());
  }
}

}  // namespace

namespace {

std::string render_with(const jinja::Template& tpl, const std::map<std::string, std::string>& special_tokens,
                        const Json& messages, const Json& extra, bool add_generation_prompt) {
  const bool has_tools = extra.contains("tools") && !extra["tools"].is_null();
  auto context = jinja::Value::dict();
  jinja::DictObj& ctx = context.dict_obj();
  for (const auto& [k, v] : special_tokens) ctx.set(jinja::Value(k), jinja::Value(v));
  for (auto it = extra.begin(); it != extra.end(); ++it) ctx.set(jinja::Value(it.key()), to_value(it.value()));
  ctx.set(jinja::Value("messages"), to_value(messages));
  ctx.set(jinja::Value("tools"), has_tools ? to_value(extra["tools"]) : jinja::Value::none());
  ctx.set(jinja::Value("documents"), extra.contains("documents") ? to_value(extra["documents"]) : jinja::Value::none());
  ctx.set(jinja::Value("add_generation_prompt"), jinja::Value(add_generation_prompt));
  return tpl.render(context);
}

std::pair<Json, Json> parse_inputs(const std::string& messages_json, const std::string& extra_context_json) {
  Json messages = parse(messages_json, "messages");
  if (!messages.is_array()) throw Error("chat template: messages must be a JSON array");
  if (messages.empty()) throw Error("chat template: cannot apply a chat template to an empty conversation");
  Json extra = parse(extra_context_json.empty() ? "{}" : extra_context_json, "the extra context");
  if (!extra.is_object()) throw Error("chat template: the extra context must be a JSON object");
  return {std::move(messages), std::move(extra)};
}

}  // namespace

std::string render_chat(const Tokenizer& tokenizer, const std::string& messages_json, bool add_generation_prompt,
                        const std::string& extra_context_json, const std::string& template_name) {
  const auto [messages, extra] = parse_inputs(messages_json, extra_context_json);
  const bool has_tools = extra.contains("tools") && !extra["tools"].is_null();
  std::string name = template_name;
  if (name.empty()) name = has_tools && tokenizer.chat_template("tool_use") ? "tool_use" : "default";
  const auto tpl = tokenizer.compiled_chat_template(name);
  return render_with(*tpl, tokenizer.special_token_strings(), messages, extra, add_generation_prompt);
}

std::string render_chat_source(const std::string& template_source,
                               const std::map<std::string, std::string>& special_tokens,
                               const std::string& messages_json, bool add_generation_prompt,
                               const std::string& extra_context_json) {
  const auto [messages, extra] = parse_inputs(messages_json, extra_context_json);
  const auto tpl = jinja::Template::parse(template_source);
  return render_with(*tpl, special_tokens, messages, extra, add_generation_prompt);
}

}  // namespace banyan::core
