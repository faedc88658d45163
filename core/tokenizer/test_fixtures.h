// Shared helpers of the tokenizer tests: where the fixtures and the fetched tokenizers are,
// and reading JSON/JSONL fixtures. Header-only, used by *_test.cpp only.
#pragma once

#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "core/tokenizer/tokenizer.h"

namespace banyan::core::testing {

inline std::filesystem::path source_dir() {
  if (const char* env = std::getenv("BANYAN_SOURCE_DIR")) return env;
  return BANYAN_SOURCE_DIR;
}

inline std::filesystem::path fixtures_dir() { return source_dir() / "tests" / "fixtures" / "tokenizer"; }

/// Where scripts/fetch-tokenizers.sh puts the real tokenizers.
inline std::filesystem::path tokenizer_cache() {
  if (const char* env = std::getenv("BANYAN_TOKENIZER_CACHE")) return env;
  return source_dir() / ".cache" / "tokenizers";
}

inline std::string read_text(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

inline nlohmann::ordered_json read_json(const std::filesystem::path& p) {
  return nlohmann::ordered_json::parse(read_text(p));
}

/// JSONL lines (split on '\n' only: the fixtures hold raw U+2028 and U+0085).
inline std::vector<nlohmann::ordered_json> read_jsonl(const std::filesystem::path& p) {
  std::vector<nlohmann::ordered_json> out;
  std::istringstream in(read_text(p));
  std::string line;
  while (std::getline(in, line))
    if (!line.empty()) out.push_back(nlohmann::ordered_json::parse(line));
  return out;
}

/// The real tokenizers, loaded once per test binary; nullptr when not fetched.
inline const Tokenizer* real_tokenizer(const std::string& name) {
  static std::map<std::string, std::unique_ptr<Tokenizer>> cache;
  auto it = cache.find(name);
  if (it != cache.end()) return it->second.get();
  const auto dir = tokenizer_cache() / name;
  std::unique_ptr<Tokenizer> tok;
  if (std::filesystem::exists(dir / "tokenizer.json")) tok = std::make_unique<Tokenizer>(Tokenizer::load(dir));
  return cache.emplace(name, std::move(tok)).first->second.get();
}

#define BANYAN_REQUIRE_TOKENIZER(var, name)                                                               \
  const ::banyan::core::Tokenizer* var = ::banyan::core::testing::real_tokenizer(name);                 \
  if (!var) GTEST_SKIP() << "tokenizer " << name << " not found in "                                     \
                         << ::banyan::core::testing::tokenizer_cache().string()                          \
                         << " (run scripts/fetch-tokenizers.sh)"

inline std::string show_ids(const std::vector<int32_t>& ids) {
  std::string s = "[";
  for (size_t i = 0; i < ids.size(); ++i) s += (i ? ", " : "") + std::to_string(ids[i]);
  return s + "]";
}

}  // namespace banyan::core::testing
