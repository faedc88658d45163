// Python `re` matching as PEFT uses it, over PCRE2 (whose syntax is close to
// Python's: groups, lookarounds, (?P<name>...), lazy quantifiers).
#pragma once

#include <memory>
#include <optional>
#include <string>

namespace banyan::lora {

class PyRegex {
 public:
  /// Compiles `pattern`; throws banyan::Error naming `what` and the pattern.
  PyRegex(const std::string& pattern, const std::string& what);
  ~PyRegex();
  PyRegex(PyRegex&&) noexcept;
  PyRegex& operator=(PyRegex&&) noexcept;

  /// re.fullmatch(pattern, s)
  static bool fullmatch(const std::string& pattern, const std::string& s, const std::string& what);
  /// re.match(pattern, s) (anchored at the start only); the text of capture group 1
  /// when it matched (empty string when the group did not take part), else nullopt.
  static std::optional<std::string> match_group1(const std::string& pattern, const std::string& s,
                                                 const std::string& what);

  /// Anchored at the start; with `to_end`, also at the end (fullmatch).
  std::optional<std::string> run(const std::string& s, bool to_end) const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace banyan::lora
