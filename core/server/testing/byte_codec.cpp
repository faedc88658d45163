#include "core/server/testing/byte_codec.h"

#include <banyan/error.h>

#include <nlohmann/json.hpp>

namespace banyan::core::server::testing {

std::vector<int32_t> ByteCodec::encode(const std::string& text, bool add_special) const {
  std::vector<int32_t> ids;
  if (add_special) ids.push_back(kBos);
  for (unsigned char c : text) ids.push_back(kOffset + c);
  return ids;
}

std::string ByteCodec::decode(const std::vector<int32_t>& ids, bool skip_special) const {
  std::string s;
  for (auto id : ids) {
    if (id >= kOffset) s.push_back(static_cast<char>(id - kOffset));
    else if (!skip_special) s += token_text(id);
  }
  return s;
}

std::string ByteCodec::token_text(int32_t id) const {
  if (id == 0) return "<pad>";
  if (id == kBos) return "<s>";
  if (id == kEos) return "</s>";
  return std::string(1, static_cast<char>(id - kOffset));
}

std::string ByteCodec::render_chat(const std::string& messages_json, bool add_generation_prompt,
                                   const std::string& extra_json) const {
  (void)extra_json;
  std::string s;
  for (const auto& m : nlohmann::json::parse(messages_json)) {
    std::string role = m.at("role").get<std::string>();
    if (role == "tool") throw banyan::Error("this template has no tool role");
    s += "<|" + role + "|>" + m.value("content", "") + "\n";
  }
  if (add_generation_prompt) s += "<|assistant|>";
  return s;
}

}  // namespace banyan::core::server::testing
