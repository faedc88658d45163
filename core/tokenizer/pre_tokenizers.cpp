// Pre-tokenizers: Split, ByteLevel, Metaspace, Digits, Punctuation, Whitespace,
// WhitespaceSplit, BertPreTokenizer, CharDelimiterSplit, Sequence.
#include <optional>
#include <string>
#include <vector>

#include "core/tokenizer/byte_level.h"
#include "core/tokenizer/components.h"
#include "core/tokenizer/regex.h"
#include "core/tokenizer/unicode.h"
#include "core/tokenizer/utf8.h"

namespace banyan::core {
namespace {

using Matches = std::vector<std::pair<size_t, size_t>>;

// One match per character for which pred holds (how Hugging Face splits on a char predicate).
template <class Pred>
void char_matches(std::string_view s, Pred pred, Matches& out) {
  size_t i = 0;
  while (i < s.size()) {
    const size_t start = i;
    if (pred(utf8::next(s, i))) out.emplace_back(start, i);
  }
}

SplitBehavior parse_behavior(const json::Node& node, const char* key, SplitBehavior dflt) {
  if (!node.has(key)) return dflt;
  const std::string b = node.str(key);
  if (b == "Removed") return SplitBehavior::Removed;
  if (b == "Isolated") return SplitBehavior::Isolated;
  if (b == "MergedWithPrevious") return SplitBehavior::MergedWithPrevious;
  if (b == "MergedWithNext") return SplitBehavior::MergedWithNext;
  if (b == "Contiguous") return SplitBehavior::Contiguous;
  node.fail("unknown split behavior \"" + b + "\"");
}

class Split final : public PreTokenizer {
 public:
  Split(std::shared_ptr<const Pattern> pattern, SplitBehavior behavior, bool invert)
      : pattern_(std::move(pattern)), behavior_(behavior), invert_(invert) {}
  void pre_tokenize(Pieces& pieces) const override {
    Matches m;
    split_pieces(pieces, [&](Piece&& p, Pieces& out) {
      m.clear();
      find_matches(*pattern_, p.text, m);
      split_piece(std::move(p), m, behavior_, invert_, out);
    });
  }

 private:
  std::shared_ptr<const Pattern> pattern_;
  SplitBehavior behavior_;
  bool invert_;
};

// Splits on every character for which Pred holds.
template <class Pred>
class CharSplit final : public PreTokenizer {
 public:
  CharSplit(Pred pred, SplitBehavior behavior) : pred_(pred), behavior_(behavior) {}
  void pre_tokenize(Pieces& pieces) const override {
    Matches m;
    split_pieces(pieces, [&](Piece&& p, Pieces& out) {
      m.clear();
      char_matches(p.text, pred_, m);
      split_piece(std::move(p), m, behavior_, false, out);
    });
  }

 private:
  Pred pred_;
  SplitBehavior behavior_;
};

template <class Pred>
std::unique_ptr<PreTokenizer> char_split(Pred pred, SplitBehavior behavior) {
  return std::make_unique<CharSplit<Pred>>(pred, behavior);
}

bool is_punctuation(char32_t c) {
  return (c < 0x80 && ((c >= '!' && c <= '/') || (c >= ':' && c <= '@') || (c >= '[' && c <= '`') ||
                       (c >= '{' && c <= '~'))) ||
         (unicode::is_punctuation(c) && unicode::assigned_by(c, 8, 0));  // unicode_categories is Unicode 8.0
}

// Hugging Face's Whitespace: keeps the matches of \w+|[^\w\s]+ (Unicode \w and \s).
class Whitespace final : public PreTokenizer {
 public:
  void pre_tokenize(Pieces& pieces) const override {
    Matches m;
    split_pieces(pieces, [&](Piece&& p, Pieces& out) {
      m.clear();
      const std::string& s = p.text;
      size_t i = 0;
      int run = 0;  // 0: none, 1: word run, 2: other run
      size_t run_start = 0;
      while (i < s.size()) {
        const size_t start = i;
        const char32_t c = utf8::next(s, i);
        const int kind = unicode::is_word(c) ? 1 : unicode::is_white_space(c) ? 0 : 2;
        if (kind != run) {
          if (run) m.emplace_back(run_start, start);
          run = kind;
          run_start = start;
        }
      }
      if (run) m.emplace_back(run_start, s.size());
      split_piece(std::move(p), m, SplitBehavior::Removed, true, out);
    });
  }
};

class ByteLevel final : public PreTokenizer {
 public:
  ByteLevel(bool add_prefix_space, bool use_regex, const std::string& where)
      : add_prefix_space_(add_prefix_space) {
    if (use_regex)
      regex_.emplace("'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+", where);
  }
  void pre_tokenize(Pieces& pieces) const override {
    Matches m;
    split_pieces(pieces, [&](Piece&& p, Pieces& out) {
      if (add_prefix_space_ && (p.text.empty() || p.text[0] != ' ')) {
        p.text.insert(0, 1, ' ');
        ++p.inserted;
      }
      const size_t first = out.size();
      if (regex_) {
        m.clear();
        regex_->find_all(p.text, m);
        split_piece(std::move(p), m, SplitBehavior::Isolated, false, out);
      } else if (!p.text.empty()) {
        out.push_back(std::move(p));
      }
      for (size_t k = first; k < out.size(); ++k) {
        std::string mapped;
        mapped.reserve(out[k].text.size() * 2);
        byte_level::append_mapped(mapped, out[k].text);
        out[k].text = std::move(mapped);
      }
    });
  }

 private:
  bool add_prefix_space_;
  std::optional<Regex> regex_;
};

class Metaspace final : public PreTokenizer {
 public:
  enum class Prepend { Always, Never, First };
  Metaspace(char32_t replacement, Prepend prepend, bool split)
      : replacement_(utf8::encode(replacement)), prepend_(prepend), split_(split) {}
  void pre_tokenize(Pieces& pieces) const override {
    Matches m;
    split_pieces(pieces, [&](Piece&& p, Pieces& out) {
      std::string replaced;
      replaced.reserve(p.text.size() + 8);
      for (char c : p.text) {
        if (c == ' ') {
          replaced += replacement_;
        } else {
          replaced.push_back(c);
        }
      }
      p.text = std::move(replaced);
      const bool starts = p.text.compare(0, replacement_.size(), replacement_) == 0;
      if (!starts && (prepend_ == Prepend::Always || (prepend_ == Prepend::First && p.at_origin))) {
        p.text.insert(0, replacement_);
        p.inserted += static_cast<uint32_t>(replacement_.size());
      }
      if (!split_) {
        if (!p.text.empty()) out.push_back(std::move(p));
        return;
      }
      m.clear();
      size_t pos = 0;
      while ((pos = p.text.find(replacement_, pos)) != std::string::npos) {
        m.emplace_back(pos, pos + replacement_.size());
        pos += replacement_.size();
      }
      split_piece(std::move(p), m, SplitBehavior::MergedWithNext, false, out);
    });
  }

 private:
  std::string replacement_;
  Prepend prepend_;
  bool split_;
};

class BertPreTokenizer final : public PreTokenizer {
 public:
  void pre_tokenize(Pieces& pieces) const override {
    spaces_.pre_tokenize(pieces);
    punct_.pre_tokenize(pieces);
  }

 private:
  static bool space(char32_t c) { return unicode::is_white_space(c); }
  static bool punct(char32_t c) { return is_punctuation(c); }
  CharSplit<bool (*)(char32_t)> spaces_{&space, SplitBehavior::Removed};
  CharSplit<bool (*)(char32_t)> punct_{&punct, SplitBehavior::Isolated};
};

class Sequence final : public PreTokenizer {
 public:
  explicit Sequence(std::vector<std::unique_ptr<PreTokenizer>> items) : items_(std::move(items)) {}
  void pre_tokenize(Pieces& pieces) const override {
    for (const auto& t : items_) t->pre_tokenize(pieces);
  }

 private:
  std::vector<std::unique_ptr<PreTokenizer>> items_;
};

}  // namespace

std::unique_ptr<PreTokenizer> make_pre_tokenizer(const json::Node& node) {
  const std::string type = node.type();
  if (type == "Split") {
    return std::make_unique<Split>(make_pattern(node.child("pattern")),
                                   parse_behavior(node, "behavior", SplitBehavior::Isolated),
                                   node.boolean_or("invert", false));
  }
  if (type == "ByteLevel")
    return std::make_unique<ByteLevel>(node.boolean_or("add_prefix_space", true), node.boolean_or("use_regex", true),
                                       node.where);
  if (type == "Metaspace") {
    Metaspace::Prepend prepend = Metaspace::Prepend::Always;
    const std::string scheme = node.str_or("prepend_scheme", "always");
    if (scheme == "first") {
      prepend = Metaspace::Prepend::First;
    } else if (scheme == "never") {
      prepend = Metaspace::Prepend::Never;
    } else if (scheme != "always") {
      node.fail("unknown prepend_scheme \"" + scheme + "\"");
    }
    if (node.has("add_prefix_space") && !node.boolean_or("add_prefix_space", true)) prepend = Metaspace::Prepend::Never;
    return std::make_unique<Metaspace>(json::single_char(node, "replacement"), prepend, node.boolean_or("split", true));
  }
  if (type == "Digits") {
    const bool individual = node.boolean_or("individual_digits", false);
    return char_split([](char32_t c) { return unicode::is_numeric(c); },
                      individual ? SplitBehavior::Isolated : SplitBehavior::Contiguous);
  }
  if (type == "Punctuation")
    return char_split([](char32_t c) { return is_punctuation(c); },
                      parse_behavior(node, "behavior", SplitBehavior::Isolated));
  if (type == "Whitespace") return std::make_unique<Whitespace>();
  if (type == "WhitespaceSplit")
    return char_split([](char32_t c) { return unicode::is_white_space(c); }, SplitBehavior::Removed);
  if (type == "BertPreTokenizer") return std::make_unique<BertPreTokenizer>();
  if (type == "CharDelimiterSplit") {
    const char32_t d = json::single_char(node, "delimiter");
    return char_split([d](char32_t c) { return c == d; }, SplitBehavior::Removed);
  }
  if (type == "Sequence") {
    const json::Node list = node.array("pretokenizers");
    std::vector<std::unique_ptr<PreTokenizer>> items;
    for (size_t i = 0; i < list.j.size(); ++i) items.push_back(make_pre_tokenizer(list.at(i)));
    return std::make_unique<Sequence>(std::move(items));
  }
  node.fail("unsupported pre-tokenizer type \"" + type +
            "\" (supported: Split, ByteLevel, Metaspace, Digits, Punctuation, Whitespace, WhitespaceSplit, "
            "BertPreTokenizer, CharDelimiterSplit, Sequence)");
}

}  // namespace banyan::core
