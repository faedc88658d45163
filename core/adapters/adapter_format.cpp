#include "core/adapters/adapter_format.h"

#include "core/common/logging.h"

#include <banyan/error.h>

#include <nlohmann/json.hpp>

namespace banyan::core {

AdapterFormat::AdapterFormat(const PluginHost& plugins, const std::string& plugin,
                             std::string model_type, int32_t num_layers,
                             std::vector<BaseLinear> linears)
    : plugin_name_(plugin), model_type_(std::move(model_type)), linears_(std::move(linears)) {
  const PluginInfo* info = plugins.find("adapter", plugin);
  if (!info) {
    std::string known, other_kind;
    for (const auto& p : plugins.plugins()) {
      if (p.kind == "adapter") known += (known.empty() ? "" : ", ") + p.name;
      if (p.name == plugin && p.kind != "adapter") other_kind = p.kind;
    }
    throw Error(Code::not_found,
                "adapters.plugin: " +
                    (other_kind.empty() ? "no adapter plugin named \"" + plugin + "\" is loaded"
                                        : "\"" + plugin + "\" is a " + other_kind + " plugin, not an adapter plugin") +
                    (known.empty() ? std::string(" (no adapter plugin is loaded; see `banyan plugins list`)")
                                   : " (adapter plugins: " + known + ")"));
  }
  static const BanyanHostV1 host = [] {
    BanyanHostV1 h{};
    h.struct_size = sizeof(BanyanHostV1);
    h.abi_major = BANYAN_ABI_MAJOR;
    h.abi_minor = BANYAN_ABI_MINOR;
    h.log = &banyan_host_log;
    return h;
  }();
  plugin_ = plugins.create("adapter", plugin, &host,
                           plugins.resolve_options(*info, nlohmann::json::object()).dump());
  for (const auto& l : linears_)
    c_linears_.push_back({l.name.c_str(), l.in, l.out, l.is_output ? 1 : 0});
  base_.struct_size = sizeof(BanyanBaseModelInfo);
  base_.model_type = model_type_.c_str();
  base_.num_layers = num_layers;
  base_.num_linears = static_cast<int32_t>(c_linears_.size());
  base_.linears = c_linears_.data();
}

AdapterFormat::Handle AdapterFormat::open(const std::string& path) const {
  const auto* iface = plugin_.iface<BanyanAdapterV1>();
  void* adapter = nullptr;
  BanyanAdapterInfo info{};
  info.struct_size = sizeof(BanyanAdapterInfo);
  BanyanError err{};
  int32_t rc = iface->open(plugin_.get(), path.c_str(), &base_, &adapter, &info, &err);
  if (rc != BANYAN_OK) throw Error(static_cast<Code>(rc), err.message);
  if (!adapter) throw Error(Code::internal, "adapter plugin \"" + plugin_name_ + "\" returned no handle");
  return Handle(*this, adapter, info);
}

AdapterFormat::Handle::~Handle() {
  if (adapter_) format_->plugin_.iface<BanyanAdapterV1>()->close(format_->plugin_.get(), adapter_);
}

AdapterFormat::Handle::Handle(Handle&& o) noexcept
    : format_(o.format_), adapter_(std::exchange(o.adapter_, nullptr)), info_(o.info_) {}

}  // namespace banyan::core
