// Python str semantics on UTF-8 strings, for the template interpreter: case mappings (with
// the final-sigma rule of str.lower), strip/split/splitlines, find/count by code point,
// predicates (isdigit, isspace, ...), padding and str.format.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "core/tokenizer/jinja_value.h"

namespace banyan::core::jinja {
struct Pos;
class Interpreter;
}  // namespace banyan::core::jinja

namespace banyan::core::jinja::strings {

/// str.strip/lstrip/rstrip; chars == nullptr strips whitespace.
std::string strip(std::string_view s, const std::string* chars, bool left, bool right);
std::vector<std::string> split_whitespace(std::string_view s, int64_t maxsplit, bool from_right);
std::vector<std::string> split(std::string_view s, std::string_view sep, int64_t maxsplit, bool from_right);
std::vector<std::string> splitlines(std::string_view s, bool keepends);
std::string upper(std::string_view s);
std::string lower(std::string_view s);
std::string title(std::string_view s);       // str.title
std::string capitalize(std::string_view s);  // str.capitalize
std::string swapcase(std::string_view s);
std::string replace(std::string_view s, std::string_view old, std::string_view rep, int64_t count);
int64_t count(std::u32string_view s, std::u32string_view sub, int64_t lo, int64_t hi);
int64_t find(std::u32string_view s, std::u32string_view sub, int64_t lo, int64_t hi, bool from_right);
/// isdigit, isalpha, isalnum, isspace, islower, isupper, isnumeric, isdecimal, istitle.
bool predicate(std::string_view name, std::string_view s);
std::string zfill(std::string_view s, int64_t width);
/// ljust ('l'), rjust ('r'), center ('c').
std::string pad(std::string_view s, int64_t width, std::string_view fill, char how);
/// str.format with {} / {0} / {name} fields and !r / !s conversions.
std::string brace_format(Interpreter& in, std::string_view fmt, CallArgs& args, const Pos& pos);

}  // namespace banyan::core::jinja::strings
