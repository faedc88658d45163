#include "py_regex.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <banyan/error.h>

namespace banyan::lora {

struct PyRegex::Impl {
  pcre2_code* start = nullptr;  // pattern anchored at the start
  pcre2_code* full = nullptr;   // (?:pattern)\z anchored at the start
  ~Impl() {
    if (start) pcre2_code_free(start);
    if (full) pcre2_code_free(full);
  }
};

namespace {

pcre2_code* compile(const std::string& pattern, const std::string& shown, const std::string& what) {
  int code = 0;
  PCRE2_SIZE offset = 0;
  pcre2_code* re = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern.data()), pattern.size(),
                                 PCRE2_ANCHORED | PCRE2_UTF, &code, &offset, nullptr);
  if (!re) {
    PCRE2_UCHAR msg[256];
    pcre2_get_error_message(code, msg, sizeof(msg));
    throw Error(Code::invalid_argument, what + ": invalid regular expression \"" + shown + "\": " +
                                            reinterpret_cast<const char*>(msg));
  }
  return re;
}

}  // namespace

PyRegex::PyRegex(const std::string& pattern, const std::string& what)
    : impl_(std::make_unique<Impl>()) {
  impl_->start = compile(pattern, pattern, what);
  impl_->full = compile("(?:" + pattern + ")\\z", pattern, what);
}

PyRegex::~PyRegex() = default;
PyRegex::PyRegex(PyRegex&&) noexcept = default;
PyRegex& PyRegex::operator=(PyRegex&&) noexcept = default;

std::optional<std::string> PyRegex::run(const std::string& s, bool to_end) const {
  pcre2_code* re = to_end ? impl_->full : impl_->start;
  pcre2_match_data* md = pcre2_match_data_create_from_pattern(re, nullptr);
  if (!md) throw Error(Code::out_of_memory, "pcre2: cannot allocate match data");
  int rc = pcre2_match(re, reinterpret_cast<PCRE2_SPTR>(s.data()), s.size(), 0, 0, md, nullptr);
  std::optional<std::string> out;
  if (rc >= 0) {
    out.emplace();
    PCRE2_SIZE* ov = pcre2_get_ovector_pointer(md);
    if (rc >= 2 && ov[2] != PCRE2_UNSET) out = s.substr(ov[2], ov[3] - ov[2]);
  } else if (rc != PCRE2_ERROR_NOMATCH) {
    pcre2_match_data_free(md);
    throw Error(Code::invalid_argument, "pcre2: matching \"" + s + "\" failed (code " +
                                            std::to_string(rc) + ")");
  }
  pcre2_match_data_free(md);
  return out;
}

bool PyRegex::fullmatch(const std::string& pattern, const std::string& s, const std::string& what) {
  return PyRegex(pattern, what).run(s, true).has_value();
}

std::optional<std::string> PyRegex::match_group1(const std::string& pattern, const std::string& s,
                                                 const std::string& what) {
  return PyRegex(pattern, what).run(s, false);
}

}  // namespace banyan::lora
