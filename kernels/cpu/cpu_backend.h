// The CPU implementation of core::Backend: host memory is the device memory, ops
// run the OpenMP/BLAS kernels of kernels.h synchronously.
#pragma once

#include "core/runtime/backend.h"

#include <memory>

namespace banyan::kernels::cpu {

std::unique_ptr<core::Backend> make_cpu_backend(const core::CpuBackendOptions& options);

}  // namespace banyan::kernels::cpu
