// Helpers of the CUDA backend tests (header-only, not part of the library): a CPU
// and a CUDA backend side by side, device tensors on either, bf16-exact random
// inputs (so both backends see the same values) and error measures by dtype.
#pragma once

#include "core/runtime/device_buffer.h"
#include "kernels/cpu/convert.h"
#include "kernels/cpu/cpu_backend.h"
#include "kernels/cuda/cuda_backend.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <memory>
#include <random>
#include <sstream>
#include <string>
#include <vector>

/// Skips the test, saying why, when this machine has no usable CUDA device.
#define BANYAN_REQUIRE_GPU()                                                              \
  do {                                                                                    \
    std::string banyan_why_;                                                              \
    if (!::banyan::kernels::cuda::cuda_available(&banyan_why_))                           \
      GTEST_SKIP() << "no usable CUDA device (" << banyan_why_                            \
                   << "): the CUDA backend tests need a GPU and were skipped";            \
  } while (0)

namespace banyan::kernels::cuda::test {

/// A tensor with its memory on one backend.
struct Dev {
  core::DeviceBuffer buffer;
  Tensor t;
};

inline Dev make(core::Backend& b, DType type, std::initializer_list<int64_t> shape) {
  Dev d;
  Tensor probe(nullptr, type, shape);
  d.buffer = core::DeviceBuffer(b, std::max<size_t>(probe.nbytes(), 1));
  d.t = d.buffer.view(type, shape);
  return d;
}

/// Uniform values in [lo, hi) rounded to bf16, so that bf16 and f32 hold them exactly.
inline std::vector<float> random_bf16(size_t n, uint32_t seed, float lo = -1.0f, float hi = 1.0f) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> d(lo, hi);
  std::vector<float> v(n);
  for (auto& x : v) x = cpu::bf16_to_f32(cpu::f32_to_bf16(d(rng)));
  return v;
}

/// Uploads f32 values into a tensor of f32 or bf16 (rounding).
inline void put(core::Backend& b, const Tensor& t, const std::vector<float>& v) {
  if (static_cast<int64_t>(v.size()) != t.numel()) throw std::runtime_error("put: size mismatch");
  if (t.type() == DType::f32) {
    b.upload(t.data, v.data(), v.size() * sizeof(float));
  } else {
    std::vector<uint16_t> h(v.size());
    for (size_t i = 0; i < v.size(); ++i) h[i] = cpu::f32_to_bf16(v[i]);
    b.upload(t.data, h.data(), h.size() * sizeof(uint16_t));
  }
}

inline void put_i32(core::Backend& b, const Tensor& t, const std::vector<int32_t>& v) {
  b.upload(t.data, v.data(), v.size() * sizeof(int32_t));
}

/// Downloads a tensor of f32 or bf16 as f32.
inline std::vector<float> get(core::Backend& b, const Tensor& t) {
  std::vector<float> v(static_cast<size_t>(t.numel()));
  if (t.type() == DType::f32) {
    b.download(v.data(), t.data, v.size() * sizeof(float));
  } else {
    std::vector<uint16_t> h(v.size());
    b.download(h.data(), t.data, h.size() * sizeof(uint16_t));
    for (size_t i = 0; i < v.size(); ++i) v[i] = cpu::bf16_to_f32(h[i]);
  }
  return v;
}

/// Fills a device tensor with 0xFF bytes (bf16 / f32 NaN), so unwritten outputs show.
inline void poison(core::Backend& b, const Tensor& t) {
  std::vector<unsigned char> h(t.nbytes(), 0xff);
  b.upload(t.data, h.data(), h.size());
}

/// ||got - ref|| / ||ref|| <= rel, every element finite.
inline ::testing::AssertionResult close(const std::vector<float>& ref, const std::vector<float>& got,
                                        double rel, const std::string& what) {
  if (ref.size() != got.size())
    return ::testing::AssertionFailure() << what << ": sizes " << ref.size() << " vs " << got.size();
  double num = 0.0, den = 0.0, max_abs = 0.0;
  size_t worst = 0;
  for (size_t i = 0; i < ref.size(); ++i) {
    if (!std::isfinite(got[i]))
      return ::testing::AssertionFailure() << what << ": element " << i << " is " << got[i]
                                           << " (reference " << ref[i] << ")";
    const double d = static_cast<double>(got[i]) - ref[i];
    num += d * d;
    den += static_cast<double>(ref[i]) * ref[i];
    if (std::fabs(d) > max_abs) {
      max_abs = std::fabs(d);
      worst = i;
    }
  }
  const double err = std::sqrt(num / std::max(den, 1e-30));
  if (err > rel)
    return ::testing::AssertionFailure()
           << what << ": relative error " << err << " > " << rel << " (max abs " << max_abs
           << " at " << worst << ": " << got[worst] << " vs " << ref[worst] << ")";
  return ::testing::AssertionSuccess() << what << ": relative error " << err;
}

/// Relative error bound of one bf16 result (8 significant bits) with some slack.
constexpr double kBf16Rel = 1e-2;

struct Backends {
  std::unique_ptr<core::Backend> cpu = cpu::make_cpu_backend(core::CpuBackendOptions{});
  std::unique_ptr<CudaBackend> gpu = std::make_unique<CudaBackend>();
};

}  // namespace banyan::kernels::cuda::test
