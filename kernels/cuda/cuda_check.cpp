#include "kernels/cuda/cuda_check.h"

#include <banyan/error.h>

#include <cstring>
#include <string>

namespace banyan::kernels::cuda {
namespace {

const char* base_name(const char* path) {
  const char* slash = std::strrchr(path, '/');
  return slash ? slash + 1 : path;
}

}  // namespace

void throw_cuda_error(cudaError_t err, const char* call, const char* file, int line) {
  (void)cudaGetLastError();  // clear a sticky-free error so the next call starts clean
  const Code code = err == cudaErrorMemoryAllocation ? Code::out_of_memory : Code::internal;
  throw Error(code, std::string(call) + " failed at " + base_name(file) + ":" + std::to_string(line) + ": " +
                        cudaGetErrorName(err) + " (" + cudaGetErrorString(err) + ")");
}

void throw_cublas_error(int status, const char* call, const char* file, int line) {
  throw Error(Code::internal, std::string(call) + " failed at " + base_name(file) + ":" +
                                  std::to_string(line) + ": cuBLAS status " +
                                  std::to_string(status));
}

}  // namespace banyan::kernels::cuda
