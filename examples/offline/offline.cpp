// Offline generation with banyan::LLM (no server): load a deployment once, then
// generate for a batch of prompts on the base model and on each preloaded adapter.
// Every prompt of a call runs concurrently through the engine.
//   build/bin/banyan_offline_example [CONFIG_YAML]   (default configs/demo.yaml; relative
//                                                      paths in it are from the working dir)
// Prints one line per completion: `[model] prompt -> completion` (newlines as \n).
#include "core/config/config.h"
#include "core/engine/llm.h"

#include <banyan/error.h>

#include <iostream>
#include <string>
#include <vector>

namespace {

std::string one_line(std::string s) {
  std::string out;
  for (char c : s) {
    if (c == '\n') out += "\\n";
    else if (c == '\t') out += "\\t";
    else out += c;
  }
  return out;
}

void print(const std::string& model, const std::vector<banyan::RequestOutput>& outs) {
  for (const auto& o : outs)
    for (const auto& c : o.outputs)
      std::cout << "[" << model << "] " << one_line(o.prompt) << " -> " << one_line(c.text) << "\n";
}

}  // namespace

int main(int argc, char** argv) {
  const std::string file = argc > 1 ? argv[1] : "configs/demo.yaml";
  try {
    // A deployment is a Config: schema defaults, then the YAML file. For a bare model
    // directory, `banyan::LLM llm("models/demo");` is enough.
    banyan::core::Config config;
    std::vector<banyan::core::ConfigIssue> issues;
    config.merge_yaml_file(file, issues);
    for (const auto& i : issues) std::cerr << "error: " << i.str() << "\n";
    if (!issues.empty()) return 2;

    banyan::LLM llm(config);
    const std::vector<std::string> prompts = {"The meaning of life is", "A computer is", "Love is"};

    // Greedy on the base model: the same text on every run.
    banyan::SamplingParams greedy{.temperature = 0.0, .max_tokens = 24};
    print("base", llm.generate(prompts, greedy));

    // The same prompts through every adapter the deployment preloads.
    for (const auto& a : config.get_adapters("adapters.preload"))
      print(a.name, llm.generate(prompts, greedy, a.name));

    // Sampling: two completions of one prompt, reproducible with a seed.
    banyan::SamplingParams sampled{.n = 2, .temperature = 0.8, .top_p = 0.95, .seed = 42,
                                   .max_tokens = 24};
    print("base, sampled", llm.generate({"Tell me a fortune:"}, sampled));
  } catch (const banyan::Error& e) {
    std::cerr << "error: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
