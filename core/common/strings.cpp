#include "core/common/strings.h"

#include <banyan/error.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdlib>

namespace banyan::core {

size_t edit_distance(std::string_view a, std::string_view b) {
  std::vector<size_t> prev(b.size() + 1), cur(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) prev[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    cur[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      size_t sub = prev[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1);
      cur[j] = std::min({prev[j] + 1, cur[j - 1] + 1, sub});
    }
    std::swap(prev, cur);
  }
  return prev[b.size()];
}

std::string closest_match(std::string_view word, const std::vector<std::string>& candidates) {
  std::string best;
  size_t best_d = std::string::npos;
  for (const auto& c : candidates) {
    size_t d = edit_distance(word, c);
    if (d < best_d) {
      best_d = d;
      best = c;
    }
  }
  // Suggest only when at most a third of the word differs (and at least one edit allowed).
  size_t limit = std::max<size_t>(2, word.size() / 3);
  return best_d <= limit ? best : std::string();
}

std::vector<std::string> split(std::string_view s, char sep) {
  std::vector<std::string> out;
  size_t start = 0;
  while (start <= s.size()) {
    size_t end = s.find(sep, start);
    if (end == std::string_view::npos) end = s.size();
    if (end > start) out.emplace_back(s.substr(start, end - start));
    start = end + 1;
  }
  return out;
}

size_t parse_bytes(std::string_view text) {
  std::string t(text);
  t.erase(std::remove_if(t.begin(), t.end(), [](unsigned char c) { return std::isspace(c); }),
          t.end());
  if (t.empty()) throw Error("empty size; expected e.g. 2GiB, 512MiB or a byte count");
  char* end = nullptr;
  double value = std::strtod(t.c_str(), &end);
  std::string unit(end);
  if (end == t.c_str() || !(value >= 0) || !std::isfinite(value))
    throw Error("invalid size \"" + std::string(text) + "\"; expected e.g. 2GiB, 512MiB or a byte count");
  std::string u;
  for (char c : unit) u += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  double mult = 1;
  if (u.empty() || u == "b") mult = 1;
  else if (u == "k" || u == "kb") mult = 1e3;
  else if (u == "m" || u == "mb") mult = 1e6;
  else if (u == "g" || u == "gb") mult = 1e9;
  else if (u == "t" || u == "tb") mult = 1e12;
  else if (u == "ki" || u == "kib") mult = 1024.0;
  else if (u == "mi" || u == "mib") mult = 1024.0 * 1024;
  else if (u == "gi" || u == "gib") mult = 1024.0 * 1024 * 1024;
  else if (u == "ti" || u == "tib") mult = 1024.0 * 1024 * 1024 * 1024;
  else
    throw Error("invalid size unit \"" + unit + "\" in \"" + std::string(text) +
                "\"; use B, KB, MB, GB, KiB, MiB or GiB");
  return static_cast<size_t>(value * mult);
}

}  // namespace banyan::core
