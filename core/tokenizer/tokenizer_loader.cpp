// Building a Tokenizer from tokenizer.json, tokenizer_config.json, chat_template.jinja and
// generation_config.json, following what transformers (v5, tokenizers backend) does with them.
#include <algorithm>

#include "core/tokenizer/components.h"
#include "core/tokenizer/tokenizer_impl.h"

namespace banyan::core {
namespace {

constexpr const char* kNamedSpecialTokens[] = {"bos_token", "eos_token", "unk_token", "sep_token",
                                               "pad_token", "cls_token", "mask_token"};

json::Json parse_json(std::string_view text, const std::string& file) {
  try {
    return json::Json::parse(text.begin(), text.end());
  } catch (const json::Json::parse_error& e) {
    throw Error(file + ": invalid JSON: " + e.what());
  }
}

AddedToken read_added_token(const json::Node& n) {
  AddedToken t;
  t.content = n.str("content");
  t.special = n.boolean_or("special", false);
  t.normalized = n.boolean_or("normalized", !t.special);
  t.lstrip = n.boolean_or("lstrip", false);
  t.rstrip = n.boolean_or("rstrip", false);
  t.single_word = n.boolean_or("single_word", false);
  return t;
}

// A special token in tokenizer_config.json: a string or an AddedToken object.
std::optional<AddedToken> read_config_token(const json::Node& n) {
  if (n.j.is_null()) return std::nullopt;
  if (n.j.is_string()) {
    AddedToken t;
    t.content = n.j.get<std::string>();
    t.special = true;
    t.normalized = false;
    return t;
  }
  if (n.j.is_object()) {
    AddedToken t = read_added_token(n);
    if (!n.has("special")) t.special = true;
    if (!n.has("normalized")) t.normalized = !t.special;
    return t;
  }
  n.fail("a special token must be a string or an AddedToken object");
}

bool same_flags(const AddedToken& a, const AddedToken& b) {
  return a.special == b.special && a.normalized == b.normalized && a.lstrip == b.lstrip && a.rstrip == b.rstrip &&
         a.single_word == b.single_word;
}

// Adds a named special token the way transformers does: an existing token keeps its id and
// becomes special; a missing one is appended (unless only_existing).
void ensure_added(Tokenizer::Impl& impl, AddedToken t, int32_t& next_id, bool only_existing = false) {
  if (const AddedToken* existing = impl.added.by_content(t.content)) {
    if (!existing->special) {
      AddedToken updated = *existing;
      updated.special = true;
      impl.added.add(std::move(updated));
    }
    return;
  }
  const int32_t id = impl.model->token_to_id(t.content);
  if (id < 0 && only_existing) return;
  t.id = id >= 0 ? id : next_id++;
  t.special = true;
  impl.added.add(std::move(t));
}

// Special tokens that transformers' tokenizer classes name by default when the config does
// not (the v5 classes' constructor defaults).
struct ClassDefault {
  const char* tokenizer_class;
  const char* key;
  const char* content;
};
constexpr ClassDefault kClassDefaults[] = {
    {"GemmaTokenizer", "bos_token", "<bos>"}, {"GemmaTokenizer", "eos_token", "<eos>"},
    {"GemmaTokenizer", "unk_token", "<unk>"}, {"GemmaTokenizer", "pad_token", "<pad>"},
    {"GemmaTokenizer", "mask_token", "<mask>"},
};

void read_tokenizer_json(Tokenizer::Impl& impl, std::string_view text, const std::string& file) {
  const json::Json root = parse_json(text, file);
  const json::Node top{root, file + ":"};
  if (!root.is_object()) top.fail("expected a JSON object");
  if (!top.has("model")) top.fail("missing \"model\"");
  impl.model = BpeModel::load(top.child("model"));
  if (top.has("normalizer")) impl.normalizer = make_normalizer(top.child("normalizer"));
  if (top.has("pre_tokenizer")) impl.pre_tokenizer = make_pre_tokenizer(top.child("pre_tokenizer"));
  if (top.has("post_processor")) impl.post_processor = make_post_processor(top.child("post_processor"));
  if (top.has("decoder")) {
    impl.decoder = make_decoder(top.child("decoder"));
    const std::string dump = root["decoder"].dump();
    impl.decoder_position_dependent = dump.find("\"Metaspace\"") != std::string::npos ||
                                      dump.find("\"Strip\"") != std::string::npos ||
                                      dump.find("\"WordPiece\"") != std::string::npos;
    impl.decoder_byte_fallback = dump.find("\"ByteFallback\"") != std::string::npos;
  }
  if (top.has("added_tokens")) {
    const json::Node list = top.array("added_tokens");
    for (size_t i = 0; i < list.j.size(); ++i) {
      const json::Node n = list.at(i);
      AddedToken t = read_added_token(n);
      const int64_t id = n.integer("id");
      if (id < 0 || id > INT32_MAX) n.fail("invalid id");
      t.id = static_cast<int32_t>(id);
      impl.added.add(std::move(t));
    }
  }
}

void read_chat_templates(Tokenizer::Impl& impl, const json::Node& ct);

void read_config(Tokenizer::Impl& impl, std::string_view text, const std::string& file) {
  const json::Json root = parse_json(text, file);
  const json::Node top{root, file + ":"};
  if (!root.is_object()) top.fail("expected a JSON object");
  int32_t next_id = impl.model->id_bound();
  for (const AddedToken& t : impl.added.tokens()) next_id = std::max(next_id, t.id + 1);

  // added_tokens_decoder entries whose flags differ from tokenizer.json's are re-added.
  if (top.has("added_tokens_decoder")) {
    const json::Node dec = top.child("added_tokens_decoder");
    std::vector<std::pair<int64_t, AddedToken>> entries;
    for (auto it = dec.j.begin(); it != dec.j.end(); ++it) {
      const json::Node n{it.value(), dec.where + "." + it.key()};
      entries.emplace_back(std::strtoll(it.key().c_str(), nullptr, 10), read_added_token(n));
    }
    std::sort(entries.begin(), entries.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
    for (auto& [id, t] : entries) {
      const AddedToken* existing = impl.added.by_content(t.content);
      if (existing && same_flags(*existing, t)) continue;
      const int32_t known = impl.token_to_id(t.content);
      t.id = known >= 0 ? known : static_cast<int32_t>(id);
      next_id = std::max(next_id, t.id + 1);
      impl.added.add(std::move(t));
    }
  }
  for (const char* key : kNamedSpecialTokens) {
    if (!top.has(key)) continue;
    if (auto t = read_config_token(top.child(key))) {
      impl.special_strings[key] = t->content;
      ensure_added(impl, std::move(*t), next_id);
    }
  }
  impl.added.set_split_special_tokens(top.boolean_or("split_special_tokens", false));
  const std::string cls = top.str_or("tokenizer_class", "");
  for (const ClassDefault& d : kClassDefaults) {
    if (cls != d.tokenizer_class || root.contains(d.key)) continue;
    if (impl.token_to_id(d.content) < 0) continue;
    impl.special_strings[d.key] = d.content;
    AddedToken t;
    t.content = d.content;
    t.normalized = false;
    ensure_added(impl, std::move(t), next_id, /*only_existing=*/true);
  }
  for (const char* key : {"additional_special_tokens", "extra_special_tokens"}) {
    if (!top.has(key)) continue;
    const json::Node list = top.child(key);
    if (list.j.is_array()) {
      for (size_t i = 0; i < list.j.size(); ++i)
        if (auto t = read_config_token(list.at(i))) ensure_added(impl, std::move(*t), next_id);
    } else if (list.j.is_object()) {
      for (auto it = list.j.begin(); it != list.j.end(); ++it) {
        const json::Node n{it.value(), list.where + "." + it.key()};
        if (auto t = read_config_token(n)) {
          impl.special_strings[it.key()] = t->content;
          ensure_added(impl, std::move(*t), next_id);
        }
      }
    }
  }
  // Explicit add_bos_token / add_eos_token replace the post-processor (transformers v5).
  if (top.has("add_bos_token") || top.has("add_eos_token")) {
    std::vector<int32_t> before, after;
    auto named_id = [&](const char* key) -> int32_t {
      const auto it = impl.special_strings.find(key);
      return it == impl.special_strings.end() ? -1 : impl.token_to_id(it->second);
    };
    if (top.boolean_or("add_bos_token", false) && named_id("bos_token") >= 0) before.push_back(named_id("bos_token"));
    if (top.boolean_or("add_eos_token", false) && named_id("eos_token") >= 0) after.push_back(named_id("eos_token"));
    class Wrap final : public PostProcessor {
     public:
      Wrap(std::vector<int32_t> b, std::vector<int32_t> a) : b_(std::move(b)), a_(std::move(a)) {}
      void process(std::vector<int32_t>& ids, bool add) const override {
        if (!add) return;
        ids.insert(ids.begin(), b_.begin(), b_.end());
        ids.insert(ids.end(), a_.begin(), a_.end());
      }

     private:
      std::vector<int32_t> b_, a_;
    };
    impl.post_processor = std::make_unique<Wrap>(std::move(before), std::move(after));
  }
  if (top.has("chat_template")) read_chat_templates(impl, top.child("chat_template"));
}

void read_chat_templates(Tokenizer::Impl& impl, const json::Node& ct) {
  if (ct.j.is_string()) {
    impl.templates["default"] = ct.j.get<std::string>();
  } else if (ct.j.is_array()) {
    for (size_t i = 0; i < ct.j.size(); ++i) {
      const json::Node e = ct.at(i);
      impl.templates[e.str("name")] = e.str("template");
    }
  } else {
    ct.fail("must be a string or a list of {\"name\", \"template\"}");
  }
}

void read_generation_config(Tokenizer::Impl& impl, std::string_view text, const std::string& file) {
  const json::Json root = parse_json(text, file);
  const json::Node top{root, file + ":"};
  if (!root.is_object()) top.fail("expected a JSON object");
  if (top.has("eos_token_id")) {
    const json::Node e = top.child("eos_token_id");
    if (e.j.is_number_integer()) {
      impl.eos_ids.push_back(e.j.get<int32_t>());
    } else if (e.j.is_array()) {
      for (const auto& x : e.j) {
        if (!x.is_number_integer()) e.fail("must be an integer or a list of integers");
        impl.eos_ids.push_back(x.get<int32_t>());
      }
    } else {
      e.fail("must be an integer or a list of integers");
    }
  }
}

}  // namespace

void read_chat_template_json(Tokenizer::Impl& impl, std::string_view text, const std::string& file) {
  const json::Json root = parse_json(text, file);
  const json::Node top{root, file + ":"};
  if (!root.is_object() || !top.has("chat_template")) top.fail("expected an object with \"chat_template\"");
  read_chat_templates(impl, top.child("chat_template"));
}

std::shared_ptr<Tokenizer::Impl> load_tokenizer_impl(std::string_view tokenizer_json, std::string_view config_json,
                                                     std::string_view generation_json,
                                                     std::string_view chat_template_file, const std::string& name) {
  auto impl = std::make_shared<Tokenizer::Impl>();
  impl->name = name;
  const std::string prefix = name.empty() ? std::string() : name + "/";
  read_tokenizer_json(*impl, tokenizer_json, prefix + "tokenizer.json");
  if (!config_json.empty()) read_config(*impl, config_json, prefix + "tokenizer_config.json");
  if (!chat_template_file.empty()) impl->templates["default"] = std::string(chat_template_file);
  if (!generation_json.empty()) read_generation_config(*impl, generation_json, prefix + "generation_config.json");

  impl->added.finalize(impl->normalizer.get());
  impl->vocab_bound = impl->model->id_bound();
  for (const AddedToken& t : impl->added.tokens()) {
    impl->vocab_bound = std::max(impl->vocab_bound, t.id + 1);
    if (t.special) impl->special_contents.insert(t.content);
  }
  auto named = [&](const char* key) -> std::optional<int32_t> {
    const auto it = impl->special_strings.find(key);
    if (it == impl->special_strings.end()) return std::nullopt;
    const int32_t id = impl->token_to_id(it->second);
    return id >= 0 ? std::optional<int32_t>(id) : std::nullopt;
  };
  impl->bos_id = named("bos_token");
  impl->pad_id = named("pad_token");
  if (const auto eos = named("eos_token");
      eos && std::find(impl->eos_ids.begin(), impl->eos_ids.end(), *eos) == impl->eos_ids.end())
    impl->eos_ids.push_back(*eos);
  return impl;
}

}  // namespace banyan::core
