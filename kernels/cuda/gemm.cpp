#include "kernels/cuda/gemm.h"

#include <banyan/error.h>

#include <cublasLt.h>

#include <algorithm>
#include <string>
#include <tuple>
#include <unordered_map>

namespace banyan::kernels::cuda {
namespace {

struct Key {
  int64_t M, N, K;
  bool transposed, out_f32, accumulate;
  uint32_t align;
  bool operator==(const Key&) const = default;
};
struct KeyHash {
  size_t operator()(const Key& k) const {
    size_t h = std::hash<int64_t>()(k.M);
    h = h * 1000003u ^ std::hash<int64_t>()(k.N);
    h = h * 1000003u ^ std::hash<int64_t>()(k.K);
    return h * 31u + (k.transposed ? 1u : 0u) + (k.out_f32 ? 2u : 0u) + (k.accumulate ? 4u : 0u) +
           k.align * 8u;
  }
};

// Largest power of two (up to 256) that divides the address.
uint32_t alignment(const void* p) {
  const auto v = reinterpret_cast<uintptr_t>(p);
  uint32_t a = 256;
  while (a > 1 && (v % a)) a >>= 1;
  return a;
}

struct Plan {
  cublasLtMatmulDesc_t desc = nullptr;
  cublasLtMatrixLayout_t a = nullptr, b = nullptr, c = nullptr;
  cublasLtMatmulAlgo_t algo{};
  Plan() = default;
  Plan(Plan&& o) noexcept : desc(o.desc), a(o.a), b(o.b), c(o.c), algo(o.algo) {
    o.desc = nullptr;
    o.a = o.b = o.c = nullptr;
  }
  Plan(const Plan&) = delete;
  ~Plan() {
    if (c) cublasLtMatrixLayoutDestroy(c);
    if (b) cublasLtMatrixLayoutDestroy(b);
    if (a) cublasLtMatrixLayoutDestroy(a);
    if (desc) cublasLtMatmulDescDestroy(desc);
  }
};

constexpr size_t kMaxPlans = 4096;

}  // namespace

struct Gemm::Impl {
  bool autotune = true;
  cublasLtHandle_t handle = nullptr;
  DeviceMemory workspace;
  std::unordered_map<Key, Plan, KeyHash> plans;

  ~Impl() {
    plans.clear();
    if (handle) cublasLtDestroy(handle);
  }

  // Times each candidate on the real operands (output to scratch, beta 0) and
  // returns the index of the fastest; -1 when timing is not possible.
  int fastest(const Plan& p, const Key& k, const cublasLtMatmulHeuristicResult_t* results,
              int found, const void* x, const void* w, cudaStream_t stream) {
    cudaStreamCaptureStatus cap = cudaStreamCaptureStatusNone;
    BANYAN_CUDA_CHECK(cudaStreamIsCapturing(stream, &cap));
    if (cap != cudaStreamCaptureStatusNone) return -1;  // plans made inside a capture keep [0]
    DeviceMemory scratch(static_cast<size_t>(k.M) * k.N * (k.out_f32 ? 4 : 2));
    Event start = Event::create(true), stop = Event::create(true);
    const float alpha = 1.0f, beta = 0.0f;
    int best = -1;
    float best_ms = 0.0f;
    for (int i = 0; i < found; ++i) {
      if (results[i].workspaceSize > workspace.size()) continue;
      auto once = [&] {
        return cublasLtMatmul(handle, p.desc, &alpha, w, p.a, x, p.b, &beta, scratch.get(), p.c,
                              scratch.get(), p.c, &results[i].algo, workspace.get(),
                              workspace.size(), stream);
      };
      if (once() != CUBLAS_STATUS_SUCCESS) continue;
      start.record(stream);
      constexpr int kRuns = 5;
      for (int r = 0; r < kRuns; ++r) BANYAN_CUBLAS_CHECK(once());
      stop.record(stream);
      stop.synchronize();
      const float ms = stop.since(start);
      if (best < 0 || ms < best_ms) best = i, best_ms = ms;
    }
    return best;
  }

  const Plan& plan(const Key& k, const void* x, const void* w, cudaStream_t stream) {
    if (auto it = plans.find(k); it != plans.end()) return it->second;
    if (plans.size() >= kMaxPlans) plans.clear();
    Plan p;
    BANYAN_CUBLAS_CHECK(cublasLtMatmulDescCreate(&p.desc, CUBLAS_COMPUTE_32F, CUDA_R_32F));
    const cublasOperation_t ta = k.transposed ? CUBLAS_OP_N : CUBLAS_OP_T, tb = CUBLAS_OP_N;
    BANYAN_CUBLAS_CHECK(
        cublasLtMatmulDescSetAttribute(p.desc, CUBLASLT_MATMUL_DESC_TRANSA, &ta, sizeof ta));
    BANYAN_CUBLAS_CHECK(
        cublasLtMatmulDescSetAttribute(p.desc, CUBLASLT_MATMUL_DESC_TRANSB, &tb, sizeof tb));
    // Column-major view: out^T [N, M] = op(W) [N, K] · x^T [K, M].
    if (k.transposed)
      BANYAN_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&p.a, CUDA_R_16BF, k.N, k.K, k.N));
    else
      BANYAN_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&p.a, CUDA_R_16BF, k.K, k.N, k.K));
    BANYAN_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&p.b, CUDA_R_16BF, k.K, k.M, k.K));
    BANYAN_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&p.c, k.out_f32 ? CUDA_R_32F : CUDA_R_16BF,
                                                   k.N, k.M, k.N));
    cublasLtMatmulPreference_t pref = nullptr;
    BANYAN_CUBLAS_CHECK(cublasLtMatmulPreferenceCreate(&pref));
    const size_t ws = workspace.size();
    cublasStatus_t st = cublasLtMatmulPreferenceSetAttribute(
        pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws, sizeof ws);
    for (auto attr : {CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES,
                      CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES,
                      CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES,
                      CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES})
      if (st == CUBLAS_STATUS_SUCCESS)
        st = cublasLtMatmulPreferenceSetAttribute(pref, attr, &k.align, sizeof k.align);
    constexpr int kCandidates = 8;
    cublasLtMatmulHeuristicResult_t results[kCandidates] = {};
    int found = 0;
    if (st == CUBLAS_STATUS_SUCCESS)
      st = cublasLtMatmulAlgoGetHeuristic(handle, p.desc, p.a, p.b, p.c, p.c, pref,
                                          autotune ? kCandidates : 1, results, &found);
    cublasLtMatmulPreferenceDestroy(pref);
    BANYAN_CUBLAS_CHECK(st);
    if (found == 0)
      throw Error(Code::unsupported,
                  "cuBLASLt has no algorithm for " + std::to_string(k.M) + "x" +
                      std::to_string(k.N) + "x" + std::to_string(k.K) + " (bf16, alignment " +
                      std::to_string(k.align) + ")");
    const int best = autotune && found > 1 ? fastest(p, k, results, found, x, w, stream) : -1;
    p.algo = results[best < 0 ? 0 : best].algo;
    return plans.emplace(k, std::move(p)).first->second;
  }
};

Gemm::Gemm(size_t workspace_bytes, bool autotune) : impl_(std::make_unique<Impl>()) {
  impl_->autotune = autotune;
  BANYAN_CUBLAS_CHECK(cublasLtCreate(&impl_->handle));
  impl_->workspace = DeviceMemory(workspace_bytes);
}

Gemm::~Gemm() = default;

size_t Gemm::plan_count() const { return impl_->plans.size(); }

void Gemm::run(const void* x, const void* w, bool w_transposed, void* out, bool out_f32,
               int64_t M, int64_t N, int64_t K, bool accumulate, cudaStream_t stream) {
  if (M <= 0 || N <= 0) return;
  const uint32_t align = std::min({alignment(x), alignment(w), alignment(out)});
  const Key key{M, N, K, w_transposed, out_f32, accumulate, align};
  const Plan& p = impl_->plan(key, x, w, stream);
  const float alpha = 1.0f, beta = accumulate ? 1.0f : 0.0f;
  BANYAN_CUBLAS_CHECK(cublasLtMatmul(impl_->handle, p.desc, &alpha, w, p.a, x, p.b, &beta, out,
                                     p.c, out, p.c, &p.algo, impl_->workspace.get(),
                                     impl_->workspace.size(), stream));
}

}  // namespace banyan::kernels::cuda
