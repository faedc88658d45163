// split_piece: the SplitDelimiterBehavior rules of Hugging Face tokenizers.
#include <algorithm>

#include "core/tokenizer/pipeline.h"

namespace banyan::core {
namespace {

struct Segment {
  size_t start, end;
  bool flag;  // a match before the behaviour is applied; "remove" after
};

}  // namespace

void split_piece(Piece&& piece, std::span<const std::pair<size_t, size_t>> matches, SplitBehavior behavior,
                 bool invert, Pieces& out) {
  if (matches.empty() && !invert) {
    if (!piece.text.empty()) out.push_back(std::move(piece));
    return;
  }
  const std::string& text = piece.text;
  std::vector<Segment> segs;
  segs.reserve(matches.size() * 2 + 1);
  size_t prev = 0;
  for (const auto& [s, e] : matches) {
    if (prev != s) segs.push_back({prev, s, false});
    segs.push_back({s, e, true});
    prev = e;
  }
  if (prev != text.size() || segs.empty()) segs.push_back({prev, text.size(), false});
  if (invert)
    for (Segment& s : segs) s.flag = !s.flag;

  std::vector<Segment> res;
  res.reserve(segs.size());
  switch (behavior) {
    case SplitBehavior::Removed:
      res = segs;
      break;
    case SplitBehavior::Isolated:
      for (const Segment& s : segs) res.push_back({s.start, s.end, false});
      break;
    case SplitBehavior::MergedWithPrevious: {
      bool previous_match = false;
      for (const Segment& s : segs) {
        if (s.flag && !previous_match && !res.empty()) {
          res.back().end = s.end;
        } else {
          res.push_back({s.start, s.end, false});
        }
        previous_match = s.flag;
      }
      break;
    }
    case SplitBehavior::MergedWithNext: {
      bool previous_match = false;
      for (auto it = segs.rbegin(); it != segs.rend(); ++it) {
        if (it->flag && !previous_match && !res.empty()) {
          res.back().start = it->start;
        } else {
          res.push_back({it->start, it->end, false});
        }
        previous_match = it->flag;
      }
      std::reverse(res.begin(), res.end());
      break;
    }
    case SplitBehavior::Contiguous: {
      bool previous_match = false;
      for (const Segment& s : segs) {
        if (s.flag == previous_match && !res.empty()) {
          res.back().end = s.end;
        } else {
          res.push_back({s.start, s.end, false});
        }
        previous_match = s.flag;
      }
      break;
    }
  }

  for (const Segment& s : res) {
    if (s.flag || s.start == s.end) continue;
    Piece p;
    p.text.assign(text, s.start, s.end - s.start);
    p.at_origin = piece.at_origin && s.start <= piece.inserted;
    p.inserted = s.start < piece.inserted
                     ? static_cast<uint32_t>(std::min<size_t>(piece.inserted - s.start, s.end - s.start))
                     : 0;
    out.push_back(std::move(p));
  }
}

}  // namespace banyan::core
