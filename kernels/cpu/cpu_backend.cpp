#include "kernels/cpu/cpu_backend.h"

#include "kernels/cpu/kernels.h"

#include <banyan/error.h>

#include <dlfcn.h>
#include <omp.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <new>

namespace banyan::kernels::cpu {
namespace {

using core::AttentionParams;
using core::RotaryParams;

constexpr size_t kAlign = 64;

// The kernels thread with OpenMP and call BLAS from inside their parallel regions,
// so BLAS itself must stay single-threaded (its own spinning workers would take the
// cores from the OpenMP team). Looked up by name to stay BLAS-agnostic.
void single_threaded_blas() {
  using SetThreads = void (*)(int);
  for (const char* sym : {"openblas_set_num_threads", "goto_set_num_threads",
                          "mkl_set_num_threads", "bli_thread_set_num_threads"}) {
    if (void* f = dlsym(RTLD_DEFAULT, sym)) {
      reinterpret_cast<SetThreads>(f)(1);
      return;
    }
  }
}

WeightType weight_type(const Tensor& t) {
  return t.type() == DType::bf16 ? WeightType::bf16 : WeightType::f32;
}

class CpuBackend final : public core::Backend {
 public:
  explicit CpuBackend(const core::CpuBackendOptions& o) : opts_(o) {
    if (o.threads > 0) omp_set_num_threads(o.threads);
    single_threaded_blas();
  }

  Device device() const override { return {DeviceType::cpu, 0}; }
  std::string name() const override {
    return "cpu (" + std::to_string(omp_get_max_threads()) + " threads)";
  }
  DType activation_dtype() const override { return DType::f32; }

  void* allocate(size_t bytes) override {
    size_t rounded = (std::max<size_t>(bytes, 1) + kAlign - 1) / kAlign * kAlign;
    void* p = std::aligned_alloc(kAlign, rounded);
    if (!p)
      throw Error(Code::out_of_memory,
                  "cpu backend: cannot allocate " + std::to_string(bytes) + " bytes");
    return p;
  }
  void deallocate(void* ptr) noexcept override { std::free(ptr); }
  void upload(void* dst, const void* src, size_t n) override {
    if (n) std::memcpy(dst, src, n);
  }
  void download(void* dst, const void* src, size_t n) override {
    if (n) std::memcpy(dst, src, n);
    count_to_host(n);
  }
  void fill_zero(void* dst, size_t n) override {
    if (n) std::memset(dst, 0, n);
  }
  void copy_2d(void* dst, size_t dst_pitch, const void* src, size_t src_pitch, size_t width,
               size_t rows) override {
    for (size_t r = 0; r < rows; ++r)
      std::memcpy(static_cast<char*>(dst) + r * dst_pitch,
                  static_cast<const char*>(src) + r * src_pitch, width);
  }
  void synchronize() override {}

  DType weight_dtype(DType stored, int ndim) const override {
    if (stored == DType::bf16 && ndim >= 2 && opts_.keep_bf16_weights) return DType::bf16;
    if (stored == DType::bf16 || stored == DType::f16 || stored == DType::f32) return DType::f32;
    return stored;
  }

  void load_weight(const void* src, DType src_type, Tensor& dst) override {
    const bool float_src =
        src_type == DType::bf16 || src_type == DType::f16 || src_type == DType::f32;
    if (float_src && (dst.type() == DType::f32 || dst.type() == DType::bf16)) {
      convert(src, static_cast<int32_t>(src_type), dst.data, weight_type(dst), dst.numel());
    } else if (src_type == dst.type()) {
      std::memcpy(dst.data, src, dst.nbytes());
    } else {
      throw Error(Code::unsupported, "cpu backend: cannot load " +
                                         std::string(dtype_name(src_type)) + " as " +
                                         std::string(dtype_name(dst.type())));
    }
  }

  bool can_use_host_weight(const void* src, DType type, int ndim) const override {
    const auto addr = reinterpret_cast<uintptr_t>(src);
    return weight_dtype(type, ndim) == type && addr % dtype_size(type) == 0;
  }

  void embedding(const Tensor& table, const Tensor& ids, Tensor& out) override {
    cpu::embedding(table.data, weight_type(table), table.dim(1), ids.as<int32_t>(), ids.numel(),
                   out.as<float>());
  }
  void rms_norm(const Tensor& x, Tensor* residual, const Tensor& w, float eps, float w_offset,
                Tensor& out) override {
    const int64_t n = x.dim(-1);
    cpu::rms_norm(x.as<float>(), residual ? residual->as<float>() : nullptr, w.as<float>(),
                  w_offset, eps, x.numel() / n, n, out.as<float>());
  }
  void layer_norm(const Tensor& x, Tensor* residual, const Tensor& w, const Tensor* bias,
                  float eps, Tensor& out) override {
    const int64_t n = x.dim(-1);
    cpu::layer_norm(x.as<float>(), residual ? residual->as<float>() : nullptr, w.as<float>(),
                    bias ? bias->as<float>() : nullptr, eps, x.numel() / n, n, out.as<float>());
  }
  void matmul(const Tensor& x, const Tensor& w, bool transposed, const Tensor* bias, Tensor& out,
              bool accumulate) override {
    const int64_t K = x.dim(-1), M = x.numel() / K;
    const int64_t N = transposed ? w.dim(1) : w.dim(0);
    cpu::matmul(x.as<float>(), M, K, w.data, weight_type(w), transposed, N,
                bias ? bias->as<float>() : nullptr, out.as<float>(), accumulate);
  }
  void rotary(Tensor& q, Tensor& k, const RotaryParams& p) override {
    RotaryArgs a{p.positions.as<int32_t>(), p.inv_freq.as<float>(), p.freq_row.as<int32_t>(),
                 p.attention_scaling, p.head_dim, p.rotary_dim, p.neox};
    const int64_t T = q.dim(0);
    cpu::rotary(q.as<float>(), q.numel() / (T * p.head_dim), k.as<float>(),
                k.numel() / (T * p.head_dim), T, a);
  }
  void attention(const Tensor& q, const Tensor& k, const Tensor& v, const AttentionParams& p,
                 Tensor& out) override {
    const core::StepLayout& l = *p.layout;
    AttentionArgs a{l.seq_info.as<int32_t>(), l.block_tables.as<int32_t>(),
                    l.slot_mapping.as<int32_t>(), l.num_seqs, l.num_tokens,
                    p.k_cache.as<float>(), p.v_cache.as<float>(), p.block_size, p.num_heads,
                    p.num_kv_heads, p.head_dim, p.scale, p.sliding_window};
    paged_attention(q.as<float>(), k.as<float>(), v.as<float>(), a, out.as<float>());
  }
  void act_mul(const Tensor& gate, const Tensor& up, int32_t act, Tensor& out) override {
    cpu::act_mul(gate.as<float>(), up.as<float>(), gate.numel(), act, out.as<float>());
  }
  void activation(const Tensor& x, int32_t act, Tensor& out) override {
    cpu::activation(x.as<float>(), x.numel(), act, out.as<float>());
  }
  void add(const Tensor& a, const Tensor& b, Tensor& out) override {
    cpu::add(a.as<float>(), b.as<float>(), a.numel(), out.as<float>());
  }
  void gather_rows(const Tensor& x, const Tensor& rows, Tensor& out) override {
    cpu::gather_rows(x.as<float>(), x.dim(-1), rows.as<int32_t>(), rows.numel(), out.as<float>());
  }
  void sample(const Tensor& logits, std::span<const BanyanSampleRow> rows,
              std::span<const BanyanLogitEdit> edits, std::span<BanyanSampleResult> out) override {
    count_to_host(cpu::sample(logits.as<float>(), logits.dim(-1), rows.data(),
                              static_cast<int64_t>(rows.size()), edits.data(), out.data()));
  }

 private:
  core::CpuBackendOptions opts_;
};

}  // namespace

std::unique_ptr<core::Backend> make_cpu_backend(const core::CpuBackendOptions& options) {
  return std::make_unique<CpuBackend>(options);
}

}  // namespace banyan::kernels::cpu
