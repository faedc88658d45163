// CPU throughput of LoRA serving on the model runner: decode (one token per
// sequence per step) and prefill tokens/s for a batch whose sequences use 1, 8 or
// 64 distinct adapters (ranks 8-64 mixed, all seven projections of every layer),
// against the base model alone in the same batch shape; then the memory the
// adapters take on the device and what unloading them gives back. Prints Markdown.
//
//   banyan_bench_lora [--hidden N] [--layers N] [--batch N] [--context N]
//                     [--steps N] [--reps N] [--prefill N] [--threads N]
#include "core/adapters/adapter_manager.h"
#include "core/adapters/test_adapters.h"
#include "core/common/logging.h"
#include "core/plugin_host/plugin_host.h"
#include "core/runtime/model_runner.h"
#include "core/runtime/random_checkpoint.h"

#include <banyan/error.h>

#include <omp.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <string>
#include <vector>

using namespace banyan;
using namespace banyan::core;
namespace fs = std::filesystem;

namespace {

double now() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

size_t rss_bytes() {
  std::ifstream f("/proc/self/statm");
  size_t pages = 0, resident = 0;
  f >> pages >> resident;
  return resident * static_cast<size_t>(sysconf(_SC_PAGESIZE));
}

std::string mib(double bytes) {
  char b[32];
  std::snprintf(b, sizeof b, "%.1f MiB", bytes / (1 << 20));
  return b;
}

struct Args {
  int64_t hidden = 1024, layers = 4, vocab = 32000;
  int batch = 64, context = 32, steps = 8, reps = 3, prefill = 128, threads = 0;
};

// One step of `batch` sequences; `len` new tokens each at positions [start, start+len).
ForwardBatch make_batch(int batch, int start, int len, int32_t block_size, int32_t per_seq,
                        const std::vector<int32_t>& slots) {
  ForwardBatch b;
  for (int i = 0; i < batch; ++i) {
    SeqSlice q;
    q.query_start = b.num_tokens();
    q.query_len = len;
    q.context_len = start + len;
    q.block_offset = static_cast<int32_t>(b.block_tables.size());
    q.num_blocks = (q.context_len + block_size - 1) / block_size;
    q.logits_rows = 1;
    q.adapter_slot = slots[static_cast<size_t>(i)];
    for (int32_t j = 0; j < q.num_blocks; ++j) b.block_tables.push_back(i * per_seq + j);
    for (int j = 0; j < len; ++j) {
      const int32_t pos = start + j;
      b.token_ids.push_back((7 * i + 13 * pos) % 1000 + 3);
      b.positions.push_back(pos);
      b.slot_mapping.push_back((i * per_seq + pos / block_size) * block_size + pos % block_size);
      b.adapter_slots.push_back(q.adapter_slot);
    }
    b.seqs.push_back(q);
  }
  return b;
}

}  // namespace

int main(int argc, char** argv) {
  Args a;
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string k = argv[i];
    long v = std::stol(argv[i + 1]);
    if (k == "--hidden") a.hidden = v;
    else if (k == "--layers") a.layers = v;
    else if (k == "--batch") a.batch = static_cast<int>(v);
    else if (k == "--context") a.context = static_cast<int>(v);
    else if (k == "--steps") a.steps = static_cast<int>(v);
    else if (k == "--reps") a.reps = static_cast<int>(v);
    else if (k == "--prefill") a.prefill = static_cast<int>(v);
    else if (k == "--threads") a.threads = static_cast<int>(v);
    else {
      std::cerr << "unknown option " << k << "\n";
      return 2;
    }
  }
  try {
    set_log_level("warn");
    test::TempDir tmp;
    RandomLlamaSpec spec;
    spec.hidden = a.hidden;
    spec.intermediate = a.hidden * 11 / 4;
    spec.layers = a.layers;
    spec.heads = a.hidden / 64;
    spec.kv_heads = std::max<int64_t>(1, a.hidden / 256);
    spec.vocab = a.vocab;
    spec.max_position = 4096;
    const int64_t params = write_random_llama(tmp / "base", spec);

    PluginHost plugins;
    plugins.scan(PluginHost::default_search_paths());
    ModelRunnerOptions o;
    o.model_dir = tmp / "base";
    o.block_size = 16;
    const int32_t per_seq = (std::max(a.context + a.steps, a.prefill) + 15) / 16;
    o.num_blocks = static_cast<int64_t>(per_seq) * a.batch;
    o.cpu.threads = a.threads;
    ModelRunner runner(plugins, o);

    // 64 adapters: ranks 8, 16, 32, 64 in turn, all seven projections of every layer.
    const int kAdapters = 64;
    const test::LlamaShape shape{a.layers, a.hidden, spec.kv_heads * 64, spec.intermediate, a.vocab};
    const int ranks[] = {8, 16, 32, 64};
    for (int k = 0; k < kAdapters; ++k) {
      const int r = ranks[k % 4];
      std::map<std::string, test::LoraTensors> mods;
      uint32_t seed = static_cast<uint32_t>(1000 * k);
      for (const auto& [name, io] : test::llama_modules(shape))
        mods[name] = test::random_lora(r, io.first, io.second, seed++, false);
      test::write_peft(tmp / ("a" + std::to_string(k)),
                       test::peft_config(r, 2 * r, "all-linear"), mods, DType::bf16);
    }
    const size_t rss0 = rss_bytes();
    auto mgr = std::make_unique<AdapterManager>(plugins, runner, AdapterManagerOptions{});
    std::vector<int32_t> slot(kAdapters);
    std::vector<uint64_t> ids(kAdapters);
    size_t adapter_bytes = 0;
    for (int k = 0; k < kAdapters; ++k) {
      const std::string n = "a" + std::to_string(k);
      mgr->load(n, (tmp / n).string());
      ids[k] = mgr->begin_request(n);
      slot[k] = mgr->acquire(ids[k]);
      adapter_bytes += mgr->find(n)->bytes;
    }
    const size_t rss_loaded = rss_bytes();
    const AdapterPoolStats loaded = mgr->stats();

    std::printf("## LoRA on the CPU backend\n\n");
    std::printf("Model: random Llama shape, hidden %lld, %lld layers, FFN %lld, vocab %lld "
                "(%.0fM parameters, bf16 weights); %d threads.\n",
                static_cast<long long>(a.hidden), static_cast<long long>(a.layers),
                static_cast<long long>(spec.intermediate), static_cast<long long>(a.vocab),
                static_cast<double>(params) / 1e6, omp_get_max_threads());
    std::printf("Adapters: %d, ranks 8/16/32/64 in turn, all 7 projections of every layer, BF16 "
                "files, %s in all on the device (kept BF16: the files are BF16).\n\n", kAdapters,
                mib(static_cast<double>(adapter_bytes)).c_str());

    struct Case {
      const char* name;
      int distinct;  // 0: base model
    };
    const Case cases[] = {{"base model", 0}, {"1 adapter", 1}, {"8 adapters", 8}, {"64 adapters", 64}};
    auto slots_for = [&](int distinct, int n) {
      std::vector<int32_t> s(static_cast<size_t>(n), -1);
      if (distinct > 0)
        for (int i = 0; i < n; ++i) s[static_cast<size_t>(i)] = slot[static_cast<size_t>(i % distinct)];
      return s;
    };
    // The cases take turns within each repetition, so that a change in the machine's
    // load hits them alike; the median of the repetitions is reported.
    const int pb = std::min(a.batch, 8);
    std::vector<std::vector<double>> decode(std::size(cases)), prefill(std::size(cases));
    for (int rep = 0; rep < a.reps + 1; ++rep) {
      for (size_t ci = 0; ci < std::size(cases); ++ci) {
        const auto s = slots_for(cases[ci].distinct, a.batch);
        runner.execute(make_batch(a.batch, 0, a.context, 16, per_seq, s));  // fill the KV cache
        double t0 = now();
        for (int st = 0; st < a.steps; ++st)
          runner.execute(make_batch(a.batch, a.context + st, 1, 16, per_seq, s));
        const double d = a.batch * a.steps / (now() - t0);
        const auto ps = slots_for(cases[ci].distinct, pb);
        t0 = now();
        runner.execute(make_batch(pb, 0, a.prefill, 16, per_seq, ps));
        const double p = pb * a.prefill / (now() - t0);
        if (rep > 0) {  // the first is a warm-up
          decode[ci].push_back(d);
          prefill[ci].push_back(p);
        }
      }
    }
    auto median = [](std::vector<double> v) {
      std::sort(v.begin(), v.end());
      return v[v.size() / 2];
    };
    std::printf("| batch | decode tok/s | vs base | prefill tok/s (%d x %d tokens) | vs base |\n", pb,
                a.prefill);
    std::printf("| --- | --- | --- | --- | --- |\n");
    const double base_decode = median(decode[0]), base_prefill = median(prefill[0]);
    for (size_t ci = 0; ci < std::size(cases); ++ci) {
      const double d = median(decode[ci]), p = median(prefill[ci]);
      std::printf("| %d seqs, %s | %.0f | %.2fx | %.0f | %.2fx |\n", a.batch, cases[ci].name, d,
                  d / base_decode, p, p / base_prefill);
    }

    const size_t rss_before_unload = rss_bytes();
    for (int k = 0; k < kAdapters; ++k) {
      mgr->end_request(ids[k], true, 0);
      mgr->unload("a" + std::to_string(k));
    }
    const AdapterPoolStats after = mgr->stats();
    const size_t rss_unloaded = rss_bytes();
    std::printf("\nMemory: %d adapters resident take %s of pool (device) and %s of host tier; "
                "loading them took process RSS from %s to %s (+%s). Unloading all: pool %s, host "
                "tier %s, RSS %s -> %s (%s given back to the system).\n",
                kAdapters, mib(static_cast<double>(loaded.device_bytes)).c_str(),
                mib(static_cast<double>(loaded.host_bytes)).c_str(), mib(static_cast<double>(rss0)).c_str(),
                mib(static_cast<double>(rss_loaded)).c_str(),
                mib(static_cast<double>(rss_loaded) - static_cast<double>(rss0)).c_str(),
                mib(static_cast<double>(after.device_bytes)).c_str(),
                mib(static_cast<double>(after.host_bytes)).c_str(),
                mib(static_cast<double>(rss_before_unload)).c_str(),
                mib(static_cast<double>(rss_unloaded)).c_str(),
                mib(static_cast<double>(rss_before_unload) - static_cast<double>(rss_unloaded)).c_str());
  } catch (const std::exception& e) {
    std::cerr << "error: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
