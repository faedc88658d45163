// An adapter in the form the LoRA kernels read: one contiguous image holding, per
// module, A [r, in] and B^T [r, out] (in the activation dtype, or BF16 when the
// activations are F32 and the file's tensors are all BF16: lossless, and half the
// bytes every step reads) and, for DoRA, the
// per-output scale magnitude / ||W + scaling·B·A|| and bias term (f32). The same
// bytes live in the host tier and, module by module, in the device pool: each
// module's segment (its A, B^T and DoRA vectors, contiguous) may be placed apart
// from the others (module_segments()).
#pragma once

#include "core/runtime/checkpoint.h"

#include <banyan/abi.h>
#include <banyan/tensor.h>

#include <cstddef>
#include <functional>
#include <string>
#include <vector>

namespace banyan::core {

struct PackedModule {
  int32_t module = -1;  ///< index of the base linear layer (the hook's module table)
  int32_t rank = 0;
  int64_t in = 0, out = 0;
  float scaling = 0;
  bool dora = false;
  bool bias = false;          ///< DoRA over a layer with a bias
  size_t a_offset = 0, bt_offset = 0, scale_offset = 0, bias_offset = 0;
};

struct AdapterLayout {
  std::vector<std::string> names;       ///< module names, parallel to modules
  std::vector<PackedModule> modules;
  DType dtype = DType::f32;             ///< of A and B^T (see above)
  size_t bytes = 0;                     ///< of the whole image
  int32_t max_rank = 0;
};

/// Plans the image of an adapter as a plugin described it, for `activation` (the
/// backend's activation dtype: F32 or BF16). `module_index` maps a
/// module name to its index (-1: unknown → Error); `base` tells whether a module
/// has a bias (for DoRA). Reads no tensor data.
AdapterLayout plan_adapter(const BanyanAdapterInfo& info, DType activation,
                           const std::function<int32_t(const std::string&)>& module_index,
                           const Checkpoint& base);

/// Module i's segment of the image: [offset, offset + bytes), from its a_offset to
/// the next module's (the last ends at layout.bytes). Everything of module i lies
/// inside it, so placed at address P its weights are at P + (x_offset - offset).
struct ModuleSegment {
  size_t offset = 0, bytes = 0;
};
std::vector<ModuleSegment> module_segments(const AdapterLayout& layout);

/// Fills `image` (layout.bytes) from the plugin's tensors; for DoRA, computes the
/// weight norm from the base checkpoint's weight exactly as PEFT does (row-wise L2
/// norm of W + scaling·B·A, in f32, W as [out, in]). Thread-safe (no shared state).
void pack_adapter(const BanyanAdapterInfo& info, const AdapterLayout& layout,
                  const Checkpoint& base, std::byte* image);

}  // namespace banyan::core
