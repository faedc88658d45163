#include "core/tokenizer/bpe_model.h"

#include <algorithm>
#include <climits>
#include <cstdio>

#include "core/tokenizer/utf8.h"

namespace banyan::core {

// Merge ranks keyed by the pair of token ids, in an open-addressing table.
struct BpeModel::MergeTable {
  struct Slot {
    uint64_t key = 0;
    int32_t rank = -1;  // -1: empty
    int32_t new_id = -1;
  };
  std::vector<Slot> slots;
  uint64_t mask = 0;

  explicit MergeTable(size_t n) {
    size_t cap = 16;
    while (cap < n * 2) cap <<= 1;
    slots.resize(cap);
    mask = cap - 1;
  }
  static uint64_t key(int32_t a, int32_t b) {
    return (static_cast<uint64_t>(static_cast<uint32_t>(a)) << 32) | static_cast<uint32_t>(b);
  }
  static uint64_t hash(uint64_t k) { return (k * 0x9E3779B97F4A7C15ull) >> 20; }
  void put(int32_t a, int32_t b, int32_t rank, int32_t new_id) {
    const uint64_t k = key(a, b);
    for (uint64_t i = hash(k) & mask;; i = (i + 1) & mask) {
      Slot& s = slots[i];
      if (s.rank < 0 || s.key == k) {  // a later duplicate replaces the earlier one
        s = {k, rank, new_id};
        return;
      }
    }
  }
  const Slot* find(int32_t a, int32_t b) const {
    const uint64_t k = key(a, b);
    for (uint64_t i = hash(k) & mask;; i = (i + 1) & mask) {
      const Slot& s = slots[i];
      if (s.rank < 0) return nullptr;
      if (s.key == k) return &s;
    }
  }
};

struct BpeScratch {
  struct Sym {
    int32_t id, prev, next;
    bool alive;
  };
  struct Cand {
    int32_t rank, pos, new_id;
  };
  std::vector<Sym> syms;
  std::vector<int32_t> rank, new_id;
  std::vector<Cand> heap;
  std::string buf;
};

namespace {

constexpr size_t kSmallWord = 48;

BpeScratch& scratch() {
  thread_local BpeScratch s;
  return s;
}

}  // namespace

BpeModel::BpeModel() { std::fill(std::begin(byte_ids_), std::end(byte_ids_), -1); }
BpeModel::~BpeModel() = default;

std::unique_ptr<BpeModel> BpeModel::load(const json::Node& node) {
  std::string type = node.has("type") ? node.str("type") : (node.has("merges") ? "BPE" : "");
  if (type != "BPE") {
    node.fail("unsupported model type \"" + type + "\": only BPE models are implemented (" +
              (type == "WordPiece" || type == "Unigram" || type == "WordLevel"
                   ? type + " tokenizers are refused"
                   : std::string("unknown model")) +
              ")");
  }
  if (node.has("dropout") && node.j.at("dropout").is_number() && node.j.at("dropout").get<double>() > 0.0)
    node.fail("BPE dropout is not supported (it makes encoding random)");
  std::unique_ptr<BpeModel> m(new BpeModel());
  const json::Node vocab = node.child("vocab");
  if (!vocab.j.is_object()) vocab.fail("the vocabulary must be an object of token -> id");
  m->vocab_.reserve(vocab.j.size());
  int32_t max_id = -1;
  for (auto it = vocab.j.begin(); it != vocab.j.end(); ++it) {
    if (!it.value().is_number_integer() || it.value().get<int64_t>() < 0 || it.value().get<int64_t>() > INT32_MAX)
      vocab.fail("token \"" + it.key() + "\" has an invalid id");
    const auto id = static_cast<int32_t>(it.value().get<int64_t>());
    m->vocab_.emplace(it.key(), id);
    max_id = std::max(max_id, id);
  }
  m->id_to_token_.resize(static_cast<size_t>(max_id + 1));
  m->has_id_.assign(static_cast<size_t>(max_id + 1), false);
  for (const auto& [tok, id] : m->vocab_) {
    m->id_to_token_[static_cast<size_t>(id)] = tok;
    m->has_id_[static_cast<size_t>(id)] = true;
  }
  if (node.has("continuing_subword_prefix")) m->continuing_subword_prefix_ = node.str("continuing_subword_prefix");
  if (node.has("end_of_word_suffix")) m->end_of_word_suffix_ = node.str("end_of_word_suffix");
  m->byte_fallback_ = node.boolean_or("byte_fallback", false);
  m->fuse_unk_ = node.boolean_or("fuse_unk", false);
  m->ignore_merges_ = node.boolean_or("ignore_merges", false);
  if (node.has("unk_token")) {
    const std::string unk = node.str("unk_token");
    m->unk_id_ = m->token_to_id(unk);
    if (m->unk_id_ < 0) node.fail("unk_token \"" + unk + "\" is not in the vocabulary");
  }
  for (int b = 0; b < 256; ++b) {
    char name[8];
    std::snprintf(name, sizeof(name), "<0x%02X>", b);
    m->byte_ids_[b] = m->token_to_id(name);
  }
  const bool plain = (!m->continuing_subword_prefix_ || m->continuing_subword_prefix_->empty()) &&
                     (!m->end_of_word_suffix_ || m->end_of_word_suffix_->empty());
  if (plain) {
    m->bmp_ids_.assign(0x10000, -1);
    for (const auto& [tok, id] : m->vocab_) {
      if (tok.empty() || tok.size() > 3 || !utf8::is_valid(tok) || utf8::length(tok) != 1) continue;
      size_t i = 0;
      m->bmp_ids_[utf8::next(tok, i)] = id;
    }
  }

  const json::Node merges = node.array("merges");
  m->merges_ = std::make_unique<MergeTable>(merges.j.size());
  const size_t prefix_len = m->continuing_subword_prefix_ ? m->continuing_subword_prefix_->size() : 0;
  for (size_t r = 0; r < merges.j.size(); ++r) {
    const json::Json& e = merges.j[r];
    std::string a, b;
    if (e.is_string()) {
      const std::string s = e.get<std::string>();
      const size_t sp = s.find(' ');
      if (sp == std::string::npos) merges.at(r).fail("a merge must be \"a b\", found \"" + s + "\"");
      a = s.substr(0, sp);
      b = s.substr(sp + 1);
    } else if (e.is_array() && e.size() == 2 && e[0].is_string() && e[1].is_string()) {
      a = e[0].get<std::string>();
      b = e[1].get<std::string>();
    } else {
      merges.at(r).fail("a merge must be a string \"a b\" or a pair [\"a\", \"b\"]");
    }
    const int32_t ia = m->token_to_id(a), ib = m->token_to_id(b);
    if (ia < 0 || ib < 0) merges.at(r).fail("merge \"" + a + " " + b + "\" uses a token missing from the vocabulary");
    const std::string merged = a + (b.size() >= prefix_len ? b.substr(prefix_len) : std::string());
    const int32_t in = m->token_to_id(merged);
    if (in < 0) merges.at(r).fail("merge \"" + a + " " + b + "\" makes \"" + merged + "\", missing from the vocabulary");
    m->merges_->put(ia, ib, static_cast<int32_t>(r), in);
  }
  return m;
}

int32_t BpeModel::token_to_id(std::string_view token) const {
  const auto it = vocab_.find(token);
  return it == vocab_.end() ? -1 : it->second;
}

const std::string* BpeModel::id_to_token(int32_t id) const {
  if (id < 0 || static_cast<size_t>(id) >= id_to_token_.size() || !has_id_[static_cast<size_t>(id)]) return nullptr;
  return &id_to_token_[static_cast<size_t>(id)];
}

void BpeModel::initial_symbols(std::string_view w, BpeScratch& s) const {
  s.syms.clear();
  auto add = [&](int32_t id) {
    const auto n = static_cast<int32_t>(s.syms.size());
    s.syms.push_back({id, n - 1, n + 1, true});
  };
  int32_t unk_pending = -1;  // a pending unk symbol (fused when fuse_unk)
  size_t i = 0;
  while (i < w.size()) {
    const size_t start = i;
    const char32_t c = utf8::next(w, i);
    const bool first = start == 0, last = i == w.size();
    int32_t id = -1;
    std::string_view piece = w.substr(start, i - start);
    if (!bmp_ids_.empty() && c < 0x10000) {
      id = bmp_ids_[c];
    } else {
      s.buf.clear();
      if (!first && continuing_subword_prefix_) s.buf += *continuing_subword_prefix_;
      s.buf.append(piece);
      if (last && end_of_word_suffix_) s.buf += *end_of_word_suffix_;
      piece = s.buf;
      id = token_to_id(piece);
    }
    if (id >= 0) {
      if (unk_pending >= 0) {
        add(unk_pending);
        unk_pending = -1;
      }
      add(id);
      continue;
    }
    if (byte_fallback_) {
      bool all = true;
      for (char b : piece) all = all && byte_ids_[static_cast<unsigned char>(b)] >= 0;
      if (all) {
        for (char b : piece) add(byte_ids_[static_cast<unsigned char>(b)]);
        continue;
      }
    }
    if (unk_id_ >= 0) {
      if (unk_pending >= 0 && !fuse_unk_) add(unk_pending);
      unk_pending = unk_id_;
    }
  }
  if (unk_pending >= 0) add(unk_pending);
  if (!s.syms.empty()) s.syms.back().next = -1;
}

void BpeModel::merge_small(BpeScratch& s) const {
  const auto n = static_cast<int32_t>(s.syms.size());
  s.rank.assign(static_cast<size_t>(n), INT32_MAX);
  s.new_id.assign(static_cast<size_t>(n), -1);
  auto update = [&](int32_t i) {
    const int32_t nx = s.syms[static_cast<size_t>(i)].next;
    const MergeTable::Slot* m = nx < 0 ? nullptr : merges_->find(s.syms[static_cast<size_t>(i)].id, s.syms[static_cast<size_t>(nx)].id);
    s.rank[static_cast<size_t>(i)] = m ? m->rank : INT32_MAX;
    s.new_id[static_cast<size_t>(i)] = m ? m->new_id : -1;
  };
  for (int32_t i = 0; i < n - 1; ++i) update(i);
  while (true) {
    int32_t best = INT32_MAX, at = -1;
    for (int32_t i = 0; i >= 0; i = s.syms[static_cast<size_t>(i)].next) {
      if (s.rank[static_cast<size_t>(i)] < best) {
        best = s.rank[static_cast<size_t>(i)];
        at = i;
      }
    }
    if (at < 0) break;
    auto& sym = s.syms[static_cast<size_t>(at)];
    auto& right = s.syms[static_cast<size_t>(sym.next)];
    sym.id = s.new_id[static_cast<size_t>(at)];
    right.alive = false;
    sym.next = right.next;
    if (sym.next >= 0) s.syms[static_cast<size_t>(sym.next)].prev = at;
    update(at);
    if (sym.prev >= 0) update(sym.prev);
  }
}

void BpeModel::merge_large(BpeScratch& s) const {
  auto worse = [](const BpeScratch::Cand& x, const BpeScratch::Cand& y) {
    return x.rank != y.rank ? x.rank > y.rank : x.pos > y.pos;
  };
  s.heap.clear();
  auto push = [&](int32_t pos) {
    const auto& sym = s.syms[static_cast<size_t>(pos)];
    if (sym.next < 0) return;
    if (const MergeTable::Slot* m = merges_->find(sym.id, s.syms[static_cast<size_t>(sym.next)].id)) {
      s.heap.push_back({m->rank, pos, m->new_id});
      std::push_heap(s.heap.begin(), s.heap.end(), worse);
    }
  };
  for (int32_t i = 0; i + 1 < static_cast<int32_t>(s.syms.size()); ++i) push(i);
  while (!s.heap.empty()) {
    std::pop_heap(s.heap.begin(), s.heap.end(), worse);
    const BpeScratch::Cand top = s.heap.back();
    s.heap.pop_back();
    auto& sym = s.syms[static_cast<size_t>(top.pos)];
    if (!sym.alive || sym.next < 0) continue;
    auto& right = s.syms[static_cast<size_t>(sym.next)];
    const MergeTable::Slot* m = merges_->find(sym.id, right.id);
    if (!m || m->new_id != top.new_id) continue;  // an expired candidate
    sym.id = top.new_id;
    right.alive = false;
    sym.next = right.next;
    if (sym.next >= 0) s.syms[static_cast<size_t>(sym.next)].prev = top.pos;
    if (sym.prev >= 0) push(sym.prev);
    push(top.pos);
  }
}

void BpeModel::tokenize(std::string_view word, std::vector<int32_t>& out) const {
  if (word.empty()) return;
  if (ignore_merges_) {
    const int32_t id = token_to_id(word);
    if (id >= 0) {
      out.push_back(id);
      return;
    }
  }
  BpeScratch& s = scratch();
  initial_symbols(word, s);
  if (s.syms.size() <= kSmallWord) {
    merge_small(s);
  } else {
    merge_large(s);
  }
  for (const auto& sym : s.syms)
    if (sym.alive) out.push_back(sym.id);
}

}  // namespace banyan::core
