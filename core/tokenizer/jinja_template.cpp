#include "core/tokenizer/jinja_template.h"
#include <banyan/error.h>
namespace banyan::core::jinja {
std::shared_ptr<const Template> Template::parse(std::string_view) { throw Error("not yet"); }
}  // namespace banyan::core::jinja
