// The adapter manager: every registered adapter (metadata only: thousands are
// cheap), a host-memory tier of packed images (adapters.host_pool_bytes) and the
// device-resident set in a paged pool (adapters.pool_bytes, counted in pages:
// adapter_pool.h), both least-recently-used. Making an adapter resident takes a run
// of pages per module from the pool, evicting unused adapters until every run fits
// (the free pages alone may not suffice: runs are contiguous), and uploads it module
// by module; no device allocation happens per adapter. The engine
// counts each request's use: an adapter a running request uses is never evicted;
// a pinned one never leaves the device once loaded. Unloading frees its memory at
// once, or when the last request using it ends.
//
// Life of a request's adapter (engine side):
//   begin_request(name)   any thread: resolves the name (Error not_found), counts the
//                         request, and reads the adapter into the host tier if needed;
//   acquire(id)           engine thread, when the request is first scheduled: makes it
//                         device-resident (evicting unused ones) and returns its slot;
//   end_request(id, ...)  engine thread, when the request ends (acquired or not).
//
// Thread-safety: every method may be called from any thread except acquire() and
// the constructor (engine thread: they touch the device and the model runner).
#pragma once

#include "core/adapters/adapter_format.h"
#include "core/adapters/adapter_pool.h"
#include "core/adapters/lora_hook.h"
#include "core/adapters/lora_kernels.h"
#include "core/adapters/packed_adapter.h"

#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

namespace banyan::core {

class ModelRunner;
class PluginHost;

struct AdapterManagerOptions {
  size_t pool_bytes = size_t{2} << 30;       ///< device budget for resident adapters
  size_t host_pool_bytes = size_t{8} << 30;  ///< host tier budget
  /// Page of the device pool; 0: choose_page_bytes() for the model's layers.
  size_t page_bytes = 0;
  /// Device memory reserved at a time (raised to hold the largest module segment
  /// that max_rank allows).
  size_t chunk_bytes = size_t{64} << 20;
  int32_t max_rank = 64;                     ///< larger adapters are refused at load
  std::string plugin = "lora";               ///< adapter plugin (format)
};

enum class AdapterTier { disk, host, device };

struct AdapterStatus {
  std::string name, path;
  uint64_t id = 0;           ///< unique per registration (never reused)
  std::string method;        ///< "lora" | "dora"
  std::string summary;
  int32_t rank = 0;          ///< largest rank of its modules
  int32_t num_modules = 0;
  size_t bytes = 0;          ///< of its packed image (the host tier's bytes)
  int64_t pages = 0;         ///< its footprint in the device pool (pages of page_bytes)
  AdapterTier tier = AdapterTier::disk;
  bool cached_on_host = false;
  bool pinned = false;
  bool registered = true;    ///< false once unloaded (kept while requests use it)
  int64_t requests = 0;      ///< requests that named it
  int64_t tokens = 0;        ///< prompt + generated tokens of its finished requests
  int32_t running = 0;       ///< requests using its device copy now
  int64_t loads = 0;         ///< times it was made device-resident
  int64_t evictions = 0;     ///< times it left the device to make room
  int64_t disk_reads = 0;    ///< times its files were read
};

struct AdapterPoolStats {
  /// Device pool: bytes = pages x page_bytes. device_bytes: pages holding adapters
  /// (above device_budget only after over-budget loads); device_budget: the pages
  /// pool_bytes allows; device_reserved_bytes: chunks held from the backend, free
  /// pages included (within the budget they stay until the manager is destroyed).
  size_t device_bytes = 0, device_budget = 0, device_reserved_bytes = 0;
  size_t page_bytes = 0;
  int64_t device_pages = 0, device_budget_pages = 0;
  int64_t largest_free_run = 0;  ///< pages, in the reserved chunks
  int32_t device_chunks = 0;
  size_t host_bytes = 0, host_budget = 0;
  int32_t registered = 0, resident = 0, cached = 0;
  int64_t loads = 0, evictions = 0, disk_reads = 0;
  int64_t over_budget = 0;  ///< loads that exceeded pool_bytes (everything resident was in use)
};

class AdapterManager {
 public:
  /// Probes the model's linear layers, creates the adapter plugin and installs the
  /// LoRA hook in runner.linears(). Engine thread (before it serves).
  AdapterManager(const PluginHost& plugins, ModelRunner& runner, const AdapterManagerOptions& options);
  /// Removes the hook and frees every adapter, and the pool's chunks with it.
  ~AdapterManager();
  AdapterManager(const AdapterManager&) = delete;
  AdapterManager& operator=(const AdapterManager&) = delete;

  /// Reads and checks the adapter (metadata only; no tensor is copied). Throws
  /// banyan::Error: invalid_argument for a name in use, a rank over max_rank, a
  /// footprint (in pages) larger than pool_bytes, or a bad adapter; not_found for
  /// missing files.
  uint64_t load(const std::string& name, const std::string& path);
  /// Unregisters; frees its memory now, or when the last request using it ends.
  /// Throws Error(not_found).
  void unload(const std::string& name);
  /// Pins (keeps on the device once loaded, and in the host tier) or unpins.
  void pin(const std::string& name, bool pinned);

  std::vector<AdapterStatus> list() const;
  /// AdapterPool::check() under the lock, and that the pages in use are exactly the
  /// footprints of the resident adapters (tests).
  void check_pool() const;
  std::optional<AdapterStatus> find(const std::string& name) const;
  AdapterPoolStats stats() const;
  const std::vector<BaseLinear>& linears() const;

  /// See the header comment. begin_request throws Error(not_found) "The model `x`
  /// does not exist." for an unknown name, or the read error of its files.
  uint64_t begin_request(const std::string& name);
  int32_t acquire(uint64_t id);
  void end_request(uint64_t id, bool acquired, int64_t tokens);

 private:
  struct Entry;
  using Lock = std::unique_lock<std::mutex>;
  std::vector<std::byte> read_image(const Entry& e) const;  // no lock held
  /// Moves `image` into the host tier when it fits (evicting LRU images); false: not kept.
  bool cache_on_host(Entry& e, std::vector<std::byte>& image);
  void make_resident(Entry& e, const std::vector<std::byte>& image);
  void finish(Entry& e, bool acquired, int64_t tokens);
  void evict_device(Entry& e);
  void drop_host(Entry& e);
  void destroy(Entry& e);
  Entry* entry(uint64_t id);
  AdapterStatus status_of(const Entry& e) const;

  ModelRunner& runner_;
  AdapterManagerOptions opts_;
  std::unique_ptr<LoraKernels> kernels_;
  std::unique_ptr<LoraHook> hook_;
  std::unique_ptr<AdapterFormat> format_;
  DType dtype_ = DType::f32;

  std::unique_ptr<AdapterPool> pool_;

  mutable std::mutex mu_;
  std::unordered_map<uint64_t, std::unique_ptr<Entry>> entries_;
  std::unordered_map<std::string, uint64_t> by_name_;
  std::vector<uint64_t> slot_owner_;  // adapter id per slot, 0: free
  uint64_t next_id_ = 1;
  uint64_t tick_ = 0;
  AdapterPoolStats stats_;
};

}  // namespace banyan::core
