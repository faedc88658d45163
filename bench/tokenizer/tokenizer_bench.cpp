// Single-thread encode throughput of banyan's tokenizer over the documents written by
// make_bench_text.py (the same documents tools/make_tokenizer_goldens.py bench gives to
// Hugging Face tokenizers). Usage:
//   tokenizer_bench DOCS.jsonl TOKENIZER_DIR... [--repeat N]
// Prints one JSON object per tokenizer: seconds (best of N), MB/s, tokens/s, and the total
// token count (which must equal Hugging Face's for the same documents).
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "core/tokenizer/tokenizer.h"

int main(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  int repeat = 3;
  for (size_t i = 0; i + 1 < args.size(); ++i) {
    if (args[i] == "--repeat") {
      repeat = std::stoi(args[i + 1]);
      args.erase(args.begin() + static_cast<long>(i), args.begin() + static_cast<long>(i) + 2);
      break;
    }
  }
  if (args.size() < 2) {
    std::cerr << "usage: tokenizer_bench DOCS.jsonl TOKENIZER_DIR... [--repeat N]\n";
    return 2;
  }
  std::vector<std::string> docs;
  size_t bytes = 0;
  {
    std::ifstream in(args[0], std::ios::binary);
    if (!in) {
      std::cerr << args[0] << ": cannot open\n";
      return 2;
    }
    std::string line;
    while (std::getline(in, line)) {
      if (line.empty()) continue;
      docs.push_back(nlohmann::json::parse(line).at("text").get<std::string>());
      bytes += docs.back().size();
    }
  }
  try {
    for (size_t t = 1; t < args.size(); ++t) {
      const auto l0 = std::chrono::steady_clock::now();
      const banyan::core::Tokenizer tok = banyan::core::Tokenizer::load(args[t]);
      const double load_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - l0).count();
      double best = 1e30;
      size_t tokens = 0;
      for (int r = 0; r < repeat; ++r) {
        size_t n = 0;
        const auto t0 = std::chrono::steady_clock::now();
        for (const std::string& d : docs) n += tok.encode(d, true).size();
        best = std::min(best, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
        tokens = n;
      }
      nlohmann::json out = {{"tokenizer", args[t]},  {"docs", docs.size()},           {"bytes", bytes},
                            {"tokens", tokens},      {"seconds", best},                {"load_seconds", load_s},
                            {"MB_per_s", bytes / best / 1e6}, {"tokens_per_s", tokens / best}};
      std::cout << out.dump() << std::endl;
    }
  } catch (const std::exception& e) {
    std::cerr << "tokenizer_bench: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
