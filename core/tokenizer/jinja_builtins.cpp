// Jinja tests, the environment's global functions, Python's %-formatting and json.dumps.
#include <banyan/error.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <ctime>

#include "core/tokenizer/jinja_interpreter.h"
#include "core/tokenizer/jinja_strings.h"
#include "core/tokenizer/utf8.h"

namespace banyan::core::jinja {
namespace {

const Value& test_arg(Interpreter& in, CallArgs& a, const std::string& test, const Pos& pos) {
  if (a.positional.empty()) in.fail(pos, "test '" + test + "' needs an argument");
  return a.positional[0];
}

bool compare_test(Interpreter& in, const std::string& op, const Value& a, const Value& b, const Pos& pos) {
  try {
    if (op == "eq") return equals(a, b);
    if (op == "ne") return !equals(a, b);
    if (op == "lt") return less(a, b);
    if (op == "gt") return less(b, a);
    if (op == "le") return !less(b, a);
    return !less(a, b);
  } catch (const Error& e) {
    in.fail(pos, e.what());
  }
}

std::string json_string(std::string_view s) {
  std::string out = "\"";
  for (char ch : s) {
    const auto c = static_cast<unsigned char>(ch);
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      case '\b': out += "\\b"; break;
      case '\f': out += "\\f"; break;
      default:
        if (c < 0x20) {
          char buf[8];
          std::snprintf(buf, sizeof(buf), "\\u%04x", c);
          out += buf;
        } else {
          out.push_back(ch);
        }
    }
  }
  return out + "\"";
}

void json_into(std::string& out, const Value& v, int indent, bool has_indent, const std::string& item_sep,
               const std::string& key_sep, bool sort_keys, int level) {
  auto newline = [&](int lvl) {
    out.push_back('\n');
    out.append(static_cast<size_t>(indent * lvl), ' ');
  };
  switch (v.kind()) {
    case Value::Kind::None: out += "null"; return;
    case Value::Kind::Bool: out += v.as_bool() ? "true" : "false"; return;
    case Value::Kind::Int: out += std::to_string(v.as_int()); return;
    case Value::Kind::Float: {
      const double d = v.as_double();
      if (std::isnan(d)) out += "NaN";
      else if (std::isinf(d)) out += d > 0 ? "Infinity" : "-Infinity";
      else out += float_repr(d);
      return;
    }
    case Value::Kind::String: out += json_string(v.as_string()); return;
    case Value::Kind::List: {
      const auto& items = v.list_obj().items;
      if (items.empty()) {
        out += "[]";
        return;
      }
      out.push_back('[');
      for (size_t i = 0; i < items.size(); ++i) {
        if (i) out += item_sep;
        if (has_indent) newline(level + 1);
        json_into(out, items[i], indent, has_indent, item_sep, key_sep, sort_keys, level + 1);
      }
      if (has_indent) newline(level);
      out.push_back(']');
      return;
    }
    case Value::Kind::Dict: {
      std::vector<std::pair<Value, Value>> items = v.dict_obj().items;
      if (items.empty()) {
        out += "{}";
        return;
      }
      if (sort_keys)
        std::stable_sort(items.begin(), items.end(), [](const auto& a, const auto& b) { return less(a.first, b.first); });
      out.push_back('{');
      for (size_t i = 0; i < items.size(); ++i) {
        if (i) out += item_sep;
        if (has_indent) newline(level + 1);
        const Value& k = items[i].first;
        if (k.is_string()) {
          out += json_string(k.as_string());
        } else if (k.is_bool() || k.is_int() || k.is_float() || k.is_none()) {
          out += json_string(k.is_none() ? "null" : k.is_bool() ? (k.as_bool() ? "true" : "false") : k.str());
        } else {
          throw Error("keys must be str, int, float, bool or None, not " + k.type_name());
        }
        out += key_sep;
        json_into(out, items[i].second, indent, has_indent, item_sep, key_sep, sort_keys, level + 1);
      }
      if (has_indent) newline(level);
      out.push_back('}');
      return;
    }
    default: throw Error("Object of type " + v.type_name() + " is not JSON serializable");
  }
}

// One %-conversion: flags, width, precision, type.
std::string format_one(Interpreter& in, const std::string& spec, char type, const Value& v, const Pos& pos) {
  std::string flags, width, prec;
  size_t i = 0;
  while (i < spec.size() && std::string_view("-+ #0").find(spec[i]) != std::string_view::npos) flags.push_back(spec[i++]);
  while (i < spec.size() && std::isdigit(static_cast<unsigned char>(spec[i]))) width.push_back(spec[i++]);
  if (i < spec.size() && spec[i] == '.') {
    ++i;
    while (i < spec.size() && std::isdigit(static_cast<unsigned char>(spec[i]))) prec.push_back(spec[i++]);
    if (prec.empty()) prec = "0";
  }
  if (type == 's' || type == 'r' || type == 'a') {
    std::string s = type == 's' ? v.str() : v.repr();
    if (!prec.empty()) {
      const std::u32string u = utf8::decode(s);
      s = utf8::encode(std::u32string_view(u).substr(0, std::min<size_t>(u.size(), std::stoul(prec))));
    }
    const int64_t w = width.empty() ? 0 : std::stoll(width);
    return strings::pad(s, w, " ", flags.find('-') != std::string::npos ? 'l' : 'r');
  }
  if (type == 'c') {
    if (v.is_string()) return v.as_string();
    return utf8::encode(static_cast<char32_t>(v.as_int()));
  }
  if (!v.is_number()) in.fail(pos, "%" + std::string(1, type) + " format: a real number is required, not " + v.type_name());
  char buf[512];
  const std::string f = "%" + flags + width + (prec.empty() ? "" : "." + prec);
  if (type == 'd' || type == 'i' || type == 'u') {
    std::snprintf(buf, sizeof(buf), (f + "lld").c_str(), static_cast<long long>(v.is_float() ? std::trunc(v.as_double()) : v.as_int()));
  } else if (type == 'x' || type == 'X' || type == 'o') {
    if (v.is_float()) in.fail(pos, "%" + std::string(1, type) + " format: an integer is required, not float");
    const long long x = static_cast<long long>(v.as_int());
    std::snprintf(buf, sizeof(buf), (f + "ll" + type).c_str(), x < 0 ? -x : x);
    std::string s = buf;
    if (x < 0) {
      const size_t at = s.find_first_not_of(' ');
      s.insert(at == std::string::npos ? 0 : at, "-");
    }
    return s;
  } else {
    std::snprintf(buf, sizeof(buf), (f + type).c_str(), v.as_double());
  }
  return buf;
}

}  // namespace

bool apply_test(Interpreter& in, const std::string& name, const Value& v, CallArgs& a, const Pos& pos) {
  using K = Value::Kind;
  if (name == "defined") return !v.is_undefined();
  if (name == "undefined") return v.is_undefined();
  if (name == "none") return v.is_none();
  if (name == "boolean") return v.is_bool();
  if (name == "true") return v.is_bool() && v.as_bool();
  if (name == "false") return v.is_bool() && !v.as_bool();
  if (name == "integer") return v.is_int();
  if (name == "float") return v.is_float();
  if (name == "number") return v.is_number();
  if (name == "string") return v.is_string();
  if (name == "mapping") return v.is_dict() && !v.dict_obj().is_namespace;
  if (name == "iterable") return v.is_string() || v.is_list() || v.is_dict() || v.is_undefined();
  if (name == "sequence") return v.is_string() || v.is_list() || v.is_dict() || v.is_undefined();
  if (name == "callable") return v.is_callable();
  if (name == "escaped") return false;
  if (name == "lower" || name == "upper") return strings::predicate(name == "lower" ? "islower" : "isupper", v.str());
  if (name == "even" || name == "odd" || name == "divisibleby") {
    if (!v.is_number()) in.fail(pos, "test '" + name + "' needs a number, got " + v.type_name());
    const int64_t d = name == "divisibleby" ? test_arg(in, a, name, pos).as_int() : 2;
    if (d == 0) in.fail(pos, "integer division or modulo by zero");
    const int64_t r = ((v.as_int() % d) + d) % d;
    return name == "odd" ? r == 1 : r == 0;
  }
  if (name == "in") {
    const Value& seq = test_arg(in, a, name, pos);
    if (seq.is_string()) return v.is_string() && seq.as_string().find(v.as_string()) != std::string::npos;
    for (const Value& item : seq.iterate())
      if (equals(item, v)) return true;
    return false;
  }
  if (name == "sameas") {
    const Value& o = test_arg(in, a, name, pos);
    if (v.kind() != o.kind()) return false;
    if (v.kind() == K::List || v.kind() == K::Dict || v.kind() == K::Callable) return v.identity() == o.identity();
    return equals(v, o);
  }
  static const std::pair<const char*, const char*> kCompare[] = {
      {"eq", "eq"}, {"equalto", "eq"}, {"==", "eq"}, {"ne", "ne"}, {"!=", "ne"},  {"lt", "lt"},
      {"lessthan", "lt"}, {"<", "lt"}, {"le", "le"}, {"<=", "le"}, {"gt", "gt"}, {"greaterthan", "gt"},
      {">", "gt"}, {"ge", "ge"}, {">=", "ge"}};
  for (const auto& [alias, op] : kCompare)
    if (name == alias) return compare_test(in, op, v, test_arg(in, a, name, pos), pos);
  in.fail(pos, "unsupported test '" + name + "'");
}

void add_globals(DictObj& g) {
  g.set("range", Value::callable("range", [](CallArgs& a, Interpreter& in) {
    if (a.positional.empty() || a.positional.size() > 3) in.fail({}, "range expected 1 to 3 arguments");
    int64_t start = 0, stop, step = 1;
    if (a.positional.size() == 1) {
      stop = a.positional[0].as_int();
    } else {
      start = a.positional[0].as_int();
      stop = a.positional[1].as_int();
      if (a.positional.size() == 3) step = a.positional[2].as_int();
    }
    if (step == 0) in.fail({}, "range() arg 3 must not be zero");
    std::vector<Value> out;
    for (int64_t i = start; step > 0 ? i < stop : i > stop; i += step) {
      if (out.size() >= 100000) in.fail({}, "range too big (the sandbox allows 100000 items)");
      out.emplace_back(i);
    }
    return Value::list(std::move(out));
  }));
  g.set("dict", Value::callable("dict", [](CallArgs& a, Interpreter&) {
    auto d = Value::dict();
    if (!a.positional.empty() && a.positional[0].is_dict()) d.dict_obj().items = a.positional[0].dict_obj().items;
    for (auto& [k, v] : a.keyword) d.dict_obj().set(Value(k), v);
    return d;
  }));
  g.set("namespace", Value::callable("namespace", [](CallArgs& a, Interpreter&) {
    auto ns = Value::dict({}, /*is_namespace=*/true);
    if (!a.positional.empty() && a.positional[0].is_dict())
      for (const auto& [k, v] : a.positional[0].dict_obj().items) ns.dict_obj().set(k, v);
    for (auto& [k, v] : a.keyword) ns.dict_obj().set(Value(k), v);
    return ns;
  }));
  g.set("raise_exception", Value::callable("raise_exception", [](CallArgs& a, Interpreter&) -> Value {
    throw Error(std::string("chat template raised an exception: ") + (a.positional.empty() ? "" : a.positional[0].str()));
  }));
  g.set("strftime_now", Value::callable("strftime_now", [](CallArgs& a, Interpreter& in) {
    if (a.positional.empty() || !a.positional[0].is_string()) in.fail({}, "strftime_now expects a format string");
    const std::time_t now = std::time(nullptr);
    std::tm tm{};
    localtime_r(&now, &tm);
    char buf[256];
    const size_t n = std::strftime(buf, sizeof(buf), a.positional[0].as_string().c_str(), &tm);
    return Value(std::string(buf, n));
  }));
  g.set("joiner", Value::callable("joiner", [](CallArgs& a, Interpreter&) {
    const std::string sep = a.positional.empty() ? ", " : a.positional[0].str();
    auto used = std::make_shared<bool>(false);
    return Value::callable("joiner", [sep, used](CallArgs&, Interpreter&) {
      if (!*used) {
        *used = true;
        return Value("");
      }
      return Value(sep);
    });
  }));
}

std::string percent_format(Interpreter& in, const std::string& fmt, const Value& args, const Pos& pos) {
  std::vector<Value> items;
  if (args.is_list() && args.list_obj().tuple) {
    items = args.list_obj().items;
  } else {
    items.push_back(args);
  }
  size_t next = 0;
  std::string out;
  for (size_t i = 0; i < fmt.size(); ++i) {
    if (fmt[i] != '%') {
      out.push_back(fmt[i]);
      continue;
    }
    if (++i >= fmt.size()) in.fail(pos, "incomplete format");
    if (fmt[i] == '%') {
      out.push_back('%');
      continue;
    }
    const Value* mapped = nullptr;
    if (fmt[i] == '(') {
      const size_t close = fmt.find(')', i);
      if (close == std::string::npos || !args.is_dict()) in.fail(pos, "format requires a mapping");
      mapped = args.dict_obj().find(std::string_view(fmt).substr(i + 1, close - i - 1));
      if (!mapped) in.fail(pos, "format key '" + fmt.substr(i + 1, close - i - 1) + "' not found");
      i = close + 1;
    }
    std::string spec;
    while (i < fmt.size() && std::string_view("-+ #0123456789.").find(fmt[i]) != std::string_view::npos) spec.push_back(fmt[i++]);
    if (i >= fmt.size()) in.fail(pos, "incomplete format");
    const char type = fmt[i];
    if (std::string_view("sradiuxXoeEfFgGc").find(type) == std::string_view::npos)
      in.fail(pos, std::string("unsupported format character '") + type + "'");
    if (!mapped && next >= items.size()) in.fail(pos, "not enough arguments for format string");
    out += format_one(in, spec, type, mapped ? *mapped : items[next++], pos);
  }
  if (next < items.size() && !(args.is_dict() && next == 0))
    in.fail(pos, "not all arguments converted during string formatting");
  return out;
}

std::string to_json(const Value& v, int indent, bool has_indent, const std::string& item_sep, const std::string& key_sep,
                    bool sort_keys) {
  std::string out;
  json_into(out, v, indent, has_indent, item_sep, key_sep, sort_keys, 0);
  return out;
}

}  // namespace banyan::core::jinja
