#include "core/tokenizer/regex.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <banyan/error.h>

#include "core/tokenizer/utf8.h"

namespace banyan::core {
namespace {

constexpr const char* kWordClass = "\\p{L}\\p{M}\\p{N}\\p{Pc}";
constexpr const char* kSpaceClass = "\\s\\x{85}";
constexpr const char* kHexClass = "0-9a-fA-F";

struct CodeDeleter {
  void operator()(pcre2_code* c) const { pcre2_code_free(c); }
};

// Per-thread match state shared by all patterns: match data for the whole-match offsets,
// and a JIT stack larger than the default 32 KiB for long runs of repeated groups.
class MatchState {
 public:
  MatchState()
      : data_(pcre2_match_data_create(1, nullptr)),
        context_(pcre2_match_context_create(nullptr)),
        stack_(pcre2_jit_stack_create(32 * 1024, 1024 * 1024, nullptr)) {
    if (!data_ || !context_ || !stack_) throw Error(Code::out_of_memory, "regex: cannot allocate PCRE2 match state");
    pcre2_jit_stack_assign(context_, nullptr, stack_);
  }
  ~MatchState() {
    pcre2_jit_stack_free(stack_);
    pcre2_match_context_free(context_);
    pcre2_match_data_free(data_);
  }
  MatchState(const MatchState&) = delete;
  MatchState& operator=(const MatchState&) = delete;

  pcre2_match_data* data() { return data_; }
  pcre2_match_context* context() { return context_; }

 private:
  pcre2_match_data* data_;
  pcre2_match_context* context_;
  pcre2_jit_stack* stack_;
};

MatchState& match_state() {
  thread_local MatchState state;
  return state;
}

std::string pcre2_message(int code) {
  PCRE2_UCHAR buf[256];
  pcre2_get_error_message(code, buf, sizeof(buf));
  return reinterpret_cast<const char*>(buf);
}

}  // namespace

struct Regex::Impl {
  std::unique_ptr<pcre2_code, CodeDeleter> code;
};

std::string Regex::translate(std::string_view p) {
  std::string out;
  out.reserve(p.size() + 16);
  bool in_class = false;
  size_t i = 0;
  while (i < p.size()) {
    const char c = p[i];
    if (c == '\\' && i + 1 < p.size()) {
      const char e = p[i + 1];
      i += 2;
      const char* cls = e == 's' || e == 'S' ? kSpaceClass : e == 'w' || e == 'W' ? kWordClass
                        : e == 'h' || e == 'H' ? kHexClass : nullptr;
      if (!cls) {
        out.push_back('\\');
        out.push_back(e);
      } else if (!in_class) {
        out += (e == 's' || e == 'w' || e == 'h') ? "[" : "[^";
        out += cls;
        out += "]";
      } else if (e == 's' || e == 'w' || e == 'h') {
        out += cls;
      } else {
        // A negated shorthand inside a class cannot be widened; keep PCRE2's \S and \W.
        if (e == 'H') throw Error("regex: \\H inside a character class is not supported");
        out.push_back('\\');
        out.push_back(e);
      }
      continue;
    }
    if (c == '[') {
      if (!in_class) {
        in_class = true;
        out.push_back('[');
        ++i;
        if (i < p.size() && p[i] == '^') out.push_back(p[i++]);
        if (i < p.size() && p[i] == ']') out.push_back(p[i++]);  // a leading ']' is literal
        continue;
      }
      if (i + 1 < p.size() && p[i + 1] == ':') {  // POSIX class such as [:alpha:]
        const size_t end = p.find(":]", i + 2);
        if (end != std::string_view::npos) {
          out.append(p.substr(i, end + 2 - i));
          i = end + 2;
          continue;
        }
      }
      out += "\\[";
      ++i;
      continue;
    }
    if (c == ']' && in_class) in_class = false;
    out.push_back(c);
    ++i;
  }
  return out;
}

Regex::Regex(std::string_view pattern, std::string_view where) : pattern_(pattern), impl_(std::make_unique<Impl>()) {
  const std::string translated = translate(pattern);
  int err = 0;
  PCRE2_SIZE offset = 0;
  pcre2_code* code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(translated.data()), translated.size(),
                                   PCRE2_UTF | PCRE2_UCP | PCRE2_MULTILINE, &err, &offset, nullptr);
  if (!code) {
    throw Error(std::string(where) + ": invalid regular expression '" + std::string(pattern) + "': " +
                pcre2_message(err) + " (at offset " + std::to_string(offset) + " of '" + translated + "')");
  }
  impl_->code.reset(code);
  // JIT is an optimisation: pcre2_match falls back to the interpreter when it is unavailable.
  pcre2_jit_compile(code, PCRE2_JIT_COMPLETE);
}

Regex::~Regex() = default;
Regex::Regex(Regex&&) noexcept = default;
Regex& Regex::operator=(Regex&&) noexcept = default;

void Regex::find_all(std::string_view text, std::vector<std::pair<size_t, size_t>>& out) const {
  MatchState& st = match_state();
  const auto* subject = reinterpret_cast<PCRE2_SPTR>(text.data());
  size_t pos = 0;
  bool have_last = false;
  size_t last_end = 0;
  while (pos <= text.size()) {
    const int rc = pcre2_match(impl_->code.get(), subject, text.size(), pos, PCRE2_NO_UTF_CHECK, st.data(),
                               st.context());
    if (rc == PCRE2_ERROR_NOMATCH) break;
    if (rc < 0) throw Error(Code::internal, "regex '" + pattern_ + "': match failed: " + pcre2_message(rc));
    const PCRE2_SIZE* ov = pcre2_get_ovector_pointer(st.data());
    const size_t s = ov[0], e = ov[1];
    if (s == e && have_last && last_end == e) {
      if (pos >= text.size()) break;
      pos += utf8::sequence_length(static_cast<unsigned char>(text[pos]));
      continue;
    }
    out.emplace_back(s, e);
    pos = e;
    have_last = true;
    last_end = e;
  }
}

}  // namespace banyan::core
