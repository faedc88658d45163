// A parsed Jinja template and its rendering, with the semantics of the Jinja2 environment
// that transformers' apply_chat_template uses (ImmutableSandboxedEnvironment, trim_blocks,
// lstrip_blocks, loop controls, tojson without HTML escaping, raise_exception and
// strftime_now). Constructs outside the supported subset fail with banyan::Error naming the
// construct and its line and column.
//
// Thread-safety: a Template is immutable; render() may run on many threads at once.
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include "core/tokenizer/jinja_ast.h"
#include "core/tokenizer/jinja_value.h"

namespace banyan::core::jinja {

class Template {
 public:
  /// Parses template source; throws banyan::Error on a syntax error or an unsupported
  /// statement.
  static std::shared_ptr<const Template> parse(std::string_view source);

  /// Renders with `context` (a dict Value) as the template's variables. Errors raised by the
  /// template (raise_exception) and runtime errors throw banyan::Error.
  std::string render(const Value& context) const;

  const Body& body() const { return body_; }

  explicit Template(Body body) : body_(std::move(body)) {}

 private:
  Body body_;
};

/// Parses template source into statements (jinja_parser.cpp).
Body parse_template(std::string_view source);

}  // namespace banyan::core::jinja
