// Placeholder, replaced by the Jinja interpreter.
#pragma once
#include <memory>
#include <string_view>
namespace banyan::core::jinja {
class Template {
 public:
  static std::shared_ptr<const Template> parse(std::string_view source);
};
}  // namespace banyan::core::jinja
