// Small string helpers shared by config checking, the CLI and the plugin host.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace banyan::core {

/// Levenshtein distance (for did-you-mean hints).
size_t edit_distance(std::string_view a, std::string_view b);

/// The candidate closest to `word`, or "" when none is close enough to suggest.
std::string closest_match(std::string_view word, const std::vector<std::string>& candidates);

/// Splits on a separator character; empty pieces are dropped.
std::vector<std::string> split(std::string_view s, char sep);

/// Parses "2GiB", "512MiB", "1000000", "1.5GB" into bytes. Throws banyan::Error.
size_t parse_bytes(std::string_view text);

}  // namespace banyan::core
