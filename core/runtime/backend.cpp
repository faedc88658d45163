#include "core/runtime/backend.h"

#include <vector>

#include "kernels/cpu/cpu_backend.h"
#ifdef BANYAN_WITH_CUDA
#include "kernels/cuda/cuda_backend.h"
#endif

#include <banyan/error.h>

#include <cctype>

namespace banyan::core {
namespace {

// "cuda" -> 0, "cuda:N" -> N; -1 when malformed.
int cuda_index(const std::string& device) {
  if (device == "cuda") return 0;
  if (device.size() < 6 || device[4] != ':' || device.size() > 9) return -1;
  int index = 0;
  for (size_t i = 5; i < device.size(); ++i) {
    if (!std::isdigit(static_cast<unsigned char>(device[i]))) return -1;
    index = index * 10 + (device[i] - '0');
  }
  return index;
}

}  // namespace

std::unique_ptr<Backend> make_backend(const std::string& device, const CpuBackendOptions& cpu) {
  if (device == "cpu") return kernels::cpu::make_cpu_backend(cpu);
  if (device.rfind("cuda", 0) == 0) {
    const int index = cuda_index(device);
    if (index < 0) throw Error("unknown device \"" + device + "\" (expected cpu, cuda or cuda:N)");
#ifdef BANYAN_WITH_CUDA
    return kernels::cuda::make_cuda_backend(index);
#else
    throw Error(Code::unsupported, "device \"" + device +
                                       "\": the CUDA backend is not built into this binary");
#endif
  }
  throw Error("unknown device \"" + device + "\" (expected cpu or cuda[:N])");
}

std::string default_device() {
#ifdef BANYAN_WITH_CUDA
  if (kernels::cuda::cuda_available()) return "cuda";
#endif
  return "cpu";
}

std::optional<std::pair<size_t, size_t>> device_memory_info(Backend& backend) {
#ifdef BANYAN_WITH_CUDA
  if (auto* cuda = dynamic_cast<kernels::cuda::CudaBackend*>(&backend)) return cuda->memory_info();
#endif
  (void)backend;
  return std::nullopt;
}

void Backend::copy_2d(void* dst, size_t dst_pitch, const void* src, size_t src_pitch,
                      size_t width, size_t rows) {
  std::vector<char> tmp(width);
  for (size_t r = 0; r < rows; ++r) {
    download(tmp.data(), static_cast<const char*>(src) + r * src_pitch, width);
    upload(static_cast<char*>(dst) + r * dst_pitch, tmp.data(), width);
    synchronize();
  }
}

void Backend::split_columns(const Tensor& x, std::span<Tensor> outs) {
  const size_t es = dtype_size(x.type());
  const size_t rows = static_cast<size_t>(x.shape[0]), pitch = static_cast<size_t>(x.shape[1]) * es;
  size_t col = 0;
  for (Tensor& o : outs) {
    const size_t width = static_cast<size_t>(o.shape[1]) * es;
    if (rows > 0) copy_2d(o.data, width, static_cast<const char*>(x.data) + col, pitch, width, rows);
    col += width;
  }
}

int64_t Backend::act_mul_halves_width(const Tensor& gate_up, const Tensor& out) {
  const int64_t T = gate_up.shape[0], N = gate_up.shape[1] / 2;
  if (gate_up.ndim != 2 || out.ndim != 2 || gate_up.shape[1] != 2 * N || out.shape[0] != T || out.shape[1] != N)
    throw Error(Code::invalid_argument, "act_mul_halves: gate_up " + gate_up.shape_string() + ", out " +
                                            out.shape_string() + ", expected [T, 2N] and [T, N]");
  return N;
}

void Backend::act_mul_halves(const Tensor& gate_up, int32_t activation, Tensor& out) {
  const int64_t T = gate_up.shape[0], N = act_mul_halves_width(gate_up, out);
  const size_t es = dtype_size(gate_up.type());
  for (int64_t t = 0; t < T; ++t) {
    Tensor g = gate_up.rows(t, 1), u = g, o = out.rows(t, 1);
    g.shape[1] = u.shape[1] = N;
    u.data = static_cast<char*>(g.data) + static_cast<size_t>(N) * es;
    act_mul(g, u, activation, o);
  }
}

void Backend::sample(const Tensor&, std::span<const BanyanSampleRow>, std::span<const BanyanLogitEdit>,
                     std::span<BanyanSampleResult>) {
  throw Error(Code::unsupported, "backend " + name() + ": no sampling op");
}

}  // namespace banyan::core
