// Logging facade. The host routes messages to its logger (spdlog); a plugin logs
// through the host's callback so that every line carries the plugin's name.
#pragma once

#include <banyan/abi.h>

#include <string>

namespace banyan {

enum class LogLevel : int32_t {
  debug = BANYAN_LOG_DEBUG,
  info = BANYAN_LOG_INFO,
  warn = BANYAN_LOG_WARN,
  error = BANYAN_LOG_ERROR,
};

/// A logger bound to a host and a plugin name. Cheap to copy.
class Logger {
 public:
  Logger() = default;
  Logger(const BanyanHostV1* host, const char* plugin) : host_(host), plugin_(plugin) {}
  void log(LogLevel level, const std::string& message) const {
    if (host_ && host_->log) host_->log(static_cast<int32_t>(level), plugin_, message.c_str());
  }
  void debug(const std::string& m) const { log(LogLevel::debug, m); }
  void info(const std::string& m) const { log(LogLevel::info, m); }
  void warn(const std::string& m) const { log(LogLevel::warn, m); }
  void error(const std::string& m) const { log(LogLevel::error, m); }

 private:
  const BanyanHostV1* host_ = nullptr;
  const char* plugin_ = "";
};

}  // namespace banyan
