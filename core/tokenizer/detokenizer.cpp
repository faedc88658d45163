#include "core/tokenizer/detokenizer.h"

#include <algorithm>

namespace banyan::core {
namespace {

constexpr std::string_view kReplacementUtf8 = "\xEF\xBF\xBD";
constexpr size_t kTrimAt = 64;  // drop window ids once this many lie before the prefix

bool ends_with(std::string_view s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

}  // namespace

IncrementalDetokenizer::IncrementalDetokenizer(Tokenizer tokenizer, DetokenizerOptions options)
    : tok_(std::move(tokenizer)), opt_(std::move(options)) {
  opt_.stop.erase(std::remove(opt_.stop.begin(), opt_.stop.end(), std::string()), opt_.stop.end());
}

void IncrementalDetokenizer::set_context(std::span<const int32_t> prompt_tail) {
  ids_.clear();
  for (int32_t id : prompt_tail)
    if (!(opt_.skip_special_tokens && tok_.is_special(id))) ids_.push_back(id);
  prefix_ = 0;
  read_ = ids_.size();
  prefix_text_ = decode_range(prefix_, read_);
}

std::string IncrementalDetokenizer::decode_range(size_t begin, size_t end) const {
  return tok_.decode(std::span<const int32_t>(ids_).subspan(begin, end - begin), false);
}

std::string IncrementalDetokenizer::delta_from(const std::string& text) const {
  if (text.size() >= prefix_text_.size() && text.compare(0, prefix_text_.size(), prefix_text_) == 0)
    return text.substr(prefix_text_.size());
  // The window decoded differently than before; return what does not repeat.
  size_t common = 0;
  while (common < text.size() && common < prefix_text_.size() && text[common] == prefix_text_[common]) ++common;
  while (common > 0 && common < text.size() && (static_cast<unsigned char>(text[common]) & 0xC0) == 0x80) --common;
  return text.substr(common);
}

std::string IncrementalDetokenizer::push(int32_t id) {
  if (stopped_) return {};
  if (opt_.skip_special_tokens && tok_.is_special(id)) return {};
  ids_.push_back(id);
  // A run of byte-fallback tokens decodes as a whole (one U+FFFD per byte when the run is not
  // valid UTF-8), so it is held until the run ends.
  if (tok_.is_byte_fallback_token(id)) return {};
  const std::string text = decode_range(prefix_, ids_.size());
  if (ends_with(text, kReplacementUtf8)) return {};  // a character is still incomplete
  std::string delta = delta_from(text);
  prefix_ = read_;
  read_ = ids_.size();
  if (prefix_ >= kTrimAt) {
    ids_.erase(ids_.begin(), ids_.begin() + static_cast<long>(prefix_));
    read_ -= prefix_;
    prefix_ = 0;
  }
  prefix_text_ = decode_range(prefix_, read_);
  return after_stop_strings(std::move(delta), false);
}

std::string IncrementalDetokenizer::flush() {
  if (stopped_) return {};
  std::string delta;
  if (read_ < ids_.size()) {
    delta = delta_from(decode_range(prefix_, ids_.size()));
    prefix_ = read_ = ids_.size();
    prefix_text_.clear();
  }
  return after_stop_strings(std::move(delta), true);
}

std::string IncrementalDetokenizer::after_stop_strings(std::string delta, bool final) {
  if (opt_.stop.empty()) return delta;
  held_ += delta;
  size_t best = std::string::npos;
  const std::string* found = nullptr;
  for (const std::string& s : opt_.stop) {
    const size_t at = held_.find(s);
    if (at != std::string::npos && (at < best || (at == best && s.size() > found->size()))) {
      best = at;
      found = &s;
    }
  }
  if (found) {
    std::string out = held_.substr(0, best) + (opt_.include_stop_string ? *found : std::string());
    matched_ = *found;
    stopped_ = true;
    held_.clear();
    return out;
  }
  size_t hold = 0;
  if (!final) {
    for (const std::string& s : opt_.stop)
      for (size_t k = std::min(s.size() - 1, held_.size()); k > hold; --k)
        if (held_.compare(held_.size() - k, k, s, 0, k) == 0) {
          hold = k;
          break;
        }
  }
  std::string out = held_.substr(0, held_.size() - hold);
  held_.erase(0, held_.size() - hold);
  return out;
}

}  // namespace banyan::core
