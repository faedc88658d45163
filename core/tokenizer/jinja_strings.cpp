#include "core/tokenizer/jinja_strings.h"

#include <algorithm>
#include <cctype>

#include "core/tokenizer/jinja_interpreter.h"
#include "core/tokenizer/unicode.h"
#include "core/tokenizer/utf8.h"

namespace banyan::core::jinja::strings {
namespace {

using unicode::Category;

bool is_space(char32_t c) { return unicode::is_python_space(c); }

bool is_cased(char32_t c) {
  const Category k = unicode::category(c);
  return k == Category::Lu || k == Category::Ll || k == Category::Lt || unicode::has_lower(c) || unicode::has_upper(c);
}

bool is_case_ignorable(char32_t c) {
  const Category k = unicode::category(c);
  return k == Category::Mn || k == Category::Me || k == Category::Cf || k == Category::Lm || k == Category::Sk ||
         c == '\'' || c == '.' || c == ':' || c == '^' || c == '`' || c == 0xB7 || c == 0x2019;
}

// CPython's rule for a capital sigma at i: final form when a cased letter precedes it and
// none follows (skipping case-ignorable characters).
bool final_sigma(const std::u32string& u, size_t i) {
  size_t j = i;
  bool before = false;
  while (j > 0) {
    --j;
    if (is_case_ignorable(u[j])) continue;
    before = is_cased(u[j]);
    break;
  }
  if (!before) return false;
  for (size_t k = i + 1; k < u.size(); ++k) {
    if (is_case_ignorable(u[k])) continue;
    return !is_cased(u[k]);
  }
  return true;
}

std::string encode(const std::u32string& u) { return utf8::encode(u); }

}  // namespace

std::string strip(std::string_view s, const std::string* chars, bool left, bool right) {
  const std::u32string u = utf8::decode(s);
  const std::u32string set = chars ? utf8::decode(*chars) : std::u32string();
  auto strip_it = [&](char32_t c) { return chars ? set.find(c) != std::u32string::npos : is_space(c); };
  size_t lo = 0, hi = u.size();
  if (left)
    while (lo < hi && strip_it(u[lo])) ++lo;
  if (right)
    while (hi > lo && strip_it(u[hi - 1])) --hi;
  return encode(u.substr(lo, hi - lo));
}

std::vector<std::string> split_whitespace(std::string_view s, int64_t maxsplit, bool from_right) {
  std::u32string u = utf8::decode(s);
  if (from_right) std::reverse(u.begin(), u.end());
  std::vector<std::string> out;
  size_t i = 0;
  while (true) {
    while (i < u.size() && is_space(u[i])) ++i;
    if (i >= u.size()) break;
    if (maxsplit >= 0 && static_cast<int64_t>(out.size()) == maxsplit) {
      std::u32string rest = u.substr(i);  // Python keeps the rest's whitespace
      if (from_right) std::reverse(rest.begin(), rest.end());
      out.push_back(encode(rest));
      break;
    }
    size_t j = i;
    while (j < u.size() && !is_space(u[j])) ++j;
    std::u32string w = u.substr(i, j - i);
    if (from_right) std::reverse(w.begin(), w.end());
    out.push_back(encode(w));
    i = j;
  }
  if (from_right) std::reverse(out.begin(), out.end());
  return out;
}

std::vector<std::string> split(std::string_view s, std::string_view sep, int64_t maxsplit, bool from_right) {
  std::vector<std::string> out;
  if (!from_right) {
    size_t pos = 0;
    while (maxsplit < 0 || static_cast<int64_t>(out.size()) < maxsplit) {
      const size_t at = s.find(sep, pos);
      if (at == std::string_view::npos) break;
      out.emplace_back(s.substr(pos, at - pos));
      pos = at + sep.size();
    }
    out.emplace_back(s.substr(pos));
    return out;
  }
  size_t end = s.size();
  while (maxsplit < 0 || static_cast<int64_t>(out.size()) < maxsplit) {
    if (end < sep.size()) break;
    const size_t at = s.rfind(sep, end - sep.size());
    if (at == std::string_view::npos) break;
    out.emplace_back(s.substr(at + sep.size(), end - at - sep.size()));
    end = at;
  }
  out.emplace_back(s.substr(0, end));
  std::reverse(out.begin(), out.end());
  return out;
}

std::vector<std::string> splitlines(std::string_view s, bool keepends) {
  const std::u32string u = utf8::decode(s);
  std::vector<std::string> out;
  size_t i = 0, start = 0;
  auto is_break = [](char32_t c) {
    return c == '\n' || c == '\r' || c == 0x0B || c == 0x0C || c == 0x1C || c == 0x1D || c == 0x1E || c == 0x85 ||
           c == 0x2028 || c == 0x2029;
  };
  while (i < u.size()) {
    if (!is_break(u[i])) {
      ++i;
      continue;
    }
    size_t eol = i + 1;
    if (u[i] == '\r' && eol < u.size() && u[eol] == '\n') ++eol;
    out.push_back(encode(u.substr(start, (keepends ? eol : i) - start)));
    start = i = eol;
  }
  if (start < u.size()) out.push_back(encode(u.substr(start)));
  return out;
}

std::string upper(std::string_view s) {
  std::u32string out;
  size_t i = 0;
  while (i < s.size()) unicode::append_upper(out, utf8::next(s, i));
  return encode(out);
}

std::string lower(std::string_view s) {
  const std::u32string u = utf8::decode(s);
  std::u32string out;
  for (size_t i = 0; i < u.size(); ++i) {
    if (u[i] == 0x3A3) {
      out.push_back(final_sigma(u, i) ? 0x3C2 : 0x3C3);
    } else {
      unicode::append_lower(out, u[i]);
    }
  }
  return encode(out);
}

std::string title(std::string_view s) {
  const std::u32string u = utf8::decode(s);
  std::u32string out;
  bool prev_cased = false;
  for (size_t i = 0; i < u.size(); ++i) {
    if (!prev_cased) {
      unicode::append_title(out, u[i]);
    } else if (u[i] == 0x3A3) {
      out.push_back(final_sigma(u, i) ? 0x3C2 : 0x3C3);
    } else {
      unicode::append_lower(out, u[i]);
    }
    prev_cased = is_cased(u[i]);
  }
  return encode(out);
}

std::string capitalize(std::string_view s) {
  const std::u32string u = utf8::decode(s);
  std::u32string out;
  for (size_t i = 0; i < u.size(); ++i) {
    if (i == 0) {
      unicode::append_title(out, u[i]);
    } else if (u[i] == 0x3A3) {
      out.push_back(final_sigma(u, i) ? 0x3C2 : 0x3C3);
    } else {
      unicode::append_lower(out, u[i]);
    }
  }
  return encode(out);
}

std::string swapcase(std::string_view s) {
  const std::u32string u = utf8::decode(s);
  std::u32string out;
  for (size_t i = 0; i < u.size(); ++i) {
    const Category k = unicode::category(u[i]);
    if (k == Category::Lu) {
      if (u[i] == 0x3A3) {
        out.push_back(final_sigma(u, i) ? 0x3C2 : 0x3C3);
      } else {
        unicode::append_lower(out, u[i]);
      }
    } else if (k == Category::Ll) {
      unicode::append_upper(out, u[i]);
    } else {
      out.push_back(u[i]);
    }
  }
  return encode(out);
}

std::string replace(std::string_view s, std::string_view old, std::string_view rep, int64_t count) {
  std::string out;
  if (old.empty()) {
    // Python inserts rep before every character and at the end.
    int64_t n = 0;
    size_t i = 0;
    while (i <= s.size()) {
      if (count >= 0 && n >= count) {
        out.append(s.substr(i));
        break;
      }
      out.append(rep);
      ++n;
      if (i == s.size()) break;
      const size_t start = i;
      utf8::next(s, i);
      out.append(s.substr(start, i - start));
    }
    return out;
  }
  size_t pos = 0;
  int64_t n = 0;
  while (count < 0 || n < count) {
    const size_t at = s.find(old, pos);
    if (at == std::string_view::npos) break;
    out.append(s.substr(pos, at - pos));
    out.append(rep);
    pos = at + old.size();
    ++n;
  }
  out.append(s.substr(pos));
  return out;
}

int64_t count(std::u32string_view s, std::u32string_view sub, int64_t lo, int64_t hi) {
  if (lo > hi) return 0;
  if (sub.empty()) return hi - lo + 1;
  int64_t n = 0;
  for (int64_t i = lo; i + static_cast<int64_t>(sub.size()) <= hi;) {
    if (s.substr(static_cast<size_t>(i), sub.size()) == sub) {
      ++n;
      i += static_cast<int64_t>(sub.size());
    } else {
      ++i;
    }
  }
  return n;
}

int64_t find(std::u32string_view s, std::u32string_view sub, int64_t lo, int64_t hi, bool from_right) {
  if (lo > hi || static_cast<int64_t>(sub.size()) > hi - lo) return -1;
  const int64_t last = hi - static_cast<int64_t>(sub.size());
  if (!from_right) {
    for (int64_t i = lo; i <= last; ++i)
      if (s.substr(static_cast<size_t>(i), sub.size()) == sub) return i;
  } else {
    for (int64_t i = last; i >= lo; --i)
      if (s.substr(static_cast<size_t>(i), sub.size()) == sub) return i;
  }
  return -1;
}

bool predicate(std::string_view name, std::string_view s) {
  const std::u32string u = utf8::decode(s);
  if (u.empty()) return false;
  if (name == "islower" || name == "isupper") {
    bool cased = false;
    for (char32_t c : u) {
      const Category k = unicode::category(c);
      if (k == Category::Lt || k == (name == "islower" ? Category::Lu : Category::Ll)) return false;
      cased = cased || k == (name == "islower" ? Category::Ll : Category::Lu);
    }
    return cased;
  }
  if (name == "istitle") {
    bool cased = false, prev_cased = false;
    for (char32_t c : u) {
      const Category k = unicode::category(c);
      if (k == Category::Lu || k == Category::Lt) {
        if (prev_cased) return false;
        prev_cased = cased = true;
      } else if (k == Category::Ll) {
        if (!prev_cased) return false;
        prev_cased = cased = true;
      } else {
        prev_cased = false;
      }
    }
    return cased;
  }
  for (char32_t c : u) {
    const Category k = unicode::category(c);
    const bool alpha = k <= Category::Lo;
    bool ok;
    if (name == "isdigit") ok = unicode::is_python_digit(c);
    else if (name == "isdecimal") ok = k == Category::Nd;
    else if (name == "isnumeric") ok = unicode::is_python_numeric(c);
    else if (name == "isalpha") ok = alpha;
    else if (name == "isalnum") ok = alpha || k == Category::Nd || unicode::is_python_digit(c) || unicode::is_python_numeric(c);
    else ok = is_space(c);
    if (!ok) return false;
  }
  return true;
}

std::string zfill(std::string_view s, int64_t width) {
  const int64_t n = static_cast<int64_t>(utf8::length(s));
  if (n >= width) return std::string(s);
  std::string out;
  size_t i = 0;
  if (!s.empty() && (s[0] == '+' || s[0] == '-')) out.push_back(s[i++]);
  out.append(static_cast<size_t>(width - n), '0');
  out.append(s.substr(i));
  return out;
}

std::string pad(std::string_view s, int64_t width, std::string_view fill, char how) {
  const int64_t n = static_cast<int64_t>(utf8::length(s));
  if (n >= width) return std::string(s);
  const int64_t marg = width - n;
  int64_t left = 0;
  if (how == 'r') left = marg;
  if (how == 'c') left = marg / 2 + (marg & width & 1);
  std::string out;
  for (int64_t i = 0; i < left; ++i) out.append(fill);
  out.append(s);
  for (int64_t i = 0; i < marg - left; ++i) out.append(fill);
  return out;
}

std::string brace_format(Interpreter& in, std::string_view fmt, CallArgs& args, const Pos& pos) {
  std::string out;
  size_t auto_index = 0;
  for (size_t i = 0; i < fmt.size(); ++i) {
    const char c = fmt[i];
    if (c == '}' && i + 1 < fmt.size() && fmt[i + 1] == '}') {
      out.push_back('}');
      ++i;
      continue;
    }
    if (c != '{') {
      out.push_back(c);
      continue;
    }
    if (i + 1 < fmt.size() && fmt[i + 1] == '{') {
      out.push_back('{');
      ++i;
      continue;
    }
    const size_t close = fmt.find('}', i);
    if (close == std::string_view::npos) in.fail(pos, "single '{' encountered in format string");
    std::string field(fmt.substr(i + 1, close - i - 1));
    i = close;
    char conv = 0;
    if (const size_t bang = field.find('!'); bang != std::string::npos) {
      conv = bang + 1 < field.size() ? field[bang + 1] : 0;
      field.resize(bang);
    }
    if (field.find(':') != std::string::npos) in.fail(pos, "unsupported format specification in str.format");
    Value v;
    if (field.empty()) {
      if (auto_index >= args.positional.size()) in.fail(pos, "Replacement index out of range for str.format");
      v = args.positional[auto_index++];
    } else if (std::isdigit(static_cast<unsigned char>(field[0]))) {
      const size_t k = std::stoul(field);
      if (k >= args.positional.size()) in.fail(pos, "Replacement index out of range for str.format");
      v = args.positional[k];
    } else if (const Value* kv = args.kw(field)) {
      v = *kv;
    } else {
      in.fail(pos, "str.format: missing field '" + field + "'");
    }
    out += conv == 'r' ? v.repr() : v.str();
  }
  return out;
}

}  // namespace banyan::core::jinja::strings
