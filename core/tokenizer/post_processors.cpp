// Post-processors: TemplateProcessing, BertProcessing, RobertaProcessing, ByteLevel (no
// change to ids), Sequence. Only single sequences are encoded here.
#include <map>
#include <string>
#include <vector>

#include "core/tokenizer/components.h"

namespace banyan::core {
namespace {

class Template final : public PostProcessor {
 public:
  // Each item is a run of special-token ids, or (empty with is_sequence) the sequence itself.
  struct Item {
    bool is_sequence = false;
    std::vector<int32_t> ids;
  };
  explicit Template(std::vector<Item> items) : items_(std::move(items)) {}
  void process(std::vector<int32_t>& ids, bool add_special_tokens) const override {
    if (!add_special_tokens) return;
    std::vector<int32_t> out;
    out.reserve(ids.size() + 4);
    for (const Item& it : items_) {
      if (it.is_sequence) {
        out.insert(out.end(), ids.begin(), ids.end());
      } else {
        out.insert(out.end(), it.ids.begin(), it.ids.end());
      }
    }
    ids = std::move(out);
  }

 private:
  std::vector<Item> items_;
};

class NoChange final : public PostProcessor {
 public:
  void process(std::vector<int32_t>&, bool) const override {}
};

class Sequence final : public PostProcessor {
 public:
  explicit Sequence(std::vector<std::unique_ptr<PostProcessor>> items) : items_(std::move(items)) {}
  void process(std::vector<int32_t>& ids, bool add_special_tokens) const override {
    for (const auto& p : items_) p->process(ids, add_special_tokens);
  }

 private:
  std::vector<std::unique_ptr<PostProcessor>> items_;
};

int32_t token_pair_id(const json::Node& node, const char* key) {
  const json::Node pair = node.child(key);
  if (!pair.j.is_array() || pair.j.size() != 2 || !pair.j[1].is_number_integer())
    pair.fail("must be [token, id]");
  return pair.j[1].get<int32_t>();
}

std::unique_ptr<PostProcessor> make_template(const json::Node& node) {
  std::map<std::string, std::vector<int32_t>> specials;
  if (node.has("special_tokens")) {
    const json::Node st = node.child("special_tokens");
    for (auto it = st.j.begin(); it != st.j.end(); ++it) {
      const json::Node tok{it.value(), st.where + "." + it.key()};
      const json::Node ids = tok.array("ids");
      std::vector<int32_t> v;
      for (const auto& x : ids.j) {
        if (!x.is_number_integer()) ids.fail("ids must be integers");
        v.push_back(x.get<int32_t>());
      }
      specials[tok.has("id") ? tok.str("id") : it.key()] = std::move(v);
    }
  }
  const json::Node single = node.array("single");
  std::vector<Template::Item> items;
  for (size_t i = 0; i < single.j.size(); ++i) {
    const json::Node piece = single.at(i);
    if (piece.has("Sequence")) {
      const json::Node seq = piece.child("Sequence");
      if (seq.str_or("id", "A") != "A") seq.fail("a single-sequence template may only use sequence A");
      items.push_back({true, {}});
    } else if (piece.has("SpecialToken")) {
      const json::Node sp = piece.child("SpecialToken");
      const std::string id = sp.str("id");
      const auto it = specials.find(id);
      if (it == specials.end()) sp.fail("special token \"" + id + "\" is not in special_tokens");
      items.push_back({false, it->second});
    } else {
      piece.fail("a template piece must be {\"Sequence\": ...} or {\"SpecialToken\": ...}");
    }
  }
  return std::make_unique<Template>(std::move(items));
}

}  // namespace

std::unique_ptr<PostProcessor> make_post_processor(const json::Node& node) {
  const std::string type = node.type();
  if (type == "TemplateProcessing") return make_template(node);
  if (type == "ByteLevel") return std::make_unique<NoChange>();
  if (type == "BertProcessing" || type == "RobertaProcessing") {
    std::vector<Template::Item> items{{false, {token_pair_id(node, "cls")}},
                                      {true, {}},
                                      {false, {token_pair_id(node, "sep")}}};
    return std::make_unique<Template>(std::move(items));
  }
  if (type == "Sequence") {
    const json::Node list = node.array("processors");
    std::vector<std::unique_ptr<PostProcessor>> items;
    for (size_t i = 0; i < list.j.size(); ++i) items.push_back(make_post_processor(list.at(i)));
    return std::make_unique<Sequence>(std::move(items));
  }
  node.fail("unsupported post-processor type \"" + type +
            "\" (supported: TemplateProcessing, BertProcessing, RobertaProcessing, ByteLevel, Sequence)");
}

}  // namespace banyan::core
