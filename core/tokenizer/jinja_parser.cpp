// Recursive-descent parser for the Jinja subset, following Jinja2's grammar and operator
// precedence (conditional < or < and < not < comparisons < + - < ~ < * / // % < ** < unary,
// with filters and tests binding to the unary operand).
#include <banyan/error.h>

#include <cstdlib>
#include <initializer_list>
#include <string_view>

#include "core/tokenizer/jinja_lexer.h"
#include "core/tokenizer/jinja_template.h"

namespace banyan::core::jinja {
namespace {

using T = Token::Type;

class Parser {
 public:
  explicit Parser(std::vector<Token> tokens) : toks_(std::move(tokens)) {}

  Body parse_all() {
    Body body = parse_body({});
    if (cur().type != T::End) fail("unexpected '" + peek_name() + "'");
    return body;
  }

 private:
  const Token& cur() const { return toks_[i_]; }
  const Token& ahead(size_t k = 1) const { return toks_[std::min(i_ + k, toks_.size() - 1)]; }
  Pos pos() const { return {cur().line, cur().column}; }
  void advance() {
    if (i_ + 1 < toks_.size()) ++i_;
  }
  bool is_op(const char* op) const { return cur().type == T::Operator && cur().value == op; }
  bool is_name(const char* n) const { return cur().type == T::Name && cur().value == n; }
  std::string peek_name() const {
    switch (cur().type) {
      case T::End: return "end of template";
      case T::BlockEnd: return "%}";
      case T::VarEnd: return "}}";
      case T::Text: return "text";
      default: return cur().value;
    }
  }
  [[noreturn]] void fail(const std::string& what) const {
    throw Error("chat template: " + what + " at " + position(cur().line, cur().column));
  }
  void expect_op(const char* op) {
    if (!is_op(op)) fail(std::string("expected '") + op + "', found '" + peek_name() + "'");
    advance();
  }
  std::string expect_name() {
    if (cur().type != T::Name) fail("expected a name, found '" + peek_name() + "'");
    std::string n = cur().value;
    advance();
    return n;
  }
  void expect_block_end() {
    if (cur().type != T::BlockEnd) fail("expected '%}', found '" + peek_name() + "'");
    advance();
  }

  ExprPtr node(Expr::Kind k, Pos p) {
    auto e = std::make_unique<Expr>();
    e->kind = k;
    e->pos = p;
    return e;
  }
  ExprPtr unary(Expr::Kind k, Pos p, ExprPtr a) {
    auto e = node(k, p);
    e->args.push_back(std::move(a));
    return e;
  }
  ExprPtr binary(Expr::Kind k, Pos p, std::string op, ExprPtr a, ExprPtr b) {
    auto e = node(k, p);
    e->name = std::move(op);
    e->args.push_back(std::move(a));
    e->args.push_back(std::move(b));
    return e;
  }

  // ---------------------------------------------------------------- statements
  // Parses until a block tag whose first name is in `ends` (left unconsumed, the cursor on
  // its name) or the end of the template.
  Body parse_body(std::initializer_list<const char*> ends) {
    Body body;
    while (cur().type != T::End) {
      if (cur().type == T::Text) {
        auto s = std::make_unique<Stmt>();
        s->kind = Stmt::Kind::Text;
        s->pos = pos();
        s->text = cur().value;
        body.push_back(std::move(s));
        advance();
      } else if (cur().type == T::VarBegin) {
        auto s = std::make_unique<Stmt>();
        s->kind = Stmt::Kind::Output;
        s->pos = pos();
        advance();
        s->expr = parse_tuple(false);
        if (cur().type != T::VarEnd) fail("expected '}}', found '" + peek_name() + "'");
        advance();
        body.push_back(std::move(s));
      } else if (cur().type == T::BlockBegin) {
        if (ahead().type != T::Name) {
          advance();
          fail("expected a statement name");
        }
        for (const char* e : ends) {
          if (ahead().value == e) {
            advance();
            return body;
          }
        }
        advance();
        body.push_back(parse_statement());
      } else {
        fail("unexpected '" + peek_name() + "'");
      }
    }
    for (const char* e : ends)
      if (std::string_view(e).substr(0, 3) == "end") fail(std::string("missing '{% ") + e + " %}'");
    return body;
  }

  // The cursor is on the statement name.
  std::unique_ptr<Stmt> parse_statement() {
    const std::string kw = cur().value;
    const Pos p = pos();
    auto s = std::make_unique<Stmt>();
    s->pos = p;
    advance();
    if (kw == "if") {
      s->kind = Stmt::Kind::If;
      s->conds.push_back(parse_tuple(false));
      expect_block_end();
      while (true) {
        s->bodies.push_back(parse_body({"elif", "else", "endif"}));
        const std::string tag = expect_name();
        if (tag == "elif") {
          s->conds.push_back(parse_tuple(false));
          expect_block_end();
        } else if (tag == "else") {
          expect_block_end();
          s->bodies.push_back(parse_body({"endif"}));
          advance();
          expect_block_end();
          break;
        } else {
          expect_block_end();
          break;
        }
      }
    } else if (kw == "for") {
      s->kind = Stmt::Kind::For;
      s->targets = parse_targets("in");
      if (!is_name("in")) fail("expected 'in' in for loop");
      advance();
      s->expr = parse_tuple(false, /*with_condexpr=*/false, "recursive");
      if (is_name("if")) {
        advance();
        s->cond = parse_expression();
      }
      if (is_name("recursive")) fail("unsupported construct 'recursive' loop");
      expect_block_end();
      s->bodies.push_back(parse_body({"endfor", "else"}));
      if (expect_name() == "else") {
        expect_block_end();
        s->bodies.push_back(parse_body({"endfor"}));
        advance();
      }
      expect_block_end();
    } else if (kw == "set") {
      if (cur().type == T::Name && ahead().type == T::Operator && ahead().value == "." ) {
        s->targets.push_back(expect_name());
        advance();
        s->text = expect_name();
      } else {
        s->targets = parse_targets("=");
      }
      if (is_op("=")) {
        advance();
        s->kind = Stmt::Kind::Set;
        s->expr = parse_tuple(false);
        expect_block_end();
      } else {
        if (!s->text.empty() || s->targets.size() != 1) fail("expected '=' in set");
        s->kind = Stmt::Kind::SetBlock;
        if (is_op("|")) s->expr = parse_filter_chain(nullptr);
        expect_block_end();
        s->bodies.push_back(parse_body({"endset"}));
        advance();
        expect_block_end();
      }
    } else if (kw == "macro") {
      s->kind = Stmt::Kind::Macro;
      s->text = expect_name();
      s->params = parse_params();
      expect_block_end();
      s->bodies.push_back(parse_body({"endmacro"}));
      advance();
      expect_block_end();
    } else if (kw == "call") {
      s->kind = Stmt::Kind::CallBlock;
      if (is_op("(")) s->params = parse_params();
      s->expr = parse_expression();
      if (s->expr->kind != Expr::Kind::Call) fail("expected a call in {% call %}");
      expect_block_end();
      s->bodies.push_back(parse_body({"endcall"}));
      advance();
      expect_block_end();
    } else if (kw == "filter") {
      s->kind = Stmt::Kind::FilterBlock;
      s->expr = parse_filter_chain(nullptr, /*leading_pipe=*/false);
      expect_block_end();
      s->bodies.push_back(parse_body({"endfilter"}));
      advance();
      expect_block_end();
    } else if (kw == "with") {
      s->kind = Stmt::Kind::With;
      while (cur().type != T::BlockEnd) {
        if (!s->params.empty()) expect_op(",");
        std::string name = expect_name();
        expect_op("=");
        s->params.emplace_back(std::move(name), parse_expression());
      }
      expect_block_end();
      s->bodies.push_back(parse_body({"endwith"}));
      advance();
      expect_block_end();
    } else if (kw == "generation") {
      // transformers' {% generation %} marks assistant text; it renders its body unchanged.
      s->kind = Stmt::Kind::With;
      expect_block_end();
      s->bodies.push_back(parse_body({"endgeneration"}));
      advance();
      expect_block_end();
    } else if (kw == "break" || kw == "continue") {
      s->kind = kw == "break" ? Stmt::Kind::Break : Stmt::Kind::Continue;
      expect_block_end();
    } else {
      i_ -= 1;
      fail("unsupported statement '" + kw + "'");
    }
    return s;
  }

  // Assignment targets: a name, or names separated by commas (optionally in parentheses).
  std::vector<std::string> parse_targets(const char* end_word) {
    std::vector<std::string> names;
    const bool paren = is_op("(");
    if (paren) advance();
    while (true) {
      names.push_back(expect_name());
      if (!is_op(",")) break;
      advance();
      if ((paren && is_op(")")) || is_name(end_word) || is_op(end_word)) break;
    }
    if (paren) expect_op(")");
    return names;
  }

  std::vector<std::pair<std::string, ExprPtr>> parse_params() {
    std::vector<std::pair<std::string, ExprPtr>> params;
    expect_op("(");
    while (!is_op(")")) {
      if (!params.empty()) expect_op(",");
      if (is_op(")")) break;
      std::string name = expect_name();
      ExprPtr dflt;
      if (is_op("=")) {
        advance();
        dflt = parse_expression();
      }
      params.emplace_back(std::move(name), std::move(dflt));
    }
    expect_op(")");
    return params;
  }

  // ---------------------------------------------------------------- expressions
  bool tuple_end(const char* extra) const {
    return cur().type == T::BlockEnd || cur().type == T::VarEnd || is_op(")") ||
           (extra && cur().type == T::Name && cur().value == extra);
  }

  ExprPtr parse_tuple(bool explicit_parens, bool with_condexpr = true, const char* extra_end = nullptr) {
    const Pos p = pos();
    std::vector<ExprPtr> items;
    bool is_tuple = false;
    while (true) {
      if (!items.empty()) expect_op(",");
      if (tuple_end(extra_end)) break;
      items.push_back(parse_expression(with_condexpr));
      if (is_op(",")) {
        is_tuple = true;
      } else {
        break;
      }
    }
    if (!is_tuple) {
      if (!items.empty()) return std::move(items[0]);
      if (!explicit_parens) fail("expected an expression, found '" + peek_name() + "'");
    }
    auto e = node(Expr::Kind::Tuple, p);
    e->args = std::move(items);
    return e;
  }

  ExprPtr parse_expression(bool with_condexpr = true) { return with_condexpr ? parse_condexpr() : parse_or(); }

  ExprPtr parse_condexpr() {
    const Pos p = pos();
    ExprPtr e = parse_or();
    while (is_name("if")) {
      advance();
      auto c = node(Expr::Kind::Cond, p);
      c->args.push_back(std::move(e));
      c->args.push_back(parse_or());
      if (is_name("else")) {
        advance();
        c->args.push_back(parse_condexpr());
      } else {
        c->args.push_back(nullptr);
      }
      e = std::move(c);
    }
    return e;
  }

  ExprPtr parse_or() {
    ExprPtr e = parse_and();
    while (is_name("or")) {
      const Pos p = pos();
      advance();
      e = binary(Expr::Kind::Or, p, "or", std::move(e), parse_and());
    }
    return e;
  }

  ExprPtr parse_and() {
    ExprPtr e = parse_not();
    while (is_name("and")) {
      const Pos p = pos();
      advance();
      e = binary(Expr::Kind::And, p, "and", std::move(e), parse_not());
    }
    return e;
  }

  ExprPtr parse_not() {
    if (is_name("not")) {
      const Pos p = pos();
      advance();
      return unary(Expr::Kind::Not, p, parse_not());
    }
    return parse_compare();
  }

  ExprPtr parse_compare() {
    const Pos p = pos();
    ExprPtr first = parse_math1();
    auto cmp = node(Expr::Kind::Compare, p);
    while (true) {
      std::string op;
      if (cur().type == T::Operator &&
          (cur().value == "==" || cur().value == "!=" || cur().value == "<" || cur().value == "<=" ||
           cur().value == ">" || cur().value == ">=")) {
        op = cur().value;
        advance();
      } else if (is_name("in")) {
        op = "in";
        advance();
      } else if (is_name("not") && ahead().type == T::Name && ahead().value == "in") {
        op = "notin";
        advance();
        advance();
      } else {
        break;
      }
      if (cmp->args.empty()) cmp->args.push_back(std::move(first));
      cmp->ops.push_back(op);
      cmp->args.push_back(parse_math1());
    }
    return cmp->args.empty() ? std::move(first) : std::move(cmp);
  }

  ExprPtr parse_math1() {
    ExprPtr e = parse_concat();
    while (is_op("+") || is_op("-")) {
      const Pos p = pos();
      std::string op = cur().value;
      advance();
      e = binary(Expr::Kind::Binary, p, op, std::move(e), parse_concat());
    }
    return e;
  }

  ExprPtr parse_concat() {
    const Pos p = pos();
    ExprPtr e = parse_math2();
    if (!is_op("~")) return e;
    auto c = node(Expr::Kind::Concat, p);
    c->args.push_back(std::move(e));
    while (is_op("~")) {
      advance();
      c->args.push_back(parse_math2());
    }
    return c;
  }

  ExprPtr parse_math2() {
    ExprPtr e = parse_pow();
    while (is_op("*") || is_op("/") || is_op("//") || is_op("%")) {
      const Pos p = pos();
      std::string op = cur().value;
      advance();
      e = binary(Expr::Kind::Binary, p, op, std::move(e), parse_pow());
    }
    return e;
  }

  ExprPtr parse_pow() {
    ExprPtr e = parse_unary();
    while (is_op("**")) {
      const Pos p = pos();
      advance();
      e = binary(Expr::Kind::Binary, p, "**", std::move(e), parse_unary());
    }
    return e;
  }

  ExprPtr parse_unary(bool with_filter = true) {
    const Pos p = pos();
    ExprPtr e;
    if (is_op("-")) {
      advance();
      e = unary(Expr::Kind::Neg, p, parse_unary(false));
    } else if (is_op("+")) {
      advance();
      e = unary(Expr::Kind::Pos, p, parse_unary(false));
    } else {
      e = parse_primary();
    }
    e = parse_postfix(std::move(e));
    if (with_filter) e = parse_filter_expr(std::move(e));
    return e;
  }

  ExprPtr literal(Pos p, Value v) {
    auto e = node(Expr::Kind::Literal, p);
    e->literal = std::move(v);
    return e;
  }

  ExprPtr parse_primary() {
    const Pos p = pos();
    const Token& t = cur();
    switch (t.type) {
      case T::Name: {
        const std::string n = t.value;
        advance();
        if (n == "true" || n == "True") return literal(p, Value(true));
        if (n == "false" || n == "False") return literal(p, Value(false));
        if (n == "none" || n == "None") return literal(p, Value::none());
        auto e = node(Expr::Kind::Name, p);
        e->name = n;
        return e;
      }
      case T::String: {
        std::string s;
        while (cur().type == T::String) {  // adjacent literals concatenate
          s += cur().value;
          advance();
        }
        return literal(p, Value(std::move(s)));
      }
      case T::Integer: {
        const std::string v = t.value;
        advance();
        int base = 10;
        std::string digits = v;
        if (v.size() > 2 && v[0] == '0' && (v[1] == 'x' || v[1] == 'X' || v[1] == 'o' || v[1] == 'O' || v[1] == 'b' || v[1] == 'B')) {
          base = (v[1] == 'x' || v[1] == 'X') ? 16 : (v[1] == 'o' || v[1] == 'O') ? 8 : 2;
          digits = v.substr(2);
        }
        return literal(p, Value(static_cast<int64_t>(std::strtoll(digits.c_str(), nullptr, base))));
      }
      case T::Float: {
        const double d = std::strtod(t.value.c_str(), nullptr);
        advance();
        return literal(p, Value(d));
      }
      case T::Operator:
        if (t.value == "(") {
          advance();
          ExprPtr e = parse_tuple(true);
          expect_op(")");
          return e;
        }
        if (t.value == "[") {
          advance();
          auto e = node(Expr::Kind::List, p);
          while (!is_op("]")) {
            if (!e->args.empty()) expect_op(",");
            if (is_op("]")) break;
            e->args.push_back(parse_expression());
          }
          expect_op("]");
          return e;
        }
        if (t.value == "{") {
          advance();
          auto e = node(Expr::Kind::Dict, p);
          while (!is_op("}")) {
            if (!e->args.empty()) expect_op(",");
            if (is_op("}")) break;
            e->args.push_back(parse_expression());
            expect_op(":");
            e->args.push_back(parse_expression());
          }
          expect_op("}");
          return e;
        }
        break;
      default:
        break;
    }
    fail("unexpected '" + peek_name() + "'");
  }

  ExprPtr parse_postfix(ExprPtr e) {
    while (true) {
      const Pos p = pos();
      if (is_op(".")) {
        advance();
        if (cur().type == T::Name) {
          auto a = node(Expr::Kind::Attr, p);
          a->name = cur().value;
          a->args.push_back(std::move(e));
          advance();
          e = std::move(a);
        } else if (cur().type == T::Integer) {
          auto a = node(Expr::Kind::Item, p);
          a->args.push_back(std::move(e));
          a->args.push_back(literal(p, Value(static_cast<int64_t>(std::strtoll(cur().value.c_str(), nullptr, 10)))));
          advance();
          e = std::move(a);
        } else {
          fail("expected a name or number after '.'");
        }
      } else if (is_op("[")) {
        advance();
        e = parse_subscript(std::move(e), p);
      } else if (is_op("(")) {
        e = parse_call(std::move(e));
      } else {
        return e;
      }
    }
  }

  ExprPtr parse_subscript(ExprPtr obj, Pos p) {
    ExprPtr parts[3];
    bool is_slice = false;
    for (int k = 0; k < 3; ++k) {
      if (k > 0) {
        if (!is_op(":")) break;
        advance();
        is_slice = true;
      }
      if (!is_op(":") && !is_op("]")) parts[k] = parse_expression();
    }
    expect_op("]");
    auto e = node(is_slice ? Expr::Kind::Slice : Expr::Kind::Item, p);
    e->args.push_back(std::move(obj));
    e->args.push_back(std::move(parts[0]));
    if (is_slice) {
      e->args.push_back(std::move(parts[1]));
      e->args.push_back(std::move(parts[2]));
    } else if (!e->args[1]) {
      fail("expected a subscript expression");
    }
    return e;
  }

  // Call arguments into e->args (after any existing ones) and e->kwargs.
  void parse_call_args(Expr& e) {
    expect_op("(");
    bool first = true;
    while (!is_op(")")) {
      if (!first) expect_op(",");
      first = false;
      if (is_op(")")) break;
      if (is_op("*") || is_op("**")) fail("unsupported construct '*args' in a call");
      if (cur().type == T::Name && ahead().type == T::Operator && ahead().value == "=") {
        std::string key = cur().value;
        advance();
        advance();
        e.kwargs.emplace_back(std::move(key), parse_expression());
      } else {
        if (!e.kwargs.empty()) fail("positional argument after keyword argument");
        e.args.push_back(parse_expression());
      }
    }
    expect_op(")");
  }

  ExprPtr parse_call(ExprPtr callee) {
    auto e = node(Expr::Kind::Call, pos());
    e->args.push_back(std::move(callee));
    parse_call_args(*e);
    return e;
  }

  std::string dotted_name() {
    std::string n = expect_name();
    while (is_op(".") && ahead().type == T::Name) {
      advance();
      n += "." + expect_name();
    }
    return n;
  }

  ExprPtr parse_filter_chain(ExprPtr value, bool leading_pipe = true) {
    bool first = true;
    while (first ? (!leading_pipe || is_op("|")) : is_op("|")) {
      if (leading_pipe || !first) expect_op("|");
      first = false;
      auto f = node(Expr::Kind::Filter, pos());
      f->name = dotted_name();
      f->args.push_back(std::move(value));
      if (is_op("(")) parse_call_args(*f);
      value = std::move(f);
    }
    return value;
  }

  ExprPtr parse_filter_expr(ExprPtr e) {
    while (true) {
      if (is_op("|")) {
        e = parse_filter_chain(std::move(e));
      } else if (is_name("is")) {
        auto t = node(Expr::Kind::Test, pos());
        advance();
        if (is_name("not")) {
          t->negated = true;
          advance();
        }
        t->name = dotted_name();
        t->args.push_back(std::move(e));
        if (is_op("(")) {
          parse_call_args(*t);
        } else if ((cur().type == T::Name && cur().value != "else" && cur().value != "or" && cur().value != "and") ||
                   cur().type == T::String || cur().type == T::Integer || cur().type == T::Float ||
                   is_op("(") || is_op("[") || is_op("{")) {
          if (is_name("is")) fail("unexpected 'is'");
          t->args.push_back(parse_postfix(parse_primary()));
        }
        e = std::move(t);
      } else if (is_op("(")) {
        e = parse_call(std::move(e));
      } else {
        return e;
      }
    }
  }

  std::vector<Token> toks_;
  size_t i_ = 0;
};

}  // namespace

Body parse_template(std::string_view source) { return Parser(tokenize(source)).parse_all(); }

}  // namespace banyan::core::jinja
