#include "core/server/prompts.h"

#include "core/server/text_codec.h"

namespace banyan::core::server {

PromptInput prompt_from_text(const TextCodec& codec, const std::string& text, bool add_special) {
  return PromptInput{codec.encode(text, add_special), text};
}

PromptInput prompt_from_ids(const TextCodec& codec, std::vector<int32_t> ids,
                            const std::string& param) {
  for (auto id : ids)
    if (id < 0 || id >= codec.vocab_size())
      throw bad_field(param, "token id " + std::to_string(id) + " is out of range [0, " +
                                 std::to_string(codec.vocab_size() - 1) + "]");
  std::string text = codec.decode(ids, true);
  return PromptInput{std::move(ids), std::move(text)};
}

namespace {
std::vector<int32_t> ids_of(const json& arr, const std::string& param) {
  std::vector<int32_t> ids;
  ids.reserve(arr.size());
  for (const auto& e : arr) {
    auto v = as_integer(e);
    if (!v) throw bad_field(param, "expected token ids (integers), got " + json_type_name(e));
    if (*v < 0 || *v > INT32_MAX)
      throw bad_field(param, "token id " + std::to_string(*v) + " is out of range");
    ids.push_back(static_cast<int32_t>(*v));
  }
  return ids;
}
}  // namespace

std::vector<PromptInput> read_prompts(const Fields& f, const char* key, const TextCodec& codec,
                                      bool add_special) {
  const std::string param = f.name(key);
  const json* v = f.get(key);
  if (!v) throw bad_field(param, "is required");
  if (v->is_string()) return {prompt_from_text(codec, v->get<std::string>(), add_special)};
  if (!v->is_array())
    throw bad_field(param, "expected a string, a list of strings or token ids, got " +
                               json_type_name(*v));
  if (v->empty()) throw bad_field(param, "the list of prompts is empty");
  if (v->size() > kMaxPrompts && !(*v)[0].is_number())
    throw bad_field(param, "at most " + std::to_string(kMaxPrompts) + " prompts");
  const json& first = (*v)[0];
  std::vector<PromptInput> out;
  if (first.is_number()) return {prompt_from_ids(codec, ids_of(*v, param), param)};
  for (const auto& e : *v) {
    if (first.is_string()) {
      if (!e.is_string())
        throw bad_field(param, "a list of prompts must hold only strings, got " +
                                   json_type_name(e));
      out.push_back(prompt_from_text(codec, e.get<std::string>(), add_special));
    } else if (first.is_array()) {
      if (!e.is_array())
        throw bad_field(param, "a list of token-id prompts must hold only lists, got " +
                                   json_type_name(e));
      if (e.empty()) throw bad_field(param, "a token-id prompt is empty");
      out.push_back(prompt_from_ids(codec, ids_of(e, param), param));
    } else {
      throw bad_field(param, "expected strings or token ids in the list, got " +
                                 json_type_name(e));
    }
  }
  return out;
}

void truncate_prompt(PromptInput& p, size_t keep, const TextCodec& codec) {
  if (keep == 0 || p.ids.size() <= keep) return;
  p.ids.erase(p.ids.begin(), p.ids.end() - static_cast<std::ptrdiff_t>(keep));
  p.text = codec.decode(p.ids, true);
}

}  // namespace banyan::core::server
