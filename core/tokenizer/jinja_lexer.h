// Jinja lexer: splits a template into text and the tokens inside {{ }} / {% %}, applying the
// whitespace rules of the Jinja2 environment transformers uses (trim_blocks, lstrip_blocks,
// "-"/"+" markers, a single trailing newline dropped, newlines normalized to \n).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace banyan::core::jinja {

struct Token {
  enum class Type : uint8_t {
    Text,        // template data
    VarBegin,    // {{
    VarEnd,      // }}
    BlockBegin,  // {%
    BlockEnd,    // %}
    Name,
    String,      // value holds the decoded string
    Integer,
    Float,
    Operator,    // value holds the operator text
    End,
  };
  Type type;
  std::string value;
  int line = 1, column = 1;
};

std::vector<Token> tokenize(std::string_view source);

/// "line L, column C" for error messages.
std::string position(int line, int column);

}  // namespace banyan::core::jinja
