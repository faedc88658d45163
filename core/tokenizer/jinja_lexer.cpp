#include "core/tokenizer/jinja_lexer.h"

#include <banyan/error.h>

#include <algorithm>
#include <cctype>

#include "core/tokenizer/unicode.h"
#include "core/tokenizer/utf8.h"

namespace banyan::core::jinja {
namespace {

bool is_space_at(std::string_view s, size_t i, size_t* len) {
  size_t j = i;
  const char32_t c = utf8::next(s, j);
  *len = j - i;
  return unicode::is_python_space(c);
}

// Python's str.rstrip().
std::string_view rstrip(std::string_view s) {
  size_t end = s.size();
  while (end > 0) {
    size_t start = end - 1;
    while (start > 0 && (static_cast<unsigned char>(s[start]) & 0xC0) == 0x80) --start;
    size_t len;
    if (!is_space_at(s, start, &len)) break;
    end = start;
  }
  return s.substr(0, end);
}

bool all_space(std::string_view s) {
  if (s.empty()) return false;  // Jinja's \s+ needs one character
  size_t i = 0, len;
  while (i < s.size()) {
    if (!is_space_at(s, i, &len)) return false;
    i += len;
  }
  return true;
}

size_t skip_space(std::string_view s, size_t i) {
  size_t len;
  while (i < s.size() && is_space_at(s, i, &len)) i += len;
  return i;
}

class Lexer {
 public:
  explicit Lexer(std::string_view source) : src_(normalize(source)) {}

  std::vector<Token> run() {
    size_t pos = 0;
    bool line_starting = true;
    while (pos < src_.size()) {
      const size_t p = next_tag(pos);
      if (p == std::string::npos) {
        text(pos, src_.substr(pos));
        break;
      }
      const char kind = src_[p + 1];  // '{', '%' or '#'
      size_t q = p + 2;
      const char sign = q < src_.size() && (src_[q] == '-' || src_[q] == '+') ? src_[q] : 0;
      if (sign) ++q;
      std::string_view data = std::string_view(src_).substr(pos, p - pos);
      const size_t raw_end = kind == '%' ? raw_begin(q) : std::string::npos;
      data = strip_before(data, sign, kind != '{', line_starting);
      text(pos, data);
      if (raw_end != std::string::npos) {
        pos = raw(raw_end, line_starting);
        continue;
      }
      if (kind == '#') {
        pos = comment(q, line_starting);
        continue;
      }
      emit(kind == '{' ? Token::Type::VarBegin : Token::Type::BlockBegin, "", p);
      pos = tag(q, kind == '{', line_starting);
    }
    emit(Token::Type::End, "", src_.size());
    return std::move(out_);
  }

 private:
  static std::string normalize(std::string_view s) {
    std::string out;
    out.reserve(s.size());
    for (size_t i = 0; i < s.size(); ++i) {
      if (s[i] == '\r') {
        out.push_back('\n');
        if (i + 1 < s.size() && s[i + 1] == '\n') ++i;
      } else {
        out.push_back(s[i]);
      }
    }
    if (!out.empty() && out.back() == '\n') out.pop_back();  // keep_trailing_newline=False
    return out;
  }

  size_t next_tag(size_t pos) const {
    for (size_t i = pos; i + 1 < src_.size(); ++i)
      if (src_[i] == '{' && (src_[i + 1] == '{' || src_[i + 1] == '%' || src_[i + 1] == '#')) return i;
    return std::string::npos;
  }

  std::string_view strip_before(std::string_view data, char sign, bool lstrip_kind, bool line_starting) const {
    if (sign == '-') return rstrip(data);
    if (sign == '+' || !lstrip_kind) return data;
    const size_t nl = data.rfind('\n');
    const size_t l_pos = nl == std::string_view::npos ? 0 : nl + 1;
    if ((l_pos > 0 || line_starting) && all_space(data.substr(l_pos))) return data.substr(0, l_pos);
    return data;
  }

  void text(size_t at, std::string_view t) {
    if (!t.empty()) emit(Token::Type::Text, std::string(t), at);
  }

  void emit(Token::Type type, std::string value, size_t offset) {
    Token t{type, std::move(value), 1, 1};
    locate(offset, t.line, t.column);
    out_.push_back(std::move(t));
  }

  // Line and column of an offset; offsets mostly grow, so scanning resumes from the last one.
  void locate(size_t offset, int& line, int& column) const {
    if (offset < loc_offset_) {
      loc_offset_ = loc_line_start_ = 0;
      loc_line_ = 1;
    }
    for (size_t i = loc_offset_; i < offset && i < src_.size(); ++i) {
      if (src_[i] == '\n') {
        ++loc_line_;
        loc_line_start_ = i + 1;
      }
    }
    loc_offset_ = std::max(loc_offset_, std::min(offset, src_.size()));
    line = loc_line_;
    column = static_cast<int>(utf8::length(std::string_view(src_).substr(loc_line_start_, offset - loc_line_start_))) + 1;
  }

  [[noreturn]] void fail(const std::string& what, size_t offset) const {
    int line, column;
    locate(offset, line, column);
    throw Error("chat template: " + what + " at " + position(line, column));
  }

  // After "{%" and its sign: the end of a `raw` opening tag, or npos.
  size_t raw_begin(size_t q) const {
    size_t i = skip_space(src_, q);
    if (src_.compare(i, 3, "raw") != 0) return std::string::npos;
    i = skip_space(src_, i + 3);
    if (src_.compare(i, 3, "-%}") == 0) return skip_space(src_, i + 3);
    if (src_.compare(i, 2, "%}") == 0) return i + 2;
    return std::string::npos;
  }

  size_t raw(size_t start, bool& line_starting) {
    line_starting = start > 0 && src_[start - 1] == '\n';
    for (size_t p = src_.find("{%", start); p != std::string::npos; p = src_.find("{%", p + 1)) {
      size_t q = p + 2;
      const char sign = q < src_.size() && (src_[q] == '-' || src_[q] == '+') ? src_[q] : 0;
      if (sign) ++q;
      size_t i = skip_space(src_, q);
      if (src_.compare(i, 6, "endraw") != 0) continue;
      i = skip_space(src_, i + 6);
      size_t end;
      if (src_.compare(i, 3, "+%}") == 0) {
        end = i + 3;
      } else if (src_.compare(i, 3, "-%}") == 0) {
        end = skip_space(src_, i + 3);
      } else if (src_.compare(i, 2, "%}") == 0) {
        end = i + 2;
        if (end < src_.size() && src_[end] == '\n') ++end;
      } else {
        continue;
      }
      text(start, strip_before(std::string_view(src_).substr(start, p - start), sign, true, line_starting));
      line_starting = src_[end - 1] == '\n';
      return end;
    }
    fail("missing {% endraw %}", start);
  }

  size_t comment(size_t q, bool& line_starting) {
    for (size_t k = q; k + 1 < src_.size(); ++k) {
      size_t end;
      if ((src_[k] == '+' || src_[k] == '-') && src_.compare(k + 1, 2, "#}") == 0) {
        end = src_[k] == '-' ? skip_space(src_, k + 3) : k + 3;
      } else if (src_.compare(k, 2, "#}") == 0) {
        end = k + 2;
        if (end < src_.size() && src_[end] == '\n') ++end;
      } else {
        continue;
      }
      line_starting = src_[end - 1] == '\n';
      return end;
    }
    fail("missing end of comment tag", q);
  }

  size_t tag(size_t pos, bool is_var, bool& line_starting) {
    std::vector<char> balance;
    while (true) {
      if (pos >= src_.size()) fail(is_var ? "missing '}}'" : "missing '%}'", pos);
      if (balance.empty()) {
        size_t end = std::string::npos;
        if (is_var) {
          if (src_.compare(pos, 3, "-}}") == 0) end = skip_space(src_, pos + 3);
          else if (src_.compare(pos, 2, "}}") == 0) end = pos + 2;
        } else if (src_.compare(pos, 3, "+%}") == 0) {
          end = pos + 3;
        } else if (src_.compare(pos, 3, "-%}") == 0) {
          end = skip_space(src_, pos + 3);
        } else if (src_.compare(pos, 2, "%}") == 0) {
          end = pos + 2;
          if (end < src_.size() && src_[end] == '\n') ++end;
        }
        if (end != std::string::npos) {
          emit(is_var ? Token::Type::VarEnd : Token::Type::BlockEnd, "", pos);
          line_starting = src_[end - 1] == '\n';
          return end;
        }
      }
      size_t len;
      if (is_space_at(src_, pos, &len)) {
        pos += len;
        continue;
      }
      pos = lex_one(pos, balance);
    }
  }

  size_t lex_one(size_t pos, std::vector<char>& balance) {
    const char c = src_[pos];
    if (std::isalpha(static_cast<unsigned char>(c)) || c == '_') {
      size_t e = pos;
      while (e < src_.size() && (std::isalnum(static_cast<unsigned char>(src_[e])) || src_[e] == '_')) ++e;
      emit(Token::Type::Name, src_.substr(pos, e - pos), pos);
      return e;
    }
    if (std::isdigit(static_cast<unsigned char>(c))) return number(pos);
    if (c == '\'' || c == '"') return string(pos);
    static constexpr const char* kTwo[] = {"//", "**", "==", "!=", ">=", "<="};
    for (const char* op : kTwo) {
      if (src_.compare(pos, 2, op) == 0) {
        emit(Token::Type::Operator, op, pos);
        return pos + 2;
      }
    }
    if (std::string_view("+-/*%~[](){}><=.:|,;").find(c) == std::string_view::npos)
      fail(std::string("unexpected character '") + c + "'", pos);
    if (c == '(' || c == '[' || c == '{') balance.push_back(c == '(' ? ')' : c == '[' ? ']' : '}');
    if (c == ')' || c == ']' || c == '}') {
      if (balance.empty() || balance.back() != c) fail(std::string("unexpected '") + c + "'", pos);
      balance.pop_back();
    }
    emit(Token::Type::Operator, std::string(1, c), pos);
    return pos + 1;
  }

  size_t digits(size_t i) const {
    while (i < src_.size() && (std::isdigit(static_cast<unsigned char>(src_[i])) ||
                               (src_[i] == '_' && i + 1 < src_.size() && std::isdigit(static_cast<unsigned char>(src_[i + 1])))))
      ++i;
    return i;
  }

  size_t number(size_t pos) {
    size_t e = digits(pos);
    bool is_float = false;
    const bool after_dot = pos > 0 && src_[pos - 1] == '.';
    if (!after_dot && e + 1 < src_.size() && src_[e] == '.' && std::isdigit(static_cast<unsigned char>(src_[e + 1]))) {
      e = digits(e + 1);
      is_float = true;
    }
    if (!after_dot && e < src_.size() && (src_[e] == 'e' || src_[e] == 'E')) {
      size_t k = e + 1;
      if (k < src_.size() && (src_[k] == '+' || src_[k] == '-')) ++k;
      if (k < src_.size() && std::isdigit(static_cast<unsigned char>(src_[k]))) {
        e = digits(k);
        is_float = true;
      }
    }
    std::string v;
    for (size_t i = pos; i < e; ++i)
      if (src_[i] != '_') v.push_back(src_[i]);
    emit(is_float ? Token::Type::Float : Token::Type::Integer, v, pos);
    return e;
  }

  size_t string(size_t pos) {
    const char q = src_[pos];
    std::string v;
    size_t i = pos + 1;
    while (true) {
      if (i >= src_.size()) fail("unterminated string", pos);
      const char c = src_[i];
      if (c == q) break;
      if (c != '\\' || i + 1 >= src_.size()) {
        v.push_back(c);
        ++i;
        continue;
      }
      const char e = src_[i + 1];
      i += 2;
      auto hex = [&](int n) {
        if (i + n > src_.size()) fail("truncated escape", i);
        const unsigned long cp = std::stoul(src_.substr(i, static_cast<size_t>(n)), nullptr, 16);
        i += static_cast<size_t>(n);
        utf8::append(v, static_cast<char32_t>(cp));
      };
      switch (e) {
        case '\n': break;
        case '\\': v.push_back('\\'); break;
        case '\'': v.push_back('\''); break;
        case '"': v.push_back('"'); break;
        case 'a': v.push_back('\a'); break;
        case 'b': v.push_back('\b'); break;
        case 'f': v.push_back('\f'); break;
        case 'n': v.push_back('\n'); break;
        case 'r': v.push_back('\r'); break;
        case 't': v.push_back('\t'); break;
        case 'v': v.push_back('\v'); break;
        case 'x': hex(2); break;
        case 'u': hex(4); break;
        case 'U': hex(8); break;
        default:
          if (e >= '0' && e <= '7') {
            int val = e - '0', n = 1;
            while (n < 3 && i < src_.size() && src_[i] >= '0' && src_[i] <= '7') val = val * 8 + (src_[i++] - '0'), ++n;
            utf8::append(v, static_cast<char32_t>(val));
          } else {
            v.push_back('\\');
            v.push_back(e);
          }
      }
    }
    emit(Token::Type::String, std::move(v), pos);
    return i + 1;
  }

  std::string src_;
  std::vector<Token> out_;
  mutable size_t loc_offset_ = 0, loc_line_start_ = 0;
  mutable int loc_line_ = 1;
};

}  // namespace

std::string position(int line, int column) {
  return "line " + std::to_string(line) + ", column " + std::to_string(column);
}

std::vector<Token> tokenize(std::string_view source) { return Lexer(source).run(); }

}  // namespace banyan::core::jinja
