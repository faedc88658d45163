// One source, many deliberately broken plugins: each build defines one VARIANT_*.
// Used by plugin_host_test.cpp to prove every refusal of the host.
#include <banyan/abi.h>
#include <banyan/error.h>

#include <cstring>

namespace {

struct Counter {
  int value = 41;
};

void* create(const BanyanHostV1*, const char* options, BanyanError* err) {
#if defined(VARIANT_THROWS_ON_CREATE)
  banyan::set_error(err, banyan::Code::invalid_argument, "option \"x\" is not allowed here");
  return nullptr;
#else
  auto* c = new Counter();  // owned by the host through destroy()
  if (options && std::strstr(options, "\"value\":7")) c->value = 7;
  return c;
#endif
}
void destroy(void* p) { delete static_cast<Counter*>(p); }

int32_t describe(void* self, BanyanModelSpec* spec, BanyanError*) {
  spec->num_layers = static_cast<Counter*>(self)->value;
  return BANYAN_OK;
}
int32_t forward(void*, const BanyanOpsV1*, BanyanStepContext*, BanyanTensor*, BanyanError* err) {
  return banyan::set_error(err, banyan::Code::unsupported, "test plugin cannot run");
}

const BanyanModelV1 iface = {sizeof(BanyanModelV1), &describe, &forward};

BanyanPluginV1 make() {
  BanyanPluginV1 d{BANYAN_ABI_MAJOR, BANYAN_ABI_MINOR, sizeof(BanyanPluginV1), BANYAN_KIND_MODEL,
                   "testmodel", "1.2.3", &create, &destroy, &iface};
#if defined(VARIANT_ABI_MAJOR)
  d.abi_major = BANYAN_ABI_MAJOR + 1;
#elif defined(VARIANT_ABI_MINOR_NEWER)
  d.abi_minor = BANYAN_ABI_MINOR + 1;
#elif defined(VARIANT_WRONG_KIND)
  d.kind = BANYAN_KIND_DECODING;
#elif defined(VARIANT_NO_CREATE)
  d.create = nullptr;
#elif defined(VARIANT_NAME_MISMATCH)
  d.name = "othermodel";
#elif defined(VARIANT_SMALL_STRUCT)
  d.struct_size = 8;
#endif
  return d;
}
const BanyanPluginV1 descriptor = make();

}  // namespace

#if !defined(VARIANT_NO_ENTRY)
extern "C" BANYAN_EXPORT const BanyanPluginV1* banyan_plugin_entry(void) {
#if defined(VARIANT_NULL_ENTRY)
  return nullptr;
#else
  return &descriptor;
#endif
}
#endif
