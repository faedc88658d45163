// Normalizers: NFC, NFD, NFKC, NFKD, Lowercase, Strip, StripAccents, Replace, Prepend, Sequence.
#include <string>
#include <vector>

#include "core/tokenizer/components.h"
#include "core/tokenizer/unicode.h"
#include "core/tokenizer/utf8.h"

namespace banyan::core {
namespace {

class UnicodeForm final : public Normalizer {
 public:
  explicit UnicodeForm(unicode::Form form) : form_(form) {}
  void normalize(Piece& p) const override { p.text = unicode::normalize(p.text, form_); }

 private:
  unicode::Form form_;
};

class Lowercase final : public Normalizer {
 public:
  void normalize(Piece& p) const override {
    std::string out;
    out.reserve(p.text.size());
    std::u32string tmp;
    size_t i = 0;
    const std::string& s = p.text;
    while (i < s.size()) {
      const auto b = static_cast<unsigned char>(s[i]);
      if (b < 0x80) {
        out.push_back(b >= 'A' && b <= 'Z' ? static_cast<char>(b + 32) : static_cast<char>(b));
        ++i;
        continue;
      }
      tmp.clear();
      unicode::append_lower(tmp, utf8::next(s, i));
      for (char32_t c : tmp) utf8::append(out, c);
    }
    p.text = std::move(out);
  }
};

class Strip final : public Normalizer {
 public:
  Strip(bool left, bool right) : left_(left), right_(right) {}
  void normalize(Piece& p) const override {
    const std::string& s = p.text;
    size_t begin = 0, end = s.size();
    if (left_) {
      size_t i = 0;
      while (i < s.size()) {
        size_t j = i;
        if (!unicode::is_white_space(utf8::next(s, j))) break;
        i = j;
      }
      begin = i;
    }
    if (right_) {
      // Walk back one character at a time.
      while (end > begin) {
        size_t start = end - 1;
        while (start > begin && (static_cast<unsigned char>(s[start]) & 0xC0) == 0x80) --start;
        size_t j = start;
        if (!unicode::is_white_space(utf8::next(s, j))) break;
        end = start;
      }
    }
    if (begin > 0) {
      p.at_origin = p.at_origin && begin <= p.inserted;
      p.inserted = p.inserted > begin ? static_cast<uint32_t>(p.inserted - begin) : 0;
    }
    p.text = s.substr(begin, end - begin);
  }

 private:
  bool left_, right_;
};

class StripAccents final : public Normalizer {
 public:
  void normalize(Piece& p) const override {
    std::string out;
    out.reserve(p.text.size());
    size_t i = 0;
    while (i < p.text.size()) {
      const size_t start = i;
      const char32_t c = utf8::next(p.text, i);
      // tokenizers' combining-mark test comes with its Unicode 9.0 normalization tables.
      if (!(unicode::is_mark(c) && unicode::assigned_by(c, 9, 0))) out.append(p.text, start, i - start);
    }
    p.text = std::move(out);
  }
};

class Replace final : public Normalizer {
 public:
  Replace(std::shared_ptr<const Pattern> pattern, std::string content)
      : pattern_(std::move(pattern)), content_(std::move(content)) {}
  void normalize(Piece& p) const override {
    std::vector<std::pair<size_t, size_t>> m;
    find_matches(*pattern_, p.text, m);
    if (m.empty()) return;
    std::string out;
    out.reserve(p.text.size());
    size_t prev = 0;
    for (const auto& [s, e] : m) {
      out.append(p.text, prev, s - prev);
      out += content_;
      prev = e;
    }
    out.append(p.text, prev, std::string::npos);
    p.text = std::move(out);
  }

 private:
  std::shared_ptr<const Pattern> pattern_;
  std::string content_;
};

class Prepend final : public Normalizer {
 public:
  explicit Prepend(std::string prefix) : prefix_(std::move(prefix)) {}
  void normalize(Piece& p) const override {
    if (p.text.empty()) return;
    p.text.insert(0, prefix_);
    p.inserted += static_cast<uint32_t>(prefix_.size());
  }

 private:
  std::string prefix_;
};

class Sequence final : public Normalizer {
 public:
  explicit Sequence(std::vector<std::unique_ptr<Normalizer>> items) : items_(std::move(items)) {}
  void normalize(Piece& p) const override {
    for (const auto& n : items_) n->normalize(p);
  }

 private:
  std::vector<std::unique_ptr<Normalizer>> items_;
};

}  // namespace

std::unique_ptr<Normalizer> make_normalizer(const json::Node& node) {
  const std::string type = node.type();
  if (type == "NFC") return std::make_unique<UnicodeForm>(unicode::Form::NFC);
  if (type == "NFD") return std::make_unique<UnicodeForm>(unicode::Form::NFD);
  if (type == "NFKC") return std::make_unique<UnicodeForm>(unicode::Form::NFKC);
  if (type == "NFKD") return std::make_unique<UnicodeForm>(unicode::Form::NFKD);
  if (type == "Lowercase") return std::make_unique<Lowercase>();
  if (type == "StripAccents") return std::make_unique<StripAccents>();
  if (type == "Strip")
    return std::make_unique<Strip>(node.boolean_or("strip_left", true), node.boolean_or("strip_right", true));
  if (type == "Replace") return std::make_unique<Replace>(make_pattern(node.child("pattern")), node.str("content"));
  if (type == "Prepend") return std::make_unique<Prepend>(node.str("prepend"));
  if (type == "Sequence") {
    const json::Node list = node.array("normalizers");
    std::vector<std::unique_ptr<Normalizer>> items;
    for (size_t i = 0; i < list.j.size(); ++i) items.push_back(make_normalizer(list.at(i)));
    return std::make_unique<Sequence>(std::move(items));
  }
  node.fail("unsupported normalizer type \"" + type +
            "\" (supported: NFC, NFD, NFKC, NFKD, Lowercase, Strip, StripAccents, Replace, Prepend, Sequence)");
}

}  // namespace banyan::core
