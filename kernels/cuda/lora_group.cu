// Grouping of a step's rows by adapter slot, on the device: one block ranks every
// row among the rows with a smaller slot (and the earlier rows of its own slot),
// which gives its place in the slot-sorted order; each slot's run is cut into
// tiles of kLoraTileRows rows, numbered by a block-wide scan. Work is O(rows^2 /
// 1024) comparisons in shared memory: ~2 us for a decode batch of 512, ~1 ms for a
// prefill chunk of 8192 rows (next to a step of hundreds of ms).
#include "kernels/cuda/common.cuh"
#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/lora.h"

namespace banyan::kernels::cuda {
namespace {

constexpr int kThreads = 1024;
constexpr int kSharedRows = 8192;  // rows whose slots are staged in shared memory

// Exclusive prefix sum over the block (kThreads threads); `total` gets the sum.
__device__ int block_exclusive_scan(int v, int* warp_sums, int& total) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  int inc = v;
#pragma unroll
  for (int o = 1; o < 32; o <<= 1) {
    const int n = __shfl_up_sync(0xffffffffu, inc, o);
    if (lane >= o) inc += n;
  }
  if (lane == 31) warp_sums[warp] = inc;
  __syncthreads();
  if (warp == 0) {
    int w = warp_sums[lane];
#pragma unroll
    for (int o = 1; o < 32; o <<= 1) {
      const int n = __shfl_up_sync(0xffffffffu, w, o);
      if (lane >= o) w += n;
    }
    warp_sums[lane] = w;
  }
  __syncthreads();
  const int before = warp ? warp_sums[warp - 1] : 0;
  total = warp_sums[31];
  __syncthreads();  // warp_sums is reused by the next call
  return before + inc - v;
}

__global__ void __launch_bounds__(kThreads)
    group_kernel(const int32_t* __restrict__ slots, int rows, int num_slots, LoraGroups g) {
  __shared__ int s_slot[kSharedRows];
  __shared__ int warp_sums[32];
  const bool staged = rows <= kSharedRows;
  auto normalized = [num_slots](int s) { return s >= 0 && s < num_slots ? s : -1; };
  if (staged)
    for (int i = threadIdx.x; i < rows; i += kThreads) s_slot[i] = normalized(slots[i]);
  auto slot_of = [&](int i) { return staged ? s_slot[i] : normalized(__ldg(slots + i)); };
  int* flag = g.work;              // [rows] 1 where a tile starts (by sorted position)
  int* tile_slot = g.work + rows;  // [rows]
  int* tile_count = g.work + 2 * rows;
  for (int i = threadIdx.x; i < rows; i += kThreads) flag[i] = 0;
  __syncthreads();
  for (int i = threadIdx.x; i < rows; i += kThreads) {
    const int s = slot_of(i);
    if (s < 0) continue;
    int less = 0, before = 0, same = 0;
    for (int j = 0; j < rows; ++j) {
      const int sj = slot_of(j);
      less += (sj >= 0) & (sj < s);
      same += sj == s;
      before += (sj == s) & (j < i);
    }
    const int pos = less + before;
    g.order[pos] = i;
    if (before % kLoraTileRows == 0) {
      flag[pos] = 1;
      tile_slot[pos] = s;
      tile_count[pos] = min(kLoraTileRows, same - before);
    }
  }
  __syncthreads();
  int carry = 0;
  for (int base = 0; base < rows; base += kThreads) {
    const int p = base + static_cast<int>(threadIdx.x);
    const int f = p < rows ? flag[p] : 0;
    int total = 0;
    const int at = carry + block_exclusive_scan(f, warp_sums, total);
    if (f) g.tiles[at] = LoraTile{tile_slot[p], p, tile_count[p], 0};
    carry += total;
  }
  if (threadIdx.x == 0) *g.num_tiles = carry;
}

size_t align256(size_t n) { return (n + 255) / 256 * 256; }

}  // namespace

size_t lora_group_bytes(int64_t rows, int64_t slots) {
  const size_t r = static_cast<size_t>(rows > 0 ? rows : 1);
  return align256(r * 4) + align256(static_cast<size_t>(lora_max_tiles(rows, slots)) * sizeof(LoraTile)) +
         align256(4) + align256(3 * r * 4);
}

LoraGroups lora_groups_at(void* base, int64_t rows, int64_t slots) {
  const size_t r = static_cast<size_t>(rows > 0 ? rows : 1);
  auto* p = static_cast<char*>(base);
  LoraGroups g;
  g.order = reinterpret_cast<int32_t*>(p);
  p += align256(r * 4);
  g.tiles = reinterpret_cast<LoraTile*>(p);
  p += align256(static_cast<size_t>(lora_max_tiles(rows, slots)) * sizeof(LoraTile));
  g.num_tiles = reinterpret_cast<int32_t*>(p);
  p += align256(4);
  g.work = reinterpret_cast<int32_t*>(p);
  return g;
}

void lora_group(const int32_t* slots, int64_t rows, int32_t num_slots, const LoraGroups& g,
                cudaStream_t stream) {
  group_kernel<<<1, kThreads, 0, stream>>>(slots, static_cast<int>(rows), num_slots, g);
  BANYAN_CUDA_CHECK_LAUNCH("lora group_kernel");
}

}  // namespace banyan::kernels::cuda
