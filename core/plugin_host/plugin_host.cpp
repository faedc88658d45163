#include "core/plugin_host/plugin_host.h"

#include "core/common/logging.h"
#include "core/common/paths.h"
#include "core/common/strings.h"
#include "core/plugin_host/plugin_manifest.h"

#include <banyan/error.h>

#include <boost/dll/shared_library.hpp>
#include <dlfcn.h>
#include <nlohmann/json.hpp>

#include <cmath>
#include <cstddef>
#include <set>

namespace banyan::core {

/// A loaded library. Opened with RTLD_NODELETE: the code stays mapped even after
/// the last reference goes, so nothing a plugin handed out can dangle.
class PluginLibrary {
 public:
  explicit PluginLibrary(const fs::path& path) {
    auto mode = static_cast<boost::dll::load_mode::type>(RTLD_NOW | RTLD_LOCAL | RTLD_NODELETE);
    lib_.load(path, mode);
  }
  bool has(const char* symbol) const { return lib_.has(symbol); }
  BanyanPluginEntryFn entry() const {
    return lib_.get<const BanyanPluginV1*()>(BANYAN_PLUGIN_ENTRY_SYMBOL);
  }

 private:
  boost::dll::shared_library lib_;
};

const char* kind_name(int32_t kind) {
  switch (kind) {
    case BANYAN_KIND_MODEL: return "model";
    case BANYAN_KIND_ADAPTER: return "adapter";
    case BANYAN_KIND_QUANTIZER: return "quantizer";
    case BANYAN_KIND_DECODING: return "decoding";
  }
  return "unknown";
}

std::optional<int32_t> kind_from_name(const std::string& name) {
  for (int32_t k = BANYAN_KIND_MODEL; k <= BANYAN_KIND_DECODING; ++k)
    if (name == kind_name(k)) return k;
  return std::nullopt;
}

// ---------------------------------------------------------------- objects ----
PluginObject::PluginObject(std::shared_ptr<PluginLibrary> lib, const BanyanPluginV1* desc, void* obj)
    : lib_(std::move(lib)), desc_(desc), obj_(obj) {}
PluginObject::~PluginObject() { reset(); }
PluginObject::PluginObject(PluginObject&& o) noexcept
    : lib_(std::move(o.lib_)), desc_(o.desc_), obj_(o.obj_) {
  o.obj_ = nullptr;
}
PluginObject& PluginObject::operator=(PluginObject&& o) noexcept {
  if (this != &o) {
    reset();
    lib_ = std::move(o.lib_);
    desc_ = o.desc_;
    obj_ = o.obj_;
    o.obj_ = nullptr;
  }
  return *this;
}
void PluginObject::reset() {
  if (obj_ && desc_ && desc_->destroy) desc_->destroy(obj_);
  obj_ = nullptr;
  lib_.reset();  // the library reference goes only after the object is gone
}

// ---------------------------------------------------------------- host -------
PluginHost::PluginHost() = default;
PluginHost::~PluginHost() = default;

std::vector<fs::path> PluginHost::default_search_paths() {
  std::vector<fs::path> out;
  fs::path dir = executable_dir() / ".." / "lib" / "banyan" / "plugins";
  std::error_code ec;
  if (fs::is_directory(dir, ec)) out.push_back(fs::weakly_canonical(dir, ec));
  return out;
}

void PluginHost::scan(const std::vector<fs::path>& dirs) {
  for (const auto& dir : dirs) {
    std::error_code ec;
    if (!fs::is_directory(dir, ec))
      throw Error(Code::not_found, "plugin search path " + dir.string() + " is not a directory");
    std::vector<fs::path> manifests;
    for (auto it = fs::recursive_directory_iterator(
             dir, fs::directory_options::follow_directory_symlink |
                      fs::directory_options::skip_permission_denied, ec);
         !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
      if (it->path().filename() == "plugin.yaml" && it->is_regular_file(ec))
        manifests.push_back(it->path());
    }
    if (ec) throw Error("cannot scan plugin search path " + dir.string() + ": " + ec.message());
    std::sort(manifests.begin(), manifests.end());
    for (const auto& m : manifests) {
      try {
        load_one(m);
      } catch (const std::exception& e) {
        errors_.push_back(e.what());  // callers report them (CLI: stderr; engine: log)
      }
    }
  }
}

void PluginHost::load_one(const fs::path& manifest) {
  PluginInfo info = read_manifest(manifest);
  const std::string lib_name = info.library.string();
  std::error_code ec;
  if (!fs::is_regular_file(info.library, ec))
    throw Error(Code::not_found, "plugin " + manifest.string() + ": library " + lib_name +
                                     " does not exist");
  for (size_t i = 0; i < plugins_.size(); ++i) {
    const auto& p = plugins_[i];
    if (p.kind == info.kind && p.name == info.name) {
      // The same library reached twice (e.g. build tree and --plugin-path) is not a clash.
      if (fs::equivalent(p.library, info.library, ec)) return;
      throw Error("plugin " + lib_name + ": duplicate " + info.kind + " plugin name \"" +
                  info.name + "\" (already loaded from " + p.library.string() + ")");
    }
  }
  std::shared_ptr<PluginLibrary> lib;
  try {
    lib = std::make_shared<PluginLibrary>(info.library);
  } catch (const std::exception& e) {
    throw Error("plugin " + lib_name + ": cannot load library: " + e.what());
  }
  if (!lib->has(BANYAN_PLUGIN_ENTRY_SYMBOL))
    throw Error(Code::not_found, "plugin " + lib_name + ": missing symbol " +
                                     BANYAN_PLUGIN_ENTRY_SYMBOL + " (not a Banyan plugin?)");
  const BanyanPluginV1* d = lib->entry()();
  if (!d) throw Error("plugin " + lib_name + ": " + BANYAN_PLUGIN_ENTRY_SYMBOL + " returned null");
  // The first three fields are fixed forever: check the version before anything else.
  std::string built = std::to_string(d->abi_major) + "." + std::to_string(d->abi_minor);
  std::string host = std::to_string(BANYAN_ABI_MAJOR) + "." + std::to_string(BANYAN_ABI_MINOR);
  if (d->abi_major != BANYAN_ABI_MAJOR)
    throw Error(Code::unsupported, "plugin " + lib_name + ": built for plugin ABI " + built +
                                       ", this host speaks ABI " + host +
                                       " (major versions differ; rebuild the plugin)");
  if (d->abi_minor > BANYAN_ABI_MINOR)
    throw Error(Code::unsupported, "plugin " + lib_name + ": built for plugin ABI " + built +
                                       ", newer than this host's " + host +
                                       " (upgrade Banyan or rebuild the plugin)");
  if (d->struct_size < sizeof(BanyanPluginV1))
    throw Error(Code::unsupported, "plugin " + lib_name + ": descriptor struct_size " +
                                       std::to_string(d->struct_size) + " is smaller than " +
                                       std::to_string(sizeof(BanyanPluginV1)) + " (corrupt descriptor)");
  std::string dkind = kind_name(d->kind);
  if (dkind != info.kind)
    throw Error("plugin " + lib_name + ": manifest " + manifest.string() + " says kind \"" +
                info.kind + "\" but the library is a \"" + dkind + "\" plugin");
  std::string dname = d->name ? d->name : "";
  std::string dversion = d->version ? d->version : "";
  if (dname != info.name)
    throw Error("plugin " + lib_name + ": manifest " + manifest.string() + " says name \"" +
                info.name + "\" but the library calls itself \"" + dname + "\"");
  if (dversion != info.version)
    throw Error("plugin " + lib_name + ": manifest " + manifest.string() + " says version \"" +
                info.version + "\" but the library is version \"" + dversion + "\"");
  const char* missing = nullptr;
  if (!d->create) missing = "create";
  else if (!d->destroy) missing = "destroy";
  else if (!d->iface) missing = "iface";
  else if (d->kind == BANYAN_KIND_MODEL) {
    auto* m = static_cast<const BanyanModelV1*>(d->iface);
    if (m->struct_size < sizeof(BanyanModelV1)) missing = "BanyanModelV1 (struct too small)";
    else if (!m->describe) missing = "BanyanModelV1.describe";
    else if (!m->forward) missing = "BanyanModelV1.forward";
  } else if (d->kind == BANYAN_KIND_DECODING) {
    auto* m = static_cast<const BanyanDecodingV1*>(d->iface);
    // decode_on (ABI 1.2) is optional: an older, shorter table is fine.
    if (m->struct_size < offsetof(BanyanDecodingV1, decode_on)) missing = "BanyanDecodingV1 (struct too small)";
    else if (!m->decode) missing = "BanyanDecodingV1.decode";
  } else if (d->kind == BANYAN_KIND_ADAPTER) {
    auto* a = static_cast<const BanyanAdapterV1*>(d->iface);
    if (a->struct_size < sizeof(BanyanAdapterV1)) missing = "BanyanAdapterV1 (struct too small)";
    else if (!a->open) missing = "BanyanAdapterV1.open";
    else if (!a->close) missing = "BanyanAdapterV1.close";
  } else if (d->kind == BANYAN_KIND_QUANTIZER) {
    auto* q = static_cast<const BanyanQuantizerV1*>(d->iface);
    if (q->struct_size < sizeof(BanyanQuantizerV1)) missing = "BanyanQuantizerV1 (struct too small)";
    else if (!q->plan) missing = "BanyanQuantizerV1.plan";
    else if (!q->quantize) missing = "BanyanQuantizerV1.quantize";
    else if (!q->dequantize) missing = "BanyanQuantizerV1.dequantize";
    else if (!q->plan_checkpoint != !q->convert_checkpoint)
      missing = q->plan_checkpoint ? "BanyanQuantizerV1.convert_checkpoint (plan_checkpoint is set)"
                                   : "BanyanQuantizerV1.plan_checkpoint (convert_checkpoint is set)";
  }
  if (missing)
    throw Error(Code::not_found, "plugin " + lib_name + ": required slot \"" + missing +
                                     "\" is null");
  info.abi_major = d->abi_major;
  info.abi_minor = d->abi_minor;
  info.library = fs::weakly_canonical(info.library, ec);
  plugins_.push_back(std::move(info));
  libs_.push_back(std::move(lib));
}

const PluginInfo* PluginHost::find(const std::string& kind, const std::string& name) const {
  for (const auto& p : plugins_)
    if (p.kind == kind && p.name == name) return &p;
  return nullptr;
}

nlohmann::json PluginHost::resolve_options(const PluginInfo& info,
                                           const nlohmann::json& options) const {
  using nlohmann::json;
  std::string who = info.kind + " plugin \"" + info.name + "\" (" + info.manifest.string() + ")";
  if (!options.is_null() && !options.is_object())
    throw Error("options of " + who + " must be a mapping");
  json out = json::object();
  std::vector<std::string> names;
  for (const auto& o : info.options) names.push_back(o.name);
  if (options.is_object()) {
    for (const auto& [key, value] : options.items()) {
      const PluginOption* opt = nullptr;
      for (const auto& o : info.options)
        if (o.name == key) opt = &o;
      if (!opt) {
        std::string hint = closest_match(key, names);
        throw Error("unknown option \"" + key + "\" for " + who +
                    (hint.empty() ? "" : "; did you mean \"" + hint + "\"?"));
      }
      std::string at = "option \"" + key + "\" of " + who;
      bool ok = (opt->type == "bool" && value.is_boolean()) ||
                (opt->type == "int" && value.is_number_integer()) ||
                (opt->type == "float" && value.is_number()) ||
                (opt->type == "string" && value.is_string());
      if (!ok) throw Error(at + ": expected " + opt->type + ", got " + value.dump());
      if (value.is_number()) {
        double v = value.get<double>();
        if ((opt->min && v < *opt->min) || (opt->max && v > *opt->max))
          throw Error(at + ": " + value.dump() + " is out of range [" +
                      (opt->min ? json(*opt->min).dump() : "-inf") + ", " +
                      (opt->max ? json(*opt->max).dump() : "inf") + "]");
      }
      if (!opt->choices.empty() &&
          std::find(opt->choices.begin(), opt->choices.end(), value.get<std::string>()) ==
              opt->choices.end())
        throw Error(at + ": " + value.dump() + " is not one of the allowed values");
      out[key] = value;
    }
  }
  for (const auto& o : info.options)
    if (!out.contains(o.name) && !o.default_json.empty()) out[o.name] = json::parse(o.default_json);
  return out;
}

PluginObject PluginHost::create(const std::string& kind, const std::string& name,
                                const BanyanHostV1* host, const std::string& options_json) const {
  for (size_t i = 0; i < plugins_.size(); ++i) {
    const auto& p = plugins_[i];
    if (p.kind != kind || p.name != name) continue;
    const BanyanPluginV1* d = libs_[i]->entry()();
    BanyanError err{};
    void* obj = d->create(host, options_json.c_str(), &err);
    if (!obj)
      throw Error(err.code ? static_cast<Code>(err.code) : Code::internal,
                  kind + " plugin \"" + name + "\" (" + p.library.string() +
                      ") failed to start: " + (err.message[0] ? err.message : "no message"));
    return PluginObject(libs_[i], d, obj);
  }
  std::vector<std::string> names;
  for (const auto& p : plugins_)
    if (p.kind == kind) names.push_back(p.name);
  std::string hint = closest_match(name, names);
  throw Error(Code::not_found, "no " + kind + " plugin named \"" + name + "\" is loaded" +
                                   (hint.empty() ? "" : "; did you mean \"" + hint + "\"?") +
                                   " (see `banyan plugins list`)");
}

}  // namespace banyan::core
