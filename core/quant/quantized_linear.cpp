#include "core/quant/quantized_linear.h"

#include <banyan/error.h>

#include <algorithm>
#include <cstdlib>

#ifdef BANYAN_WITH_CUDA
#include "kernels/cuda/cuda_backend.h"
#include "kernels/cuda/quant_gemm.h"
#endif


namespace banyan::core {

namespace {

int64_t initial_chunk_rows() {
  const char* e = std::getenv("BANYAN_QUANT_GEMV_CHUNK_ROWS");
  return e && *e ? std::max<int64_t>(0, std::atoll(e)) : 0;
}
int64_t g_chunk_rows = initial_chunk_rows();

#ifdef BANYAN_WITH_CUDA
kernels::cuda::QuantWeightDev device_view(const QuantView& v) {
  kernels::cuda::QuantWeightDev d;
  d.layout = v.layout;
  d.rows = v.rows;
  d.cols = v.cols;
  d.group_size = v.group_size;
  d.group_size2 = v.group_size2;
  d.offset = v.offset;
  d.per_row_scale = v.per_row_scale;
  d.qweight = v.qweight;
  d.scales = v.scales;
  d.zeros = v.zeros;
  d.code = v.code;
  d.scales2 = v.scales2;
  d.code2 = v.code2;
  return d;
}
#endif

}  // namespace

int64_t quant_gemv_chunk_rows() { return g_chunk_rows; }
void set_quant_gemv_chunk_rows(int64_t rows) { g_chunk_rows = std::max<int64_t>(0, rows); }

QuantizedLinear::QuantizedLinear(Backend& backend, const std::string& module,
                                 const QuantizedMatrix& weight, const Tensor* bias,
                                 std::shared_ptr<DequantScratch> scratch, QuantizedLinearOptions options)
    : module_(module),
      scratch_(scratch ? std::move(scratch) : std::make_shared<DequantScratch>()),
      options_(options) {
  const BanyanQuantizedWeight& w = weight.get();
  validate(w, module);
  const DeviceType dev = backend.device().type;
  if (options_.fp8_activations) {
    if (w.layout != BANYAN_QUANT_FP8)
      throw Error(Code::invalid_argument, "quantized linear " + module + ": FP8 activations (w8a8) need an fp8 weight, not " +
                                              describe(w));
    if (w.rows % 16 != 0 || w.cols % 16 != 0)
      throw Error(Code::unsupported, "quantized linear " + module + ": FP8 W8A8 (w8a8) needs both dimensions a multiple "
                                     "of 16 (cuBLASLt FP8), not [" + std::to_string(w.rows) + ", " + std::to_string(w.cols) + "]");
    std::string why = "it needs a CUDA device";
#ifdef BANYAN_WITH_CUDA
    if (dev == DeviceType::cuda && kernels::cuda::Fp8Gemm::supported(backend.device().index, &why)) why.clear();
#endif
    if (!why.empty())
      throw Error(Code::unsupported, "quantized linear " + module + ": FP8 W8A8 (w8a8) on " + backend.name() + ": " + why);
  }
#ifdef BANYAN_WITH_CUDA
  const bool have_kernels = dev == DeviceType::cpu || dev == DeviceType::cuda;
#else
  const bool have_kernels = dev == DeviceType::cpu;
#endif
  if (!have_kernels)
    throw Error(Code::unsupported, "quantized linear " + module + " on " + backend.name() +
                                       ": no quantized kernels are built for this device");
  const void* ptrs[6] = {};
  const auto slots = tensor_slots(w);
  // On CUDA an int4 weight of a suitable shape is stored in the tensor-core layout.
  std::vector<uint8_t> repacked;
  std::vector<float> absmax;
#ifdef BANYAN_WITH_CUDA
  if (dev == DeviceType::cuda && w.layout == BANYAN_QUANT_INT4_GROUP &&
      kernels::cuda::quant_int4_mma_eligible(w.rows, w.cols, w.group_size)) {
    repacked.resize(Tensor(w.qweight).nbytes());
    kernels::cuda::quant_int4_repack_mma(static_cast<const uint8_t*>(w.qweight.data), w.rows, w.cols,
                                         repacked.data());
    int4_mma_ = true;
  }
  // On CUDA, NF4 with double quantization keeps one f32 absmax per block (code2[i] *
  // scales2 + offset, computed here as the CPU kernels do), not the nested statistics:
  // the GEMV reads one scale per vector instead of a chain of dependent loads.
  if (dev == DeviceType::cuda && w.layout == BANYAN_QUANT_LUT4_BLOCK && w.group_size2 > 0) {
    const Tensor s(w.scales), s2(w.scales2), c2(w.code2);
    absmax.resize(static_cast<size_t>(s.numel()));
    const auto* q8 = static_cast<const uint8_t*>(s.data);
    const auto* sc2 = static_cast<const float*>(s2.data);
    const auto* cd2 = static_cast<const float*>(c2.data);
    for (size_t b = 0; b < absmax.size(); ++b)
      absmax[b] = cd2[q8[b]] * sc2[static_cast<int64_t>(b) / w.group_size2] + w.offset;
  }
#endif
  for (size_t i = 0; i < slots.size(); ++i) {
    const Tensor t(*slots[i]);
    if (t.ndim == 0) continue;
    const void* src = i == 0 && int4_mma_ ? repacked.data() : t.data;
    size_t nbytes = t.nbytes();
    if (!absmax.empty()) {
      if (i == 4 || i == 5) continue;  // scales2, code2: folded into absmax
      if (i == 1) {
        src = absmax.data();
        nbytes = absmax.size() * sizeof(float);
      }
    }
    buffers_.emplace_back(backend, nbytes);
    backend.upload(buffers_.back().data(), src, nbytes);
    ptrs[i] = buffers_.back().data();
    bytes_ += nbytes;
  }
  view_.layout = w.layout;
  view_.rows = w.rows;
  view_.cols = w.cols;
  view_.group_size = w.group_size;
  view_.group_size2 = absmax.empty() ? w.group_size2 : 0;
  view_.offset = absmax.empty() ? w.offset : 0.0f;
  view_.per_row_scale = Tensor(w.scales).numel() == w.rows && w.rows > 1;
  view_.qweight = ptrs[0];
  view_.scales = ptrs[1];
  view_.zeros = static_cast<const uint8_t*>(ptrs[2]);
  view_.code = static_cast<const float*>(ptrs[3]);
  view_.scales2 = static_cast<const float*>(ptrs[4]);
  view_.code2 = static_cast<const float*>(ptrs[5]);
  if (bias) {
    if (bias->ndim != 1 || bias->shape[0] != w.rows || bias->type() != DType::f32)
      throw Error("linear " + module + ": bias is " + std::string(dtype_name(bias->type())) +
                  bias->shape_string() + ", expected F32[" + std::to_string(w.rows) + "]");
    bias_ = *bias;
  }
}

void QuantizedLinear::forward(const LinearContext& ctx, const Tensor& x, Tensor& out) {
  const float* bias = bias_.data ? bias_.as<float>() : nullptr;
  if (ctx.backend.device().type == DeviceType::cpu) {
    if (x.type() != DType::f32 || out.type() != DType::f32)
      throw Error(Code::unsupported, "quantized linear " + module_ + ": CPU kernels take F32");
    quant_matmul_cpu(view_, x.as<float>(), x.shape[0], bias, out.as<float>(), false);
    return;
  }
#ifdef BANYAN_WITH_CUDA
  if (ctx.backend.device().type == DeviceType::cuda) {
    auto& cuda = static_cast<kernels::cuda::CudaBackend&>(ctx.backend);
    kernels::cuda::QuantWeightDev d = device_view(view_);
    d.int4_mma = int4_mma_;
    d.variant = options_.gemv_variant;
    const bool out_f32 = out.type() == DType::f32;
    if (options_.fp8_activations) {
      if (!scratch_->fp8_gemm) scratch_->fp8_gemm = std::make_shared<kernels::cuda::Fp8Gemm>();
      static_cast<kernels::cuda::Fp8Gemm*>(scratch_->fp8_gemm.get())
          ->run(d, x.as<uint16_t>(), x.shape[0], out.data, out_f32, bias, cuda.stream());
      return;
    }
    const int sms = options_.gemv_num_sms > 0 ? options_.gemv_num_sms : cuda.num_sms();
    const int64_t M = x.shape[0], K = view_.cols, N = view_.rows;
    if (kernels::cuda::quant_gemv_supported(d, M, x.data)) {
      kernels::cuda::quant_gemv(d, x.as<uint16_t>(), M, out.data, out_f32, bias, false, sms, cuda.stream());
      return;
    }
    // Chunks of kQuantGemvMaxRows rows (each chunk's x stays 16-byte aligned: K even).
    constexpr int64_t kChunk = kernels::cuda::kQuantGemvMaxRows;
    if (M > kChunk && M <= quant_gemv_chunk_rows() && K % 2 == 0 &&
        kernels::cuda::quant_gemv_supported(d, kChunk, x.data)) {
      const size_t out_row = static_cast<size_t>(N) * (out_f32 ? 4 : 2);
      for (int64_t r = 0; r < M; r += kChunk)
        kernels::cuda::quant_gemv(d, x.as<uint16_t>() + r * K, std::min(kChunk, M - r),
                                  static_cast<char*>(out.data) + static_cast<size_t>(r) * out_row, out_f32, bias,
                                  false, sms, cuda.stream());
      return;
    }
    const size_t need = static_cast<size_t>(view_.rows * view_.cols) * 2;
    if (scratch_->buffer.size() < need) scratch_->buffer = DeviceBuffer(ctx.backend, need);
    kernels::cuda::quant_dequantize_bf16(d, static_cast<uint16_t*>(scratch_->buffer.data()), cuda.stream());
    const Tensor w = scratch_->buffer.view(DType::bf16, {view_.rows, view_.cols});
    ctx.backend.matmul(x, w, false, bias_.data ? &bias_ : nullptr, out);
    return;
  }
#endif
  throw Error(Code::unsupported, "quantized linear " + module_ + ": no kernels for " + ctx.backend.name());
}

}  // namespace banyan::core
