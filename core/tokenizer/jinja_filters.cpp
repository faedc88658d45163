// Jinja filters, as in Jinja2 3.1 (tojson as transformers overrides it: json.dumps without
// HTML escaping, ensure_ascii=False, with indent/separators/sort_keys).
#include <banyan/error.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>

#include "core/tokenizer/jinja_interpreter.h"
#include "core/tokenizer/jinja_strings.h"
#include "core/tokenizer/unicode.h"
#include "core/tokenizer/utf8.h"

namespace banyan::core::jinja {
namespace {

const Value* opt(CallArgs& a, size_t i, const char* name) {
  if (i < a.positional.size()) return &a.positional[i];
  return a.kw(name);
}

// The `attribute=` getter: dotted path, integer parts index lists.
Value get_path(Interpreter& in, const Value& v, const std::string& path, const Pos& pos) {
  Value cur = v;
  size_t start = 0;
  while (start <= path.size()) {
    const size_t dot = path.find('.', start);
    const std::string part = path.substr(start, dot == std::string::npos ? std::string::npos : dot - start);
    const bool num = !part.empty() && std::all_of(part.begin(), part.end(), [](char c) { return std::isdigit(static_cast<unsigned char>(c)); });
    cur = get_item(in, cur, num ? Value(static_cast<int64_t>(std::stoll(part))) : Value(part), pos);
    if (dot == std::string::npos) break;
    start = dot + 1;
  }
  return cur;
}

Value ignore_case(const Value& v, bool case_sensitive) {
  return !case_sensitive && v.is_string() ? Value(strings::lower(v.as_string())) : v;
}

std::vector<Value> sorted(Interpreter& in, std::vector<Value> items, bool reverse, bool case_sensitive,
                          const Value* attribute, const Pos& pos) {
  std::vector<std::pair<Value, Value>> keyed;
  for (Value& v : items) {
    Value key = attribute && !attribute->is_none() ? get_path(in, v, attribute->str(), pos) : v;
    keyed.emplace_back(ignore_case(key, case_sensitive), std::move(v));
  }
  try {
    std::stable_sort(keyed.begin(), keyed.end(), [reverse](const auto& x, const auto& y) {
      return reverse ? less(y.first, x.first) : less(x.first, y.first);
    });
  } catch (const Error& e) {
    in.fail(pos, e.what());
  }
  std::vector<Value> out;
  for (auto& [k, v] : keyed) out.push_back(std::move(v));
  return out;
}

// select/reject/selectattr/rejectattr.
Value select(Interpreter& in, const Value& seq, CallArgs& a, bool by_attr, bool keep, const Pos& pos) {
  size_t i = 0;
  std::string attr;
  if (by_attr) {
    if (a.positional.empty()) in.fail(pos, "selectattr/rejectattr need an attribute name");
    attr = a.positional[i++].str();
  }
  std::string test;
  if (i < a.positional.size()) test = a.positional[i++].str();
  CallArgs test_args;
  test_args.positional.assign(a.positional.begin() + static_cast<long>(i), a.positional.end());
  std::vector<Value> out;
  for (const Value& item : seq.iterate()) {
    const Value v = by_attr ? get_path(in, item, attr, pos) : item;
    const bool r = test.empty() ? v.truthy() : apply_test(in, test, v, test_args, pos);
    if (r == keep) out.push_back(item);
  }
  return Value::list(std::move(out));
}

std::string html_escape(const std::string& s) {
  std::string out;
  for (char c : s) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&#34;"; break;
      case '\'': out += "&#39;"; break;
      default: out.push_back(c);
    }
  }
  return out;
}

// Jinja's title filter: words start after runs of [-\s({[<].
std::string jinja_title(const std::string& s) {
  const std::u32string u = utf8::decode(s);
  std::string out;
  bool at_start = true;
  for (char32_t c : u) {
    const bool sep = c == '-' || c == '(' || c == '{' || c == '[' || c == '<' || unicode::is_python_space(c);
    std::string ch = utf8::encode(std::u32string(1, c));
    if (sep) {
      out += ch;
      at_start = true;
    } else {
      out += at_start ? strings::upper(ch) : strings::lower(ch);
      at_start = false;
    }
  }
  return out;
}

Value python_round(double v, int64_t precision) {
  char buf[512];
  std::snprintf(buf, sizeof(buf), "%.*f", static_cast<int>(std::max<int64_t>(0, precision)), v);
  return Value(std::strtod(buf, nullptr));
}

}  // namespace

Value apply_filter(Interpreter& in, const std::string& name, Value v, CallArgs& a, const Pos& pos) {
  // Filters that accept undefined values.
  if (name == "default" || name == "d") {
    const Value* dflt = opt(a, 0, "default_value");
    const Value* boolean = opt(a, 1, "boolean");
    if (v.is_undefined() || (boolean && boolean->truthy() && !v.truthy())) return dflt ? *dflt : Value("");
    return v;
  }
  if (name == "length" || name == "count") {
    if (!v.is_string() && !v.is_list() && !v.is_dict() && !v.is_undefined())
      in.fail(pos, "object of type '" + v.type_name() + "' has no len()");
    return Value(v.length());
  }
  if (name == "string") return Value(v.str());
  if (name == "tojson") {
    const Value* indent = opt(a, 1, "indent");
    const Value* seps = opt(a, 2, "separators");
    const Value* sort_keys = opt(a, 3, "sort_keys");
    if (const Value* ascii = opt(a, 0, "ensure_ascii"); ascii && ascii->truthy())
      in.fail(pos, "tojson(ensure_ascii=true) is not supported");
    const bool has_indent = indent && !indent->is_none();
    std::string item_sep = has_indent ? "," : ", ", key_sep = ": ";
    if (seps && !seps->is_none()) {
      if (!seps->is_list() || seps->list_obj().items.size() != 2) in.fail(pos, "separators must be a pair");
      item_sep = seps->list_obj().items[0].str();
      key_sep = seps->list_obj().items[1].str();
    }
    try {
      return Value(to_json(v, has_indent ? static_cast<int>(indent->as_int()) : 0, has_indent, item_sep, key_sep,
                           sort_keys && sort_keys->truthy()));
    } catch (const Error& e) {
      in.fail(pos, e.what());
    }
  }
  if (name == "list") return Value::list(v.iterate());
  if (name == "items") {
    if (v.is_undefined()) return Value::list();
    if (!v.is_dict()) in.fail(pos, "can only get item pairs from a mapping");
    std::vector<Value> out;
    for (const auto& [k, x] : v.dict_obj().items) out.push_back(Value::list({k, x}, true));
    return Value::list(std::move(out));
  }
  // Python's semantics for the rest: an undefined value prints as "" and iterates as empty;
  // arithmetic and attribute access on it fail.
  if (v.is_undefined() && (name == "abs" || name == "round" || name == "dictsort" || name == "attr"))
    in.fail(pos, v.undefined_hint().empty() ? "undefined value" : v.undefined_hint());
  if (name == "trim") {
    const Value* chars = opt(a, 0, "chars");
    const std::string c = chars && !chars->is_none() ? chars->str() : std::string();
    return Value(strings::strip(v.str(), chars && !chars->is_none() ? &c : nullptr, true, true));
  }
  if (name == "upper") return Value(strings::upper(v.str()));
  if (name == "lower") return Value(strings::lower(v.str()));
  if (name == "capitalize") return Value(strings::capitalize(v.str()));
  if (name == "title") return Value(jinja_title(v.str()));
  if (name == "safe") return v;
  if (name == "e" || name == "escape" || name == "forceescape") return Value(html_escape(v.str()));
  if (name == "replace") {
    if (a.positional.size() < 2) in.fail(pos, "replace needs old and new strings");
    const Value* count = opt(a, 2, "count");
    return Value(strings::replace(v.str(), a.positional[0].str(), a.positional[1].str(),
                                  count && !count->is_none() ? count->as_int() : -1));
  }
  if (name == "indent") {
    const Value* w = opt(a, 0, "width");
    const Value* first = opt(a, 1, "first");
    const Value* blank = opt(a, 2, "blank");
    const std::string ind = w && w->is_string() ? w->as_string() : std::string(static_cast<size_t>(w ? w->as_int() : 4), ' ');
    const auto lines = strings::splitlines(v.str() + "\n", false);
    std::string rv;
    if (blank && blank->truthy()) {
      for (size_t i = 0; i < lines.size(); ++i) rv += (i ? "\n" + ind : "") + lines[i];
    } else {
      rv = lines.empty() ? "" : lines[0];
      for (size_t i = 1; i < lines.size(); ++i) rv += "\n" + (lines[i].empty() ? "" : ind + lines[i]);
    }
    if (first && first->truthy()) rv = ind + rv;
    return Value(rv);
  }
  if (name == "join") {
    const Value* sep = opt(a, 0, "d");
    const Value* attr = opt(a, 1, "attribute");
    std::string out;
    bool first = true;
    for (const Value& item : v.iterate()) {
      if (!first) out += sep ? sep->str() : "";
      out += (attr && !attr->is_none() ? get_path(in, item, attr->str(), pos) : item).str();
      first = false;
    }
    return Value(out);
  }
  if (name == "first" || name == "last") {
    const std::vector<Value> items = v.iterate();
    if (items.empty()) return Value::undefined(std::string("No ") + name + " item, sequence was empty.");
    return name == "first" ? items.front() : items.back();
  }
  if (name == "reverse") {
    if (v.is_string()) {
      std::u32string u = utf8::decode(v.as_string());
      std::reverse(u.begin(), u.end());
      return Value(utf8::encode(u));
    }
    std::vector<Value> items = v.iterate();
    std::reverse(items.begin(), items.end());
    return Value::list(std::move(items));
  }
  if (name == "sort") {
    const Value* rev = opt(a, 0, "reverse");
    const Value* cs = opt(a, 1, "case_sensitive");
    return Value::list(sorted(in, v.iterate(), rev && rev->truthy(), cs && cs->truthy(), opt(a, 2, "attribute"), pos));
  }
  if (name == "dictsort") {
    if (!v.is_dict()) in.fail(pos, "dictsort needs a mapping");
    const Value* cs = opt(a, 0, "case_sensitive");
    const Value* by = opt(a, 1, "by");
    const Value* rev = opt(a, 2, "reverse");
    const bool by_value = by && by->str() == "value";
    std::vector<Value> pairs;
    for (const auto& [k, x] : v.dict_obj().items) pairs.push_back(Value::list({k, x}, true));
    const Value attr(by_value ? "1" : "0");
    return Value::list(sorted(in, pairs, rev && rev->truthy(), cs && cs->truthy(), &attr, pos));
  }
  if (name == "unique") {
    const Value* cs = opt(a, 0, "case_sensitive");
    const Value* attr = opt(a, 1, "attribute");
    std::vector<Value> out, seen;
    for (const Value& item : v.iterate()) {
      const Value key = ignore_case(attr && !attr->is_none() ? get_path(in, item, attr->str(), pos) : item, cs && cs->truthy());
      if (std::none_of(seen.begin(), seen.end(), [&](const Value& s) { return equals(s, key); })) {
        seen.push_back(key);
        out.push_back(item);
      }
    }
    return Value::list(std::move(out));
  }
  if (name == "min" || name == "max") {
    const Value* cs = opt(a, 0, "case_sensitive");
    std::vector<Value> items = sorted(in, v.iterate(), false, cs && cs->truthy(), opt(a, 1, "attribute"), pos);
    if (items.empty()) return Value::undefined("No aggregated item, sequence was empty.");
    if (name == "min") return items.front();
    // max: the first of the largest (Python's max keeps the first maximum).
    std::vector<Value> rev = sorted(in, v.iterate(), true, cs && cs->truthy(), opt(a, 1, "attribute"), pos);
    return rev.front();
  }
  if (name == "sum") {
    const Value* attr = opt(a, 0, "attribute");
    const Value* start = opt(a, 1, "start");
    Value total = start ? *start : Value(static_cast<int64_t>(0));
    for (const Value& item : v.iterate()) {
      const Value x = attr && !attr->is_none() ? get_path(in, item, attr->str(), pos) : item;
      if (!x.is_number() || !total.is_number()) in.fail(pos, "sum needs numbers, got " + x.type_name());
      total = total.is_float() || x.is_float() ? Value(total.as_double() + x.as_double()) : Value(total.as_int() + x.as_int());
    }
    return total;
  }
  if (name == "map") {
    std::vector<Value> out;
    const Value* attr = a.kw("attribute");
    if (attr) {
      const Value* dflt = a.kw("default");
      for (const Value& item : v.iterate()) {
        Value x = get_path(in, item, attr->str(), pos);
        if (x.is_undefined() && dflt) x = *dflt;
        out.push_back(x);
      }
      return Value::list(std::move(out));
    }
    if (a.positional.empty()) in.fail(pos, "map needs a filter name or attribute=");
    const std::string filter = a.positional[0].str();
    CallArgs rest;
    rest.positional.assign(a.positional.begin() + 1, a.positional.end());
    rest.keyword = a.keyword;
    for (const Value& item : v.iterate()) {
      CallArgs copy = rest;
      out.push_back(apply_filter(in, filter, item, copy, pos));
    }
    return Value::list(std::move(out));
  }
  if (name == "select" || name == "reject") return select(in, v, a, false, name == "select", pos);
  if (name == "selectattr" || name == "rejectattr") return select(in, v, a, true, name == "selectattr", pos);
  if (name == "attr") return get_attribute(in, v, opt(a, 0, "name") ? opt(a, 0, "name")->str() : "", pos);
  if (name == "abs") {
    if (!v.is_number()) in.fail(pos, "bad operand type for abs(): '" + v.type_name() + "'");
    return v.is_float() ? Value(std::fabs(v.as_double())) : Value(static_cast<int64_t>(std::llabs(v.as_int())));
  }
  if (name == "int") {
    const Value* dflt = opt(a, 0, "default");
    const Value* base = opt(a, 1, "base");
    const Value fallback = dflt ? *dflt : Value(static_cast<int64_t>(0));
    if (v.is_number()) return Value(v.is_float() ? static_cast<int64_t>(std::trunc(v.as_double())) : v.as_int());
    if (!v.is_string()) return fallback;
    const std::string s = strings::strip(v.as_string(), nullptr, true, true);
    char* end = nullptr;
    const long long x = std::strtoll(s.c_str(), &end, base ? static_cast<int>(base->as_int()) : 10);
    if (!s.empty() && end && *end == '\0') return Value(static_cast<int64_t>(x));
    const double d = std::strtod(s.c_str(), &end);  // Jinja falls back to int(float(value))
    if (!s.empty() && end && *end == '\0') return Value(static_cast<int64_t>(std::trunc(d)));
    return fallback;
  }
  if (name == "float") {
    const Value* dflt = opt(a, 0, "default");
    if (v.is_number()) return Value(v.as_double());
    if (v.is_string()) {
      const std::string s = strings::strip(v.as_string(), nullptr, true, true);
      char* end = nullptr;
      const double d = std::strtod(s.c_str(), &end);
      if (!s.empty() && end && *end == '\0') return Value(d);
    }
    return dflt ? *dflt : Value(0.0);
  }
  if (name == "round") {
    const Value* p = opt(a, 0, "precision");
    const Value* method = opt(a, 1, "method");
    const int64_t prec = p ? p->as_int() : 0;
    const std::string m = method ? method->str() : "common";
    if (!v.is_number()) in.fail(pos, "round needs a number");
    if (m == "common") return v.is_float() ? python_round(v.as_double(), prec) : Value(v.as_int());
    const double scale = std::pow(10.0, static_cast<double>(prec));
    if (m == "ceil") return Value(std::ceil(v.as_double() * scale) / scale);
    if (m == "floor") return Value(std::floor(v.as_double() * scale) / scale);
    in.fail(pos, "method must be common, ceil or floor");
  }
  if (name == "center") {
    const Value* w = opt(a, 0, "width");
    return Value(strings::pad(v.str(), w ? w->as_int() : 80, " ", 'c'));
  }
  if (name == "format") {
    if (!a.keyword.empty()) {
      auto d = Value::dict();
      for (auto& [k, x] : a.keyword) d.dict_obj().set(Value(k), x);
      return Value(percent_format(in, v.str(), d, pos));
    }
    return Value(percent_format(in, v.str(), Value::list(a.positional, true), pos));
  }
  if (name == "truncate") {
    const Value* len = opt(a, 0, "length");
    const Value* kill = opt(a, 1, "killwords");
    const Value* end = opt(a, 2, "end");
    const Value* leeway = opt(a, 3, "leeway");
    const int64_t length = len ? len->as_int() : 255, lw = leeway && !leeway->is_none() ? leeway->as_int() : 5;
    const std::string e = end ? end->str() : "...";
    const std::u32string u = utf8::decode(v.str());
    if (static_cast<int64_t>(u.size()) <= length + lw) return Value(v.str());
    const int64_t keep = std::max<int64_t>(0, length - static_cast<int64_t>(utf8::length(e)));
    std::string head = utf8::encode(std::u32string_view(u).substr(0, static_cast<size_t>(keep)));
    if (!(kill && kill->truthy())) {
      const size_t sp = head.rfind(' ');
      if (sp != std::string::npos) head.resize(sp);
    }
    return Value(head + e);
  }
  if (name == "wordcount") {
    int64_t n = 0;
    bool in_word = false;
    for (char32_t c : utf8::decode(v.str())) {
      const bool w = c == '_' || unicode::category(c) <= unicode::Category::Lo || unicode::is_python_numeric(c) ||
                     unicode::is_python_digit(c);
      if (w && !in_word) ++n;
      in_word = w;
    }
    return Value(n);
  }
  if (name == "batch") {
    const Value* size = opt(a, 0, "linecount");
    const Value* fill = opt(a, 1, "fill_with");
    const int64_t n = size ? size->as_int() : 1;
    if (n <= 0) in.fail(pos, "batch size must be positive");
    std::vector<Value> out, cur;
    for (const Value& item : v.iterate()) {
      cur.push_back(item);
      if (static_cast<int64_t>(cur.size()) == n) {
        out.push_back(Value::list(std::move(cur)));
        cur.clear();
      }
    }
    if (!cur.empty()) {
      if (fill && !fill->is_none())
        while (static_cast<int64_t>(cur.size()) < n) cur.push_back(*fill);
      out.push_back(Value::list(std::move(cur)));
    }
    return Value::list(std::move(out));
  }
  in.fail(pos, "unsupported filter '" + name + "'");
}

}  // namespace banyan::core::jinja
