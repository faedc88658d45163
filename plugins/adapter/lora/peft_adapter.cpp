#include "peft_adapter.h"

#include <banyan/error.h>

#include <map>
#include <set>
#include <sstream>
#include <unordered_map>

namespace banyan::lora {
namespace {

namespace fs = std::filesystem;

constexpr std::string_view kPrefix = "base_model.model.";

bool ends_with(const std::string& s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

struct Parts {
  const Tensor* a = nullptr;
  const Tensor* b = nullptr;
  const Tensor* m = nullptr;
};

std::string fmt(double v) {
  std::ostringstream o;
  o << v;
  return o.str();
}

}  // namespace

PeftAdapter::PeftAdapter(const fs::path& dir, const BanyanBaseModelInfo& base) {
  const std::string d = dir.string();
  std::error_code ec;
  if (!fs::exists(dir, ec)) throw Error(Code::not_found, "adapter directory " + d + " does not exist");
  if (!fs::is_directory(dir, ec))
    throw Error(Code::invalid_argument, "adapter path " + d + " is not a directory (a PEFT adapter is "
                                        "a directory with adapter_config.json)");
  if (!fs::exists(dir / "adapter_config.json", ec))
    throw Error(Code::not_found, d + " has no adapter_config.json (not a PEFT adapter directory?)");
  config_ = PeftConfig::read(dir / "adapter_config.json");
  const fs::path st = dir / "adapter_model.safetensors";
  if (!fs::exists(st, ec)) {
    if (fs::exists(dir / "adapter_model.bin", ec))
      throw Error(Code::unsupported,
                  d + " holds adapter_model.bin, a pickled PyTorch file, which Banyan does not read "
                      "(unpickling can run arbitrary code). Save the adapter with safetensors: "
                      "model.save_pretrained(dir, safe_serialization=True), or convert the file with "
                      "safetensors.torch.save_file(torch.load(\"adapter_model.bin\"), "
                      "\"adapter_model.safetensors\")");
    throw Error(Code::not_found, d + " has no adapter_model.safetensors");
  }
  file_ = std::make_unique<StFile>(st);
  const std::string sf = st.string();
  const std::string base_hint =
      " (adapter for another base model?" +
      (config_.base_model.empty() ? std::string() : " it was trained on \"" + config_.base_model + "\"") +
      ")";

  std::map<std::string, Parts> parts;
  for (const auto& t : file_->tensors()) {
    const std::string& key = t.name;
    if (key.rfind(kPrefix, 0) != 0)
      throw Error(sf + ": tensor " + key + " does not start with \"" + std::string(kPrefix) +
                  "\" (not a PEFT adapter file?)");
    std::string rest = key.substr(kPrefix.size());
    const Tensor** slot = nullptr;
    for (auto [suffix, which] : {std::pair<std::string_view, int>{".lora_A.weight", 0},
                                 {".lora_B.weight", 1},
                                 {".lora_magnitude_vector.weight", 2},
                                 {".lora_magnitude_vector", 2}}) {
      if (!ends_with(rest, suffix)) continue;
      Parts& p = parts[rest.substr(0, rest.size() - suffix.size())];
      slot = which == 0 ? &p.a : which == 1 ? &p.b : &p.m;
      break;
    }
    if (!slot) {
      std::string why = "it is not a lora_A / lora_B weight or a DoRA magnitude";
      if (key.find("lora_embedding_") != std::string::npos) why = "LoRA on embedding layers is not supported";
      else if (ends_with(key, ".lora_A.bias") || ends_with(key, ".lora_B.bias"))
        why = "a bias on the LoRA matrices (lora_bias) is not supported";
      else if (key.find("modules_to_save") != std::string::npos || key.find("trainable_tokens") != std::string::npos)
        why = "modules_to_save / trainable tokens are not supported";
      throw Error(Code::unsupported, sf + ": tensor " + key + ": " + why);
    }
    if (*slot) throw Error(sf + ": tensor " + key + " appears twice");
    *slot = &t.view;
  }
  if (parts.empty()) throw Error(sf + " holds no LoRA weights");

  std::unordered_map<std::string, const BanyanLinearInfo*> linears;
  for (int32_t i = 0; i < base.num_linears; ++i) linears.emplace(base.linears[i].name, &base.linears[i]);
  const std::string model_type = base.model_type ? base.model_type : "?";

  // The file's modules against the base and the config.
  for (const auto& [name, p] : parts) {
    const std::string at = sf + ": module " + name;
    auto it = linears.find(name);
    if (it == linears.end())
      throw Error(at + " is not a linear layer of the base model (" + model_type + ")" + base_hint);
    const BanyanLinearInfo& lin = *it->second;
    if (!p.a || !p.b)
      throw Error(at + " has " + (p.a ? "lora_A but no lora_B" : "lora_B but no lora_A") + " weight");
    if (p.a->ndim != 2 || p.b->ndim != 2 || p.a->shape[0] != p.b->shape[1])
      throw Error(at + ": lora_A is " + p.a->shape_string() + " and lora_B " + p.b->shape_string() +
                  ", expected [r, in] and [out, r]");
    const int64_t rank = p.a->shape[0];
    if (p.a->shape[1] != lin.in_features || p.b->shape[0] != lin.out_features)
      throw Error(at + ": lora_A " + p.a->shape_string() + " and lora_B " + p.b->shape_string() +
                  " do not fit the base layer's " + std::to_string(lin.in_features) + " inputs and " +
                  std::to_string(lin.out_features) + " outputs" + base_hint);
    if (config_.use_dora && !p.m)
      throw Error(at + ": adapter_config.json has use_dora but the file has no lora_magnitude_vector");
    if (!config_.use_dora && p.m)
      throw Error(at + ": the file has a DoRA magnitude vector but adapter_config.json's use_dora is false");
    if (p.m && (p.m->ndim != 1 || p.m->shape[0] != lin.out_features))
      throw Error(at + ": lora_magnitude_vector is " + p.m->shape_string() + ", expected [" +
                  std::to_string(lin.out_features) + "]");
    if (config_.has_targets && !config_.targets(name, lin.is_output != 0))
      throw Error(at + " has weights, but adapter_config.json's target_modules / exclude_modules / "
                  "layers_to_transform do not select it");
    const int32_t want = config_.rank_of(name);
    if (rank != want)
      throw Error(at + ": lora_A has rank " + std::to_string(rank) + " but adapter_config.json gives " +
                  std::to_string(want) + " (r / rank_pattern)");
  }
  if (config_.has_targets)
    for (int32_t i = 0; i < base.num_linears; ++i) {
      const BanyanLinearInfo& lin = base.linears[i];
      if (!parts.count(lin.name) && config_.targets(lin.name, lin.is_output != 0))
        throw Error(sf + ": adapter_config.json selects the base model's " + std::string(lin.name) +
                    " but the file has no weights for it" + base_hint);
    }

  // Modules in the base model's order.
  std::set<std::string> short_names;
  std::string dtype;
  for (int32_t i = 0; i < base.num_linears; ++i)
    if (parts.count(base.linears[i].name)) names_.emplace_back(base.linears[i].name);
  int32_t max_rank = 0;
  for (const auto& name : names_) {
    const Parts& p = parts.at(name);
    BanyanAdapterModule m{};
    m.name = name.c_str();
    m.rank = static_cast<int32_t>(p.a->shape[0]);
    m.scaling = static_cast<float>(config_.scaling_of(name));
    m.lora_a = *p.a;
    m.lora_b = *p.b;
    if (p.m) m.magnitude = *p.m;
    m.weight_transposed = config_.fan_in_fan_out ? 1 : 0;
    modules_.push_back(m);
    max_rank = std::max(max_rank, m.rank);
    short_names.insert(name.substr(name.rfind('.') + 1));
    dtype = std::string(dtype_name(p.a->type()));
  }
  summary_ = std::string(config_.use_dora ? "DoRA" : config_.use_rslora ? "rsLoRA" : "LoRA") +
             " r=" + std::to_string(config_.r) + " alpha=" + fmt(config_.lora_alpha) +
             (config_.use_dora && config_.use_rslora ? " rsLoRA" : "") + ", " +
             std::to_string(modules_.size()) + " modules (";
  bool first = true;
  for (const auto& s : short_names) summary_ += (first ? "" : ",") + s, first = false;
  summary_ += "), " + dtype;
  info_.struct_size = sizeof(BanyanAdapterInfo);
  info_.num_modules = static_cast<int32_t>(modules_.size());
  info_.modules = modules_.data();
  info_.max_rank = max_rank;
  info_.method = config_.use_dora ? "dora" : "lora";
  info_.summary = summary_.c_str();
}

}  // namespace banyan::lora
