#include "core/tokenizer/jinja_value.h"

#include <banyan/error.h>

#include <charconv>
#include <cmath>
#include <cstdio>

#include "core/tokenizer/unicode.h"
#include "core/tokenizer/utf8.h"

namespace banyan::core::jinja {

const Value* DictObj::find(const Value& key) const {
  for (const auto& [k, v] : items)
    if (equals(k, key)) return &v;
  return nullptr;
}

const Value* DictObj::find(std::string_view key) const {
  for (const auto& [k, v] : items)
    if (k.is_string() && k.as_string() == key) return &v;
  return nullptr;
}

void DictObj::set(Value key, Value value) {
  for (auto& [k, v] : items) {
    if (equals(k, key)) {
      v = std::move(value);
      return;
    }
  }
  items.emplace_back(std::move(key), std::move(value));
}

const Value* CallArgs::kw(std::string_view name) const {
  for (const auto& [k, v] : keyword)
    if (k == name) return &v;
  return nullptr;
}

Value Value::list(std::vector<Value> items, bool tuple) {
  Value v;
  auto obj = std::make_shared<ListObj>();
  obj->items = std::move(items);
  obj->tuple = tuple;
  v.v_ = std::move(obj);
  return v;
}

Value Value::dict(std::vector<std::pair<Value, Value>> items, bool is_namespace) {
  Value v;
  auto obj = std::make_shared<DictObj>();
  obj->items = std::move(items);
  obj->is_namespace = is_namespace;
  v.v_ = std::move(obj);
  return v;
}

Value Value::callable(std::string name, NativeFn fn, bool is_macro) {
  Value v;
  v.v_ = std::make_shared<CallableObj>(CallableObj{std::move(name), std::move(fn), is_macro});
  return v;
}

int64_t Value::as_int() const {
  if (is_bool()) return as_bool() ? 1 : 0;
  if (is_int()) return std::get<int64_t>(v_);
  if (is_float()) return static_cast<int64_t>(std::get<double>(v_));
  throw Error("expected an integer, got " + type_name());
}

double Value::as_double() const {
  if (is_float()) return std::get<double>(v_);
  return static_cast<double>(as_int());
}

const void* Value::identity() const {
  switch (kind()) {
    case Kind::List: return std::get<std::shared_ptr<ListObj>>(v_).get();
    case Kind::Dict: return std::get<std::shared_ptr<DictObj>>(v_).get();
    case Kind::Callable: return std::get<std::shared_ptr<CallableObj>>(v_).get();
    default: return nullptr;
  }
}

bool Value::truthy() const {
  switch (kind()) {
    case Kind::Undefined:
    case Kind::None: return false;
    case Kind::Bool: return as_bool();
    case Kind::Int: return std::get<int64_t>(v_) != 0;
    case Kind::Float: return std::get<double>(v_) != 0.0;
    case Kind::String: return !as_string().empty();
    case Kind::List: return !list_obj().items.empty();
    case Kind::Dict: return !dict_obj().items.empty();
    case Kind::Callable: return true;
  }
  return false;
}

std::string Value::type_name() const {
  switch (kind()) {
    case Kind::Undefined: return "Undefined";
    case Kind::None: return "NoneType";
    case Kind::Bool: return "bool";
    case Kind::Int: return "int";
    case Kind::Float: return "float";
    case Kind::String: return "str";
    case Kind::List: return list_obj().tuple ? "tuple" : "list";
    case Kind::Dict: return dict_obj().is_namespace ? "Namespace" : "dict";
    case Kind::Callable: return callable_obj().is_macro ? "Macro" : "function";
  }
  return "?";
}

std::string float_repr(double v) {
  if (std::isnan(v)) return "nan";
  if (std::isinf(v)) return v > 0 ? "inf" : "-inf";
  if (v == 0.0) return std::signbit(v) ? "-0.0" : "0.0";
  char buf[64];
  const auto res = std::to_chars(buf, buf + sizeof(buf), v, std::chars_format::scientific);
  const std::string sci(buf, res.ptr);  // like "-1.2345e+02"
  const size_t epos = sci.find('e');
  std::string mant = sci.substr(0, epos);
  const int exp = std::stoi(sci.substr(epos + 1));
  const bool neg = !mant.empty() && mant[0] == '-';
  if (neg) mant.erase(0, 1);
  std::string digits;
  for (char c : mant)
    if (c != '.') digits.push_back(c);
  const int decpt = exp + 1;  // position of the decimal point relative to the digits
  std::string out = neg ? "-" : "";
  if (decpt > -4 && decpt <= 16) {
    if (decpt <= 0) {
      out += "0." + std::string(static_cast<size_t>(-decpt), '0') + digits;
    } else if (static_cast<size_t>(decpt) >= digits.size()) {
      out += digits + std::string(static_cast<size_t>(decpt) - digits.size(), '0') + ".0";
    } else {
      out += digits.substr(0, static_cast<size_t>(decpt)) + "." + digits.substr(static_cast<size_t>(decpt));
    }
  } else {
    out += digits.substr(0, 1);
    if (digits.size() > 1) out += "." + digits.substr(1);
    char e[16];
    std::snprintf(e, sizeof(e), "e%c%02d", exp < 0 ? '-' : '+', std::abs(exp));
    out += e;
  }
  return out;
}

std::string string_repr(std::string_view s) {
  const bool has_single = s.find('\'') != std::string_view::npos;
  const bool has_double = s.find('"') != std::string_view::npos;
  const char quote = has_single && !has_double ? '"' : '\'';
  std::string out(1, quote);
  size_t i = 0;
  while (i < s.size()) {
    const size_t start = i;
    const char32_t c = utf8::next(s, i);
    char buf[16];
    if (c == static_cast<char32_t>(quote) || c == '\\') {
      out.push_back('\\');
      out.push_back(static_cast<char>(c));
    } else if (c == '\t') {
      out += "\\t";
    } else if (c == '\n') {
      out += "\\n";
    } else if (c == '\r') {
      out += "\\r";
    } else if (c < 0x20 || c == 0x7F) {
      std::snprintf(buf, sizeof(buf), "\\x%02x", static_cast<unsigned>(c));
      out += buf;
    } else if (c < 0x80 || unicode::is_python_printable(c)) {
      out.append(s, start, i - start);
    } else if (c < 0x100) {
      std::snprintf(buf, sizeof(buf), "\\x%02x", static_cast<unsigned>(c));
      out += buf;
    } else if (c < 0x10000) {
      std::snprintf(buf, sizeof(buf), "\\u%04x", static_cast<unsigned>(c));
      out += buf;
    } else {
      std::snprintf(buf, sizeof(buf), "\\U%08x", static_cast<unsigned>(c));
      out += buf;
    }
  }
  out.push_back(quote);
  return out;
}

std::string Value::str() const {
  switch (kind()) {
    case Kind::Undefined: return "";
    case Kind::None: return "None";
    case Kind::Bool: return as_bool() ? "True" : "False";
    case Kind::Int: return std::to_string(std::get<int64_t>(v_));
    case Kind::Float: return float_repr(std::get<double>(v_));
    case Kind::String: return as_string();
    default: return repr();
  }
}

std::string Value::repr() const {
  switch (kind()) {
    case Kind::String: return string_repr(as_string());
    case Kind::List: {
      const ListObj& l = list_obj();
      std::string out = l.tuple ? "(" : "[";
      for (size_t i = 0; i < l.items.size(); ++i) {
        if (i) out += ", ";
        out += l.items[i].repr();
      }
      if (l.tuple && l.items.size() == 1) out += ",";
      out += l.tuple ? ")" : "]";
      return out;
    }
    case Kind::Dict: {
      const DictObj& d = dict_obj();
      if (d.is_namespace) return "<Namespace>";
      std::string out = "{";
      for (size_t i = 0; i < d.items.size(); ++i) {
        if (i) out += ", ";
        out += d.items[i].first.repr() + ": " + d.items[i].second.repr();
      }
      return out + "}";
    }
    case Kind::Callable: return "<" + type_name() + " '" + callable_obj().name + "'>";
    case Kind::Undefined: return "Undefined";
    default: return str();
  }
}

std::vector<Value> Value::iterate() const {
  switch (kind()) {
    case Kind::Undefined: return {};
    case Kind::List: return list_obj().items;
    case Kind::Dict: {
      std::vector<Value> keys;
      for (const auto& [k, v] : dict_obj().items) keys.push_back(k);
      return keys;
    }
    case Kind::String: {
      std::vector<Value> chars;
      const std::string& s = as_string();
      size_t i = 0;
      while (i < s.size()) {
        const size_t start = i;
        utf8::next(s, i);
        chars.emplace_back(s.substr(start, i - start));
      }
      return chars;
    }
    default: throw Error("'" + type_name() + "' object is not iterable");
  }
}

int64_t Value::length() const {
  switch (kind()) {
    case Kind::Undefined: return 0;
    case Kind::String: return static_cast<int64_t>(utf8::length(as_string()));
    case Kind::List: return static_cast<int64_t>(list_obj().items.size());
    case Kind::Dict: return static_cast<int64_t>(dict_obj().items.size());
    default: throw Error("object of type '" + type_name() + "' has no len()");
  }
}

bool equals(const Value& a, const Value& b) {
  using K = Value::Kind;
  if (a.is_number() && b.is_number()) {
    if (a.is_float() || b.is_float()) return a.as_double() == b.as_double();
    return a.as_int() == b.as_int();
  }
  if (a.kind() != b.kind()) return false;
  switch (a.kind()) {
    case K::Undefined:
    case K::None: return true;
    case K::String: return a.as_string() == b.as_string();
    case K::List: {
      const ListObj &x = a.list_obj(), &y = b.list_obj();
      if (x.tuple != y.tuple || x.items.size() != y.items.size()) return false;
      for (size_t i = 0; i < x.items.size(); ++i)
        if (!equals(x.items[i], y.items[i])) return false;
      return true;
    }
    case K::Dict: {
      const DictObj &x = a.dict_obj(), &y = b.dict_obj();
      if (x.is_namespace || y.is_namespace) return a.identity() == b.identity();
      if (x.items.size() != y.items.size()) return false;
      for (const auto& [k, v] : x.items) {
        const Value* other = y.find(k);
        if (!other || !equals(v, *other)) return false;
      }
      return true;
    }
    case K::Callable: return a.identity() == b.identity();
    default: return false;
  }
}

bool less(const Value& a, const Value& b) {
  if (a.is_number() && b.is_number()) {
    if (a.is_float() || b.is_float()) return a.as_double() < b.as_double();
    return a.as_int() < b.as_int();
  }
  if (a.is_string() && b.is_string()) return a.as_string() < b.as_string();  // UTF-8 order = code point order
  if (a.is_list() && b.is_list()) {
    const auto &x = a.list_obj().items, &y = b.list_obj().items;
    for (size_t i = 0; i < x.size() && i < y.size(); ++i) {
      if (equals(x[i], y[i])) continue;
      return less(x[i], y[i]);
    }
    return x.size() < y.size();
  }
  throw Error("'<' not supported between instances of '" + a.type_name() + "' and '" + b.type_name() + "'");
}

}  // namespace banyan::core::jinja
