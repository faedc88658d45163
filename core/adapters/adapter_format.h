// An adapter plugin (kind "adapter") and the base model it checks adapters against.
// open() returns an RAII handle over the plugin's adapter object.
//
// Thread-safety: immutable after construction; open() may run on several threads
// at once (adapter plugins must allow it: each handle is independent).
#pragma once

#include "core/plugin_host/plugin_host.h"

#include <banyan/abi.h>

#include <string>
#include <vector>

namespace banyan::core {

/// A linear layer of the base model, as the LoRA hook saw it.
struct BaseLinear {
  std::string name;
  int64_t in = 0, out = 0;
  bool is_output = false;
};

class AdapterFormat {
 public:
  /// Creates the plugin object. Throws banyan::Error when the plugin is missing.
  AdapterFormat(const PluginHost& plugins, const std::string& plugin, std::string model_type,
                int32_t num_layers, std::vector<BaseLinear> linears);

  class Handle {
   public:
    Handle(const AdapterFormat& f, void* adapter, const BanyanAdapterInfo& info)
        : format_(&f), adapter_(adapter), info_(info) {}
    ~Handle();
    Handle(Handle&& o) noexcept;
    Handle(const Handle&) = delete;
    Handle& operator=(const Handle&) = delete;
    Handle& operator=(Handle&&) = delete;
    const BanyanAdapterInfo& info() const { return info_; }

   private:
    const AdapterFormat* format_;
    void* adapter_;
    BanyanAdapterInfo info_;
  };

  /// Reads and checks the adapter at `path`. Throws banyan::Error with the plugin's
  /// code and message.
  Handle open(const std::string& path) const;

  const std::vector<BaseLinear>& linears() const { return linears_; }
  const std::string& plugin_name() const { return plugin_name_; }

 private:
  std::string plugin_name_;
  PluginObject plugin_;
  std::string model_type_;
  std::vector<BaseLinear> linears_;
  std::vector<BanyanLinearInfo> c_linears_;
  BanyanBaseModelInfo base_{};
};

}  // namespace banyan::core
