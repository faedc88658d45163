// Runs OpenAI Batch lines through the engine without sockets, with the same parsing
// and response bodies as the HTTP routes.
#pragma once

#include <iosfwd>
#include <string>

namespace banyan::core::server {

class ServerContext;

/// Reads JSONL from `in`, writes one output line per input line to `out` (input
/// order). Returns the number of lines that failed.
size_t run_batch(ServerContext& ctx, std::istream& in, std::ostream& out);

}  // namespace banyan::core::server
