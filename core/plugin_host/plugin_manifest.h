// plugin.yaml: what a plugin declares about itself before its library is loaded.
#pragma once

#include "core/plugin_host/plugin_host.h"

namespace banyan::core {

/// Reads and checks a plugin.yaml. The library path is resolved relative to the
/// manifest's folder. Throws banyan::Error naming the file and the key.
PluginInfo read_manifest(const fs::path& manifest);

}  // namespace banyan::core
