// Weight-streaming tensor-core GEMM for decode batches (a few to 64 rows of x):
// out [M, N] (+)= x [M, K] · W^T with W [N, K] bf16, x bf16, f32 accumulation,
// out bf16 or f32. Each block streams a tile of W rows through a multi-stage
// cp.async pipeline (x's rows travel with it) and multiplies on tensor cores
// (mma.sync m16n8k16, W as the 16-row operand, x as the 8-column one). Narrow
// matrices split K over a thread-block cluster; the partial tiles are summed
// through distributed shared memory in a fixed order, so results do not vary
// between runs, and row i of out does not depend on M for a given config.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>
#include <string>
#include <vector>

namespace banyan::kernels::cuda {

/// Rows of x up to which stream_gemm() applies.
constexpr int64_t kStreamGemmMaxRows = 64;

struct StreamGemmConfig {
  int bn = 128;    ///< weight rows per block: 64 or 128
  int splits = 1;  ///< blocks (one cluster) that split K for one tile: 1, 2, 4 or 8
  bool deep = false;  ///< ~200 KB of pipeline stages (one block per SM) instead of ~96 KB
  bool operator==(const StreamGemmConfig& o) const {
    return bn == o.bn && splits == o.splits && deep == o.deep;
  }
};

std::string describe(const StreamGemmConfig& c);

/// Whether stream_gemm() takes this product: 1 <= M <= 64, K % 8 == 0, K > 0, x and W
/// 16-byte aligned, a device of compute capability >= 9.0 (clusters).
bool stream_gemm_supported(int64_t M, int64_t K, const void* x, const void* w, int cc_major);

/// Configs worth timing for N x K on `num_sms` SMs: grids of num_sms / 4 to
/// 2 num_sms blocks, each split with >= 2 k-tiles (else the largest grid); not deep.
std::vector<StreamGemmConfig> stream_gemm_candidates(int64_t N, int64_t K, int num_sms);

/// The config used without timing: 128-row tiles for N >= 4096, else 64, and the
/// largest split that keeps the grid within one block per SM (>= 4 k-tiles each).
StreamGemmConfig stream_gemm_default(int64_t N, int64_t K, int num_sms);

/// Sets the kernels' shared-memory limits (host calls that a graph capture may not
/// allow); stream_gemm() does it on first use otherwise. Needs compute capability 9.0.
void stream_gemm_prepare();

/// Reads `bytes` at p (16-byte aligned) and writes nothing: evicts other lines from L2
/// without leaving dirty ones to write back (cold timings; memset would leave them).
void l2_read_through(const void* p, size_t bytes, cudaStream_t stream);

/// out [M, N] (+)= x [M, K] · W^T (see the file comment). Enqueued on `stream`;
/// graph-capturable. Throws for an unsupported shape or config.
void stream_gemm(const uint16_t* x, int64_t M, const uint16_t* w, void* out, bool out_f32,
                 int64_t N, int64_t K, bool accumulate, StreamGemmConfig cfg,
                 cudaStream_t stream);

}  // namespace banyan::kernels::cuda
