#include "kernels/cuda/gemm.h"

#include "kernels/cuda/gemm_stream.h"

#include <banyan/error.h>

#include <cublasLt.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <string>
#include <tuple>
#include <unordered_map>
#include <vector>

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
  bool stream = false;  // the streaming kernel with `cfg` instead of cuBLASLt
  StreamGemmConfig cfg;
  Plan() = default;
  Plan(Plan&& o) noexcept
      : desc(o.desc), a(o.a), b(o.b), c(o.c), algo(o.algo), stream(o.stream), cfg(o.cfg) {
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

// BANYAN_GEMM_STREAM: "0" keeps every product on cuBLASLt, "1" sends every product the
// streaming kernel takes to it (its default config, untimed); unset: tuning decides.
enum class StreamMode { never, tuned, always };
StreamMode stream_mode() {
  const char* v = std::getenv("BANYAN_GEMM_STREAM");
  if (v && std::string(v) == "0") return StreamMode::never;
  if (v && std::string(v) == "1") return StreamMode::always;
  return StreamMode::tuned;
}

bool tune_log() {
  const char* v = std::getenv("BANYAN_GEMM_LOG");
  return v && *v && std::string(v) != "0";
}

// Times launches on cold caches: before each timed run a buffer of twice the L2 size
// is read, which evicts the operands (a decode step reads each weight once, from
// HBM) and leaves no dirty lines whose write-back would slow the timed run (a
// memset as the flush did: every candidate then ran ~30% slow). Without the buffer (no memory to spare) it times hot, saying so.
class ColdTimer {
 public:
  explicit ColdTimer(cudaStream_t stream) : stream_(stream) {
    int dev = 0, l2 = 0;
    BANYAN_CUDA_CHECK(cudaGetDevice(&dev));
    BANYAN_CUDA_CHECK(cudaDeviceGetAttribute(&l2, cudaDevAttrL2CacheSize, dev));
    try {
      flush_ = DeviceMemory(2 * static_cast<size_t>(std::max(l2, 1 << 20)));
    } catch (const Error&) {
      (void)cudaGetLastError();
    }
  }
  bool cold() const { return flush_.size() > 0; }
  /// Mean milliseconds of `runs` timed launches after one untimed (module load,
  /// first-use costs); negative when the first launch reports failure.
  float ms(const std::function<bool()>& launch, int runs = 4) {
    if (!launch()) return -1.0f;
    float total = 0.0f;
    for (int r = 0; r < runs; ++r) {
      if (cold()) l2_read_through(flush_.get(), flush_.size(), stream_);
      start_.record(stream_);
      if (!launch()) return -1.0f;
      stop_.record(stream_);
      stop_.synchronize();
      total += stop_.since(start_);
    }
    return total / runs;
  }

 private:
  cudaStream_t stream_;
  DeviceMemory flush_;
  Event start_ = Event::create(true), stop_ = Event::create(true);
};

}  // namespace

struct Gemm::Impl {
  bool autotune = true;
  int num_sms = 1, cc_major = 0;
  cublasLtHandle_t handle = nullptr;
  DeviceMemory workspace;
  std::unordered_map<Key, Plan, KeyHash> plans;

  ~Impl() {
    plans.clear();
    if (handle) cublasLtDestroy(handle);
  }

  // Times each cuBLASLt candidate and each streaming config on the real operands
  // (output to scratch, beta 0), cold, and sets the plan to the fastest. Returns false
  // when timing is not possible (inside a graph capture).
  bool tune(Plan& p, const Key& k, const cublasLtMatmulHeuristicResult_t* results, int found,
            bool stream_ok, const void* x, const void* w, cudaStream_t stream) {
    cudaStreamCaptureStatus cap = cudaStreamCaptureStatusNone;
    BANYAN_CUDA_CHECK(cudaStreamIsCapturing(stream, &cap));
    if (cap != cudaStreamCaptureStatusNone) return false;
    DeviceMemory scratch(static_cast<size_t>(k.M) * k.N * (k.out_f32 ? 4 : 2));
    BANYAN_CUDA_CHECK(cudaMemsetAsync(scratch.get(), 0, scratch.size(), stream));
    ColdTimer timer(stream);
    const float alpha = 1.0f, beta = 0.0f;
    float best_ms = -1.0f;
    std::string log;
    auto consider = [&](float ms, const std::string& name, const std::function<void()>& take) {
      if (tune_log()) log += " " + name + "=" + (ms < 0 ? std::string("failed") : std::to_string(ms * 1e3f).substr(0, 6) + "us");
      if (ms >= 0 && (best_ms < 0 || ms < best_ms)) best_ms = ms, take();
    };
    for (int i = 0; i < found; ++i) {
      if (results[i].workspaceSize > workspace.size()) continue;
      const float ms = timer.ms([&] {
        return cublasLtMatmul(handle, p.desc, &alpha, w, p.a, x, p.b, &beta, scratch.get(), p.c,
                              scratch.get(), p.c, &results[i].algo, workspace.get(),
                              workspace.size(), stream) == CUBLAS_STATUS_SUCCESS;
      });
      consider(ms, "lt" + std::to_string(i), [&] { p.stream = false, p.algo = results[i].algo; });
    }
    if (stream_ok)
      for (const StreamGemmConfig& c : stream_gemm_candidates(k.N, k.K, num_sms)) {
        const float ms = timer.ms([&] {
          try {
            stream_gemm(static_cast<const uint16_t*>(x), k.M, static_cast<const uint16_t*>(w),
                        scratch.get(), k.out_f32, k.N, k.K, false, c, stream);
            return true;
          } catch (const Error&) {  // e.g. a cluster the device cannot place
            (void)cudaGetLastError();
            return false;
          }
        });
        consider(ms, describe(c), [&] { p.stream = true, p.cfg = c; });
      }
    if (tune_log())
      std::fprintf(stderr, "gemm tune %lldx%lldx%lld%s:%s -> %s\n", static_cast<long long>(k.M),
                   static_cast<long long>(k.N), static_cast<long long>(k.K),
                   timer.cold() ? " (cold)" : " (hot: no memory to flush L2)", log.c_str(),
                   p.stream ? describe(p.cfg).c_str() : "cublaslt");
    return best_ms >= 0;
  }

  const Plan& plan(const Key& k, const void* x, const void* w, cudaStream_t stream) {
    if (auto it = plans.find(k); it != plans.end()) return it->second;
    if (plans.size() >= kMaxPlans) plans.clear();
    const StreamMode mode = stream_mode();
    const bool stream_ok = mode != StreamMode::never && !k.transposed && k.align >= 16 &&
                           stream_gemm_supported(k.M, k.K, x, w, cc_major);
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
    if (st != CUBLAS_STATUS_SUCCESS && !stream_ok) BANYAN_CUBLAS_CHECK(st);
    if (st != CUBLAS_STATUS_SUCCESS) found = 0;
    if (found == 0 && !stream_ok)
      throw Error(Code::unsupported,
                  "cuBLASLt has no algorithm for " + std::to_string(k.M) + "x" +
                      std::to_string(k.N) + "x" + std::to_string(k.K) + " (bf16, alignment " +
                      std::to_string(k.align) + ")");
    const bool choice = found + (stream_ok ? 1 : 0) > 1;
    if (stream_ok && (mode == StreamMode::always || found == 0)) {
      p.stream = true;
      p.cfg = stream_gemm_default(k.N, k.K, num_sms);
    } else if (!autotune || !choice || !tune(p, k, results, found, stream_ok, x, w, stream)) {
      // Untimed: cuBLASLt's first candidate, which beat the streaming kernel on every
      // decode shape measured on the H100 (bench/cuda/NOTES.md).
      p.stream = false;
      p.algo = results[0].algo;
    }
    return plans.emplace(k, std::move(p)).first->second;
  }
};

Gemm::Gemm(size_t workspace_bytes, bool autotune) : impl_(std::make_unique<Impl>()) {
  impl_->autotune = autotune;
  int dev = 0;
  BANYAN_CUDA_CHECK(cudaGetDevice(&dev));
  BANYAN_CUDA_CHECK(
      cudaDeviceGetAttribute(&impl_->num_sms, cudaDevAttrMultiProcessorCount, dev));
  BANYAN_CUDA_CHECK(
      cudaDeviceGetAttribute(&impl_->cc_major, cudaDevAttrComputeCapabilityMajor, dev));
  if (impl_->cc_major >= 9) stream_gemm_prepare();
  BANYAN_CUBLAS_CHECK(cublasLtCreate(&impl_->handle));
  impl_->workspace = DeviceMemory(workspace_bytes);
}

Gemm::~Gemm() = default;

size_t Gemm::plan_count() const { return impl_->plans.size(); }

std::string Gemm::plan_name(int64_t M, int64_t N, int64_t K) const {
  for (const auto& [k, p] : impl_->plans)
    if (k.M == M && k.N == N && k.K == K) return p.stream ? describe(p.cfg) : "cublaslt";
  return {};
}

void Gemm::run(const void* x, const void* w, bool w_transposed, void* out, bool out_f32,
               int64_t M, int64_t N, int64_t K, bool accumulate, cudaStream_t stream) {
  if (M <= 0 || N <= 0) return;
  const uint32_t align = std::min({alignment(x), alignment(w), alignment(out)});
  const Key key{M, N, K, w_transposed, out_f32, accumulate, align};
  const Plan& p = impl_->plan(key, x, w, stream);
  if (p.stream) {
    stream_gemm(static_cast<const uint16_t*>(x), M, static_cast<const uint16_t*>(w), out, out_f32,
                N, K, accumulate, p.cfg, stream);
    return;
  }
  const float alpha = 1.0f, beta = accumulate ? 1.0f : 0.0f;
  BANYAN_CUBLAS_CHECK(cublasLtMatmul(impl_->handle, p.desc, &alpha, w, p.a, x, p.b, &beta, out,
                                     p.c, out, p.c, &p.algo, impl_->workspace.get(),
                                     impl_->workspace.size(), stream));
}

}  // namespace banyan::kernels::cuda
