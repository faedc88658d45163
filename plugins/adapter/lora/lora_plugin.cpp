// The "lora" adapter plugin: PEFT LoRA / rsLoRA / DoRA directories (peft_adapter.h).
// It reads and checks; the host copies the tensors and does the math.
#include "peft_adapter.h"

#include <banyan/abi.h>
#include <banyan/error.h>

#include <memory>

namespace {

using banyan::Code;
using banyan::Error;
using banyan::guard;
using banyan::lora::PeftAdapter;

struct LoraPlugin {};

void* create(const BanyanHostV1* host, const char*, BanyanError* err) {
  LoraPlugin* out = nullptr;
  guard(err, [&] {
    if (!host) throw Error(Code::invalid_argument, "null host");
    out = std::make_unique<LoraPlugin>().release();
  });
  return out;
}

void destroy(void* self) { std::unique_ptr<LoraPlugin>(static_cast<LoraPlugin*>(self)).reset(); }

int32_t open_adapter(void*, const char* path, const BanyanBaseModelInfo* base, void** adapter,
                     BanyanAdapterInfo* info, BanyanError* err) {
  return guard(err, [&] {
    if (!path || !base || !adapter || !info) throw Error(Code::invalid_argument, "null argument");
    if (base->struct_size < sizeof(BanyanBaseModelInfo))
      throw Error(Code::invalid_argument, "BanyanBaseModelInfo struct_size too small");
    auto a = std::make_unique<PeftAdapter>(path, *base);
    *info = a->info();
    *adapter = a.release();
  });
}

void close_adapter(void*, void* adapter) {
  std::unique_ptr<PeftAdapter>(static_cast<PeftAdapter*>(adapter)).reset();
}

const BanyanAdapterV1 kIface = {sizeof(BanyanAdapterV1), &open_adapter, &close_adapter};
const BanyanPluginV1 kDescriptor = {BANYAN_ABI_MAJOR, BANYAN_ABI_MINOR, sizeof(BanyanPluginV1),
                                    BANYAN_KIND_ADAPTER, "lora", "0.1.0", &create, &destroy,
                                    &kIface};

}  // namespace

extern "C" BANYAN_EXPORT const BanyanPluginV1* banyan_plugin_entry(void) { return &kDescriptor; }
