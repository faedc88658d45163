// The tree-walking evaluator behind Template::render (internal to core/tokenizer), and the
// builtins it calls: filters, tests, Python methods and globals (jinja_builtins.cpp,
// jinja_methods.cpp).
#pragma once

#include <map>
#include <memory>
#include <string>

#include "core/tokenizer/jinja_ast.h"
#include "core/tokenizer/jinja_value.h"

namespace banyan::core::jinja {

class Interpreter {
 public:
  explicit Interpreter(const Value& context);

  std::string render(const Body& body);

  /// Calls a callable Value (builtin or macro).
  Value call(const Value& fn, CallArgs& args, const Pos& pos);
  /// Runs the body of a macro or call block with the given variables.
  std::string run_macro(const Stmt& def, const std::shared_ptr<struct Frame>& closure, CallArgs& args,
                        const Value& caller, const Pos& pos);
  [[noreturn]] void fail(const Pos& pos, const std::string& what) const;

 private:
  enum class Flow { Normal, Break, Continue };
  Flow exec(const Body& body, std::string& out);
  Flow exec(const Stmt& s, std::string& out);
  void exec_for(const Stmt& s, std::string& out);
  Value eval(const Expr& e);
  Value eval_binary(const Expr& e);
  Value eval_compare(const Expr& e);
  Value eval_call(const Expr& e);
  Value eval_filter(const Expr& e, Value* block_value);
  CallArgs eval_args(const Expr& e, size_t first);
  Value lookup(const std::string& name) const;
  void assign(const std::vector<std::string>& targets, const Value& v, const Pos& pos);
  Value make_macro(const Stmt& def);

  std::shared_ptr<struct Frame> frame_;
  Value globals_;
  int depth_ = 0;
};

struct Frame {
  std::map<std::string, Value, std::less<>> vars;
  std::shared_ptr<Frame> parent;
};

// Builtins (jinja_builtins.cpp / jinja_methods.cpp).
Value apply_filter(Interpreter& in, const std::string& name, Value value, CallArgs& args, const Pos& pos);
bool apply_test(Interpreter& in, const std::string& name, const Value& value, CallArgs& args, const Pos& pos);
/// obj.name: dict methods then items, string and list methods; throws for undefined obj.
Value get_attribute(Interpreter& in, const Value& obj, const std::string& name, const Pos& pos);
/// obj[key] (with Python negative indexes), falling back to attributes for string keys.
Value get_item(Interpreter& in, const Value& obj, const Value& key, const Pos& pos);
Value slice(Interpreter& in, const Value& obj, const Value& start, const Value& stop, const Value& step,
            const Pos& pos);
/// The global functions of the environment (range, dict, namespace, raise_exception, ...).
void add_globals(DictObj& globals);
/// Python's "fmt % args".
std::string percent_format(Interpreter& in, const std::string& fmt, const Value& args, const Pos& pos);
/// json.dumps(value, ensure_ascii=False, indent, separators, sort_keys) as transformers' tojson.
std::string to_json(const Value& v, int indent, bool has_indent, const std::string& item_sep,
                    const std::string& key_sep, bool sort_keys);

}  // namespace banyan::core::jinja
