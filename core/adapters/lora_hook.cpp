#include "core/adapters/lora_hook.h"

#include "core/runtime/linear.h"
#include "core/runtime/model_runner.h"

#include <banyan/error.h>

namespace banyan::core {

const std::vector<BaseLinear>& LoraHook::probe(ModelRunner& runner) {
  LinearRegistry& reg = runner.linears();
  LinearAdapterHook* before = reg.adapter_hook();
  reg.set_adapter_hook(this);
  probing_ = true;
  linears_.clear();
  index_.clear();
  ForwardBatch b;
  b.token_ids = {0};
  b.positions = {0};
  b.slot_mapping = {0};
  b.adapter_slots = {0};
  b.block_tables = {0};
  SeqSlice s;
  s.query_start = 0;
  s.query_len = 1;
  s.context_len = 1;
  s.num_blocks = 1;
  s.logits_rows = 1;
  s.adapter_slot = 0;
  b.seqs = {s};
  try {
    runner.execute(b);
  } catch (...) {
    probing_ = false;
    reg.set_adapter_hook(before);
    throw;
  }
  probing_ = false;
  reg.set_adapter_hook(before);
  if (linears_.empty())
    throw Error(Code::unsupported, "model plugin \"" + runner.plugin_name() +
                                       "\" computes no linear layer through ops.linear: adapters cannot apply");
  return linears_;
}

int32_t LoraHook::module_index(const std::string& name) const {
  auto it = index_.find(name);
  return it == index_.end() ? -1 : it->second;
}

void LoraHook::before(const std::string& module, const LinearContext& ctx, const Tensor& x,
                      const Tensor& out) {
  if (probing_) return;
  auto it = index_.find(module);
  if (it != index_.end()) kernels_.prepare(it->second, ctx, x, out);
}

void LoraHook::apply(const std::string& module, const LinearContext& ctx, const Tensor& x,
                     Tensor& out) {
  if (probing_) {
    if (!index_.count(module)) {
      index_.emplace(module, static_cast<int32_t>(linears_.size()));
      const bool is_output = ctx.row_adapter_slots.data == ctx.layout.logits_adapter_slots.data &&
                             ctx.row_adapter_slots.data != ctx.layout.adapter_slots.data;
      linears_.push_back({module, x.shape[1], out.shape[1], is_output});
    }
    return;
  }
  auto it = index_.find(module);
  if (it == index_.end()) return;
  kernels_.apply(it->second, ctx, x, out);
}

}  // namespace banyan::core
