// Builders of the pipeline stages from their tokenizer.json objects (internal to
// core/tokenizer). Each throws banyan::Error naming the file, the component path and the
// problem (an unknown "type", a missing field, an invalid regex).
#pragma once

#include <memory>

#include "core/tokenizer/json_util.h"
#include "core/tokenizer/pipeline.h"

namespace banyan::core {

std::unique_ptr<Normalizer> make_normalizer(const json::Node& node);
std::unique_ptr<PreTokenizer> make_pre_tokenizer(const json::Node& node);
std::unique_ptr<Decoder> make_decoder(const json::Node& node);
std::unique_ptr<PostProcessor> make_post_processor(const json::Node& node);

/// A Split/Replace "pattern": {"String": s} or {"Regex": r}.
struct Pattern;
std::shared_ptr<const Pattern> make_pattern(const json::Node& node);
/// Appends the matches of a pattern in text (Rust iteration semantics).
void find_matches(const Pattern& pattern, std::string_view text, std::vector<std::pair<size_t, size_t>>& out);

}  // namespace banyan::core
