// Attribute and item access, slicing, and the Python methods templates call on strings,
// dicts and lists (the ones the sandbox allows: nothing that mutates).
#include <banyan/error.h>

#include <algorithm>

#include "core/tokenizer/jinja_interpreter.h"
#include "core/tokenizer/jinja_strings.h"
#include "core/tokenizer/utf8.h"

namespace banyan::core::jinja {
namespace {

using Method = Value (*)(Interpreter&, const Value& self, CallArgs& args, const Pos& pos);

const Value& arg(Interpreter& in, CallArgs& a, size_t i, const char* name, const Pos& pos) {
  if (i < a.positional.size()) return a.positional[i];
  if (const Value* v = a.kw(name)) return *v;
  in.fail(pos, std::string("missing argument '") + name + "'");
}

const Value* opt(CallArgs& a, size_t i, const char* name) {
  if (i < a.positional.size()) return &a.positional[i];
  return a.kw(name);
}

std::string str_arg(Interpreter& in, const Value& v, const char* what, const Pos& pos) {
  if (!v.is_string()) in.fail(pos, std::string(what) + " must be str, not " + v.type_name());
  return v.as_string();
}

// Python's clamp of [start, end) arguments for find/count/startswith.
void range_args(CallArgs& a, size_t first, int64_t n, int64_t& lo, int64_t& hi) {
  lo = 0;
  hi = n;
  auto fix = [n](int64_t v) { return v < 0 ? std::max<int64_t>(0, v + n) : std::min(v, n); };
  if (const Value* s = opt(a, first, "start"); s && !s->is_none()) lo = fix(s->as_int());
  if (const Value* e = opt(a, first + 1, "end"); e && !e->is_none()) hi = fix(e->as_int());
}

Value str_method(Interpreter& in, const std::string& name, const std::string& s, CallArgs& a, const Pos& pos) {
  auto chars_arg = [&](size_t i) -> const Value* {
    const Value* c = opt(a, i, "chars");
    return c && !c->is_none() ? c : nullptr;
  };
  if (name == "strip" || name == "lstrip" || name == "rstrip") {
    const Value* c = chars_arg(0);
    const std::string chars = c ? str_arg(in, *c, "strip arg", pos) : std::string();
    return Value(strings::strip(s, c ? &chars : nullptr, name != "rstrip", name != "lstrip"));
  }
  if (name == "split" || name == "rsplit") {
    const Value* sep = opt(a, 0, "sep");
    const Value* maxsplit = opt(a, 1, "maxsplit");
    const int64_t n = maxsplit ? maxsplit->as_int() : -1;
    std::vector<std::string> parts;
    if (!sep || sep->is_none()) {
      parts = strings::split_whitespace(s, n, name == "rsplit");
    } else {
      const std::string sp = str_arg(in, *sep, "separator", pos);
      if (sp.empty()) in.fail(pos, "empty separator");
      parts = strings::split(s, sp, n, name == "rsplit");
    }
    std::vector<Value> out(parts.begin(), parts.end());
    return Value::list(std::move(out));
  }
  if (name == "splitlines") {
    const Value* keep = opt(a, 0, "keepends");
    const auto parts = strings::splitlines(s, keep && keep->truthy());
    return Value::list(std::vector<Value>(parts.begin(), parts.end()));
  }
  if (name == "startswith" || name == "endswith") {
    const Value& what = arg(in, a, 0, "prefix", pos);
    const std::u32string u = utf8::decode(s);
    int64_t lo, hi;
    range_args(a, 1, static_cast<int64_t>(u.size()), lo, hi);
    const std::string sub = lo <= hi ? utf8::encode(std::u32string_view(u).substr(lo, hi - lo)) : std::string();
    auto test = [&](const Value& p) {
      const std::string ps = str_arg(in, p, name.c_str(), pos);
      if (lo > hi) return false;
      return name == "startswith" ? sub.compare(0, ps.size(), ps) == 0 && sub.size() >= ps.size()
                                  : sub.size() >= ps.size() && sub.compare(sub.size() - ps.size(), ps.size(), ps) == 0;
    };
    if (what.is_list()) {
      for (const Value& p : what.list_obj().items)
        if (test(p)) return Value(true);
      return Value(false);
    }
    return Value(test(what));
  }
  if (name == "upper") return Value(strings::upper(s));
  if (name == "lower") return Value(strings::lower(s));
  if (name == "title") return Value(strings::title(s));
  if (name == "capitalize") return Value(strings::capitalize(s));
  if (name == "swapcase") return Value(strings::swapcase(s));
  if (name == "replace") {
    const std::string old = str_arg(in, arg(in, a, 0, "old", pos), "replace arg", pos);
    const std::string rep = str_arg(in, arg(in, a, 1, "new", pos), "replace arg", pos);
    const Value* count = opt(a, 2, "count");
    return Value(strings::replace(s, old, rep, count ? count->as_int() : -1));
  }
  if (name == "find" || name == "rfind" || name == "index" || name == "rindex" || name == "count") {
    const std::string sub = str_arg(in, arg(in, a, 0, "sub", pos), name.c_str(), pos);
    const std::u32string u = utf8::decode(s), us = utf8::decode(sub);
    int64_t lo, hi;
    range_args(a, 1, static_cast<int64_t>(u.size()), lo, hi);
    if (name == "count") return Value(strings::count(u, us, lo, hi));
    const int64_t r = strings::find(u, us, lo, hi, name[0] == 'r');
    if (r < 0 && (name == "index" || name == "rindex")) in.fail(pos, "substring not found");
    return Value(r);
  }
  if (name == "join") {
    const Value& items = arg(in, a, 0, "iterable", pos);
    std::string out;
    bool first = true;
    for (const Value& v : items.iterate()) {
      if (!v.is_string()) in.fail(pos, "sequence item: expected str instance, " + v.type_name() + " found");
      if (!first) out += s;
      out += v.as_string();
      first = false;
    }
    return Value(std::move(out));
  }
  if (name == "isdigit" || name == "isalpha" || name == "isalnum" || name == "isspace" || name == "islower" ||
      name == "isupper" || name == "isnumeric" || name == "isdecimal" || name == "istitle")
    return Value(strings::predicate(name, s));
  if (name == "zfill") return Value(strings::zfill(s, arg(in, a, 0, "width", pos).as_int()));
  if (name == "ljust" || name == "rjust" || name == "center") {
    const int64_t width = arg(in, a, 0, "width", pos).as_int();
    const Value* fill = opt(a, 1, "fillchar");
    const std::string f = fill ? str_arg(in, *fill, "fillchar", pos) : " ";
    return Value(strings::pad(s, width, f, name == "ljust" ? 'l' : name == "rjust" ? 'r' : 'c'));
  }
  if (name == "partition" || name == "rpartition") {
    const std::string sep = str_arg(in, arg(in, a, 0, "sep", pos), "separator", pos);
    const size_t at = name == "partition" ? s.find(sep) : s.rfind(sep);
    if (at == std::string::npos)
      return name == "partition" ? Value::list({Value(s), Value(""), Value("")}, true)
                                 : Value::list({Value(""), Value(""), Value(s)}, true);
    return Value::list({Value(s.substr(0, at)), Value(sep), Value(s.substr(at + sep.size()))}, true);
  }
  if (name == "removeprefix" || name == "removesuffix") {
    const std::string x = str_arg(in, arg(in, a, 0, "prefix", pos), name.c_str(), pos);
    if (name == "removeprefix") return Value(s.compare(0, x.size(), x) == 0 ? s.substr(x.size()) : s);
    return Value(s.size() >= x.size() && s.compare(s.size() - x.size(), x.size(), x) == 0 ? s.substr(0, s.size() - x.size())
                                                                                          : s);
  }
  if (name == "format") return Value(strings::brace_format(in, s, a, pos));
  in.fail(pos, "unsupported string method '" + name + "'");
}

bool is_str_method(const std::string& n) {
  static const char* kNames[] = {"strip", "lstrip", "rstrip", "split", "rsplit", "splitlines", "startswith",
                                 "endswith", "upper", "lower", "title", "capitalize", "swapcase", "replace",
                                 "find", "rfind", "index", "rindex", "count", "join", "isdigit", "isalpha",
                                 "isalnum", "isspace", "islower", "isupper", "isnumeric", "isdecimal",
                                 "istitle", "zfill", "ljust", "rjust", "center", "partition", "rpartition",
                                 "removeprefix", "removesuffix", "format", "encode", "casefold",
                                 "expandtabs", "format_map", "isascii", "isidentifier", "isprintable",
                                 "maketrans", "translate"};
  return std::find(std::begin(kNames), std::end(kNames), n) != std::end(kNames);
}

Value bound(const Value& self, const std::string& name) {
  return Value::callable(name, [self, name](CallArgs& a, Interpreter& in) -> Value {
    const Pos pos{};
    if (self.is_string()) return str_method(in, name, self.as_string(), a, pos);
    if (self.is_dict()) {
      const DictObj& d = self.dict_obj();
      if (name == "items") {
        std::vector<Value> out;
        for (const auto& [k, v] : d.items) out.push_back(Value::list({k, v}, true));
        return Value::list(std::move(out));
      }
      if (name == "keys" || name == "values") {
        std::vector<Value> out;
        for (const auto& [k, v] : d.items) out.push_back(name == "keys" ? k : v);
        return Value::list(std::move(out));
      }
      if (name == "get") {
        const Value* v = d.find(arg(in, a, 0, "key", pos));
        if (v) return *v;
        const Value* dflt = opt(a, 1, "default");
        return dflt ? *dflt : Value::none();
      }
    }
    if (self.is_list()) {
      const Value& x = arg(in, a, 0, "value", pos);
      const auto& items = self.list_obj().items;
      if (name == "count") return Value(static_cast<int64_t>(std::count_if(items.begin(), items.end(), [&](const Value& v) { return equals(v, x); })));
      for (size_t i = 0; i < items.size(); ++i)
        if (equals(items[i], x)) return Value(static_cast<int64_t>(i));
      in.fail(pos, x.repr() + " is not in list");
    }
    in.fail(pos, "unsupported method '" + name + "'");
  });
}

int64_t norm_index(int64_t i, int64_t n) { return i < 0 ? i + n : i; }

}  // namespace

Value get_attribute(Interpreter& in, const Value& obj, const std::string& name, const Pos& pos) {
  switch (obj.kind()) {
    case Value::Kind::Undefined: in.fail(pos, obj.undefined_hint().empty() ? "undefined value" : obj.undefined_hint());
    case Value::Kind::Dict: {
      const DictObj& d = obj.dict_obj();
      if (!d.is_namespace && (name == "items" || name == "keys" || name == "values" || name == "get"))
        return bound(obj, name);
      if (!d.is_namespace && (name == "update" || name == "pop" || name == "clear" || name == "setdefault" ||
                              name == "popitem"))
        in.fail(pos, "access to attribute '" + name + "' of 'dict' object is unsafe");
      if (const Value* v = d.find(name)) return *v;
      return Value::undefined("'" + std::string(d.is_namespace ? "Namespace" : "dict") + " object' has no attribute '" +
                              name + "'");
    }
    case Value::Kind::String:
      if (is_str_method(name)) return bound(obj, name);
      return Value::undefined("'str object' has no attribute '" + name + "'");
    case Value::Kind::List:
      if (name == "index" || name == "count") return bound(obj, name);
      if (name == "append" || name == "extend" || name == "pop" || name == "insert" || name == "remove" ||
          name == "sort" || name == "reverse" || name == "clear")
        in.fail(pos, "access to attribute '" + name + "' of '" + obj.type_name() + "' object is unsafe");
      return Value::undefined("'" + obj.type_name() + " object' has no attribute '" + name + "'");
    default:
      return Value::undefined("'" + obj.type_name() + " object' has no attribute '" + name + "'");
  }
}

Value get_item(Interpreter& in, const Value& obj, const Value& key, const Pos& pos) {
  switch (obj.kind()) {
    case Value::Kind::Undefined: in.fail(pos, obj.undefined_hint().empty() ? "undefined value" : obj.undefined_hint());
    case Value::Kind::Dict: {
      if (const Value* v = obj.dict_obj().find(key)) return *v;
      if (key.is_string()) return get_attribute(in, obj, key.as_string(), pos);
      return Value::undefined("'dict object' has no attribute " + key.repr());
    }
    case Value::Kind::List: {
      if (!key.is_int() && !key.is_bool()) return Value::undefined("list indices must be integers");
      const auto& items = obj.list_obj().items;
      const int64_t i = norm_index(key.as_int(), static_cast<int64_t>(items.size()));
      if (i < 0 || i >= static_cast<int64_t>(items.size()))
        return Value::undefined(obj.type_name() + " object has no element " + key.str());
      return items[static_cast<size_t>(i)];
    }
    case Value::Kind::String: {
      if (key.is_string()) return get_attribute(in, obj, key.as_string(), pos);
      if (!key.is_int() && !key.is_bool()) return Value::undefined("string indices must be integers");
      const std::u32string u = utf8::decode(obj.as_string());
      const int64_t i = norm_index(key.as_int(), static_cast<int64_t>(u.size()));
      if (i < 0 || i >= static_cast<int64_t>(u.size())) return Value::undefined("str object has no element " + key.str());
      return Value(utf8::encode(std::u32string(1, u[static_cast<size_t>(i)])));
    }
    default:
      return Value::undefined("'" + obj.type_name() + " object' has no attribute " + key.repr());
  }
}

Value slice(Interpreter& in, const Value& obj, const Value& start, const Value& stop, const Value& step,
            const Pos& pos) {
  if (obj.is_undefined()) in.fail(pos, obj.undefined_hint().empty() ? "undefined value" : obj.undefined_hint());
  if (!obj.is_list() && !obj.is_string()) in.fail(pos, "'" + obj.type_name() + "' object is not subscriptable");
  const std::u32string u = obj.is_string() ? utf8::decode(obj.as_string()) : std::u32string();
  const int64_t n = obj.is_string() ? static_cast<int64_t>(u.size()) : static_cast<int64_t>(obj.list_obj().items.size());
  const int64_t st = step.is_none() ? 1 : step.as_int();
  if (st == 0) in.fail(pos, "slice step cannot be zero");
  auto clamp = [&](const Value& v, int64_t dflt) {
    if (v.is_none()) return dflt;
    int64_t i = v.as_int();
    if (i < 0) i += n;
    if (st > 0) return std::clamp<int64_t>(i, 0, n);
    return std::clamp<int64_t>(i, -1, n - 1);
  };
  const int64_t lo = clamp(start, st > 0 ? 0 : n - 1), hi = clamp(stop, st > 0 ? n : -1);
  std::vector<int64_t> idx;
  for (int64_t i = lo; st > 0 ? i < hi : i > hi; i += st) idx.push_back(i);
  if (obj.is_string()) {
    std::u32string out;
    for (int64_t i : idx) out.push_back(u[static_cast<size_t>(i)]);
    return Value(utf8::encode(out));
  }
  std::vector<Value> out;
  for (int64_t i : idx) out.push_back(obj.list_obj().items[static_cast<size_t>(i)]);
  return Value::list(std::move(out), obj.list_obj().tuple);
}

}  // namespace banyan::core::jinja
