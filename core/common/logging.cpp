#include "core/common/logging.h"

#include <banyan/abi.h>
#include <banyan/error.h>

#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

namespace banyan::core {
namespace {
std::shared_ptr<spdlog::logger> logger() {
  static std::shared_ptr<spdlog::logger> l = [] {
    auto lg = spdlog::stderr_color_mt("banyan");
    lg->set_pattern("%Y-%m-%d %H:%M:%S.%e %^%l%$ %v");
    lg->set_level(spdlog::level::info);
    return lg;
  }();
  return l;
}
}  // namespace

void set_log_level(const std::string& level) {
  if (level == "debug") logger()->set_level(spdlog::level::debug);
  else if (level == "info") logger()->set_level(spdlog::level::info);
  else if (level == "warn") logger()->set_level(spdlog::level::warn);
  else if (level == "error") logger()->set_level(spdlog::level::err);
  else throw Error("unknown log level \"" + level + "\"; use debug, info, warn or error");
}

void log_debug(const std::string& m) { logger()->debug("{}", m); }
void log_info(const std::string& m) { logger()->info("{}", m); }
void log_warn(const std::string& m) { logger()->warn("{}", m); }
void log_error(const std::string& m) { logger()->error("{}", m); }

extern "C" void banyan_host_log(int32_t level, const char* plugin, const char* message) {
  std::string m = std::string("[") + (plugin ? plugin : "?") + "] " + (message ? message : "");
  switch (level) {
    case BANYAN_LOG_DEBUG: log_debug(m); break;
    case BANYAN_LOG_INFO: log_info(m); break;
    case BANYAN_LOG_WARN: log_warn(m); break;
    default: log_error(m); break;
  }
}

}  // namespace banyan::core
