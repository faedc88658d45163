// Checkpoint tensors on the device. Each tensor is converted to the backend's
// weight dtype (Backend::weight_dtype) and uploaded the first time it is asked
// for (or, when the backend can compute from host memory in that dtype, used in
// place from the memory-mapped file: the CPU backend with bf16 weights), so that a quantizer or a provider that never asks for a dense copy of a
// weight never pays its memory. ModelRunner asks for everything during warm-up.
//
// Thread-safety: used by the engine thread only (loading mutates the store).
#pragma once

#include "core/runtime/checkpoint.h"
#include "core/runtime/device_buffer.h"

#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

namespace banyan::core {

class WeightStore {
 public:
  WeightStore(const Checkpoint& checkpoint, Backend& backend);

  /// The device tensor of `name`, loaded on first use. Throws Error(not_found)
  /// naming the tensor and the checkpoint when absent, Error(unsupported) for a
  /// dtype or rank the backend cannot hold.
  const Tensor& get(const std::string& name);
  /// Null when the checkpoint has no such tensor.
  const Tensor* find(const std::string& name);
  /// Shape and device dtype without loading (data is null unless loaded).
  bool info(const std::string& name, Tensor* out) const;
  /// Declares the logical shape and dtype of a weight the checkpoint stores in
  /// another form (a pre-quantized module's "<module>.weight"): info() reports it,
  /// get()/find() refuse it (only the module's quantizer reads the stored tensors).
  void declare(const std::string& name, const Tensor& logical);

  /// Loads tensors that are not loaded yet into one buffer, side by side along their
  /// first dimension (each keeps its own name as a view into it), and returns the
  /// whole: [ΣD0, D1...]. They must share dtype, rank and the other dimensions.
  /// Returns nullopt (and loads nothing) when one is absent, declared, already loaded,
  /// does not match or is not a multiple of 16 bytes: the caller then uses them one by one.
  std::optional<Tensor> load_fused(const std::vector<std::string>& names);
  bool loaded(const std::string& name) const { return loaded_.count(name) != 0; }

  const Checkpoint& checkpoint() const { return ckpt_; }
  Backend& backend() const { return backend_; }
  /// Bytes of the tensors loaded so far: copies on the device, and tensors the
  /// backend reads in place from the memory-mapped checkpoint (CPU, same dtype).
  size_t device_bytes() const { return device_bytes_ + mapped_bytes_; }
  size_t mapped_bytes() const { return mapped_bytes_; }

 private:
  struct Entry {
    DeviceBuffer buffer;
    Tensor tensor;
  };
  Tensor describe(const SafetensorsTensor& t) const;
  const Checkpoint& ckpt_;
  Backend& backend_;
  std::unordered_map<std::string, Entry> loaded_;
  std::unordered_map<std::string, Tensor> declared_;
  std::vector<DeviceBuffer> fused_;  // buffers of load_fused(); entries are views
  size_t device_bytes_ = 0;
  size_t mapped_bytes_ = 0;
};

}  // namespace banyan::core
