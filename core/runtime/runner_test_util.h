// A plugin host scanned once for the runtime tests (the build tree's plugins).
#pragma once

#include "core/common/logging.h"
#include "core/common/strings.h"
#include "core/plugin_host/plugin_host.h"

#include <gtest/gtest.h>

#include <cstdlib>

namespace banyan::core::test {

inline const PluginHost& plugins() {
  static PluginHost* host = [] {
    set_log_level("warn");
    auto* h = new PluginHost();  // lives for the whole test binary
    auto paths = PluginHost::default_search_paths();
    // Out-of-tree plugins (examples/) built by a test script: BANYAN_TEST_PLUGIN_PATH.
    if (const char* extra = std::getenv("BANYAN_TEST_PLUGIN_PATH"))
      for (const auto& p : split(extra, ':')) paths.emplace_back(p);
    h->scan(paths);
    // Other plugins of the build tree may be unbuilt here; the llama plugin must load.
    for (const auto& e : h->errors())
      if (e.find("model/llama") != std::string::npos) ADD_FAILURE() << "plugin refused: " << e;
    return h;
  }();
  return *host;
}

}  // namespace banyan::core::test
