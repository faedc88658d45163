#include "core/runtime/backend.h"

#include "kernels/cpu/cpu_backend.h"

#include <banyan/error.h>

namespace banyan::core {

std::unique_ptr<Backend> make_backend(const std::string& device, const CpuBackendOptions& cpu) {
  if (device == "cpu") return kernels::cpu::make_cpu_backend(cpu);
  if (device.rfind("cuda", 0) == 0)
    throw Error(Code::unsupported, "device \"" + device +
                                       "\": the CUDA backend is not built into this binary");
  throw Error("unknown device \"" + device + "\" (expected cpu or cuda[:N])");
}

}  // namespace banyan::core
