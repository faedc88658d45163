// The plugin host: finds plugin libraries with their plugin.yaml manifests, checks
// them (ABI version, kind, name, required slots, manifest options) and creates
// plugin objects that keep their library loaded for as long as they live.
//
// Thread-safety: a PluginHost is filled once (scan) and read-only afterwards; its
// const methods may be called from any thread. PluginObject is move-only.
#pragma once

#include <banyan/abi.h>

#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

namespace banyan::core {

namespace fs = std::filesystem;

/// One declared option of a plugin (from plugin.yaml).
struct PluginOption {
  std::string name;
  std::string type;  ///< bool | int | float | string
  std::string default_json;  ///< default value as JSON text ("" when none)
  std::optional<double> min, max;
  std::vector<std::string> choices;  ///< for strings, when restricted
  std::string doc;
};

struct PluginInfo {
  std::string name;
  std::string kind;     ///< model | adapter | quantizer | decoding
  std::string version;
  uint32_t abi_major = 0, abi_minor = 0;
  fs::path library;     ///< the shared library
  fs::path manifest;    ///< its plugin.yaml
  std::vector<PluginOption> options;
};

const char* kind_name(int32_t kind);
std::optional<int32_t> kind_from_name(const std::string& name);

class PluginLibrary;  // a loaded shared library (Boost.DLL), shared by its objects

/// An object created by a plugin. Destroys it through the plugin, then releases
/// the library reference, so the library outlives every object it made.
class PluginObject {
 public:
  PluginObject() = default;
  PluginObject(std::shared_ptr<PluginLibrary> lib, const BanyanPluginV1* desc, void* obj);
  ~PluginObject();
  PluginObject(PluginObject&&) noexcept;
  PluginObject& operator=(PluginObject&&) noexcept;
  PluginObject(const PluginObject&) = delete;
  PluginObject& operator=(const PluginObject&) = delete;

  void* get() const { return obj_; }
  const BanyanPluginV1& descriptor() const { return *desc_; }
  /// The kind-specific function table (BanyanModelV1*, ...).
  template <class T> const T* iface() const { return static_cast<const T*>(desc_->iface); }
  explicit operator bool() const { return obj_ != nullptr; }

 private:
  void reset();
  std::shared_ptr<PluginLibrary> lib_;
  const BanyanPluginV1* desc_ = nullptr;
  void* obj_ = nullptr;
};

class PluginHost {
 public:
  PluginHost();
  ~PluginHost();
  PluginHost(const PluginHost&) = delete;
  PluginHost& operator=(const PluginHost&) = delete;

  /// The default search paths: <exe dir>/../lib/banyan/plugins (build tree and
  /// install prefix alike).
  static std::vector<fs::path> default_search_paths();

  /// Scans each directory recursively for plugin.yaml manifests and loads their
  /// libraries. A plugin that is refused is recorded in errors() with a message
  /// naming its file; the others stay usable. Throws only on a missing directory.
  void scan(const std::vector<fs::path>& dirs);

  const std::vector<PluginInfo>& plugins() const { return plugins_; }
  const std::vector<std::string>& errors() const { return errors_; }
  const PluginInfo* find(const std::string& kind, const std::string& name) const;

  /// Validates `options` (a JSON object) against the manifest, fills defaults and
  /// returns the merged options. Throws banyan::Error naming the plugin and option.
  nlohmann::json resolve_options(const PluginInfo& info, const nlohmann::json& options) const;

  /// Creates an object of plugin kind/name. `options_json` is passed to create().
  /// Throws banyan::Error with the plugin's message on failure.
  PluginObject create(const std::string& kind, const std::string& name,
                      const BanyanHostV1* host, const std::string& options_json) const;

 private:
  void load_one(const fs::path& manifest);
  struct Loaded;
  std::vector<PluginInfo> plugins_;
  std::vector<std::shared_ptr<PluginLibrary>> libs_;  // parallel to plugins_
  std::vector<std::string> errors_;
};

}  // namespace banyan::core
