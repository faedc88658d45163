#include "core/tokenizer/tokenizer.h"

#include <banyan/error.h>

#include <cstdio>
#include <fstream>
#include <sstream>

#include "core/tokenizer/jinja_template.h"
#include "core/tokenizer/tokenizer_impl.h"
#include "core/tokenizer/utf8.h"

namespace banyan::core {
namespace {

std::string read_file(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(Code::not_found, path.string() + ": cannot open");
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::string read_optional(const std::filesystem::path& path) {
  std::error_code ec;
  return std::filesystem::is_regular_file(path, ec) ? read_file(path) : std::string();
}

}  // namespace

Tokenizer::Tokenizer(std::shared_ptr<const Impl> impl) : impl_(std::move(impl)) {}
Tokenizer::Tokenizer(const Tokenizer&) = default;
Tokenizer& Tokenizer::operator=(const Tokenizer&) = default;
Tokenizer::Tokenizer(Tokenizer&&) noexcept = default;
Tokenizer& Tokenizer::operator=(Tokenizer&&) noexcept = default;
Tokenizer::~Tokenizer() = default;

Tokenizer Tokenizer::load(const std::filesystem::path& dir) {
  std::error_code ec;
  if (!std::filesystem::is_directory(dir, ec))
    throw Error(Code::not_found, dir.string() + ": not a directory (expected a model directory with tokenizer.json)");
  const auto tok_path = dir / "tokenizer.json";
  if (!std::filesystem::is_regular_file(tok_path, ec))
    throw Error(Code::not_found, tok_path.string() + ": missing (only tokenizer.json tokenizers are supported)");
  auto impl = load_tokenizer_impl(read_file(tok_path), read_optional(dir / "tokenizer_config.json"),
                                  read_optional(dir / "generation_config.json"), {}, dir.string());
  // Newer transformers save templates beside tokenizer_config.json; those files win.
  if (const std::string json = read_optional(dir / "chat_template.json"); !json.empty())
    read_chat_template_json(*impl, json, (dir / "chat_template.json").string());
  if (const std::string jinja = read_optional(dir / "chat_template.jinja"); !jinja.empty())
    impl->templates["default"] = jinja;
  const auto extra_dir = dir / "additional_chat_templates";
  if (std::filesystem::is_directory(extra_dir, ec)) {
    for (const auto& entry : std::filesystem::directory_iterator(extra_dir, ec))
      if (entry.path().extension() == ".jinja") impl->templates[entry.path().stem().string()] = read_file(entry.path());
  }
  return Tokenizer(std::move(impl));
}

Tokenizer Tokenizer::from_strings(std::string_view tokenizer_json, std::string_view config_json,
                                  std::string_view generation_config_json, std::string_view name) {
  return Tokenizer(load_tokenizer_impl(tokenizer_json, config_json, generation_config_json, {}, std::string(name)));
}

std::vector<int32_t> Tokenizer::encode(std::string_view text, bool add_special_tokens) const {
  const Impl& m = *impl_;
  if (const size_t bad = utf8::find_invalid(text); bad != std::string_view::npos) {
    char msg[96];
    std::snprintf(msg, sizeof(msg), "encode: the text is not valid UTF-8 (byte 0x%02X at offset %zu)",
                  static_cast<unsigned char>(text[bad]), bad);
    throw Error(msg);
  }
  Pieces pieces = m.added.split(text, m.normalizer.get());
  if (m.pre_tokenizer) m.pre_tokenizer->pre_tokenize(pieces);
  std::vector<int32_t> ids;
  ids.reserve(text.size() / 3 + 4);
  for (const Piece& p : pieces) {
    if (p.token >= 0) {
      ids.push_back(p.token);
    } else {
      m.model->tokenize(p.text, ids);
    }
  }
  if (m.post_processor) m.post_processor->process(ids, add_special_tokens);
  return ids;
}

std::optional<std::string_view> Tokenizer::id_to_token(int32_t id) const {
  if (const AddedToken* t = impl_->added.by_id(id)) return std::string_view(t->content);
  if (const std::string* s = impl_->model->id_to_token(id)) return std::string_view(*s);
  return std::nullopt;
}

int32_t Tokenizer::token_to_id(std::string_view token) const { return impl_->token_to_id(token); }

bool Tokenizer::is_special(int32_t id) const {
  const auto tok = id_to_token(id);
  return tok && impl_->special_contents.count(std::string(*tok)) > 0;
}

std::string Tokenizer::decode_tokens(std::vector<std::string> tokens) const {
  if (!impl_->decoder) {
    std::string out;
    for (size_t i = 0; i < tokens.size(); ++i) {
      if (i) out.push_back(' ');
      out += tokens[i];
    }
    return out;
  }
  impl_->decoder->decode_chain(tokens);
  std::string out;
  for (const auto& t : tokens) out += t;
  return out;
}

std::string Tokenizer::decode(std::span<const int32_t> ids, bool skip_special_tokens) const {
  std::vector<std::string> tokens;
  tokens.reserve(ids.size());
  for (int32_t id : ids) {
    const auto tok = id_to_token(id);
    if (!tok) continue;
    if (skip_special_tokens && impl_->special_contents.count(std::string(*tok))) continue;
    tokens.emplace_back(*tok);
  }
  return decode_tokens(std::move(tokens));
}

bool Tokenizer::decoder_is_position_dependent() const { return impl_->decoder_position_dependent; }

bool Tokenizer::is_byte_fallback_token(int32_t id) const {
  if (!impl_->decoder_byte_fallback) return false;
  const auto tok = id_to_token(id);
  return tok && tok->size() == 6 && tok->compare(0, 3, "<0x") == 0 && (*tok)[5] == '>';
}
int32_t Tokenizer::vocab_size() const { return impl_->vocab_bound; }
std::optional<int32_t> Tokenizer::bos_token_id() const { return impl_->bos_id; }
std::optional<int32_t> Tokenizer::pad_token_id() const { return impl_->pad_id; }
const std::vector<int32_t>& Tokenizer::eos_token_ids() const { return impl_->eos_ids; }
const std::map<std::string, std::string>& Tokenizer::special_token_strings() const { return impl_->special_strings; }

const std::string* Tokenizer::chat_template(std::string_view name) const {
  const auto it = impl_->templates.find(name);
  return it == impl_->templates.end() ? nullptr : &it->second;
}

std::vector<std::string> Tokenizer::chat_template_names() const {
  std::vector<std::string> names;
  for (const auto& [k, v] : impl_->templates) names.push_back(k);
  return names;
}

std::shared_ptr<const jinja::Template> Tokenizer::compiled_chat_template(std::string_view name) const {
  std::lock_guard<std::mutex> lock(impl_->compiled_mu);
  const auto it = impl_->compiled.find(name);
  if (it != impl_->compiled.end()) return it->second;
  const std::string* source = chat_template(name);
  if (!source) {
    throw Error(Code::not_found, impl_->name + ": no chat template named \"" + std::string(name) +
                                     "\" (tokenizer_config.json has no chat_template, or not that one)");
  }
  auto compiled = jinja::Template::parse(*source);
  impl_->compiled.emplace(std::string(name), compiled);
  return compiled;
}

}  // namespace banyan::core
