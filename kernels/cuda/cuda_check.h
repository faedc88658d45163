// Error checking for every CUDA runtime and cuBLASLt call and for each kernel
// launch: a failure becomes a banyan::Error naming the call, the file and line,
// and the CUDA error string.
#pragma once

#include <cuda_runtime_api.h>

#include <string>

namespace banyan::kernels::cuda {

/// Throws banyan::Error(internal, or out_of_memory for cudaErrorMemoryAllocation).
[[noreturn]] void throw_cuda_error(cudaError_t err, const char* call, const char* file, int line);
/// Throws banyan::Error(internal) for a failed cuBLAS(Lt) status.
[[noreturn]] void throw_cublas_error(int status, const char* call, const char* file, int line);

inline void check_cuda(cudaError_t err, const char* call, const char* file, int line) {
  if (err != cudaSuccess) throw_cuda_error(err, call, file, line);
}

}  // namespace banyan::kernels::cuda

/// Checks a CUDA runtime call.
#define BANYAN_CUDA_CHECK(call) \
  ::banyan::kernels::cuda::check_cuda((call), #call, __FILE__, __LINE__)

/// Checks the launch just made (configuration errors, not asynchronous faults).
#define BANYAN_CUDA_CHECK_LAUNCH(name) \
  ::banyan::kernels::cuda::check_cuda(cudaGetLastError(), "launch of " name, __FILE__, __LINE__)

/// Checks a cuBLAS / cuBLASLt call (status 0 is success).
#define BANYAN_CUBLAS_CHECK(call)                                                      \
  do {                                                                                 \
    const int banyan_cublas_status_ = static_cast<int>(call);                         \
    if (banyan_cublas_status_ != 0)                                                    \
      ::banyan::kernels::cuda::throw_cublas_error(banyan_cublas_status_, #call, __FILE__, \
                                                  __LINE__);                           \
  } while (0)
