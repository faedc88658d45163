// Dispatch of one HTTP request to its route: authentication, drain state, method
// and path, then the API module. Pure apart from what the routes ask of the engine;
// never touches a socket.
#pragma once

#include "core/server/route_result.h"

namespace banyan::core::server {

class ServerContext;

/// Routes a request. Never throws: every failure becomes an error reply.
RouteResult route_request(ServerContext& ctx, const HttpRequestView& req);

/// Compares two strings in time that depends only on their lengths.
bool constant_time_equal(std::string_view a, std::string_view b);

}  // namespace banyan::core::server
