// RAII owners of CUDA objects: device memory, pinned host memory, streams, events
// and instantiated graphs. Move-only; destructors never throw (a failure while
// tearing down is ignored, as the context may already be gone at exit).
#pragma once

#include "kernels/cuda/cuda_check.h"

#include <cuda_runtime_api.h>

#include <cstddef>
#include <utility>

namespace banyan::kernels::cuda {

namespace detail {
template <class Handle, class Destroy>
class Owned {
 public:
  Owned() = default;
  explicit Owned(Handle h) : h_(h) {}
  ~Owned() { reset(); }
  Owned(Owned&& o) noexcept : h_(std::exchange(o.h_, Handle{})) {}
  Owned& operator=(Owned&& o) noexcept {
    if (this != &o) {
      reset();
      h_ = std::exchange(o.h_, Handle{});
    }
    return *this;
  }
  Owned(const Owned&) = delete;
  Owned& operator=(const Owned&) = delete;
  Handle get() const { return h_; }
  explicit operator bool() const { return h_ != Handle{}; }
  void reset() noexcept {
    if (h_ != Handle{}) Destroy{}(h_);
    h_ = Handle{};
  }

 private:
  Handle h_{};
};

struct FreeDevice {
  void operator()(void* p) const noexcept { (void)cudaFree(p); }
};
struct FreeHost {
  void operator()(void* p) const noexcept { (void)cudaFreeHost(p); }
};
struct DestroyStream {
  void operator()(cudaStream_t s) const noexcept { (void)cudaStreamDestroy(s); }
};
struct DestroyEvent {
  void operator()(cudaEvent_t e) const noexcept { (void)cudaEventDestroy(e); }
};
struct DestroyGraph {
  void operator()(cudaGraph_t g) const noexcept { (void)cudaGraphDestroy(g); }
};
struct DestroyGraphExec {
  void operator()(cudaGraphExec_t g) const noexcept { (void)cudaGraphExecDestroy(g); }
};
}  // namespace detail

/// Device memory from cudaMalloc.
class DeviceMemory {
 public:
  DeviceMemory() = default;
  explicit DeviceMemory(size_t bytes) : bytes_(bytes) {
    void* p = nullptr;
    if (bytes) BANYAN_CUDA_CHECK(cudaMalloc(&p, bytes));
    mem_ = detail::Owned<void*, detail::FreeDevice>(p);
  }
  void* get() const { return mem_.get(); }
  template <class T> T* as() const { return static_cast<T*>(mem_.get()); }
  size_t size() const { return bytes_; }
  void reset() noexcept {
    mem_.reset();
    bytes_ = 0;
  }

 private:
  detail::Owned<void*, detail::FreeDevice> mem_;
  size_t bytes_ = 0;
};

/// Page-locked host memory from cudaMallocHost.
class PinnedMemory {
 public:
  PinnedMemory() = default;
  explicit PinnedMemory(size_t bytes) : bytes_(bytes) {
    void* p = nullptr;
    if (bytes) BANYAN_CUDA_CHECK(cudaMallocHost(&p, bytes));
    mem_ = detail::Owned<void*, detail::FreeHost>(p);
  }
  void* get() const { return mem_.get(); }
  size_t size() const { return bytes_; }

 private:
  detail::Owned<void*, detail::FreeHost> mem_;
  size_t bytes_ = 0;
};

class Stream {
 public:
  static Stream create() {
    cudaStream_t s = nullptr;
    BANYAN_CUDA_CHECK(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking));
    return Stream(s);
  }
  Stream() = default;
  cudaStream_t get() const { return s_.get(); }

 private:
  explicit Stream(cudaStream_t s) : s_(s) {}
  detail::Owned<cudaStream_t, detail::DestroyStream> s_;
};

class Event {
 public:
  /// timing: false gives the cheaper event used only for ordering.
  static Event create(bool timing = false) {
    cudaEvent_t e = nullptr;
    BANYAN_CUDA_CHECK(cudaEventCreateWithFlags(&e, timing ? cudaEventDefault : cudaEventDisableTiming));
    return Event(e);
  }
  Event() = default;
  cudaEvent_t get() const { return e_.get(); }
  void record(cudaStream_t s) const { BANYAN_CUDA_CHECK(cudaEventRecord(e_.get(), s)); }
  void synchronize() const { BANYAN_CUDA_CHECK(cudaEventSynchronize(e_.get())); }
  /// Milliseconds from `start` to this event (both recorded, timing events).
  float since(const Event& start) const {
    float ms = 0.0f;
    BANYAN_CUDA_CHECK(cudaEventElapsedTime(&ms, start.get(), e_.get()));
    return ms;
  }

 private:
  explicit Event(cudaEvent_t e) : e_(e) {}
  detail::Owned<cudaEvent_t, detail::DestroyEvent> e_;
};

/// A captured and instantiated CUDA graph; launch() replays it on a stream.
class Graph {
 public:
  Graph() = default;
  /// Takes ownership of a captured graph and instantiates it.
  explicit Graph(cudaGraph_t captured) : graph_(captured) {
    cudaGraphExec_t exec = nullptr;
    BANYAN_CUDA_CHECK(cudaGraphInstantiate(&exec, captured, 0));
    exec_ = detail::Owned<cudaGraphExec_t, detail::DestroyGraphExec>(exec);
  }
  void launch(cudaStream_t s) const { BANYAN_CUDA_CHECK(cudaGraphLaunch(exec_.get(), s)); }
  explicit operator bool() const { return static_cast<bool>(exec_); }

 private:
  detail::Owned<cudaGraph_t, detail::DestroyGraph> graph_;
  detail::Owned<cudaGraphExec_t, detail::DestroyGraphExec> exec_;
};

}  // namespace banyan::kernels::cuda
