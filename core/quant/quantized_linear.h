// A LinearProvider over a quantized weight: the tensors of a QuantizedMatrix copied
// to the backend's memory, multiplied with the layout's kernel for that backend
// (quant_kernels.h). A bias stays dense (the checkpoint's module.bias).
//
// Thread-safety: used by the engine thread only.
#pragma once

#include "core/quant/quant_kernels.h"
#include "core/quant/quantized_matrix.h"
#include "core/runtime/device_buffer.h"
#include "core/runtime/linear.h"

#include <memory>
#include <string>
#include <vector>

namespace banyan::core {

/// Device scratch shared by the quantized linears of one model (used by one thread):
/// on CUDA, the bf16 copy of one weight that batches too large for the fused GEMV
/// multiply with cuBLASLt. Grows to the largest weight during the warm-up steps.
struct DequantScratch {
  DeviceBuffer buffer;
  /// On CUDA, the FP8 W8A8 GEMM (kernels::cuda::Fp8Gemm), made on first use.
  std::shared_ptr<void> fp8_gemm;
};

/// CUDA: the most rows of x for which a quantized product runs the GEMV (1-4 rows) on
/// chunks of up to 4 rows, streaming the packed weight once per chunk, instead of
/// dequantizing the weight to bf16 for cuBLASLt (BANYAN_QUANT_GEMV_CHUNK_ROWS; default
/// 0: off, an A/B for the GPU bench not yet measured).
int64_t quant_gemv_chunk_rows();
void set_quant_gemv_chunk_rows(int64_t rows);

struct QuantizedLinearOptions {
  /// FP8 W8A8 (the fp8 plugin's `w8a8` option): the activations are quantized to
  /// e4m3 per tensor on the device and multiplied with the fp8 weight by cuBLASLt.
  /// CUDA devices of compute capability 8.9+ only; fp8 weights only.
  bool fp8_activations = false;
  /// CUDA, one row of x: the GEMV variant (benchmarks and tests; -1 the default, see
  /// kernels/cuda/quant_gemm.h).
  int gemv_variant = -1;
  /// CUDA: the SM count the GEMV sizes its grid for (tests; 0: the device's).
  int gemv_num_sms = 0;
};

class QuantizedLinear final : public LinearProvider {
 public:
  /// Uploads `weight` (validated first). `bias`: a device tensor [rows] or null.
  /// `scratch`: shared with the model's other quantized linears (null: its own).
  /// Throws Error(unsupported) when the backend has no kernels for the layout (or,
  /// with options.fp8_activations, no FP8 GEMM), Error(invalid_argument) for
  /// fp8_activations on a weight that is not fp8.
  QuantizedLinear(Backend& backend, const std::string& module, const QuantizedMatrix& weight,
                  const Tensor* bias, std::shared_ptr<DequantScratch> scratch = nullptr,
                  QuantizedLinearOptions options = {});
  int64_t in_features() const override { return view_.cols; }
  int64_t out_features() const override { return view_.rows; }
  void forward(const LinearContext& ctx, const Tensor& x, Tensor& out) override;

  /// Device bytes of the quantized tensors (the bias not counted).
  size_t device_bytes() const { return bytes_; }
  /// The tensors in the backend's memory. On CUDA an NF4 weight with double
  /// quantization holds f32 absmax per block there (group_size2 0), not the nested
  /// statistics; an int4 weight may hold the tensor-core layout.
  const QuantView& view() const { return view_; }

 private:
  std::string module_;
  std::vector<DeviceBuffer> buffers_;
  QuantView view_;
  Tensor bias_;
  size_t bytes_ = 0;
  std::shared_ptr<DequantScratch> scratch_;
  QuantizedLinearOptions options_;
  bool int4_mma_ = false;  ///< CUDA: qweight in kernels/cuda's tensor-core int4 layout
};

}  // namespace banyan::core
