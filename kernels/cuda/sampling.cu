// The sampling op: see sampling.h. Kernel 1 (one block per row) applies the edits,
// computes the raw log-sum-exp, the top-n logprobs, the greedy and unfiltered draws,
// and writes the sort keys of rows with top_k / top_p / min_p; one device-wide CUB
// radix sort orders them (key: the row, then the value descending; stable, so equal
// values keep the lower id first); kernel 2 draws them in sorted order.
//
// A block reads its row with 16-byte loads, four in flight per thread: one load at a
// time left every pass latency-bound (~40 us per pass over 128k logits on one SM).
#include "kernels/cuda/sampling.h"

#include "kernels/cuda/cuda_check.h"

#include <cub/cub.cuh>

#include <algorithm>
#include <climits>
#include <cmath>
#include <cstring>
#include <vector>

namespace banyan::kernels::cuda {
namespace {

constexpr int kThreads = 1024;
constexpr int kWarps = kThreads / 32;
constexpr unsigned kFull = 0xffffffffu;

/// What kernel 1 leaves for kernel 2 about a row drawn in sorted order.
struct SortedRow {
  int32_t row;    // index of the sample row
  int32_t count;  // finite logits after the edits
  int32_t active; // 0: kernel 1 already decided the token (e.g. top_k >= count)
  int32_t pad;
  double lse;     // raw log-sum-exp
};

/// The token, logprob and used_u of one row; the top arrays follow all rows.
struct DeviceResult {
  int32_t token;
  float logprob;
  int32_t used_u;
  int32_t pad;
};

struct Best {
  float v;
  int i;
};

// Larger value first; equal values: the lower id. NaN never wins.
__device__ __forceinline__ bool better(float v, int i, const Best& b) {
  return v > b.v || (v == b.v && i < b.i);
}

__device__ __forceinline__ Best warp_best(Best b) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) {
    const float v = __shfl_xor_sync(kFull, b.v, o);
    const int i = __shfl_xor_sync(kFull, b.i, o);
    if (better(v, i, b)) b = {v, i};
  }
  return b;
}

struct Shared {
  Best best[kWarps];
  double d[kWarps + 1];
  float f[kWarps];
  int i[kWarps + 2];
};

__device__ Best block_best(Best b, Shared& sh) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  b = warp_best(b);
  __syncthreads();
  if (lane == 0) sh.best[warp] = b;
  __syncthreads();
  Best r = sh.best[0];
  for (int w = 1; w < kWarps; ++w)
    if (better(sh.best[w].v, sh.best[w].i, r)) r = sh.best[w];
  return r;
}

__device__ double block_sum(double v, Shared& sh) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(kFull, v, o);
  __syncthreads();
  if (lane == 0) sh.d[warp] = v;
  __syncthreads();
  double r = 0;
  for (int w = 0; w < kWarps; ++w) r += sh.d[w];
  return r;
}

__device__ int block_sum_int(int v, Shared& sh) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(kFull, v, o);
  __syncthreads();
  if (lane == 0) sh.i[warp] = v;
  __syncthreads();
  int r = 0;
  for (int w = 0; w < kWarps; ++w) r += sh.i[w];
  return r;
}

__device__ int block_max_int(int v, Shared& sh) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v = max(v, __shfl_xor_sync(kFull, v, o));
  __syncthreads();
  if (lane == 0) sh.i[warp] = v;
  __syncthreads();
  int r = INT_MIN;
  for (int w = 0; w < kWarps; ++w) r = max(r, sh.i[w]);
  return r;
}

/// f(i, x) for each element x = p[i] of [0, V) this thread owns: 16-byte loads, four
/// in flight, when p is 16-byte aligned; the order of the calls is unspecified.
template <class F>
__device__ __forceinline__ void for_row(const float* p, int V, F&& f) {
  int tail = 0;
  if ((reinterpret_cast<uintptr_t>(p) & 15) == 0) {
    const float4* p4 = reinterpret_cast<const float4*>(p);
    const int V4 = V >> 2;
    int j = threadIdx.x;
    for (; j + 3 * kThreads < V4; j += 4 * kThreads) {
      float4 v[4];
#pragma unroll
      for (int u = 0; u < 4; ++u) v[u] = p4[j + u * kThreads];
#pragma unroll
      for (int u = 0; u < 4; ++u) {
        const int i = 4 * (j + u * kThreads);
        f(i, v[u].x);
        f(i + 1, v[u].y);
        f(i + 2, v[u].z);
        f(i + 3, v[u].w);
      }
    }
    for (; j < V4; j += kThreads) {
      const float4 v = p4[j];
      f(4 * j, v.x);
      f(4 * j + 1, v.y);
      f(4 * j + 2, v.z);
      f(4 * j + 3, v.w);
    }
    tail = V4 * 4;
  }
  for (int i = tail + threadIdx.x; i < V; i += kThreads) f(i, p[i]);
}

/// The sum of f(i) over the i < n this thread owns (stride kThreads), eight loads in
/// flight.
template <class F>
__device__ __forceinline__ double sum_range(int n, F&& f) {
  double s = 0;
  int i = threadIdx.x;
  for (; i + 7 * kThreads < n; i += 8 * kThreads) {
    double v[8];
#pragma unroll
    for (int u = 0; u < 8; ++u) v[u] = f(i + u * kThreads);
#pragma unroll
    for (int u = 0; u < 8; ++u) s += v[u];
  }
  for (; i < n; i += kThreads) s += f(i);
  return s;
}

/// Exclusive prefix sum over the block (thread order); uses sh.d.
__device__ double block_exclusive_scan(double v, Shared& sh) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  double incl = v;
#pragma unroll
  for (int o = 1; o < 32; o <<= 1) {
    const double t = __shfl_up_sync(kFull, incl, o);
    if (lane >= o) incl += t;
  }
  __syncthreads();
  if (lane == 31) sh.d[warp] = incl;
  __syncthreads();
  double base = 0;
  for (int w = 0; w < warp; ++w) base += sh.d[w];
  return base + incl - v;
}

/// The first i < L at which the inclusive prefix sum of f (>= 0) crosses `target`
/// (strict: > target, else >= target); -1 when it never does. Thread t owns the
/// contiguous chunk [t C, (t + 1) C): chunk sums, a block scan, then the thread whose
/// chunk crosses scans it. Loads go eight at a time.
template <class F>
__device__ int find_crossing(F f, int L, double target, bool strict, Shared& sh) {
  const int C = (L + kThreads - 1) / kThreads;
  const int b = min(static_cast<int>(threadIdx.x) * C, L), e = min(b + C, L);
  double s = 0;
  int i = b;
  for (; i + 8 <= e; i += 8) {
    double v[8];
#pragma unroll
    for (int k = 0; k < 8; ++k) v[k] = f(i + k);
#pragma unroll
    for (int k = 0; k < 8; ++k) s += v[k];
  }
  for (; i < e; ++i) s += f(i);
  const double before = block_exclusive_scan(s, sh);
  const double after = before + s;
  const bool crosses = b < e && (strict ? after > target : after >= target);
  int first = crosses ? static_cast<int>(threadIdx.x) : INT_MAX;
  first = -block_max_int(-first, sh);  // the block's minimum
  if (static_cast<int>(threadIdx.x) == first) {
    int hit = e - 1;  // rounding put the crossing at this chunk's end
    double acc = before;
    bool found = false;
    for (int c = b; c < e && !found; c += 8) {
      double v[8];
#pragma unroll
      for (int k = 0; k < 8; ++k) v[k] = c + k < e ? f(c + k) : 0.0;
#pragma unroll
      for (int k = 0; k < 8; ++k) {
        if (found || c + k >= e) continue;
        acc += v[k];
        if (strict ? acc > target : acc >= target) {
          hit = c + k;
          found = true;
        }
      }
    }
    sh.i[kWarps + 1] = hit;
  }
  __syncthreads();
  const int r = first == INT_MAX ? -1 : sh.i[kWarps + 1];
  __syncthreads();
  return r;
}

__device__ __forceinline__ float apply_edit(float x, const BanyanLogitEdit& e, float rp) {
  if (e.flags & BANYAN_EDIT_MASK) x = -INFINITY;
  if (e.bias != 0.0f) x += e.bias;
  if (e.flags & BANYAN_EDIT_REPETITION) x = x > 0 ? x / rp : x * rp;
  if (e.subtract != 0.0f) x -= e.subtract;
  return x;
}

/// The scaled logit of the draw: (x - max) / temperature, as a product with 1 / t in
/// double (a double division per logit costs more than the rest of the row; the
/// result differs from the host's quotient in the last bit at most, before rounding
/// to float). +0.0f: -0 becomes +0, so that the sort sees one zero.
__device__ __forceinline__ float scaled(float x, float mx, double inv_t) {
  return static_cast<float>(static_cast<double>(x - mx) * inv_t) + 0.0f;
}

__device__ __forceinline__ float raw_logprob(const float* raw, int token, double lse) {
  return static_cast<float>(static_cast<double>(raw[token]) - lse);
}

/// Sort keys: the slot (row) in the high 32 bits, then the value so that ascending
/// order is descending value (-inf last).
__device__ __forceinline__ uint32_t desc_bits(float v) {
  const uint32_t u = __float_as_uint(v);
  return ~(u & 0x80000000u ? ~u : u ^ 0x80000000u);
}
__device__ __forceinline__ float from_desc_bits(uint32_t d) {
  const uint32_t o = ~d;
  return __uint_as_float(o & 0x80000000u ? o ^ 0x80000000u : ~o);
}

struct Args {
  const float* logits;
  int64_t V;
  const BanyanSampleRow* rows;
  const BanyanLogitEdit* edits;
  const int32_t* sort_slot;  // per row: slot among the sorted rows, or -1
  float* work;               // [rows, V] edited copies (rows with edits)
  uint64_t* keys;            // [sorted, V]
  int32_t* ids;              // [sorted, V]
  SortedRow* sorted;
  DeviceResult* out;
  int32_t* top_ids;          // [rows, max_n]
  float* top_lp;
  int32_t max_n;
};

__global__ void __launch_bounds__(kThreads) sample_rows_kernel(Args a) {
  __shared__ Shared sh;
  const int row = blockIdx.x;
  const BanyanSampleRow r = a.rows[row];
  const int V = static_cast<int>(a.V);
  const float* raw = a.logits + static_cast<int64_t>(r.logits_row) * a.V;
  const float* src = raw;
  if (r.num_edits > 0) {
    float* w = a.work + static_cast<int64_t>(row) * a.V;
    for_row(raw, V, [&](int i, float x) { w[i] = x; });
    __syncthreads();
    for (int k = threadIdx.x; k < r.num_edits; k += kThreads) {
      const BanyanLogitEdit e = a.edits[r.first_edit + k];
      w[e.token] = apply_edit(raw[e.token], e, r.repetition_penalty);
    }
    __syncthreads();
    src = w;
  }
  // The processed row: argmax, finite count, last finite id.
  Best b{-INFINITY, INT_MAX};
  int count = 0, last = -1;
  for_row(src, V, [&](int i, float x) {
    if (better(x, i, b)) b = {x, i};
    if (x > -INFINITY) {
      ++count;
      last = max(last, i);
    }
  });
  const Best best = block_best(b, sh);
  count = block_sum_int(count, sh);
  last = block_max_int(last, sh);
  // The raw distribution: log-sum-exp.
  float rmx = best.v;
  if (r.num_edits > 0) {
    Best rb{-INFINITY, INT_MAX};
    for_row(raw, V, [&](int i, float x) {
      if (better(x, i, rb)) rb = {x, i};
    });
    rmx = block_best(rb, sh).v;
  }
  double s = 0;
  for_row(raw, V, [&](int, float x) { s += expf(x - rmx); });
  const double lse = static_cast<double>(rmx) + log(block_sum(s, sh));
  // Top-n of the raw logprobs: n passes, each the best after the previous pick.
  if (r.num_logprobs > 0) {
    float pv = INFINITY;
    int pi = -1;
    for (int k = 0; k < r.num_logprobs; ++k) {
      Best t{-INFINITY, INT_MAX};
      for_row(raw, V, [&](int i, float x) {
        const float v = static_cast<float>(static_cast<double>(x) - lse);
        if ((v < pv || (v == pv && i > pi)) && better(v, i, t)) t = {v, i};
      });
      t = block_best(t, sh);
      if (threadIdx.x == 0) {
        a.top_ids[static_cast<int64_t>(row) * a.max_n + k] = t.i == INT_MAX ? 0 : t.i;
        a.top_lp[static_cast<int64_t>(row) * a.max_n + k] = t.v;
      }
      pv = t.v;
      pi = t.i;
    }
  }
  const int argmax = best.i == INT_MAX ? 0 : best.i;
  const float mx = best.v;
  int token = argmax;
  int used_u = 0;
  if (r.temperature > 0.0 && mx > -INFINITY) {
    used_u = 1;
    const double inv_t = 1.0 / r.temperature;
    const bool filtered = (r.top_k > 0 && r.top_k < count) || r.top_p < 1.0 || r.min_p > 0.0;
    const int slot = a.sort_slot[row];
    if (filtered && slot >= 0) {
      uint64_t* keys = a.keys + static_cast<int64_t>(slot) * a.V;
      int32_t* ids = a.ids + static_cast<int64_t>(slot) * a.V;
      const uint64_t high = static_cast<uint64_t>(slot) << 32;
      for_row(src, V, [&](int i, float x) {
        keys[i] = high | desc_bits(x > -INFINITY ? scaled(x, mx, inv_t) : -INFINITY);
        ids[i] = i;
      });
      if (threadIdx.x == 0) a.sorted[slot] = {row, count, 1, 0, lse};
      return;  // kernel 2 draws it
    }
    // Unfiltered: the draw in id order over every finite logit.
    auto e = [&](int i) {
      const float x = src[i];
      return x > -INFINITY ? static_cast<double>(expf(scaled(x, mx, inv_t))) : 0.0;
    };
    double part = 0;
    for_row(src, V, [&](int, float x) {
      part += x > -INFINITY ? static_cast<double>(expf(scaled(x, mx, inv_t))) : 0.0;
    });
    const double total = block_sum(part, sh);
    const int hit = find_crossing(e, V, r.u * total, true, sh);
    token = hit >= 0 ? hit : last;
  }
  const int slot = a.sort_slot[row];
  if (slot >= 0) {
    // Drawn here after all, but its keys still sort among all rows' keys: fill them
    // with this slot's (largest) key so that no stale key lands in another row.
    uint64_t* keys = a.keys + static_cast<int64_t>(slot) * a.V;
    const uint64_t fill = (static_cast<uint64_t>(slot) << 32) | 0xffffffffu;
    for (int i = threadIdx.x; i < V; i += kThreads) keys[i] = fill;
  }
  if (threadIdx.x == 0) {
    if (slot >= 0) a.sorted[slot] = {row, count, 0, 0, lse};
    a.out[row] = {token, raw_logprob(raw, token, lse), used_u, 0};
  }
}

/// Draws the rows of kernel 1 that need the sorted order: top_k, then min_p and
/// top_p over the probabilities of the kept ones, as banyan::logits::sample_token.
__global__ void __launch_bounds__(kThreads) sample_sorted_kernel(Args a, const uint64_t* keys_sorted,
                                                                 const int32_t* ids_sorted) {
  __shared__ Shared sh;
  const int slot = blockIdx.x;
  const SortedRow sr = a.sorted[slot];
  if (!sr.active) return;
  const BanyanSampleRow r = a.rows[sr.row];
  const uint64_t* key = keys_sorted + static_cast<int64_t>(slot) * a.V;
  const int32_t* id = ids_sorted + static_cast<int64_t>(slot) * a.V;
  const int keep = r.top_k > 0 ? min(r.top_k, sr.count) : sr.count;
  auto ex = [&](int i) { return static_cast<double>(expf(from_desc_bits(static_cast<uint32_t>(key[i])))); };
  const double sum = block_sum(sum_range(keep, ex), sh);
  auto prob = [&](int i) { return ex(i) / sum; };
  int n = keep;
  if (r.min_p > 0.0) {
    const double floor = r.min_p * prob(0);
    const double c = sum_range(keep, [&](int i) { return prob(i) >= floor ? 1.0 : 0.0; });
    n = max(block_sum_int(static_cast<int>(c), sh), 1);
  }
  if (r.top_p < 1.0) {
    const int hit = find_crossing(prob, n, r.top_p, false, sh);
    n = max(hit >= 0 ? hit + 1 : n, 1);
  }
  const double total = block_sum(sum_range(n, prob), sh);
  const int hit = find_crossing(prob, n, r.u * total, true, sh);
  if (threadIdx.x == 0) {
    const int token = id[hit >= 0 ? hit : n - 1];
    const float* raw = a.logits + static_cast<int64_t>(r.logits_row) * a.V;
    a.out[sr.row] = {token, raw_logprob(raw, token, sr.lse), 1, 0};
  }
}

size_t align_up(size_t n) { return (n + 255) / 256 * 256; }

}  // namespace

size_t SamplingOp::run(const float* logits, int64_t V, const BanyanSampleRow* rows, int32_t n,
                       const BanyanLogitEdit* edits, int32_t num_edits, BanyanSampleResult* out,
                       cudaStream_t stream) {
  if (n <= 0) return 0;
  // Rows that may need the sorted order (kernel 1 decides with the finite count).
  std::vector<int32_t> slot(n, -1);
  int32_t sorted = 0, max_n = 0;
  for (int32_t i = 0; i < n; ++i) {
    const BanyanSampleRow& r = rows[i];
    if (r.temperature > 0.0 && (r.top_k > 0 || r.top_p < 1.0 || r.min_p > 0.0)) slot[i] = sorted++;
    max_n = std::max(max_n, r.num_logprobs);
  }
  // Inputs, uploaded in one copy: rows, edits, slots.
  const size_t rows_b = align_up(sizeof(BanyanSampleRow) * n);
  const size_t edits_b = align_up(sizeof(BanyanLogitEdit) * std::max(num_edits, 1));
  const size_t slot_b = align_up(sizeof(int32_t) * n);
  const size_t in_b = rows_b + edits_b + slot_b;
  // Outputs, downloaded in one copy: results, top ids, top logprobs.
  const size_t res_b = sizeof(DeviceResult) * n;
  const size_t top_b = sizeof(int32_t) * static_cast<size_t>(n) * max_n;
  const size_t out_b = res_b + 2 * top_b;
  // Work: edited rows, sorted rows' state, keys and ids (in and out), CUB's scratch.
  const size_t items = static_cast<size_t>(V) * sorted;
  const size_t work_b = num_edits > 0 ? align_up(sizeof(float) * static_cast<size_t>(V) * n) : 0;
  const size_t state_b = align_up(sizeof(SortedRow) * std::max(sorted, 1));
  const size_t keys_b = align_up(sizeof(uint64_t) * items), ids_b = align_up(sizeof(int32_t) * items);
  int end_bit = 32;  // the value, then as many bits as the slot needs
  while (sorted > 1 && (int64_t{1} << (end_bit - 32)) < sorted) ++end_bit;
  size_t cub_b = 0;
  if (sorted > 0)
    BANYAN_CUDA_CHECK(cub::DeviceRadixSort::SortPairs(
        nullptr, cub_b, static_cast<const uint64_t*>(nullptr), static_cast<uint64_t*>(nullptr),
        static_cast<const int32_t*>(nullptr), static_cast<int32_t*>(nullptr), static_cast<int64_t>(items), 0,
        end_bit, stream));
  const size_t total = in_b + align_up(out_b) + work_b + state_b + 2 * keys_b + 2 * ids_b + align_up(cub_b);
  if (scratch_.size() < total) {
    BANYAN_CUDA_CHECK(cudaStreamSynchronize(stream));
    scratch_ = DeviceMemory(std::max(total, scratch_.size() + scratch_.size() / 2));
  }
  if (host_in_.size() < in_b) host_in_ = PinnedMemory(std::max(in_b, host_in_.size() * 2));
  if (host_out_.size() < out_b) host_out_ = PinnedMemory(std::max(out_b, host_out_.size() * 2));

  char* hin = static_cast<char*>(host_in_.get());
  std::memcpy(hin, rows, sizeof(BanyanSampleRow) * n);
  if (num_edits > 0) std::memcpy(hin + rows_b, edits, sizeof(BanyanLogitEdit) * num_edits);
  std::memcpy(hin + rows_b + edits_b, slot.data(), sizeof(int32_t) * n);

  char* d = static_cast<char*>(scratch_.get());
  BANYAN_CUDA_CHECK(cudaMemcpyAsync(d, hin, in_b, cudaMemcpyHostToDevice, stream));
  Args a{};
  a.logits = logits;
  a.V = V;
  a.rows = reinterpret_cast<const BanyanSampleRow*>(d);
  a.edits = reinterpret_cast<const BanyanLogitEdit*>(d + rows_b);
  a.sort_slot = reinterpret_cast<const int32_t*>(d + rows_b + edits_b);
  char* p = d + in_b;
  char* d_out = p;
  a.out = reinterpret_cast<DeviceResult*>(p);
  a.top_ids = reinterpret_cast<int32_t*>(p + res_b);
  a.top_lp = reinterpret_cast<float*>(p + res_b + top_b);
  a.max_n = max_n;
  p += align_up(out_b);
  a.work = reinterpret_cast<float*>(p);
  p += work_b;
  a.sorted = reinterpret_cast<SortedRow*>(p);
  p += state_b;
  a.keys = reinterpret_cast<uint64_t*>(p);
  auto* keys_out = reinterpret_cast<uint64_t*>(p + keys_b);
  a.ids = reinterpret_cast<int32_t*>(p + 2 * keys_b);
  auto* ids_out = reinterpret_cast<int32_t*>(p + 2 * keys_b + ids_b);
  void* cub_tmp = p + 2 * keys_b + 2 * ids_b;

  sample_rows_kernel<<<n, kThreads, 0, stream>>>(a);
  BANYAN_CUDA_CHECK_LAUNCH("sample_rows_kernel");
  if (sorted > 0) {
    BANYAN_CUDA_CHECK(cub::DeviceRadixSort::SortPairs(cub_tmp, cub_b, a.keys, keys_out, a.ids, ids_out,
                                                      static_cast<int64_t>(items), 0, end_bit, stream));
    sample_sorted_kernel<<<sorted, kThreads, 0, stream>>>(a, keys_out, ids_out);
    BANYAN_CUDA_CHECK_LAUNCH("sample_sorted_kernel");
  }
  char* hout = static_cast<char*>(host_out_.get());
  BANYAN_CUDA_CHECK(cudaMemcpyAsync(hout, d_out, out_b, cudaMemcpyDeviceToHost, stream));
  BANYAN_CUDA_CHECK(cudaStreamSynchronize(stream));
  const auto* res = reinterpret_cast<const DeviceResult*>(hout);
  const auto* tid = reinterpret_cast<const int32_t*>(hout + res_b);
  const auto* tlp = reinterpret_cast<const float*>(hout + res_b + top_b);
  for (int32_t i = 0; i < n; ++i) {
    out[i].token = res[i].token;
    out[i].logprob = res[i].logprob;
    out[i].used_u = res[i].used_u;
    for (int32_t k = 0; k < rows[i].num_logprobs; ++k) {
      out[i].top_ids[k] = tid[static_cast<size_t>(i) * max_n + k];
      out[i].top_logprobs[k] = tlp[static_cast<size_t>(i) * max_n + k];
    }
  }
  return out_b;
}

}  // namespace banyan::kernels::cuda
