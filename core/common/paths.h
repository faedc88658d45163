// Where the running binary lives, and paths relative to it.
#pragma once

#include <filesystem>

namespace banyan::core {

/// Directory of the running executable (/proc/self/exe), or the current directory
/// when it cannot be read.
std::filesystem::path executable_dir();

}  // namespace banyan::core
