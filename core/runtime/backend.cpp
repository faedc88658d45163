#include "core/runtime/backend.h"

#include "kernels/cpu/cpu_backend.h"
#if BANYAN_HAVE_CUDA
#include "kernels/cuda/cuda_backend.h"
#endif

#include <banyan/error.h>

#include <stdexcept>
#include <string>

namespace banyan::core {

std::unique_ptr<Backend> make_backend(const std::string& device, const CpuBackendOptions& cpu) {
  if (device == "cpu") return kernels::cpu::make_cpu_backend(cpu);
  if (device == "cuda" || device.rfind("cuda:", 0) == 0) {
#if BANYAN_HAVE_CUDA
    int index = 0;
    if (device.size() > 5) {
      try {
        size_t used = 0;
        index = std::stoi(device.substr(5), &used);
        if (used != device.size() - 5 || index < 0) throw std::invalid_argument(device);
      } catch (const std::exception&) {
        throw Error("device \"" + device + "\": expected cuda or cuda:N");
      }
    }
    return kernels::cuda::make_cuda_backend(index);
#else
    throw Error(Code::unsupported, "device \"" + device +
                                       "\": the CUDA backend is not built into this binary");
#endif
  }
  throw Error("unknown device \"" + device + "\" (expected cpu or cuda[:N])");
}

}  // namespace banyan::core
