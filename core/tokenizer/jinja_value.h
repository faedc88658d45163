// Values of the Jinja interpreter, with Python semantics: str() and repr() text, truth,
// equality and ordering, as Jinja2 (running on CPython) gives them. Lists and dicts are
// shared (a namespace() object is mutated through `set ns.attr`); everything else is a value.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

namespace banyan::core::jinja {

class Value;
class Interpreter;

struct ListObj {
  std::vector<Value> items;
  bool tuple = false;
};

struct DictObj {
  std::vector<std::pair<Value, Value>> items;  // insertion order, unique keys
  bool is_namespace = false;
  const Value* find(const Value& key) const;
  const Value* find(std::string_view key) const;
  const Value* find(const std::string& key) const { return find(std::string_view(key)); }
  const Value* find(const char* key) const { return find(std::string_view(key)); }
  void set(Value key, Value value);
};

struct CallArgs {
  std::vector<Value> positional;
  std::vector<std::pair<std::string, Value>> keyword;
  const Value* kw(std::string_view name) const;
};

using NativeFn = std::function<Value(CallArgs&, Interpreter&)>;

struct CallableObj {
  std::string name;
  NativeFn fn;
  bool is_macro = false;
};

struct UndefinedTag {
  std::string hint;  // what was looked up, for error messages
};

class Value {
 public:
  enum class Kind : uint8_t { Undefined, None, Bool, Int, Float, String, List, Dict, Callable };

  Value() : v_(UndefinedTag{}) {}
  static Value undefined(std::string hint) { return Value(UndefinedTag{std::move(hint)}); }
  static Value none() { return Value(nullptr); }
  Value(std::nullptr_t) : v_(nullptr) {}
  Value(bool b) : v_(b) {}
  Value(int v) : v_(static_cast<int64_t>(v)) {}
  Value(int64_t v) : v_(v) {}
  Value(double v) : v_(v) {}
  Value(std::string s) : v_(std::move(s)) {}
  Value(const char* s) : v_(std::string(s)) {}
  Value(std::string_view s) : v_(std::string(s)) {}
  static Value list(std::vector<Value> items = {}, bool tuple = false);
  static Value dict(std::vector<std::pair<Value, Value>> items = {}, bool is_namespace = false);
  static Value callable(std::string name, NativeFn fn, bool is_macro = false);

  Kind kind() const { return static_cast<Kind>(v_.index()); }
  bool is_undefined() const { return kind() == Kind::Undefined; }
  bool is_none() const { return kind() == Kind::None; }
  bool is_bool() const { return kind() == Kind::Bool; }
  bool is_int() const { return kind() == Kind::Int; }
  bool is_float() const { return kind() == Kind::Float; }
  bool is_number() const { return is_int() || is_float() || is_bool(); }
  bool is_string() const { return kind() == Kind::String; }
  bool is_list() const { return kind() == Kind::List; }
  bool is_dict() const { return kind() == Kind::Dict; }
  bool is_callable() const { return kind() == Kind::Callable; }

  bool as_bool() const { return std::get<bool>(v_); }
  int64_t as_int() const;     // bools and ints
  double as_double() const;   // any number
  const std::string& as_string() const { return std::get<std::string>(v_); }
  const std::string& undefined_hint() const { return std::get<UndefinedTag>(v_).hint; }
  ListObj& list_obj() const { return *std::get<std::shared_ptr<ListObj>>(v_); }
  DictObj& dict_obj() const { return *std::get<std::shared_ptr<DictObj>>(v_); }
  const CallableObj& callable_obj() const { return *std::get<std::shared_ptr<CallableObj>>(v_); }
  const void* identity() const;  // for `is sameas` on shared objects

  /// Python truth value.
  bool truthy() const;
  /// Python str(), as Jinja prints values ("None", "True", "[1, 'a']", "" for undefined).
  std::string str() const;
  /// Python repr().
  std::string repr() const;
  /// Python type name ("str", "dict", "list", ...), for error messages.
  std::string type_name() const;

  /// The items Python iteration yields: list items, dict keys, string characters;
  /// undefined gives nothing. Throws for numbers and None.
  std::vector<Value> iterate() const;
  /// len(); throws for values without a length.
  int64_t length() const;

 private:
  explicit Value(UndefinedTag t) : v_(std::move(t)) {}
  std::variant<UndefinedTag, std::nullptr_t, bool, int64_t, double, std::string, std::shared_ptr<ListObj>,
               std::shared_ptr<DictObj>, std::shared_ptr<CallableObj>>
      v_;
};

/// Python ==.
bool equals(const Value& a, const Value& b);
/// Python <, for numbers, strings and lists; throws a TypeError-like error otherwise.
bool less(const Value& a, const Value& b);
/// repr() of a float the way Python writes it (shortest round-trip digits).
std::string float_repr(double v);
/// repr() of a string (Python quoting and escapes).
std::string string_repr(std::string_view s);

}  // namespace banyan::core::jinja
