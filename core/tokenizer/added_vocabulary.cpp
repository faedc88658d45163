#include "core/tokenizer/added_vocabulary.h"

#include <algorithm>
#include <array>
#include <map>

#include "core/tokenizer/unicode.h"
#include "core/tokenizer/utf8.h"

namespace banyan::core {

// A byte trie over token contents, answering "the longest token starting here".
class AddedVocabulary::Matcher {
 public:
  void insert(std::string_view key, int32_t value) {
    if (key.empty()) return;
    if (build_.empty()) build_.emplace_back();
    size_t node = 0;
    for (char ch : key) {
      const auto b = static_cast<unsigned char>(ch);
      auto it = build_[node].children.find(b);
      if (it == build_[node].children.end()) {
        build_.emplace_back();
        it = build_[node].children.emplace(b, static_cast<int32_t>(build_.size() - 1)).first;
      }
      node = static_cast<size_t>(it->second);
    }
    if (build_[node].value < 0) build_[node].value = value;
  }

  void freeze() {
    nodes_.clear();
    edges_.clear();
    root_.fill(-1);
    for (const BuildNode& bn : build_) {
      nodes_.push_back({static_cast<int32_t>(edges_.size()), static_cast<int32_t>(bn.children.size()), bn.value});
      for (const auto& [b, child] : bn.children) edges_.push_back({b, child});
    }
    if (!build_.empty())
      for (const auto& [b, child] : build_[0].children) root_[b] = child;
    build_.clear();
  }

  bool empty() const { return nodes_.size() <= 1; }

  /// Length and value of the longest key that text[pos..] starts with; {0, -1} if none.
  std::pair<size_t, int32_t> longest(std::string_view text, size_t pos) const {
    int32_t node = root_[static_cast<unsigned char>(text[pos])];
    size_t best_len = 0;
    int32_t best = -1;
    size_t i = pos + 1;
    while (node >= 0) {
      const Node& n = nodes_[static_cast<size_t>(node)];
      if (n.value >= 0) {
        best = n.value;
        best_len = i - pos;
      }
      if (i >= text.size() || n.count == 0) break;
      const auto b = static_cast<unsigned char>(text[i]);
      const Edge* first = edges_.data() + n.first;
      const Edge* last = first + n.count;
      const Edge* e = std::lower_bound(first, last, b, [](const Edge& x, unsigned char v) { return x.byte < v; });
      node = (e != last && e->byte == b) ? e->child : -1;
      ++i;
    }
    return {best_len, best};
  }

  bool may_start(unsigned char b) const { return root_[b] >= 0; }

 private:
  struct BuildNode {
    std::map<unsigned char, int32_t> children;
    int32_t value = -1;
  };
  struct Node {
    int32_t first, count, value;
  };
  struct Edge {
    unsigned char byte;
    int32_t child;
  };
  std::vector<BuildNode> build_;
  std::vector<Node> nodes_;
  std::vector<Edge> edges_;
  std::array<int32_t, 256> root_{};
};

namespace {

bool last_char_is_word(std::string_view s) {
  if (s.empty()) return false;
  size_t start = s.size() - 1;
  while (start > 0 && (static_cast<unsigned char>(s[start]) & 0xC0) == 0x80) --start;
  size_t i = start;
  return unicode::is_word(utf8::next(s, i));
}

bool first_char_is_word(std::string_view s) {
  if (s.empty()) return false;
  size_t i = 0;
  return unicode::is_word(utf8::next(s, i));
}

// Start of the run of whitespace that ends s.
size_t trailing_space_start(std::string_view s) {
  size_t end = s.size();
  while (end > 0) {
    size_t start = end - 1;
    while (start > 0 && (static_cast<unsigned char>(s[start]) & 0xC0) == 0x80) --start;
    size_t i = start;
    if (!unicode::is_white_space(utf8::next(s, i))) break;
    end = start;
  }
  return end;
}

// Length of the run of whitespace that starts s.
size_t leading_space_length(std::string_view s) {
  size_t i = 0;
  while (i < s.size()) {
    size_t j = i;
    if (!unicode::is_white_space(utf8::next(s, j))) break;
    i = j;
  }
  return i;
}

}  // namespace

AddedVocabulary::AddedVocabulary() : raw_(std::make_unique<Matcher>()), normalized_(std::make_unique<Matcher>()) {}
AddedVocabulary::~AddedVocabulary() = default;
AddedVocabulary::AddedVocabulary(AddedVocabulary&&) noexcept = default;
AddedVocabulary& AddedVocabulary::operator=(AddedVocabulary&&) noexcept = default;

void AddedVocabulary::add(AddedToken token) {
  if (token.content.empty()) return;
  const auto it = by_content_.find(token.content);
  if (it != by_content_.end()) {
    AddedToken& old = tokens_[it->second];
    if (old.id != token.id) by_id_.erase(old.id);
    old = token;
    by_id_[token.id] = it->second;
    return;
  }
  by_content_.emplace(token.content, tokens_.size());
  by_id_[token.id] = tokens_.size();
  tokens_.push_back(std::move(token));
}

void AddedVocabulary::finalize(const Normalizer* normalizer) {
  raw_ = std::make_unique<Matcher>();
  normalized_ = std::make_unique<Matcher>();
  // Special tokens take part first, as in tokenizers (it only matters for equal contents).
  for (int pass = 0; pass < 2; ++pass) {
    for (size_t i = 0; i < tokens_.size(); ++i) {
      const AddedToken& t = tokens_[i];
      if (t.special != (pass == 0)) continue;
      if (!t.normalized) {
        raw_->insert(t.content, static_cast<int32_t>(i));
      } else {
        Piece p{t.content, -1, true, 0};
        if (normalizer) normalizer->normalize(p);
        normalized_->insert(p.text, static_cast<int32_t>(i));
      }
    }
  }
  raw_->freeze();
  normalized_->freeze();
}

void AddedVocabulary::split_raw(Piece&& piece, const Matcher& matcher, Pieces& out) const {
  const std::string& s = piece.text;
  if (matcher.empty()) {
    if (!s.empty()) out.push_back(std::move(piece));
    return;
  }
  size_t start_offset = 0;
  auto emit_text = [&](size_t a, size_t b) {
    if (a >= b) return;
    Piece p;
    p.text.assign(s, a, b - a);
    p.at_origin = piece.at_origin && a <= piece.inserted;
    p.inserted = a < piece.inserted ? static_cast<uint32_t>(std::min<size_t>(piece.inserted - a, b - a)) : 0;
    out.push_back(std::move(p));
  };
  size_t i = 0;
  while (i < s.size()) {
    if (!matcher.may_start(static_cast<unsigned char>(s[i]))) {
      ++i;
      continue;
    }
    const auto [len, idx] = matcher.longest(s, i);
    if (idx < 0) {
      ++i;
      continue;
    }
    size_t start = i, stop = i + len;
    i = stop;
    const AddedToken& tok = tokens_[static_cast<size_t>(idx)];
    if (split_special_ && tok.special) continue;
    if (tok.single_word) {
      const bool start_space = start == 0 || !last_char_is_word(std::string_view(s).substr(0, start));
      const bool stop_space = stop == s.size() || !first_char_is_word(std::string_view(s).substr(stop));
      if (!start_space || !stop_space) continue;
    }
    if (tok.lstrip) start = std::max(trailing_space_start(std::string_view(s).substr(0, start)), start_offset);
    if (tok.rstrip) stop += leading_space_length(std::string_view(s).substr(stop));
    start = std::max(start, start_offset);
    emit_text(start_offset, start);
    Piece t;
    t.text.assign(s, start, stop - start);
    t.token = tok.id;
    out.push_back(std::move(t));
    start_offset = stop;
  }
  emit_text(start_offset, s.size());
}

Pieces AddedVocabulary::split(std::string_view text, const Normalizer* normalizer) const {
  Pieces raw;
  split_raw(Piece{std::string(text), -1, true, 0}, *raw_, raw);
  Pieces out;
  out.reserve(raw.size());
  for (Piece& p : raw) {
    if (p.token >= 0) {
      out.push_back(std::move(p));
      continue;
    }
    if (normalizer) normalizer->normalize(p);
    split_raw(std::move(p), *normalized_, out);
  }
  return out;
}

const AddedToken* AddedVocabulary::by_id(int32_t id) const {
  const auto it = by_id_.find(id);
  return it == by_id_.end() ? nullptr : &tokens_[it->second];
}

const AddedToken* AddedVocabulary::by_content(std::string_view content) const {
  const auto it = by_content_.find(std::string(content));
  return it == by_content_.end() ? nullptr : &tokens_[it->second];
}

}  // namespace banyan::core
