#include "core/config/schema.h"

#include <sstream>

namespace banyan::core {

const char* type_name(ValueType t) {
  switch (t) {
    case ValueType::boolean: return "a boolean";
    case ValueType::integer: return "an integer";
    case ValueType::number: return "a number";
    case ValueType::string: return "a string";
    case ValueType::bytes: return "a size (bytes, or e.g. \"2GiB\")";
    case ValueType::string_list: return "a list of strings";
    case ValueType::adapter_list: return "a list of {name, path}";
    case ValueType::mapping: return "a mapping";
  }
  return "?";
}

namespace {
using VT = ValueType;
constexpr double kBig = 1e12;

std::vector<ConfigKey> build() {
  return {
      // model ------------------------------------------------------------------
      {"model.path", VT::string, "", {}, {}, {}, "--model",
       "Hugging Face model directory (config.json, *.safetensors, tokenizer files)."},
      {"model.served_model_name", VT::string, "", {}, {}, {}, "--served-model-name",
       "Name clients use in `model`. Default: model.path exactly as given."},
      {"model.tokenizer", VT::string, "", {}, {}, {}, "--tokenizer",
       "Directory with tokenizer.json and tokenizer_config.json. Default: model.path."},
      {"model.skip_tokenizer_init", VT::boolean, "false", {}, {}, {}, "--skip-tokenizer-init",
       "Run without a tokenizer: prompts must be token ids and outputs carry no text."},
      {"model.dtype", VT::string, "auto", {}, {}, {"auto", "bfloat16", "float16", "float32"},
       "--dtype", "Compute dtype. auto: the checkpoint's dtype on CUDA, float32 on CPU."},
      {"model.max_model_len", VT::integer, "", 1, kBig, {}, "--max-model-len",
       "Longest prompt + output in tokens. Default: max_position_embeddings of config.json."},
      // device -----------------------------------------------------------------
      {"device", VT::string, "auto", {}, {}, {"auto", "cpu", "cuda"}, "--device",
       "Backend. auto: cuda when a GPU is usable, else cpu."},
      // engine -----------------------------------------------------------------
      {"engine.max_num_seqs", VT::integer, "256", 1, 65536, {}, "--max-num-seqs",
       "Most sequences running in one step."},
      {"engine.max_num_batched_tokens", VT::integer, "8192", 1, kBig, {},
       "--max-num-batched-tokens",
       "Token budget of one step (prefill chunks plus decodes)."},
      {"engine.block_size", VT::integer, "16", 1, 1024, {}, "--block-size",
       "Tokens per KV-cache block."},
      {"engine.gpu_memory_utilization", VT::number, "0.9", 0.01, 1.0, {},
       "--gpu-memory-utilization",
       "Fraction of GPU memory Banyan may use; the KV cache gets what the model leaves."},
      {"engine.kv_cache_bytes", VT::bytes, "", 1, kBig * 1e3, {}, "--kv-cache-bytes",
       "KV-cache size on any device, instead of what engine.gpu_memory_utilization (GPU) or "
       "engine.cpu_kv_cache_bytes (CPU) gives."},
      {"engine.cpu_kv_cache_bytes", VT::bytes, "1GiB", 1, kBig * 1e3, {}, "--cpu-kv-cache-bytes",
       "KV-cache size on the CPU backend."},
      {"engine.prefix_caching", VT::boolean, "true", {}, {}, {}, "--enable-prefix-caching",
       "Reuse KV blocks of identical prompt prefixes (keyed also by adapter)."},
      {"engine.scheduling_policy", VT::string, "fcfs", {}, {}, {"fcfs", "priority"},
       "--scheduling-policy", "fcfs: first come first served; priority: lower value first."},
      {"engine.preemption_mode", VT::string, "recompute", {}, {}, {"recompute", "swap"},
       "--preemption-mode", "What happens to a preempted sequence's KV cache."},
      {"engine.num_threads", VT::integer, "0", 0, 4096, {}, "--num-threads",
       "CPU threads for the CPU backend (0: all cores)."},
      {"engine.seed", VT::integer, "0", 0, kBig * 1e6, {}, "--seed",
       "Seed for requests that give none."},
      {"engine.enforce_eager", VT::boolean, "false", {}, {}, {}, "--enforce-eager",
       "Run every step op by op. Otherwise (CUDA) a decode step is padded to a captured batch "
       "size (1, 2, 4, 8, 16, 24, 32, 48, 64, ... up to engine.max_num_seqs) and replays a CUDA "
       "graph."},
      {"engine.max_seq_len_to_capture", VT::integer, "8192", 1, kBig, {},
       "--max-seq-len-to-capture",
       "Decode steps holding a longer context run op by op instead of a CUDA graph."},
      // adapters ---------------------------------------------------------------
      {"adapters.enabled", VT::boolean, "false", {}, {}, {}, "--enable-lora",
       "Serve LoRA adapters."},
      // Any loaded adapter plugin may be named, so the choice is checked against the
      // plugins when the engine starts, not here.
      {"adapters.plugin", VT::string, "lora", {}, {}, {}, "",
       "Adapter format plugin: lora (PEFT LoRA, rsLoRA and DoRA directories), or the name of "
       "any adapter plugin on the plugin path."},
      {"adapters.max_loras", VT::integer, "32", 1, 65536, {}, "--max-loras",
       "Most distinct adapters in one step; other requests wait."},
      {"adapters.max_lora_rank", VT::integer, "64", 1, 4096, {}, "--max-lora-rank",
       "Largest adapter rank accepted."},
      {"adapters.pool_bytes", VT::bytes, "2GiB", 1, kBig * 1e3, {}, "--lora-pool-bytes",
       "Device memory for resident adapter weights: reserved in chunks as adapters load, "
       "divided into pages (4 to 64 KiB, by the model's layer sizes) and counted in whole "
       "pages; least recently used adapters go first."},
      {"adapters.host_pool_bytes", VT::bytes, "8GiB", 1, kBig * 1e3, {}, "--lora-host-pool-bytes",
       "Host memory tier for adapters evicted from the device."},
      {"adapters.allowed_roots", VT::string_list, "[]", {}, {}, {}, "--allowed-lora-roots",
       "Directories adapters may be loaded from (after resolving symlinks and ..)."},
      {"adapters.preload", VT::adapter_list, "[]", {}, {}, {}, "--lora-modules",
       "Adapters loaded at start: a list of {name, path} (CLI: name=path ...)."},
      // quantization -----------------------------------------------------------
      // Any loaded quantizer plugin may be named (in-tree: int8, int4, nf4, fp8), so
      // the choice is checked against the plugins at load, not here.
      {"quantization.method", VT::string, "none", {}, {}, {}, "--quantization",
       "Weight quantizer plugin applied to the decoder's linear layers at load: none, "
       "int8, int4, nf4, fp8, or the name of any quantizer plugin on the plugin path."},
      {"quantization.group_size", VT::integer, "128", 1, 65536, {}, "--quantization-group-size",
       "Group size along the input dimension (int4)."},
      {"quantization.options", VT::mapping, "{}", {}, {}, {}, "",
       "Extra options of the quantizer plugin, checked against its plugin.yaml (e.g. nf4 "
       "double_quant, fp8 per_channel; fp8 w8a8: FP8 activations through cuBLASLt on CUDA "
       "devices of compute capability 8.9+ instead of weight-only)."},
      // decoding defaults ------------------------------------------------------
      {"decoding.strategy", VT::string, "sampling", {}, {}, {}, "",
       "Decoding plugin for sampling and parallel sampling (n, best_of)."},
      {"decoding.beam_strategy", VT::string, "beam", {}, {}, {}, "",
       "Decoding plugin for use_beam_search requests."},
      {"decoding.parallel_strategy", VT::string, "parallel", {}, {}, {}, "",
       "Decoding plugin for the first token of n > 1 / best_of requests (one stream per sample)."},
      {"decoding.options", VT::mapping, "{}", {}, {}, {}, "",
       "Options of the decoding.strategy plugin, checked against its plugin.yaml."},
      {"decoding.max_tokens", VT::integer, "16", 1, kBig, {}, "",
       "Default max_tokens when a request gives none."},
      {"decoding.temperature", VT::number, "1.0", 0, 100, {}, "",
       "Default temperature when a request gives none."},
      {"decoding.top_p", VT::number, "1.0", 0, 1, {}, "", "Default top_p."},
      {"decoding.top_k", VT::integer, "-1", -1, kBig, {}, "", "Default top_k (-1: off)."},
      {"decoding.repetition_penalty", VT::number, "1.0", 0.01, 100, {}, "",
       "Default repetition_penalty (1: off)."},
      // server -----------------------------------------------------------------
      {"server.host", VT::string, "127.0.0.1", {}, {}, {}, "--host", "Address to listen on."},
      {"server.port", VT::integer, "8000", 0, 65535, {}, "--port", "TCP port (0: any free port)."},
      {"server.api_key", VT::string, "", {}, {}, {}, "--api-key",
       "When set, every request needs `Authorization: Bearer <key>`."},
      {"server.io_threads", VT::integer, "2", 1, 1024, {}, "--io-threads",
       "Threads serving HTTP I/O."},
      {"server.max_body_bytes", VT::bytes, "8MiB", 1, kBig, {}, "--max-body-bytes",
       "Largest request body accepted (413 above)."},
      {"server.max_concurrent_requests", VT::integer, "1024", 1, 1e7, {},
       "--max-concurrent-requests", "Requests in the engine at once; more wait in a queue."},
      {"server.max_waiting_requests", VT::integer, "4096", 0, 1e7, {}, "--max-waiting-requests",
       "Requests allowed to wait; beyond this, 429 with Retry-After."},
      {"server.header_timeout_s", VT::number, "10", 0.1, 3600, {}, "",
       "Seconds a client has to send its headers."},
      {"server.read_timeout_s", VT::number, "60", 0.1, 86400, {}, "",
       "Seconds a client has to send its body."},
      {"server.access_log", VT::boolean, "true", {}, {}, {}, "", "Log one line per request."},
      // plugins ----------------------------------------------------------------
      {"plugins.search_paths", VT::string_list, "[]", {}, {}, {}, "--plugin-path",
       "Extra directories searched recursively for plugin.yaml (CLI: DIR[:DIR...])."},
      // logging ----------------------------------------------------------------
      {"logging.level", VT::string, "info", {}, {}, {"debug", "info", "warn", "error"},
       "--log-level", "Least severe level written to stderr."},
  };
}
}  // namespace

const std::vector<ConfigKey>& config_schema() {
  static const std::vector<ConfigKey> keys = build();
  return keys;
}

const ConfigKey* find_key(const std::string& path) {
  for (const auto& k : config_schema())
    if (k.path == path) return &k;
  return nullptr;
}

std::string configuration_markdown() {
  std::ostringstream o;
  o << "# Configuration reference\n\n"
       "<!-- Generated by `banyan config docs` from core/config/schema.cpp; a test keeps "
       "them equal. Do not edit by hand. -->\n\n"
       "A deployment is one YAML file (`banyan serve --config FILE`). Every key is optional; "
       "command-line flags override the file. `banyan config check FILE` reports every "
       "error at once, with its key path and line.\n";
  std::string section;
  for (const auto& k : config_schema()) {
    auto dot = k.path.find('.');
    std::string s = dot == std::string::npos ? "(top level)" : k.path.substr(0, dot);
    if (s != section) {
      section = s;
      o << "\n## " << s << "\n\n| key | type | default | flag | description |\n"
        << "| --- | --- | --- | --- | --- |\n";
    }
    std::string range;
    if (!k.choices.empty()) {
      range = " One of:";
      for (const auto& c : k.choices) range += " `" + c + "`";
      range += ".";
    } else if (k.min || k.max) {
      auto num = [](double v) {
        std::ostringstream s;
        s << v;
        return s.str();
      };
      if (k.max && *k.max < 1e11) range = " Range " + num(*k.min) + " to " + num(*k.max) + ".";
      else if (k.min) range = " At least " + num(*k.min) + ".";
    }
    std::string type = type_name(k.type);
    o << "| `" << k.path << "` | " << type << " | "
      << (k.default_yaml.empty() ? "none" : "`" + k.default_yaml + "`") << " | "
      << (k.cli_flag.empty() ? "" : "`" + k.cli_flag + "`") << " | " << k.doc << range << " |\n";
  }
  return o.str();
}

}  // namespace banyan::core
