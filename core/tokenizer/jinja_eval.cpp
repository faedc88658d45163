// Statement execution and expression evaluation (Jinja2 semantics: a for loop body gets a
// fresh scope per iteration, `set` writes the innermost scope, macros close over the scope
// they were defined in, undefined values print as "" but fail on attribute access or math).
#include <banyan/error.h>

#include <cmath>

#include "core/tokenizer/jinja_interpreter.h"
#include "core/tokenizer/jinja_lexer.h"
#include "core/tokenizer/jinja_template.h"
#include "core/tokenizer/utf8.h"

namespace banyan::core::jinja {
namespace {

constexpr int kMaxDepth = 200;

[[noreturn]] void undefined_error(const Interpreter& in, const Pos& p, const Value& v) {
  in.fail(p, v.undefined_hint().empty() ? "undefined value" : v.undefined_hint());
}

// Restores the current frame when a scope ends.
class ScopeGuard {
 public:
  ScopeGuard(std::shared_ptr<Frame>& slot, std::shared_ptr<Frame> next) : slot_(slot), saved_(slot) {
    slot_ = std::move(next);
  }
  ~ScopeGuard() { slot_ = saved_; }
  ScopeGuard(const ScopeGuard&) = delete;
  ScopeGuard& operator=(const ScopeGuard&) = delete;

 private:
  std::shared_ptr<Frame>& slot_;
  std::shared_ptr<Frame> saved_;
};

std::shared_ptr<Frame> child_of(const std::shared_ptr<Frame>& parent) {
  auto f = std::make_shared<Frame>();
  f->parent = parent;
  return f;
}

int64_t floor_div(int64_t a, int64_t b) {
  int64_t q = a / b;
  if ((a % b != 0) && ((a < 0) != (b < 0))) --q;
  return q;
}

}  // namespace

std::shared_ptr<const Template> Template::parse(std::string_view source) {
  return std::make_shared<const Template>(parse_template(source));
}

std::string Template::render(const Value& context) const { return Interpreter(context).render(body_); }

Interpreter::Interpreter(const Value& context) : frame_(std::make_shared<Frame>()), globals_(Value::dict()) {
  add_globals(globals_.dict_obj());
  if (context.is_dict())
    for (const auto& [k, v] : context.dict_obj().items)
      if (k.is_string()) frame_->vars[k.as_string()] = v;
}

void Interpreter::fail(const Pos& pos, const std::string& what) const {
  throw Error("chat template: " + what + " at " + position(pos.line, pos.column));
}

std::string Interpreter::render(const Body& body) {
  std::string out;
  if (exec(body, out) != Flow::Normal) fail({}, "'break' or 'continue' outside a loop");
  return out;
}

Value Interpreter::lookup(const std::string& name) const {
  for (const Frame* f = frame_.get(); f; f = f->parent.get()) {
    const auto it = f->vars.find(name);
    if (it != f->vars.end()) return it->second;
  }
  if (const Value* g = globals_.dict_obj().find(name)) return *g;
  return Value::undefined("'" + name + "' is undefined");
}

void Interpreter::assign(const std::vector<std::string>& targets, const Value& v, const Pos& pos) {
  if (targets.size() == 1) {
    frame_->vars[targets[0]] = v;
    return;
  }
  if (!v.is_list() && !v.is_string() && !v.is_dict()) fail(pos, "cannot unpack a non-iterable " + v.type_name());
  const std::vector<Value> items = v.iterate();
  if (items.size() != targets.size())
    fail(pos, "expected " + std::to_string(targets.size()) + " values to unpack, got " + std::to_string(items.size()));
  for (size_t i = 0; i < targets.size(); ++i) frame_->vars[targets[i]] = items[i];
}

Interpreter::Flow Interpreter::exec(const Body& body, std::string& out) {
  for (const auto& s : body) {
    const Flow f = exec(*s, out);
    if (f != Flow::Normal) return f;
  }
  return Flow::Normal;
}

Interpreter::Flow Interpreter::exec(const Stmt& s, std::string& out) {
  switch (s.kind) {
    case Stmt::Kind::Text:
      out += s.text;
      return Flow::Normal;
    case Stmt::Kind::Output:
      out += eval(*s.expr).str();
      return Flow::Normal;
    case Stmt::Kind::If:
      for (size_t i = 0; i < s.conds.size(); ++i)
        if (eval(*s.conds[i]).truthy()) return exec(s.bodies[i], out);
      if (s.bodies.size() > s.conds.size()) return exec(s.bodies.back(), out);
      return Flow::Normal;
    case Stmt::Kind::For:
      exec_for(s, out);
      return Flow::Normal;
    case Stmt::Kind::Set: {
      const Value v = eval(*s.expr);
      if (s.text.empty()) {
        assign(s.targets, v, s.pos);
      } else {
        const Value ns = lookup(s.targets[0]);
        if (!ns.is_dict() || !ns.dict_obj().is_namespace)
          fail(s.pos, "cannot assign attribute '" + s.text + "' on non-namespace object '" + s.targets[0] + "'");
        ns.dict_obj().set(Value(s.text), v);
      }
      return Flow::Normal;
    }
    case Stmt::Kind::SetBlock: {
      std::string body;
      exec(s.bodies[0], body);
      Value v(std::move(body));
      if (s.expr) v = eval_filter(*s.expr, &v);
      frame_->vars[s.targets[0]] = v;
      return Flow::Normal;
    }
    case Stmt::Kind::Macro:
      frame_->vars[s.text] = make_macro(s);
      return Flow::Normal;
    case Stmt::Kind::CallBlock: {
      const Stmt* def = &s;
      auto closure = frame_;
      Value caller = Value::callable("caller", [def, closure](CallArgs& a, Interpreter& in) {
        return Value(in.run_macro(*def, closure, a, Value(), def->pos));
      }, true);
      const Expr& call_expr = *s.expr;
      Value fn = eval(*call_expr.args[0]);
      CallArgs args = eval_args(call_expr, 1);
      args.keyword.emplace_back("caller", caller);
      out += call(fn, args, call_expr.pos).str();
      return Flow::Normal;
    }
    case Stmt::Kind::FilterBlock: {
      std::string body;
      exec(s.bodies[0], body);
      Value v(std::move(body));
      out += eval_filter(*s.expr, &v).str();
      return Flow::Normal;
    }
    case Stmt::Kind::With: {
      auto f = child_of(frame_);
      for (const auto& [name, expr] : s.params) f->vars[name] = eval(*expr);
      ScopeGuard g(frame_, f);
      return exec(s.bodies[0], out);
    }
    case Stmt::Kind::Break: return Flow::Break;
    case Stmt::Kind::Continue: return Flow::Continue;
  }
  return Flow::Normal;
}

void Interpreter::exec_for(const Stmt& s, std::string& out) {
  const Value seq = eval(*s.expr);
  if (seq.is_none() || seq.is_number() || seq.is_callable()) fail(s.pos, "'" + seq.type_name() + "' object is not iterable");
  std::vector<Value> items = seq.iterate();
  if (s.cond) {
    std::vector<Value> kept;
    for (const Value& item : items) {
      ScopeGuard g(frame_, child_of(frame_));
      assign(s.targets, item, s.pos);
      if (eval(*s.cond).truthy()) kept.push_back(item);
    }
    items = std::move(kept);
  }
  if (items.empty()) {
    if (s.bodies.size() > 1) exec(s.bodies[1], out);
    return;
  }
  const auto n = static_cast<int64_t>(items.size());
  for (int64_t i = 0; i < n; ++i) {
    auto loop = Value::dict({}, /*is_namespace=*/true);
    DictObj& d = loop.dict_obj();
    d.set("index", Value(i + 1));
    d.set("index0", Value(i));
    d.set("revindex", Value(n - i));
    d.set("revindex0", Value(n - i - 1));
    d.set("first", Value(i == 0));
    d.set("last", Value(i == n - 1));
    d.set("length", Value(n));
    d.set("depth", Value(1));
    d.set("depth0", Value(0));
    if (i > 0) d.set("previtem", items[static_cast<size_t>(i - 1)]);
    if (i + 1 < n) d.set("nextitem", items[static_cast<size_t>(i + 1)]);
    d.set("cycle", Value::callable("cycle", [i](CallArgs& a, Interpreter& in) {
      if (a.positional.empty()) in.fail({}, "no items for cycling given");
      return a.positional[static_cast<size_t>(i) % a.positional.size()];
    }));
    ScopeGuard g(frame_, child_of(frame_));
    assign(s.targets, items[static_cast<size_t>(i)], s.pos);
    frame_->vars["loop"] = loop;
    if (exec(s.bodies[0], out) == Flow::Break) break;
  }
}

Value Interpreter::make_macro(const Stmt& def) {
  const Stmt* d = &def;
  // The macro lives in the frame it closes over: hold that frame weakly, or the two
  // keep each other alive after the render (a leak per render).
  std::weak_ptr<Frame> weak = frame_;
  return Value::callable(def.text, [d, weak](CallArgs& a, Interpreter& in) {
    auto closure = weak.lock();
    if (!closure) in.fail(d->pos, "macro called after its scope ended");
    const Value* caller = a.kw("caller");
    return Value(in.run_macro(*d, closure, a, caller ? *caller : Value(), d->pos));
  }, true);
}

std::string Interpreter::run_macro(const Stmt& def, const std::shared_ptr<Frame>& closure, CallArgs& args,
                                   const Value& caller, const Pos& pos) {
  if (++depth_ > kMaxDepth) fail(pos, "macro recursion is too deep");
  auto f = child_of(closure);
  std::vector<Value> varargs;
  for (size_t i = 0; i < args.positional.size(); ++i) {
    if (i < def.params.size()) {
      f->vars[def.params[i].first] = args.positional[i];
    } else {
      varargs.push_back(args.positional[i]);
    }
  }
  auto kwargs = Value::dict();
  for (auto& [k, v] : args.keyword) {
    if (k == "caller") continue;
    bool known = false;
    for (const auto& p : def.params) known = known || p.first == k;
    if (known) {
      f->vars[k] = v;
    } else {
      kwargs.dict_obj().set(Value(k), v);
    }
  }
  f->vars["varargs"] = Value::list(std::move(varargs));
  f->vars["kwargs"] = kwargs;
  if (!caller.is_undefined()) f->vars["caller"] = caller;
  ScopeGuard g(frame_, f);
  for (const auto& [name, dflt] : def.params)
    if (!f->vars.count(name)) f->vars[name] = dflt ? eval(*dflt) : Value::undefined("'" + name + "' is undefined");
  std::string out;
  if (exec(def.bodies[0], out) != Flow::Normal) fail(pos, "'break' or 'continue' outside a loop");
  --depth_;
  return out;
}

Value Interpreter::call(const Value& fn, CallArgs& args, const Pos& pos) {
  if (fn.is_undefined()) undefined_error(*this, pos, fn);
  if (!fn.is_callable()) fail(pos, "'" + fn.type_name() + "' object is not callable");
  return fn.callable_obj().fn(args, *this);
}

CallArgs Interpreter::eval_args(const Expr& e, size_t first) {
  CallArgs a;
  for (size_t i = first; i < e.args.size(); ++i) a.positional.push_back(eval(*e.args[i]));
  for (const auto& [k, v] : e.kwargs) a.keyword.emplace_back(k, eval(*v));
  return a;
}

Value Interpreter::eval_filter(const Expr& e, Value* block_value) {
  Value v;
  if (!e.args[0]) {
    if (!block_value) fail(e.pos, "filter without a value");
    v = *block_value;
  } else if (block_value && e.args[0]->kind == Expr::Kind::Filter) {
    v = eval_filter(*e.args[0], block_value);
  } else {
    v = eval(*e.args[0]);
  }
  CallArgs a = eval_args(e, 1);
  return apply_filter(*this, e.name, std::move(v), a, e.pos);
}

Value Interpreter::eval(const Expr& e) {
  switch (e.kind) {
    case Expr::Kind::Literal: return e.literal;
    case Expr::Kind::Name: return lookup(e.name);
    case Expr::Kind::List:
    case Expr::Kind::Tuple: {
      std::vector<Value> items;
      for (const auto& a : e.args) items.push_back(eval(*a));
      return Value::list(std::move(items), e.kind == Expr::Kind::Tuple);
    }
    case Expr::Kind::Dict: {
      auto d = Value::dict();
      for (size_t i = 0; i + 1 < e.args.size(); i += 2) d.dict_obj().set(eval(*e.args[i]), eval(*e.args[i + 1]));
      return d;
    }
    case Expr::Kind::Attr: return get_attribute(*this, eval(*e.args[0]), e.name, e.pos);
    case Expr::Kind::Item: return get_item(*this, eval(*e.args[0]), eval(*e.args[1]), e.pos);
    case Expr::Kind::Slice: {
      auto part = [&](size_t i) { return e.args[i] ? eval(*e.args[i]) : Value::none(); };
      return slice(*this, eval(*e.args[0]), part(1), part(2), part(3), e.pos);
    }
    case Expr::Kind::Call: {
      const Value fn = eval(*e.args[0]);
      CallArgs a = eval_args(e, 1);
      return call(fn, a, e.pos);
    }
    case Expr::Kind::Filter: return eval_filter(e, nullptr);
    case Expr::Kind::Test: {
      const Value v = eval(*e.args[0]);
      CallArgs a = eval_args(e, 1);
      const bool r = apply_test(*this, e.name, v, a, e.pos);
      return Value(e.negated ? !r : r);
    }
    case Expr::Kind::Neg:
    case Expr::Kind::Pos: {
      const Value v = eval(*e.args[0]);
      if (v.is_undefined()) undefined_error(*this, e.pos, v);
      if (!v.is_number()) fail(e.pos, "bad operand type for unary " + std::string(e.kind == Expr::Kind::Neg ? "-" : "+") + ": '" + v.type_name() + "'");
      if (e.kind == Expr::Kind::Pos) return v.is_bool() ? Value(v.as_int()) : v;
      return v.is_float() ? Value(-v.as_double()) : Value(-v.as_int());
    }
    case Expr::Kind::Not: return Value(!eval(*e.args[0]).truthy());
    case Expr::Kind::And: {
      Value a = eval(*e.args[0]);
      return a.truthy() ? eval(*e.args[1]) : a;
    }
    case Expr::Kind::Or: {
      Value a = eval(*e.args[0]);
      return a.truthy() ? a : eval(*e.args[1]);
    }
    case Expr::Kind::Cond:
      if (eval(*e.args[1]).truthy()) return eval(*e.args[0]);
      return e.args[2] ? eval(*e.args[2]) : Value::undefined("the conditional expression has no else branch");
    case Expr::Kind::Concat: {
      std::string s;
      for (const auto& a : e.args) s += eval(*a).str();
      return Value(std::move(s));
    }
    case Expr::Kind::Binary: return eval_binary(e);
    case Expr::Kind::Compare: return eval_compare(e);
  }
  fail(e.pos, "unsupported expression");
}

Value Interpreter::eval_binary(const Expr& e) {
  const Value a = eval(*e.args[0]), b = eval(*e.args[1]);
  const std::string& op = e.name;
  if (a.is_undefined()) undefined_error(*this, e.pos, a);
  if (b.is_undefined()) undefined_error(*this, e.pos, b);
  auto type_error = [&]() -> Value {
    fail(e.pos, "unsupported operand type(s) for " + op + ": '" + a.type_name() + "' and '" + b.type_name() + "'");
  };
  if (op == "%" && a.is_string()) return Value(percent_format(*this, a.as_string(), b, e.pos));
  if (op == "+") {
    if (a.is_string() && b.is_string()) return Value(a.as_string() + b.as_string());
    if (a.is_list() && b.is_list() && a.list_obj().tuple == b.list_obj().tuple) {
      std::vector<Value> items = a.list_obj().items;
      items.insert(items.end(), b.list_obj().items.begin(), b.list_obj().items.end());
      return Value::list(std::move(items), a.list_obj().tuple);
    }
    if (a.is_string() || b.is_string())
      fail(e.pos, "can only concatenate str (not \"" + (a.is_string() ? b : a).type_name() + "\") to str");
  }
  if (op == "*") {
    const Value* seq = a.is_string() || a.is_list() ? &a : b.is_string() || b.is_list() ? &b : nullptr;
    const Value* count = seq == &a ? &b : &a;
    if (seq && (count->is_int() || count->is_bool())) {
      const int64_t n = std::max<int64_t>(0, count->as_int());
      if (seq->is_string()) {
        std::string s;
        for (int64_t i = 0; i < n; ++i) s += seq->as_string();
        return Value(std::move(s));
      }
      std::vector<Value> items;
      for (int64_t i = 0; i < n; ++i)
        items.insert(items.end(), seq->list_obj().items.begin(), seq->list_obj().items.end());
      return Value::list(std::move(items), seq->list_obj().tuple);
    }
  }
  if (!a.is_number() || !b.is_number()) return type_error();
  const bool floats = a.is_float() || b.is_float();
  if (op == "/") {
    if (b.as_double() == 0.0) fail(e.pos, "division by zero");
    return Value(a.as_double() / b.as_double());
  }
  if (op == "**") {
    if (!floats && b.as_int() >= 0) {
      int64_t r = 1;
      for (int64_t i = 0; i < b.as_int(); ++i) r *= a.as_int();
      return Value(r);
    }
    return Value(std::pow(a.as_double(), b.as_double()));
  }
  if (floats) {
    const double x = a.as_double(), y = b.as_double();
    if (op == "+") return Value(x + y);
    if (op == "-") return Value(x - y);
    if (op == "*") return Value(x * y);
    if (y == 0.0) fail(e.pos, "float division by zero");
    if (op == "//") return Value(std::floor(x / y));
    if (op == "%") {
      double r = std::fmod(x, y);
      if (r != 0.0 && ((r < 0) != (y < 0))) r += y;
      return Value(r);
    }
  } else {
    const int64_t x = a.as_int(), y = b.as_int();
    if (op == "+") return Value(x + y);
    if (op == "-") return Value(x - y);
    if (op == "*") return Value(x * y);
    if (y == 0) fail(e.pos, "integer division or modulo by zero");
    if (op == "//") return Value(floor_div(x, y));
    if (op == "%") return Value(x - floor_div(x, y) * y);
  }
  return type_error();
}

Value Interpreter::eval_compare(const Expr& e) {
  Value left = eval(*e.args[0]);
  for (size_t i = 0; i < e.ops.size(); ++i) {
    const Value right = eval(*e.args[i + 1]);
    const std::string& op = e.ops[i];
    bool r;
    if (op == "==") {
      r = equals(left, right);
    } else if (op == "!=") {
      r = !equals(left, right);
    } else if (op == "in" || op == "notin") {
      if (right.is_string()) {
        if (!left.is_string()) fail(e.pos, "'in <string>' requires string as left operand, not " + left.type_name());
        r = right.as_string().find(left.as_string()) != std::string::npos;
      } else if (right.is_list() || right.is_dict() || right.is_undefined()) {
        r = false;
        for (const Value& item : right.iterate()) r = r || equals(item, left);
      } else {
        fail(e.pos, "argument of type '" + right.type_name() + "' is not iterable");
      }
      if (op == "notin") r = !r;
    } else {
      try {
        if (op == "<") r = less(left, right);
        else if (op == ">") r = less(right, left);
        else if (op == "<=") r = !less(right, left);
        else r = !less(left, right);
      } catch (const Error& err) {
        fail(e.pos, err.what());
      }
    }
    if (!r) return Value(false);
    left = right;
  }
  return Value(true);
}

}  // namespace banyan::core::jinja
