// Incremental detokenizer for streaming: the engine pushes one generated token id at a time
// (one detokenizer per sequence) and gets back the new text, such that the concatenation of
// everything returned (push results, then flush) equals Tokenizer::decode of all the ids.
//
//  * Only complete UTF-8 is returned: a character spread over several tokens (byte-level
//    BPE, byte fallback <0xXX> tokens) is held back until its last byte arrives.
//  * Decoders that depend on position (Metaspace, Strip) are handled by decoding a small
//    window that starts at already-emitted tokens and returning the difference.
//  * Stop strings may span tokens: text that could be the start of a stop string is held
//    back; when one appears, the text before it is returned (and the stop string itself if
//    include_stop_string) and the detokenizer stops.
//  * skip_special_tokens drops special added tokens, as decode(..., true) does.
//
// Thread-safety: one instance per sequence; not thread-safe. Holds a cheap copy of the
// Tokenizer.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "core/tokenizer/tokenizer.h"

namespace banyan::core {

struct DetokenizerOptions {
  bool skip_special_tokens = true;
  std::vector<std::string> stop;     // stop strings (empty strings are ignored)
  bool include_stop_string = false;  // return the matched stop string as the final text
};

class IncrementalDetokenizer {
 public:
  explicit IncrementalDetokenizer(Tokenizer tokenizer, DetokenizerOptions options = {});

  /// Optional: the last prompt tokens, so that the first generated token is decoded in
  /// context (a Metaspace "▁Hello" then yields " Hello" rather than "Hello"). Call before
  /// the first push. Without it the output equals decode(generated ids).
  void set_context(std::span<const int32_t> prompt_tail);

  /// Adds one token and returns the text that became final (possibly empty).
  std::string push(int32_t id);

  /// Returns the text still held back (incomplete characters, a possible stop-string prefix);
  /// call once when generation ends.
  std::string flush();

  /// A stop string was found; push() returns "" from then on.
  bool stopped() const { return stopped_; }
  /// The stop string that was found (empty if none).
  const std::string& matched_stop() const { return matched_; }

 private:
  std::string decode_range(size_t begin, size_t end) const;
  std::string delta_from(const std::string& text) const;
  std::string after_stop_strings(std::string delta, bool final);

  Tokenizer tok_;
  DetokenizerOptions opt_;
  std::vector<int32_t> ids_;  // the window: ids_[prefix_..read_) emitted, ids_[read_..] pending
  size_t prefix_ = 0, read_ = 0;
  std::string prefix_text_;   // decode of ids_[prefix_..read_)
  std::string held_;          // decoded text held back for stop strings
  std::string matched_;
  bool stopped_ = false;
};

}  // namespace banyan::core
