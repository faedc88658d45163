// Host-side logging: spdlog behind a small facade, plus the callback that plugins
// log through (BanyanHostV1::log).
#pragma once

#include <cstdint>
#include <string>

namespace banyan::core {

/// "debug" | "info" | "warn" | "error"; throws banyan::Error on anything else.
void set_log_level(const std::string& level);
void log_debug(const std::string& message);
void log_info(const std::string& message);
void log_warn(const std::string& message);
void log_error(const std::string& message);

/// The C callback handed to plugins.
extern "C" void banyan_host_log(int32_t level, const char* plugin, const char* message);

}  // namespace banyan::core
