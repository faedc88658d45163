#include "kernels/cuda/cuda_backend.h"

#include "kernels/cuda/gemm.h"
#include "kernels/cuda/kernels.h"
#include "kernels/cuda/sampling.h"

#include <banyan/error.h>

#include <algorithm>
#include <cstring>

namespace banyan::kernels::cuda {
namespace {

using core::AttentionParams;
using core::RotaryParams;

void need(const Tensor& t, DType want, const char* op, const char* what) {
  if (t.type() != want)
    throw Error(Code::unsupported, std::string("cuda ") + op + ": " + what + " is " +
                                       std::string(dtype_name(t.type())) + ", expected " +
                                       std::string(dtype_name(want)));
}

bool is_float(DType t) { return t == DType::bf16 || t == DType::f16 || t == DType::f32; }

uint16_t* bf(const Tensor& t) { return static_cast<uint16_t*>(t.data); }

}  // namespace

bool cuda_available(std::string* why) {
  int n = 0;
  const cudaError_t err = cudaGetDeviceCount(&n);
  if (err != cudaSuccess || n == 0) {
    if (why)
      *why = err != cudaSuccess ? std::string("cudaGetDeviceCount: ") + cudaGetErrorString(err)
                                : "no CUDA device";
    (void)cudaGetLastError();
    return false;
  }
  return true;
}

struct CudaBackend::Impl {
  CudaBackendOptions opts;
  cudaDeviceProp props{};
  Stream stream;
  std::unique_ptr<Gemm> gemm;
  PinnedMemory staging;     // host side of upload()
  size_t staging_used = 0;
  Event staging_done;       // recorded after the latest staged copy
  DeviceMemory attn_ws;     // split-KV partial results
  DeviceMemory convert_ws;  // raw checkpoint bytes awaiting conversion
  SamplingOp sampling;      // the sampling op's scratch
  bool capturing = false;
  uint64_t graph_epoch = 1;  // see graph_epoch()

  void not_capturing(const char* what) const {
    if (capturing)
      throw Error(Code::internal, std::string("cuda backend: ") + what +
                                      " is not allowed while a CUDA graph is being captured");
  }
  float* workspace(size_t bytes) {
    if (bytes > attn_ws.size()) {
      not_capturing("growing the attention workspace");
      BANYAN_CUDA_CHECK(cudaStreamSynchronize(stream.get()));
      attn_ws = DeviceMemory(std::max(bytes, attn_ws.size() * 2));
      ++graph_epoch;
    }
    return attn_ws.as<float>();
  }
};

CudaBackend::CudaBackend(const CudaBackendOptions& o) : impl_(std::make_unique<Impl>()) {
  Impl& m = *impl_;
  m.opts = o;
  std::string why;
  if (!cuda_available(&why)) throw Error(Code::unsupported, "cuda backend: " + why);
  int count = 0;
  BANYAN_CUDA_CHECK(cudaGetDeviceCount(&count));
  if (o.device < 0 || o.device >= count)
    throw Error(Code::invalid_argument, "cuda backend: device " + std::to_string(o.device) +
                                            " does not exist (" + std::to_string(count) +
                                            " devices)");
  BANYAN_CUDA_CHECK(cudaSetDevice(o.device));
  BANYAN_CUDA_CHECK(cudaGetDeviceProperties(&m.props, o.device));
  m.stream = Stream::create();
  m.staging_done = Event::create();
  m.staging = PinnedMemory(size_t{8} << 20);
  m.gemm = std::make_unique<Gemm>(o.gemm_workspace_bytes, o.gemm_autotune);
}

CudaBackend::~CudaBackend() {
  if (impl_ && impl_->stream.get()) (void)cudaStreamSynchronize(impl_->stream.get());
}

Device CudaBackend::device() const { return {DeviceType::cuda, impl_->opts.device}; }

std::string CudaBackend::name() const {
  return "cuda:" + std::to_string(impl_->opts.device) + " (" + impl_->props.name + ", " +
         std::to_string(impl_->props.multiProcessorCount) + " SMs)";
}

cudaStream_t CudaBackend::stream() const { return impl_->stream.get(); }
int CudaBackend::num_sms() const { return impl_->props.multiProcessorCount; }

std::pair<size_t, size_t> CudaBackend::memory_info() const {
  size_t free = 0, total = 0;
  BANYAN_CUDA_CHECK(cudaMemGetInfo(&free, &total));
  return {free, total};
}

// ------------------------------------------------------------------ memory ----

void* CudaBackend::allocate(size_t bytes) {
  impl_->not_capturing("allocate");
  void* p = nullptr;
  const cudaError_t err = cudaMalloc(&p, std::max<size_t>(bytes, 1));
  if (err != cudaSuccess) {
    (void)cudaGetLastError();
    size_t free = 0, total = 0;
    (void)cudaMemGetInfo(&free, &total);
    throw Error(Code::out_of_memory, "cuda backend: cannot allocate " + std::to_string(bytes) +
                                         " bytes on " + name() + " (" + std::to_string(free >> 20) +
                                         " MiB free): " + cudaGetErrorString(err));
  }
  return p;
}

void CudaBackend::deallocate(void* ptr) noexcept {
  if (ptr) (void)cudaFree(ptr);
}

void CudaBackend::upload(void* dst, const void* host, size_t n) {
  if (!n) return;
  Impl& m = *impl_;
  m.not_capturing("upload");
  constexpr size_t kAlign = 64;
  if (n > m.staging.size()) {
    m.staging_done.synchronize();
    m.staging = PinnedMemory(std::max(n, m.staging.size() * 2));
    m.staging_used = 0;
  } else if (m.staging_used + n > m.staging.size()) {
    m.staging_done.synchronize();  // every earlier staged copy has finished
    m.staging_used = 0;
  }
  char* slot = static_cast<char*>(m.staging.get()) + m.staging_used;
  std::memcpy(slot, host, n);
  BANYAN_CUDA_CHECK(cudaMemcpyAsync(dst, slot, n, cudaMemcpyHostToDevice, m.stream.get()));
  m.staging_done.record(m.stream.get());
  m.staging_used += (n + kAlign - 1) / kAlign * kAlign;
}

void CudaBackend::download(void* dst, const void* src, size_t n) {
  if (!n) return;
  impl_->not_capturing("download");
  BANYAN_CUDA_CHECK(cudaMemcpyAsync(dst, src, n, cudaMemcpyDeviceToHost, impl_->stream.get()));
  BANYAN_CUDA_CHECK(cudaStreamSynchronize(impl_->stream.get()));
  count_to_host(n);
}

void CudaBackend::sample(const Tensor& logits, std::span<const BanyanSampleRow> rows,
                         std::span<const BanyanLogitEdit> edits, std::span<BanyanSampleResult> out) {
  impl_->not_capturing("sample");
  count_to_host(impl_->sampling.run(logits.as<float>(), logits.dim(-1), rows.data(),
                                    static_cast<int32_t>(rows.size()), edits.data(),
                                    static_cast<int32_t>(edits.size()), out.data(),
                                    impl_->stream.get()));
}

void CudaBackend::fill_zero(void* dst, size_t n) {
  if (n) BANYAN_CUDA_CHECK(cudaMemsetAsync(dst, 0, n, impl_->stream.get()));
}

void CudaBackend::copy_2d(void* dst, size_t dst_pitch, const void* src, size_t src_pitch,
                          size_t width, size_t rows) {
  if (!width || !rows) return;
  BANYAN_CUDA_CHECK(cudaMemcpy2DAsync(dst, dst_pitch, src, src_pitch, width, rows,
                                      cudaMemcpyDeviceToDevice, impl_->stream.get()));
}

void CudaBackend::synchronize() {
  impl_->not_capturing("synchronize");
  BANYAN_CUDA_CHECK(cudaStreamSynchronize(impl_->stream.get()));
}

// ------------------------------------------------------------------ weights ---

DType CudaBackend::weight_dtype(DType stored, int ndim) const {
  if (!is_float(stored)) return stored;
  return ndim >= 2 ? DType::bf16 : DType::f32;
}

void CudaBackend::load_weight(const void* src, DType src_type, Tensor& dst) {
  Impl& m = *impl_;
  m.not_capturing("load_weight");
  const int64_t n = dst.numel();
  if (src_type == dst.type()) {
    BANYAN_CUDA_CHECK(cudaMemcpyAsync(dst.data, src, dst.nbytes(), cudaMemcpyHostToDevice,
                                      m.stream.get()));
  } else if (is_float(src_type) && (dst.type() == DType::bf16 || dst.type() == DType::f32)) {
    const size_t bytes = static_cast<size_t>(n) * dtype_size(src_type);
    if (bytes > m.convert_ws.size()) {
      BANYAN_CUDA_CHECK(cudaStreamSynchronize(m.stream.get()));
      m.convert_ws = DeviceMemory(bytes);
    }
    BANYAN_CUDA_CHECK(
        cudaMemcpyAsync(m.convert_ws.get(), src, bytes, cudaMemcpyHostToDevice, m.stream.get()));
    convert(m.convert_ws.get(), static_cast<int32_t>(src_type), dst.data,
            dst.type() == DType::f32, n, m.stream.get());
  } else {
    throw Error(Code::unsupported, "cuda backend: cannot load " +
                                       std::string(dtype_name(src_type)) + " as " +
                                       std::string(dtype_name(dst.type())));
  }
  BANYAN_CUDA_CHECK(cudaStreamSynchronize(m.stream.get()));
}

// ------------------------------------------------------------------ ops -------

void CudaBackend::embedding(const Tensor& table, const Tensor& ids, Tensor& out) {
  if (table.type() != DType::f32) need(table, DType::bf16, "embedding", "table");
  need(out, DType::bf16, "embedding", "out");
  kernels::cuda::embedding(table.data, table.type() == DType::f32, table.dim(1),
                           ids.as<int32_t>(), ids.numel(), bf(out), stream());
}

void CudaBackend::rms_norm(const Tensor& x, Tensor* residual, const Tensor& w, float eps,
                           float w_offset, Tensor& out) {
  need(x, DType::bf16, "rms_norm", "x");
  need(w, DType::f32, "rms_norm", "weight");
  const int64_t n = x.dim(-1);
  kernels::cuda::rms_norm(bf(x), residual ? bf(*residual) : nullptr, w.as<float>(), w_offset, eps,
                          x.numel() / n, n, bf(out), stream());
}

void CudaBackend::layer_norm(const Tensor& x, Tensor* residual, const Tensor& w,
                             const Tensor* bias, float eps, Tensor& out) {
  need(x, DType::bf16, "layer_norm", "x");
  need(w, DType::f32, "layer_norm", "weight");
  if (bias) need(*bias, DType::f32, "layer_norm", "bias");
  const int64_t n = x.dim(-1);
  kernels::cuda::layer_norm(bf(x), residual ? bf(*residual) : nullptr, w.as<float>(),
                            bias ? bias->as<float>() : nullptr, eps, x.numel() / n, n, bf(out),
                            stream());
}

void CudaBackend::matmul(const Tensor& x, const Tensor& w, bool transposed, const Tensor* bias,
                         Tensor& out, bool accumulate) {
  need(x, DType::bf16, "matmul", "x");
  need(w, DType::bf16, "matmul", "weight");
  if (out.type() != DType::f32) need(out, DType::bf16, "matmul", "out");
  const bool out_f32 = out.type() == DType::f32;
  const int64_t K = x.dim(-1), M = x.numel() / K, N = transposed ? w.dim(1) : w.dim(0);
  if (!transposed && gemv_supported(M, K, x.data, w.data))
    gemv(bf(x), M, bf(w), out.data, out_f32, N, K, accumulate, num_sms(), stream());
  else
    impl_->gemm->run(x.data, w.data, transposed, out.data, out_f32, M, N, K, accumulate, stream());
  if (bias) {
    need(*bias, DType::f32, "matmul", "bias");
    add_bias(out.data, out_f32, M, N, bias->as<float>(), stream());
  }
}

bool CudaBackend::matmul_gated(const Tensor& x, const Tensor& w, int32_t act, Tensor& out) {
  if (x.type() != DType::bf16 || w.type() != DType::bf16 || out.type() != DType::bf16 ||
      w.ndim != 2 || w.dim(0) % 2 != 0)
    return false;
  const int64_t K = x.dim(-1), M = x.numel() / K, N = w.dim(0) / 2;
  if (w.dim(1) != K || out.numel() != M * N || !gemv_supported(M, K, x.data, w.data)) return false;
  gemv_gated(bf(x), M, bf(w), bf(out), N, K, act, num_sms(), stream());
  return true;
}

void CudaBackend::rotary(Tensor& q, Tensor& k, const RotaryParams& p) {
  need(q, DType::bf16, "rotary", "q");
  need(k, DType::bf16, "rotary", "k");
  need(p.inv_freq, DType::f32, "rotary", "inv_freq");
  RotaryArgs a{p.positions.as<int32_t>(), p.inv_freq.as<float>(), p.freq_row.as<int32_t>(),
               p.attention_scaling, p.head_dim, p.rotary_dim, p.neox};
  const int64_t T = q.dim(0);
  kernels::cuda::rotary(bf(q), static_cast<int32_t>(q.numel() / (T * p.head_dim)), bf(k),
                        static_cast<int32_t>(k.numel() / (T * p.head_dim)), T, a, stream());
}

void CudaBackend::attention(const Tensor& q, const Tensor& k, const Tensor& v,
                            const AttentionParams& p, Tensor& out) {
  attend(q, k, v, p, nullptr, out);
}

bool CudaBackend::attention_rotary(const Tensor& q, const Tensor& k, const Tensor& v,
                                   const RotaryParams& rope, const AttentionParams& p, Tensor& out) {
  // Decode steps only (the token kernel writes the cache), and rotary()'s own checks.
  const core::StepLayout& l = *p.layout;
  const int mode = kernels::cuda::decode_attention_mode();
  if (l.max_query_len != 1 || l.max_query_len >= impl_->opts.prefill_min_query_len ||
      !(mode & kernels::cuda::kAttentionWritesCache) || !(mode & kernels::cuda::kRopeInAttention) ||
      rope.head_dim != p.head_dim || rope.rotary_dim <= 0 || rope.rotary_dim % 2 ||
      rope.rotary_dim > rope.head_dim || rope.inv_freq.type() != DType::f32 ||
      q.type() != DType::bf16 || k.type() != DType::bf16)
    return false;
  const RotaryArgs r{rope.positions.as<int32_t>(), rope.inv_freq.as<float>(), rope.freq_row.as<int32_t>(),
                     rope.attention_scaling, rope.head_dim, rope.rotary_dim, rope.neox};
  attend(q, k, v, p, &r, out);
  return true;
}

void CudaBackend::attend(const Tensor& q, const Tensor& k, const Tensor& v,
                         const AttentionParams& p, const RotaryArgs* rope, Tensor& out) {
  for (auto [t, what] : {std::pair{&q, "q"}, {&k, "k"}, {&v, "v"}, {&out, "out"},
                         {&p.k_cache, "k_cache"}, {&p.v_cache, "v_cache"}})
    need(*t, DType::bf16, "attention", what);
  if (p.head_dim % 8 || p.head_dim > 256)
    throw Error(Code::unsupported, "cuda attention: head_dim " + std::to_string(p.head_dim) +
                                       " is not supported (a multiple of 8, at most 256)");
  const core::StepLayout& l = *p.layout;
  PagedArgs a{l.seq_info.as<int32_t>(), l.token_seq.as<int32_t>(), l.block_tables.as<int32_t>(),
              l.slot_mapping.as<int32_t>(), l.num_seqs, l.num_tokens, l.max_query_len,
              l.max_context_len, bf(p.k_cache), bf(p.v_cache), p.block_size, p.num_heads,
              p.num_kv_heads, p.head_dim, p.scale, p.sliding_window, -1};
  if (p.block_size > 0 && (p.block_size & (p.block_size - 1)) == 0)
    for (a.block_shift = 0; (1 << a.block_shift) < p.block_size;) ++a.block_shift;
  if (l.max_query_len >= impl_->opts.prefill_min_query_len &&
      prefill_attention_supported(p.head_dim)) {
    kv_cache_write(bf(k), bf(v), a, stream());
    prefill_attention(bf(q), a, bf(out), stream());
    return;
  }
  const SplitPlan plan = plan_token_attention(a, num_sms());
  float* ws = impl_->workspace(token_attention_workspace(a, plan));
  // Decode (one query token per sequence): the attention kernel writes the cache too.
  const bool fused_write =
      l.max_query_len == 1 && (kernels::cuda::decode_attention_mode() & kernels::cuda::kAttentionWritesCache);
  if (!fused_write) kv_cache_write(bf(k), bf(v), a, stream());
  token_attention(bf(q), a, plan, ws, fused_write ? bf(k) : nullptr,
                  fused_write ? bf(v) : nullptr, bf(out), stream(), fused_write ? rope : nullptr);
}

void CudaBackend::act_mul_halves(const Tensor& gate_up, int32_t act, Tensor& out) {
  need(gate_up, DType::bf16, "act_mul_halves", "gate_up");
  need(out, DType::bf16, "act_mul_halves", "out");
  const int64_t N = act_mul_halves_width(gate_up, out);
  kernels::cuda::act_mul_halves(bf(gate_up), gate_up.shape[0], N, act, bf(out), stream());
}

void CudaBackend::act_mul(const Tensor& gate, const Tensor& up, int32_t act, Tensor& out) {
  need(gate, DType::bf16, "act_mul", "gate");
  kernels::cuda::act_mul(bf(gate), bf(up), gate.numel(), act, bf(out), stream());
}

void CudaBackend::activation(const Tensor& x, int32_t act, Tensor& out) {
  need(x, DType::bf16, "activation", "x");
  kernels::cuda::activation(bf(x), x.numel(), act, bf(out), stream());
}

void CudaBackend::add(const Tensor& a, const Tensor& b, Tensor& out) {
  need(a, DType::bf16, "add", "a");
  kernels::cuda::add(bf(a), bf(b), a.numel(), bf(out), stream());
}

void CudaBackend::gather_rows(const Tensor& x, const Tensor& rows, Tensor& out) {
  const int64_t row_bytes = x.dim(-1) * static_cast<int64_t>(dtype_size(x.type()));
  kernels::cuda::gather_rows(x.data, row_bytes, rows.as<int32_t>(), rows.numel(), out.data,
                             stream());
}

void CudaBackend::split_columns(const Tensor& x, std::span<Tensor> outs) {
  if (outs.size() > static_cast<size_t>(kernels::cuda::SplitParts::kMax)) {
    Backend::split_columns(x, outs);
    return;
  }
  kernels::cuda::SplitParts sp;
  sp.parts = static_cast<int>(outs.size());
  for (size_t p = 0; p < outs.size(); ++p) {
    sp.dst[p] = outs[p].data;
    sp.begin[p + 1] = sp.begin[p] + outs[p].shape[1];
  }
  if (x.ndim != 2 || sp.begin[sp.parts] != x.shape[1])
    throw Error(Code::internal, "split_columns: x " + x.shape_string() + " is not the parts side by side");
  kernels::cuda::split_columns(x.data, x.shape[0], static_cast<int64_t>(dtype_size(x.type())), sp,
                               stream());
}

// ------------------------------------------------------------------ graphs ----

void CudaBackend::begin_capture() {
  impl_->not_capturing("begin_capture");
  BANYAN_CUDA_CHECK(
      cudaStreamBeginCapture(impl_->stream.get(), cudaStreamCaptureModeThreadLocal));
  impl_->capturing = true;
}

Graph CudaBackend::end_capture() {
  impl_->capturing = false;
  cudaGraph_t g = nullptr;
  BANYAN_CUDA_CHECK(cudaStreamEndCapture(impl_->stream.get(), &g));
  if (!g) throw Error(Code::internal, "cuda backend: graph capture produced no graph");
  return Graph(g);
}

void CudaBackend::launch(const Graph& graph) { graph.launch(impl_->stream.get()); }

void CudaBackend::abort_capture() noexcept {
  impl_->capturing = false;
  cudaStreamCaptureStatus status = cudaStreamCaptureStatusNone;
  if (cudaStreamIsCapturing(impl_->stream.get(), &status) == cudaSuccess &&
      status != cudaStreamCaptureStatusNone) {
    cudaGraph_t g = nullptr;
    (void)cudaStreamEndCapture(impl_->stream.get(), &g);  // invalidated captures fail here
    if (g) (void)cudaGraphDestroy(g);
  }
  (void)cudaGetLastError();  // the failed capture's error must not blame a later launch
}

bool CudaBackend::capturing() const { return impl_->capturing; }

uint64_t CudaBackend::graph_epoch() const { return impl_->graph_epoch; }

std::unique_ptr<core::Backend> make_cuda_backend(int device) {
  CudaBackendOptions o;
  o.device = device;
  return std::make_unique<CudaBackend>(o);
}

}  // namespace banyan::kernels::cuda
