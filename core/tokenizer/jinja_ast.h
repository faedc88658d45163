// Syntax tree of the Jinja subset the interpreter runs (built by jinja_parser.cpp).
#pragma once

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "core/tokenizer/jinja_value.h"

namespace banyan::core::jinja {

struct Pos {
  int line = 1, column = 1;
};

struct Expr;
using ExprPtr = std::unique_ptr<Expr>;

struct Expr {
  enum class Kind {
    Literal,  // literal
    Name,     // name
    List,     // items: args
    Tuple,    // items: args
    Dict,     // args = k0, v0, k1, v1, ...
    Attr,     // args[0].name
    Item,     // args[0][args[1]]
    Slice,    // args[0][args[1]:args[2]:args[3]] (null parts allowed)
    Call,     // args[0](args[1..], kwargs)
    Filter,   // args[0] | name(args[1..], kwargs); args[0] is null inside {% filter %}
    Test,     // args[0] is [not] name(args[1..])
    Neg,      // -args[0]
    Pos,      // +args[0]
    Not,      // not args[0]
    Binary,   // args[0] op args[1]: + - * / // % **
    Compare,  // args[0] ops[0] args[1] ops[1] args[2] ...: == != < <= > >= in notin
    And,
    Or,
    Cond,     // args[0] if args[1] else args[2] (args[2] may be null)
    Concat,   // args joined with ~
  };
  Kind kind;
  Pos pos;
  Value literal;
  std::string name;  // Name, Attr, Filter, Test; the operator of Binary
  std::vector<ExprPtr> args;
  std::vector<std::pair<std::string, ExprPtr>> kwargs;
  std::vector<std::string> ops;  // Compare
  bool negated = false;          // Test: `is not`
};

struct Stmt;
using Body = std::vector<std::unique_ptr<Stmt>>;

struct Stmt {
  enum class Kind {
    Text,         // text
    Output,       // {{ expr }}
    If,           // conds[i] -> bodies[i]; an extra body is the else branch
    For,          // for targets in expr [if cond]: bodies[0], else bodies[1]
    Set,          // set targets (or target.attr) = expr
    SetBlock,     // set targets[0] [| filter] ... endset: bodies[0], filter in expr
    Macro,        // macro name(params): bodies[0]
    CallBlock,    // call[(params)] expr: bodies[0] is the caller
    FilterBlock,  // filter expr: bodies[0]
    With,         // with params: bodies[0]
    Break,
    Continue,
  };
  Kind kind;
  Pos pos;
  std::string text;                  // Text; Set: the attribute of `set ns.attr`; Macro: its name
  ExprPtr expr;                      // Output value, Set value, For iterable, filters, call
  ExprPtr cond;                      // For: the `if` filter
  std::vector<ExprPtr> conds;        // If
  std::vector<Body> bodies;
  std::vector<std::string> targets;  // For and Set target names
  std::vector<std::pair<std::string, ExprPtr>> params;  // Macro/CallBlock params, With assignments
};

}  // namespace banyan::core::jinja
