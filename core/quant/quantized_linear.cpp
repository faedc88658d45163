#include "core/quant/quantized_linear.h"

#include <banyan/error.h>


namespace banyan::core {

QuantizedLinear::QuantizedLinear(Backend& backend, const std::string& module,
                                 const QuantizedMatrix& weight, const Tensor* bias)
    : module_(module) {
  const BanyanQuantizedWeight& w = weight.get();
  validate(w, module);
  const DeviceType dev = backend.device().type;
  if (dev != DeviceType::cpu)
    throw Error(Code::unsupported, "quantized linear " + module + " on " + backend.name() +
                                       ": no quantized kernels are built for this device");
  const void* ptrs[6] = {};
  const auto slots = tensor_slots(w);
  for (size_t i = 0; i < slots.size(); ++i) {
    const Tensor t(*slots[i]);
    if (t.ndim == 0) continue;
    buffers_.emplace_back(backend, t.nbytes());
    backend.upload(buffers_.back().data(), t.data, t.nbytes());
    ptrs[i] = buffers_.back().data();
    bytes_ += t.nbytes();
  }
  view_.layout = w.layout;
  view_.rows = w.rows;
  view_.cols = w.cols;
  view_.group_size = w.group_size;
  view_.group_size2 = w.group_size2;
  view_.offset = w.offset;
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
  throw Error(Code::unsupported, "quantized linear " + module_ + ": no kernels for " + ctx.backend.name());
}

}  // namespace banyan::core
