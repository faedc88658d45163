// The stages of a Hugging Face tokenizer pipeline (tokenizer.json): normalizers,
// pre-tokenizers, post-processors and decoders, each an immutable object built once when a
// tokenizer loads. Encoding runs: added-token split -> normalize -> pre-tokenize -> model ->
// post-process. Decoding runs the decoder chain over token strings.
//
// Text is handled as pieces: contiguous parts of the input that are still to be split, or
// that already became an added token. Offsets into the original text are not tracked (the
// engine needs ids only); `at_origin` and `inserted` carry the one fact a stage needs about
// them: whether a piece starts at the beginning of the input (Metaspace "first").
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace banyan::core {

struct Piece {
  std::string text;
  int32_t token = -1;       // an added token's id; -1 while the piece still needs the model
  bool at_origin = false;   // the piece starts where the original input starts
  uint32_t inserted = 0;    // leading bytes inserted by a stage (a prepended space or ▁)
};
using Pieces = std::vector<Piece>;

/// How the matches of a Split-like pre-tokenizer become pieces (Hugging Face's
/// SplitDelimiterBehavior).
enum class SplitBehavior { Removed, Isolated, MergedWithPrevious, MergedWithNext, Contiguous };

/// Splits `piece` around `matches` (sorted, non-overlapping [start, end) byte ranges of its
/// text) and appends the non-empty results to `out`. With `invert`, matches and the text
/// between them swap roles.
void split_piece(Piece&& piece, std::span<const std::pair<size_t, size_t>> matches, SplitBehavior behavior,
                 bool invert, Pieces& out);

/// Applies f (Piece&&, Pieces& out) to every piece that is not an added token, keeping the
/// added-token pieces in place.
template <class F>
void split_pieces(Pieces& pieces, F&& f) {
  Pieces out;
  out.reserve(pieces.size() * 2);
  for (Piece& p : pieces) {
    if (p.token >= 0) {
      out.push_back(std::move(p));
    } else {
      f(std::move(p), out);
    }
  }
  pieces = std::move(out);
}

class Normalizer {
 public:
  virtual ~Normalizer() = default;
  virtual void normalize(Piece& piece) const = 0;
};

class PreTokenizer {
 public:
  virtual ~PreTokenizer() = default;
  /// Splits or rewrites every piece that is not an added token.
  virtual void pre_tokenize(Pieces& pieces) const = 0;
};

class PostProcessor {
 public:
  virtual ~PostProcessor() = default;
  /// Adds the special tokens around one encoded sequence when add_special_tokens is set.
  virtual void process(std::vector<int32_t>& ids, bool add_special_tokens) const = 0;
};

class Decoder {
 public:
  virtual ~Decoder() = default;
  /// Rewrites the token strings; the decoded text is their concatenation.
  virtual void decode_chain(std::vector<std::string>& tokens) const = 0;
};

}  // namespace banyan::core
