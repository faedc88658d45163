// The random generator every decoding strategy uses: xoshiro256** with its state in
// four 64-bit words that the host owns (BanyanDecodeRow::rng_state), seeded from a
// request's seed with splitmix64, so the same seed gives the same samples whatever
// plugin build or batch a request lands in. Header-only.
#pragma once

#include <cstdint>

namespace banyan::rng {

inline uint64_t rotl_(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

inline uint64_t splitmix64(uint64_t& x) {
  uint64_t z = (x += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

/// Fills a state from a seed.
inline void seed(uint64_t state[4], uint64_t seed) {
  for (int i = 0; i < 4; ++i) state[i] = splitmix64(seed);
}

inline uint64_t next(uint64_t s[4]) {
  auto rotl = [](uint64_t x, int k) { return (x << k) | (x >> (64 - k)); };
  const uint64_t result = rotl(s[1] * 5, 7) * 9;
  const uint64_t t = s[1] << 17;
  s[2] ^= s[0];
  s[3] ^= s[1];
  s[1] ^= s[2];
  s[0] ^= s[3];
  s[2] ^= t;
  s[3] = rotl(s[3], 45);
  return result;
}

/// The state of stream `index` forked from `parent` (index 0 is the parent itself):
/// how parallel samples of one request get independent, reproducible generators.
inline void fork(const uint64_t parent[4], uint64_t index, uint64_t out[4]) {
  if (index == 0) {
    for (int i = 0; i < 4; ++i) out[i] = parent[i];
    return;
  }
  uint64_t x = parent[0] ^ rotl_(parent[1], 17) ^ rotl_(parent[2], 31) ^ rotl_(parent[3], 47);
  x ^= index * 0xd1b54a32d192ed03ull;
  seed(out, x);
}

/// Uniform in [0, 1) with 53 random bits.
inline double uniform(uint64_t s[4]) { return static_cast<double>(next(s) >> 11) * 0x1.0p-53; }

}  // namespace banyan::rng
