#include "core/tokenizer/unicode.h"

#include <algorithm>
#include <array>
#include <iterator>

#include "core/tokenizer/utf8.h"

namespace banyan::core::unicode {
namespace {

struct CategoryRange {
  char32_t lo, hi;
  uint8_t value;
};
struct CodeRange {
  char32_t lo, hi;
};
struct MappingEntry {
  char32_t cp;
  uint32_t offset;
  uint8_t len;
};
struct CompositionEntry {
  char32_t first, second, composite;
};

#include "core/tokenizer/unicode_tables.inc"

template <class T, size_t N>
const T* find_range(const T (&table)[N], char32_t c) {
  const T* it = std::upper_bound(std::begin(table), std::end(table), c,
                                 [](char32_t v, const T& r) { return v < r.lo; });
  if (it == std::begin(table)) return nullptr;
  --it;
  return c <= it->hi ? it : nullptr;
}

template <size_t N>
bool in_ranges(const CodeRange (&table)[N], char32_t c) {
  return find_range(table, c) != nullptr;
}

template <size_t N, size_t P>
bool append_mapping(const MappingEntry (&table)[N], const char32_t (&pool)[P], char32_t c,
                    std::u32string& out) {
  const MappingEntry* it = std::lower_bound(std::begin(table), std::end(table), c,
                                            [](const MappingEntry& e, char32_t v) { return e.cp < v; });
  if (it == std::end(table) || it->cp != c) return false;
  out.append(pool + it->offset, it->len);
  return true;
}

// Categories of the first 2048 code points, looked up directly.
const std::array<uint8_t, 0x800>& small_categories() {
  static const std::array<uint8_t, 0x800> table = [] {
    std::array<uint8_t, 0x800> t{};
    for (char32_t c = 0; c < 0x800; ++c) t[c] = find_range(kCategories, c)->value;
    return t;
  }();
  return table;
}

constexpr char32_t kSBase = 0xAC00, kLBase = 0x1100, kVBase = 0x1161, kTBase = 0x11A7;
constexpr int kLCount = 19, kVCount = 21, kTCount = 28, kNCount = kVCount * kTCount,
              kSCount = kLCount * kNCount;

void decompose(char32_t c, bool compat, std::u32string& out) {
  if (c >= kSBase && c < kSBase + kSCount) {
    const int s = static_cast<int>(c - kSBase);
    out.push_back(kLBase + s / kNCount);
    out.push_back(kVBase + (s % kNCount) / kTCount);
    if (s % kTCount) out.push_back(kTBase + s % kTCount);
    return;
  }
  const bool found = compat ? append_mapping(kCompatDecomposition, kCompatDecomposition_pool, c, out)
                            : append_mapping(kCanonicalDecomposition, kCanonicalDecomposition_pool, c, out);
  if (!found) out.push_back(c);
}

char32_t compose_pair(char32_t a, char32_t b) {
  if (a >= kLBase && a < kLBase + kLCount && b >= kVBase && b < kVBase + kVCount)
    return kSBase + ((a - kLBase) * kVCount + (b - kVBase)) * kTCount;
  if (a >= kSBase && a < kSBase + kSCount && (a - kSBase) % kTCount == 0 && b > kTBase &&
      b < kTBase + kTCount)
    return a + (b - kTBase);
  const CompositionEntry* it = std::lower_bound(
      std::begin(kCompositions), std::end(kCompositions), std::pair{a, b},
      [](const CompositionEntry& e, const std::pair<char32_t, char32_t>& v) {
        return e.first < v.first || (e.first == v.first && e.second < v.second);
      });
  if (it != std::end(kCompositions) && it->first == a && it->second == b) return it->composite;
  return 0;
}

void reorder(std::u32string& s) {
  // Stable insertion sort of each run of non-starters by combining class.
  for (size_t i = 1; i < s.size(); ++i) {
    const uint8_t cc = combining_class(s[i]);
    if (cc == 0) continue;
    size_t j = i;
    while (j > 0) {
      const uint8_t prev = combining_class(s[j - 1]);
      if (prev == 0 || prev <= cc) break;
      std::swap(s[j], s[j - 1]);
      --j;
    }
  }
}

std::u32string compose(const std::u32string& s) {
  std::u32string out;
  out.reserve(s.size());
  long starter = -1;
  int last_cc = -1;  // class of the last character kept after the starter, -1 if none
  for (char32_t c : s) {
    const int cc = combining_class(c);
    if (starter >= 0 && !(last_cc != -1 && (last_cc == 0 || last_cc >= cc))) {
      if (const char32_t comp = compose_pair(out[static_cast<size_t>(starter)], c)) {
        out[static_cast<size_t>(starter)] = comp;
        continue;
      }
    }
    if (cc == 0) {
      starter = static_cast<long>(out.size());
      last_cc = -1;
    } else {
      last_cc = cc;
    }
    out.push_back(c);
  }
  return out;
}

bool unsafe(char32_t c, Form form) {
  switch (form) {
    case Form::NFC: return in_ranges(kNFCUnsafe, c);
    case Form::NFD: return in_ranges(kNFDUnsafe, c);
    case Form::NFKC: return in_ranges(kNFKCUnsafe, c);
    case Form::NFKD: return in_ranges(kNFKDUnsafe, c);
  }
  return true;
}

}  // namespace

const char* version() { return "15.0 (normalization: 9.0)"; }

bool assigned_by(char32_t c, int major, int minor) {
  const CategoryRange* r = find_range(kAges, c);
  return r && r->value != 0 && r->value <= major * 16 + minor;
}

Category category(char32_t c) {
  if (c < 0x800) return static_cast<Category>(small_categories()[c]);
  const CategoryRange* r = find_range(kCategories, c);
  return r ? static_cast<Category>(r->value) : Category::Cn;
}

bool is_white_space(char32_t c) { return in_ranges(kWhiteSpace, c); }
bool is_python_space(char32_t c) { return in_ranges(kPythonSpace, c); }
bool is_python_digit(char32_t c) { return in_ranges(kPythonDigit, c); }
bool is_python_numeric(char32_t c) { return in_ranges(kPythonNumeric, c); }
bool is_python_printable(char32_t c) { return in_ranges(kPythonPrintable, c); }

bool is_word(char32_t c) {
  const Category k = category(c);
  if (k <= Category::Nd || k == Category::Pc) return true;  // L*, M*, Nd, Pc
  return c == 0x200C || c == 0x200D || in_ranges(kAlphabetic, c);
}

void append_lower(std::u32string& out, char32_t c) {
  if (!append_mapping(kLower, kLower_pool, c, out)) out.push_back(c);
}
void append_upper(std::u32string& out, char32_t c) {
  if (!append_mapping(kUpper, kUpper_pool, c, out)) out.push_back(c);
}
void append_title(std::u32string& out, char32_t c) {
  if (!append_mapping(kTitle, kTitle_pool, c, out)) out.push_back(c);
}
bool has_lower(char32_t c) {
  std::u32string tmp;
  return append_mapping(kLower, kLower_pool, c, tmp);
}
bool has_upper(char32_t c) {
  std::u32string tmp;
  return append_mapping(kUpper, kUpper_pool, c, tmp);
}

uint8_t combining_class(char32_t c) {
  if (c < 0x300) return 0;
  const CategoryRange* r = find_range(kCombiningClasses, c);
  return r ? r->value : 0;
}

std::u32string normalize(std::u32string_view text, Form form) {
  const bool compat = form == Form::NFKC || form == Form::NFKD;
  std::u32string d;
  d.reserve(text.size() + 8);
  for (char32_t c : text) decompose(c, compat, d);
  reorder(d);
  if (form == Form::NFD || form == Form::NFKD) return d;
  return compose(d);
}

std::string normalize(std::string_view text, Form form) {
  size_t i = 0;
  bool needed = false;
  while (i < text.size()) {
    if (static_cast<unsigned char>(text[i]) < 0x80) {
      ++i;
      continue;
    }
    if (unsafe(utf8::next(text, i), form)) {
      needed = true;
      break;
    }
  }
  if (!needed) return std::string(text);
  return utf8::encode(normalize(utf8::decode(text), form));
}

}  // namespace banyan::core::unicode
