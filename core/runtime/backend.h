// The device abstraction under the SDK ops: memory, copies and one function per op
// family, over device-resident tensors. The CPU backend (kernels/cpu) and the CUDA
// backend (kernels/cuda) implement it; model plugins never see it (they call the
// BanyanOpsV1 table, which StepContext forwards here after validating shapes).
//
// Rules every implementation follows, so that the GPU one can be asynchronous:
//  - every Tensor argument is device-resident; ops validate nothing (StepContext
//    already did) and never synchronize with the host;
//  - ops are enqueued in order on the backend's one stream; upload() is ordered
//    with them and the caller may reuse the host buffer as soon as it returns (an
//    asynchronous implementation stages it first); download() synchronizes;
//  - per-step metadata (StepLayout) is uploaded once per step, never per token.
//
// Thread-safety: a Backend is driven by one thread (the engine's). Not copyable.
#pragma once

#include <banyan/abi.h>
#include <banyan/tensor.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <utility>

namespace banyan::core {

/// Per-sequence metadata, one row per sequence in StepLayout::seq_info.
enum SeqInfoField : int32_t {
  kSeqQueryStart = 0,  ///< first new token in the flat token arrays
  kSeqQueryLen = 1,    ///< new tokens this step
  kSeqContextLen = 2,  ///< cached + new tokens after this step
  kSeqBlockOffset = 3, ///< offset of the sequence's block table in block_tables
  kSeqInfoFields = 4
};

/// The layout of one step on the device (all i32), uploaded in one copy.
struct StepLayout {
  Tensor token_ids;     ///< [T]
  Tensor positions;     ///< [T]
  Tensor slot_mapping;  ///< [T] KV slot per token (block * block_size + offset); -1: skip
  Tensor adapter_slots; ///< [T] adapter slot per token (-1: base model)
  Tensor token_seq;     ///< [T] index of each token's sequence
  Tensor seq_info;      ///< [S, kSeqInfoFields]
  Tensor block_tables;  ///< [B] concatenated block tables
  Tensor logits_rows;   ///< [R] token rows whose logits the step returns
  Tensor logits_adapter_slots;  ///< [R] adapter slot of each logits row
  int32_t num_tokens = 0;
  int32_t num_seqs = 0;
  uint64_t step_id = 0;         ///< increases by one per step (per-step caches key on it)
  int32_t max_query_len = 0;    ///< host-known maxima, for kernel launch sizes
  int32_t max_context_len = 0;
  bool has_adapters = false;    ///< any adapter slot >= 0
};

/// Rotary embedding inputs: the frequencies are computed on the host (rope.h).
struct RotaryParams {
  Tensor positions;        ///< [T] i32
  Tensor inv_freq;         ///< [rows, rotary_dim / 2] f32
  Tensor freq_row;         ///< [T] i32 row of inv_freq per token; data == null: row 0
  float attention_scaling = 1.0f;  ///< multiplies cos and sin (yarn)
  int32_t head_dim = 0;
  int32_t rotary_dim = 0;  ///< leading dims of each head that rotate
  bool neox = true;        ///< rotate halves (true) or interleaved pairs (false)
};

/// Paged attention inputs for one layer.
struct AttentionParams {
  const StepLayout* layout = nullptr;
  Tensor k_cache;  ///< [num_blocks, block_size, kv_heads, head_dim]
  Tensor v_cache;  ///< same
  int32_t block_size = 16;
  int32_t num_heads = 0;
  int32_t num_kv_heads = 0;
  int32_t head_dim = 0;
  float scale = 1.0f;
  int32_t sliding_window = 0;  ///< 0: none; else a query at i sees keys j > i - window
};

class Backend {
 public:
  virtual ~Backend() = default;
  Backend() = default;
  Backend(const Backend&) = delete;
  Backend& operator=(const Backend&) = delete;

  virtual Device device() const = 0;
  virtual std::string name() const = 0;
  /// The dtype activations are computed in (CPU: f32; CUDA: bf16).
  virtual DType activation_dtype() const = 0;

  // ---------------------------------------------------------------- memory ----
  /// Device memory, aligned to at least 64 bytes. Throws Error(out_of_memory).
  virtual void* allocate(size_t bytes) = 0;
  virtual void deallocate(void* ptr) noexcept = 0;
  /// Host → device, ordered with the ops; `host` may be reused on return.
  virtual void upload(void* device_dst, const void* host, size_t bytes) = 0;
  /// Device → host; returns when the bytes are there.
  virtual void download(void* host_dst, const void* device_src, size_t bytes) = 0;
  virtual void fill_zero(void* device_dst, size_t bytes) = 0;
  /// Device → device copy of `rows` rows of `width` bytes between pitched buffers.
  /// The default goes through host memory; backends override it with a direct copy.
  virtual void copy_2d(void* dst, size_t dst_pitch, const void* src, size_t src_pitch,
                       size_t width, size_t rows);
  virtual void synchronize() = 0;

  // ---------------------------------------------------------------- weights ---
  /// The dtype this backend keeps a checkpoint tensor in, given how it is stored.
  virtual DType weight_dtype(DType stored, int ndim) const = 0;
  /// Converts `count` elements of host memory (dtype `src`, any alignment) into
  /// the device tensor `dst` (its own dtype, from weight_dtype()).
  virtual void load_weight(const void* host_src, DType src, Tensor& dst) = 0;
  /// Whether the backend can compute straight from this read-only host memory
  /// (a memory-mapped checkpoint) without a copy. Default: no.
  virtual bool can_use_host_weight(const void* host_src, DType src, int ndim) const {
    return false;
  }

  // ---------------------------------------------------------------- ops -------
  /// out[t] = table[ids[t]] (table f32 or bf16 → out dtype).
  virtual void embedding(const Tensor& table, const Tensor& ids, Tensor& out) = 0;
  /// residual (if given) += x; out = norm(residual or x) * (w + w_offset).
  virtual void rms_norm(const Tensor& x, Tensor* residual, const Tensor& w, float eps,
                        float w_offset, Tensor& out) = 0;
  /// As rms_norm with mean subtraction; bias may be null.
  virtual void layer_norm(const Tensor& x, Tensor* residual, const Tensor& w, const Tensor* bias,
                          float eps, Tensor& out) = 0;
  /// out [M, N] = x [M, K] · W^T (+ bias). W is [N, K], or [K, N] when w_transposed.
  /// With accumulate, out += the product instead (adapters, split weights).
  virtual void matmul(const Tensor& x, const Tensor& w, bool w_transposed, const Tensor* bias,
                      Tensor& out, bool accumulate = false) = 0;
  /// Rotates q [T, Hq*D] and k [T, Hk*D] in place.
  virtual void rotary(Tensor& q, Tensor& k, const RotaryParams& p) = 0;
  /// Writes k, v [T, Hk*D] at slot_mapping into the caches, then out [T, Hq*D] =
  /// causal (and windowed) attention of q over each sequence's cached positions.
  virtual void attention(const Tensor& q, const Tensor& k, const Tensor& v,
                         const AttentionParams& p, Tensor& out) = 0;
  /// rotary(q, k, rope) then attention(q, k, v, p, out) in one pass, when the backend
  /// can for this step (decode: one query token per sequence); q and k are left
  /// rotated as rotary() leaves them. false: nothing was done (call the two ops).
  virtual bool attention_rotary(const Tensor& /*q*/, const Tensor& /*k*/, const Tensor& /*v*/,
                                const RotaryParams& /*rope*/, const AttentionParams& /*p*/,
                                Tensor& /*out*/) {
    return false;
  }
  /// out = act(gate) * up.
  virtual void act_mul(const Tensor& gate, const Tensor& up, int32_t activation, Tensor& out) = 0;
  virtual void activation(const Tensor& x, int32_t activation, Tensor& out) = 0;
  virtual void add(const Tensor& a, const Tensor& b, Tensor& out) = 0;
  /// out[r] = x[rows[r]] for rows [R] i32.
  virtual void gather_rows(const Tensor& x, const Tensor& rows, Tensor& out) = 0;
  /// outs[i] [T, N_i] = columns [ΣN_<i, ΣN_<i + N_i) of x [T, ΣN] (the outputs of one
  /// product over fused weights, LinearRegistry::forward_n). The default copies each
  /// part with copy_2d; backends override it with one pass.
  virtual void split_columns(const Tensor& x, std::span<Tensor> outs);
  /// out [T, N] = act(x · Wg^T) * (x · Wu^T) for w = [Wg; Wu] ([2N, K], not
  /// transposed) in one pass, equal to matmul into bf16 followed by act_mul, when the
  /// backend has such a kernel for this shape (decode rows); false: nothing was done.
  virtual bool matmul_gated(const Tensor& /*x*/, const Tensor& /*w*/, int32_t /*activation*/,
                            Tensor& /*out*/) {
    return false;
  }
  /// out [T, N] = act(g) * u where each row of gate_up [T, 2N] is [g | u] (the one
  /// product of a fused gate/up pair), as act_mul of the two halves. The default runs
  /// act_mul row by row; backends override it with one pass.
  virtual void act_mul_halves(const Tensor& gate_up, int32_t activation, Tensor& out);
  /// Whether LinearRegistry keeps the weights of linears that a model computes
  /// together (linear_n) side by side and runs them as one product by default.
  virtual bool prefers_fused_linears() const { return false; }

  // ---------------------------------------------------------------- sampling --
  /// The sampling op (BanyanOpsV1.sample): one draw per entry of `rows` from logits
  /// [R, V] f32, with the semantics of banyan::logits::sample_row (tokens identical
  /// given the same logits and u, logprobs within float rounding); results, top
  /// arrays included, written to host memory. Unlike the other ops it synchronizes
  /// (its results are host values). StepContext has checked rows and edits.
  /// Default: Error(unsupported).
  virtual void sample(const Tensor& logits, std::span<const BanyanSampleRow> rows,
                      std::span<const BanyanLogitEdit> edits, std::span<BanyanSampleResult> out);

  /// Bytes copied device → host so far: download() and sample()'s results.
  uint64_t bytes_to_host() const { return bytes_to_host_; }

 protected:
  void count_to_host(size_t bytes) { bytes_to_host_ += bytes; }
  /// act_mul_halves' shapes: N for gate_up [T, 2N] and out [T, N]; throws otherwise.
  static int64_t act_mul_halves_width(const Tensor& gate_up, const Tensor& out);

 private:
  uint64_t bytes_to_host_ = 0;
};

/// Options of the CPU backend.
struct CpuBackendOptions {
  /// OpenMP threads for the kernels and BLAS; 0: the OpenMP default.
  int threads = 0;
  /// Keep bf16 checkpoint matrices in bf16 (half the memory, converted on the fly
  /// inside the matmul) instead of converting them to f32 at load.
  bool keep_bf16_weights = true;
};

/// Creates the backend for "cpu" (and, later, "cuda" / "cuda:N"). Throws
/// banyan::Error(unsupported) naming the device when it is not built in.
std::unique_ptr<Backend> make_backend(const std::string& device, const CpuBackendOptions& cpu = {});

/// "cuda" when the CUDA backend is built in and a GPU is usable, else "cpu".
std::string default_device();
/// Free and total bytes of the backend's device memory; nullopt for host memory.
std::optional<std::pair<size_t, size_t>> device_memory_info(Backend& backend);

}  // namespace banyan::core
