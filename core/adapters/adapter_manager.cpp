#include "core/adapters/adapter_manager.h"

#include "core/common/logging.h"
#include "core/runtime/device_buffer.h"
#include "core/runtime/linear.h"
#include "core/runtime/model_runner.h"
#include "core/runtime/weight_store.h"

#include <banyan/error.h>

#include <algorithm>

#if defined(__GLIBC__)
#include <malloc.h>
#endif

namespace banyan::core {

struct AdapterManager::Entry {
  AdapterStatus s;          // name, path, id, description and counters
  AdapterLayout layout;     // immutable after load()
  int32_t requests_alive = 0;
  std::vector<ModuleSegment> segments;  // of the image, parallel to layout.modules
  std::vector<size_t> segment_bytes;
  std::vector<std::byte> host;  // host tier image (empty: not cached)
  AdapterPlacement placement;   // its pages in the device pool (while resident)
  int32_t slot = -1;            // >= 0: resident
  uint64_t last_use = 0;
};

namespace {
std::string kib(size_t bytes) { return std::to_string((bytes + 1023) / 1024) + " KiB"; }

// The pool's geometry for these layers: the page size (choose_page_bytes(), unless
// given) and a chunk that holds the largest segment max_rank allows (A and B^T in f32,
// the DoRA vectors, alignment).
AdapterPoolOptions pool_options(const AdapterManagerOptions& o, const std::vector<BaseLinear>& linears) {
  size_t smallest = SIZE_MAX, largest = 0;
  const auto rank = static_cast<size_t>(std::max(o.max_rank, 1));
  for (const BaseLinear& l : linears) {
    const auto in = static_cast<size_t>(l.in), out = static_cast<size_t>(l.out);
    smallest = std::min(smallest, 8 * (in + out) * 2);
    largest = std::max(largest, rank * (in + out) * 4 + 2 * out * 4 + 4 * 64);
  }
  AdapterPoolOptions p;
  p.budget_bytes = o.pool_bytes;
  p.page_bytes = o.page_bytes ? o.page_bytes : choose_page_bytes(smallest);
  p.chunk_bytes = std::max(o.chunk_bytes, largest);
  return p;
}
}  // namespace

AdapterManager::AdapterManager(const PluginHost& plugins, ModelRunner& runner,
                               const AdapterManagerOptions& options)
    : runner_(runner), opts_(options) {
  kernels_ = make_lora_kernels(runner.backend());
  hook_ = std::make_unique<LoraHook>(*kernels_);
  dtype_ = runner.backend().activation_dtype();
  const auto& linears = hook_->probe(runner);
  format_ = std::make_unique<AdapterFormat>(plugins, opts_.plugin, runner.model_type(),
                                            runner.spec().num_layers, linears);
  pool_ = std::make_unique<AdapterPool>(runner.backend(), pool_options(opts_, linears));
  slot_owner_.assign(16, 0);
  kernels_->resize(static_cast<int32_t>(linears.size()), static_cast<int32_t>(slot_owner_.size()));
  runner.linears().set_adapter_hook(hook_.get());
  stats_.host_budget = opts_.host_pool_bytes;
  log_info("adapters: " + std::to_string(linears.size()) + " linear layers can take adapters (plugin \"" +
           opts_.plugin + "\"), device pool " + kib(opts_.pool_bytes) + " (" +
           std::to_string(pool_->budget_pages()) + " pages of " + kib(pool_->page_bytes()) +
           "), host tier " +
           kib(opts_.host_pool_bytes) + ", max rank " + std::to_string(opts_.max_rank));
}

AdapterManager::~AdapterManager() {
  if (runner_.linears().adapter_hook() == hook_.get()) runner_.linears().set_adapter_hook(nullptr);
}

const std::vector<BaseLinear>& AdapterManager::linears() const { return hook_->linears(); }

AdapterManager::Entry* AdapterManager::entry(uint64_t id) {
  auto it = entries_.find(id);
  return it == entries_.end() ? nullptr : it->second.get();
}

uint64_t AdapterManager::load(const std::string& name, const std::string& path) {
  if (name.empty()) throw Error(Code::invalid_argument, "adapter name must not be empty");
  auto in_use = [&] {
    return Error(Code::invalid_argument, "adapter \"" + name + "\" is already loaded");
  };
  {
    std::lock_guard lk(mu_);
    if (by_name_.count(name)) throw in_use();
  }
  auto e = std::make_unique<Entry>();
  try {
    AdapterFormat::Handle h = format_->open(path);
    const BanyanAdapterInfo& info = h.info();
    if (info.max_rank > opts_.max_rank)
      throw Error(Code::invalid_argument, "rank " + std::to_string(info.max_rank) +
                                              " is above adapters.max_lora_rank " +
                                              std::to_string(opts_.max_rank) + " (raise --max-lora-rank)");
    e->layout = plan_adapter(info, dtype_, [&](const std::string& n) { return hook_->module_index(n); },
                             runner_.weights().checkpoint());
    e->segments = module_segments(e->layout);
    for (const ModuleSegment& g : e->segments) e->segment_bytes.push_back(g.bytes);
    e->s.pages = pool_->pages_for(e->segment_bytes);
    if (e->s.pages > pool_->budget_pages())
      throw Error(Code::invalid_argument,
                  "it needs " + kib(static_cast<size_t>(e->s.pages) * pool_->page_bytes()) +
                      " of adapter memory (" + std::to_string(e->s.pages) + " pages of " +
                      kib(pool_->page_bytes()) + "), more than adapters.pool_bytes (" +
                      kib(opts_.pool_bytes) + ")");
    e->s.method = info.method ? info.method : "lora";
    e->s.summary = info.summary ? info.summary : "";
    e->s.rank = info.max_rank;
    e->s.num_modules = info.num_modules;
  } catch (const Error& err) {
    throw Error(err.code(), "adapter \"" + name + "\" (" + path + "): " + err.what());
  }
  e->s.name = name;
  e->s.path = path;
  e->s.bytes = e->layout.bytes;
  std::lock_guard lk(mu_);
  if (by_name_.count(name)) throw in_use();
  const uint64_t id = next_id_++;
  e->s.id = id;
  log_info("adapter \"" + name + "\" registered from " + path + ": " + e->s.summary + ", " +
           kib(e->s.bytes) + " (" + std::to_string(e->s.pages) + " pages)");
  by_name_.emplace(name, id);
  entries_.emplace(id, std::move(e));
  ++stats_.registered;
  return id;
}

void AdapterManager::unload(const std::string& name) {
  std::lock_guard lk(mu_);
  auto it = by_name_.find(name);
  if (it == by_name_.end()) throw Error(Code::not_found, "adapter \"" + name + "\" is not loaded");
  Entry& e = *entries_.at(it->second);
  by_name_.erase(it);
  e.s.registered = false;
  --stats_.registered;
  log_info("adapter \"" + name + "\" unloaded" +
           (e.requests_alive ? " (freed when its " + std::to_string(e.requests_alive) +
                                   " request(s) end)"
                             : ""));
  if (e.requests_alive == 0) destroy(e);
}

void AdapterManager::pin(const std::string& name, bool pinned) {
  std::lock_guard lk(mu_);
  auto it = by_name_.find(name);
  if (it == by_name_.end()) throw Error(Code::not_found, "adapter \"" + name + "\" is not loaded");
  entries_.at(it->second)->s.pinned = pinned;
}

AdapterStatus AdapterManager::status_of(const Entry& e) const {
  AdapterStatus s = e.s;
  s.tier = e.slot >= 0 ? AdapterTier::device : !e.host.empty() ? AdapterTier::host : AdapterTier::disk;
  s.cached_on_host = !e.host.empty();
  return s;
}

std::vector<AdapterStatus> AdapterManager::list() const {
  std::lock_guard lk(mu_);
  std::vector<AdapterStatus> out;
  for (const auto& [name, id] : by_name_) out.push_back(status_of(*entries_.at(id)));
  std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a.name < b.name; });
  return out;
}

std::optional<AdapterStatus> AdapterManager::find(const std::string& name) const {
  std::lock_guard lk(mu_);
  auto it = by_name_.find(name);
  if (it == by_name_.end()) return std::nullopt;
  return status_of(*entries_.at(it->second));
}

AdapterPoolStats AdapterManager::stats() const {
  std::lock_guard lk(mu_);
  AdapterPoolStats s = stats_;
  const AdapterPoolUsage u = pool_->usage();
  s.page_bytes = u.page_bytes;
  s.device_pages = u.used_pages;
  s.device_budget_pages = u.budget_pages;
  s.device_bytes = static_cast<size_t>(u.used_pages) * u.page_bytes;
  s.device_budget = static_cast<size_t>(u.budget_pages) * u.page_bytes;
  s.device_reserved_bytes = static_cast<size_t>(u.reserved_pages) * u.page_bytes;
  s.largest_free_run = u.largest_free_run;
  s.device_chunks = u.chunks;
  s.resident = s.cached = 0;
  for (const auto& [id, e] : entries_) {
    s.resident += e->slot >= 0 ? 1 : 0;
    s.cached += e->host.empty() ? 0 : 1;
  }
  return s;
}

void AdapterManager::check_pool() const {
  std::lock_guard lk(mu_);
  pool_->check();
  int64_t pages = 0;
  for (const auto& [id, e] : entries_) {
    const bool placed = e->placement.runs.size() == e->segments.size() && e->placement.pages == e->s.pages;
    if (e->slot >= 0 && !placed)
      throw Error(Code::internal, "adapter \"" + e->s.name + "\" is resident without its pages");
    if (e->slot < 0 && (!e->placement.runs.empty() || e->placement.pages != 0))
      throw Error(Code::internal, "adapter \"" + e->s.name + "\" holds pages but is not resident");
    pages += e->slot >= 0 ? e->placement.pages : 0;
  }
  if (pages != pool_->usage().used_pages)
    throw Error(Code::internal, "adapter pool: " + std::to_string(pool_->usage().used_pages) +
                                    " pages in use, resident adapters hold " + std::to_string(pages));
}

// ------------------------------------------------------------------ images ---

std::vector<std::byte> AdapterManager::read_image(const Entry& e) const {
  AdapterFormat::Handle h = format_->open(e.s.path);
  const BanyanAdapterInfo& info = h.info();
  bool same = info.num_modules == static_cast<int32_t>(e.layout.modules.size());
  for (int32_t i = 0; same && i < info.num_modules; ++i)
    same = e.layout.names[i] == info.modules[i].name && e.layout.modules[i].rank == info.modules[i].rank &&
           e.layout.modules[i].dora == (info.modules[i].magnitude.data != nullptr) &&
           e.layout.modules[i].scaling == info.modules[i].scaling;
  if (!same)
    throw Error(Code::invalid_argument, "adapter \"" + e.s.name + "\": " + e.s.path +
                                            " changed on disk since it was loaded; unload and load it again");
  std::vector<std::byte> image(e.layout.bytes);
  pack_adapter(info, e.layout, runner_.weights().checkpoint(), image.data());
  return image;
}

void AdapterManager::drop_host(Entry& e) {
  if (e.host.empty()) return;
  stats_.host_bytes -= e.host.size();
  std::vector<std::byte>().swap(e.host);
}

bool AdapterManager::cache_on_host(Entry& e, std::vector<std::byte>& image) {
  if (!e.host.empty()) return true;
  const size_t need = image.size();
  // Least recently used first; an adapter that requests wait for stays if possible.
  for (int pass = 0; pass < 2 && stats_.host_bytes + need > opts_.host_pool_bytes; ++pass) {
    for (;;) {
      Entry* victim = nullptr;
      for (auto& [id, x] : entries_) {
        Entry& c = *x;
        if (&c == &e || c.host.empty() || c.s.pinned) continue;
        if (pass == 0 && c.requests_alive > c.s.running) continue;
        if (!victim || c.last_use < victim->last_use) victim = &c;
      }
      if (!victim || stats_.host_bytes + need <= opts_.host_pool_bytes) break;
      drop_host(*victim);
    }
  }
  if (stats_.host_bytes + need > opts_.host_pool_bytes) return false;  // read again later
  e.host = std::move(image);
  stats_.host_bytes += need;
  return true;
}

// ------------------------------------------------------------------ device ---

void AdapterManager::evict_device(Entry& e) {
  if (e.slot < 0) return;
  for (const PackedModule& p : e.layout.modules) kernels_->set(p.module, e.slot, LoraSlotWeights{});
  slot_owner_[static_cast<size_t>(e.slot)] = 0;
  e.slot = -1;
  // The pages are reused by the next upload, which the backend orders after the
  // steps already queued (Backend::upload), so no step reads a page being rewritten.
  pool_->release(e.placement);
}

void AdapterManager::destroy(Entry& e) {
  evict_device(e);
  drop_host(e);
  entries_.erase(e.s.id);
#if defined(__GLIBC__)
  // Host memory (the host tier, and the device pool of the CPU backend) goes back
  // to the system now, not when the allocator next decides to shrink its heap.
  malloc_trim(0);
#endif
}

void AdapterManager::finish(Entry& e, bool acquired, int64_t tokens) {
  --e.requests_alive;
  if (acquired) --e.s.running;
  e.s.tokens += tokens;
  if (!e.s.registered && e.requests_alive == 0) destroy(e);
}

uint64_t AdapterManager::begin_request(const std::string& name) {
  Lock lk(mu_);
  auto it = by_name_.find(name);
  if (it == by_name_.end()) throw Error(Code::not_found, "The model `" + name + "` does not exist.");
  Entry& e = *entries_.at(it->second);
  const uint64_t id = e.s.id;
  ++e.requests_alive;
  ++e.s.requests;
  e.last_use = ++tick_;
  if (e.slot >= 0 || !e.host.empty()) return id;
  lk.unlock();
  std::vector<std::byte> image;
  try {
    image = read_image(e);  // path and layout are immutable; the request keeps e alive
  } catch (...) {
    lk.lock();
    --e.s.requests;
    finish(e, false, 0);
    throw;
  }
  lk.lock();
  ++e.s.disk_reads;
  ++stats_.disk_reads;
  cache_on_host(e, image);
  return id;
}

void AdapterManager::end_request(uint64_t id, bool acquired, int64_t tokens) {
  std::lock_guard lk(mu_);
  if (Entry* e = entry(id)) finish(*e, acquired, tokens);
}

int32_t AdapterManager::acquire(uint64_t id) {
  Lock lk(mu_);
  Entry* e = entry(id);
  if (!e || e->requests_alive <= e->s.running)
    throw Error(Code::internal, "adapter id " + std::to_string(id) + " acquired without a request");
  ++e->s.running;
  e->last_use = ++tick_;
  if (e->slot >= 0) return e->slot;
  try {
    std::vector<std::byte> local;
    if (e->host.empty()) {
      lk.unlock();
      local = read_image(*e);
      lk.lock();
      ++e->s.disk_reads;
      ++stats_.disk_reads;
      cache_on_host(*e, local);
    }
    make_resident(*e, e->host.empty() ? local : e->host);
  } catch (...) {
    if (!lk.owns_lock()) lk.lock();
    --e->s.running;
    throw;
  }
  return e->slot;
}

void AdapterManager::make_resident(Entry& e, const std::vector<std::byte>& image) {
  Backend& be = runner_.backend();
  // Adapters forced beyond the budget leave first once idle: their chunks go back to
  // the backend and the pool returns within its budget.
  for (auto& [id, x] : entries_) {
    Entry& c = *x;
    if (&c == &e || c.slot < 0 || !c.placement.over_budget || c.s.running > 0 || c.s.pinned) continue;
    evict_device(c);
    ++c.s.evictions;
    ++stats_.evictions;
  }
  // Least recently used adapters that no request runs with make room, one at a time,
  // until a run of pages fits every module (free pages in the wrong places do not).
  std::optional<AdapterPlacement> placed;
  while (!(placed = pool_->allocate(e.segment_bytes))) {
    Entry* victim = nullptr;
    for (auto& [id, x] : entries_) {
      Entry& c = *x;
      if (&c == &e || c.slot < 0 || c.s.running > 0 || c.s.pinned) continue;
      if (!victim || c.last_use < victim->last_use) victim = &c;
    }
    if (!victim) break;
    evict_device(*victim);
    ++victim->s.evictions;
    ++stats_.evictions;
  }
  if (!placed) {
    ++stats_.over_budget;
    log_warn("adapter pool: loading \"" + e.s.name + "\" exceeds adapters.pool_bytes (" +
             kib(opts_.pool_bytes) + ") because every resident adapter is in use; raise "
             "--lora-pool-bytes or lower --max-loras");
    placed = pool_->allocate_over_budget(e.segment_bytes);
  }
  size_t slot = 0;
  while (slot < slot_owner_.size() && slot_owner_[slot] != 0) ++slot;
  bool setting = false;
  try {
    if (slot == slot_owner_.size()) {
      kernels_->resize(static_cast<int32_t>(hook_->linears().size()),
                       static_cast<int32_t>(slot_owner_.size() * 2));
      slot_owner_.resize(slot_owner_.size() * 2, 0);
    }
    setting = true;
    for (size_t i = 0; i < e.segments.size(); ++i) {
      const ModuleSegment& g = e.segments[i];
      auto* base = static_cast<std::byte*>(pool_->address(placed->runs[i], placed->over_budget));
      be.upload(base, image.data() + g.offset, g.bytes);
      const PackedModule& p = e.layout.modules[i];
      auto at = [&](size_t offset) { return base + (offset - g.offset); };
      LoraSlotWeights w;
      w.a = at(p.a_offset);
      w.bt = at(p.bt_offset);
      w.dora_scale = p.dora ? reinterpret_cast<const float*>(at(p.scale_offset)) : nullptr;
      w.dora_bias = p.bias ? reinterpret_cast<const float*>(at(p.bias_offset)) : nullptr;
      w.rank = p.rank;
      w.scaling = p.scaling;
      w.dtype = e.layout.dtype;
      kernels_->set(p.module, static_cast<int32_t>(slot), w);
    }
    slot_owner_[slot] = e.s.id;
    e.slot = static_cast<int32_t>(slot);
  } catch (...) {
    // Nothing half-loaded stays: a set entry would point at released pages.
    if (setting)
      for (const PackedModule& p : e.layout.modules)
        kernels_->set(p.module, static_cast<int32_t>(slot), LoraSlotWeights{});
    pool_->release(*placed);
    throw;
  }
  e.placement = std::move(*placed);
  ++e.s.loads;
  ++stats_.loads;
}

}  // namespace banyan::core
