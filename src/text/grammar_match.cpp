// Incremental grammar matching: interned stacks, the vocabulary trie and the token mask.
#include <algorithm>
#include <cmath>
#include <limits>

#include "muse/error.h"
#include "text/grammar_impl.h"
#include "text/utf8.h"

namespace muse::text {

// ---------------------------------------------------------------------------------------
// StackArena

StackArena::StackArena(const GrammarImpl& grammar) : grammar_(grammar) {
  frames_.push_back({UINT32_MAX, 0});  // id 0: the empty stack
  succ_offset_.push_back(UINT32_MAX);
  succ_len_.push_back(0);
  stamp_.push_back(0);
}

uint32_t StackArena::intern(uint32_t pos, uint32_t parent) {
  const uint64_t key = (uint64_t{pos} << 32) | parent;
  auto [it, inserted] = index_.emplace(key, static_cast<uint32_t>(frames_.size()));
  if (inserted) {
    if (frames_.size() >= kMaxFrames) {
      index_.erase(it);
      throw Error("grammar: too many parser states (the grammar is too ambiguous or too deep)");
    }
    frames_.push_back({pos, parent});
    succ_offset_.push_back(UINT32_MAX);
    succ_len_.push_back(0);
    stamp_.push_back(0);
  }
  return it->second;
}

void StackArena::expand(uint32_t start_pos, uint32_t start_parent, std::vector<uint32_t>& out,
                        std::vector<uint64_t>& visited) {
  // Iterative: chains of nullable rules can be long.
  std::vector<std::pair<uint32_t, uint32_t>> work{{start_pos, start_parent}};
  auto seen = [&](uint32_t pos, uint32_t parent) {
    const uint64_t key = (uint64_t{pos} << 32) | parent;
    if (std::find(visited.begin(), visited.end(), key) != visited.end()) return true;
    visited.push_back(key);
    return false;
  };
  auto add = [&](uint32_t id) {
    if (std::find(out.begin(), out.end(), id) == out.end()) out.push_back(id);
  };
  while (!work.empty()) {
    auto [pos, parent] = work.back();
    work.pop_back();
    while (true) {
      if (seen(pos, parent)) break;
      const GrammarElement e = grammar_.elements[pos];
      if (e.kind == GrammarElement::kChars) {
        add(intern(pos, parent));
        break;
      }
      if (e.kind == GrammarElement::kEnd) {
        if (parent == 0) {
          add(0);
          break;
        }
        const Frame f = frames_[parent];
        pos = f.pos;
        parent = f.parent;
        continue;
      }
      // A rule reference: return to pos + 1 afterwards (unless that just ends the
      // alternative: then return straight to the parent, which keeps right recursion flat).
      const uint32_t cont = grammar_.elements[pos + 1].kind == GrammarElement::kEnd
                                ? parent
                                : intern(pos + 1, parent);
      const auto& alts = grammar_.rules[e.index].alternatives;
      for (auto it = alts.rbegin(); it != alts.rend(); ++it) work.emplace_back(*it, cont);
      break;
    }
    if (out.size() > kMaxStacks) {
      throw Error("grammar: too many parser states (the grammar is too ambiguous)");
    }
  }
}

std::vector<uint32_t> StackArena::initial() {
  std::vector<uint32_t> out;
  std::vector<uint64_t> visited;
  for (uint32_t alt : grammar_.rules[grammar_.root].alternatives) expand(alt, 0, out, visited);
  return out;
}

std::pair<const uint32_t*, size_t> StackArena::successors(uint32_t stack) {
  if (succ_offset_[stack] == UINT32_MAX) {
    std::vector<uint32_t> out;
    std::vector<uint64_t> visited;
    const Frame f = frames_[stack];
    expand(f.pos + 1, f.parent, out, visited);
    succ_offset_[stack] = static_cast<uint32_t>(succ_data_.size());
    succ_len_[stack] = static_cast<uint32_t>(out.size());
    succ_data_.insert(succ_data_.end(), out.begin(), out.end());
  }
  return {succ_data_.data() + succ_offset_[stack], succ_len_[stack]};
}

void StackArena::advance(const std::vector<uint32_t>& in, char32_t cp, std::vector<uint32_t>& out) {
  out.clear();
  if (++stamp_now_ == 0) {
    std::fill(stamp_.begin(), stamp_.end(), 0);
    stamp_now_ = 1;
  }
  for (uint32_t s : in) {
    if (s == 0 || !top_chars(s).contains(cp)) continue;
    auto [data, n] = successors(s);
    for (size_t i = 0; i < n; ++i) {
      const uint32_t id = data[i];
      if (stamp_[id] != stamp_now_) {
        stamp_[id] = stamp_now_;
        out.push_back(id);
      }
    }
  }
  if (out.size() > kMaxStacks) {
    throw Error("grammar: too many parser states (the grammar is too ambiguous)");
  }
}

namespace {

// The bytes of a UTF-8 character that has started but not finished.
struct Utf8Pending {
  uint32_t value = 0;
  uint8_t remaining = 0;
  uint8_t length = 0;
};

enum class ByteStep { kInvalid, kPartial, kComplete };

// Feeds one byte. kComplete sets `cp`; kPartial sets [lo, hi] to the code points the
// character can still become (never empty, never only surrogates).
ByteStep step_utf8(Utf8Pending& p, uint8_t b, char32_t& cp, char32_t& lo, char32_t& hi) {
  if (p.remaining == 0) {
    if (b < 0x80) {
      cp = b;
      return ByteStep::kComplete;
    }
    if (b >= 0xC2 && b <= 0xDF) {
      p = {uint32_t{b} & 0x1Fu, 1, 2};
    } else if (b >= 0xE0 && b <= 0xEF) {
      p = {uint32_t{b} & 0x0Fu, 2, 3};
    } else if (b >= 0xF0 && b <= 0xF4) {
      p = {uint32_t{b} & 0x07u, 3, 4};
    } else {
      return ByteStep::kInvalid;
    }
  } else {
    if ((b & 0xC0) != 0x80) return ByteStep::kInvalid;
    p.value = (p.value << 6) | (b & 0x3Fu);
    --p.remaining;
  }
  static constexpr char32_t kMin[5] = {0, 0, 0x80, 0x800, 0x10000};
  static constexpr char32_t kMax[5] = {0, 0x7F, 0x7FF, 0xFFFF, 0x10FFFF};
  const unsigned shift = 6u * p.remaining;
  lo = std::max<char32_t>(p.value << shift, kMin[p.length]);
  hi = std::min<char32_t>((p.value << shift) | ((char32_t{1} << shift) - 1), kMax[p.length]);
  if (lo > hi || (lo >= 0xD800 && hi <= 0xDFFF)) return ByteStep::kInvalid;
  if (p.remaining == 0) {
    cp = p.value;
    p = {};
    return ByteStep::kComplete;
  }
  return ByteStep::kPartial;
}

bool any_top_intersects(const StackArena& arena, const std::vector<uint32_t>& stacks, char32_t lo,
                        char32_t hi) {
  for (uint32_t s : stacks) {
    if (s != 0 && arena.top_chars(s).intersects(lo, hi)) return true;
  }
  return false;
}

}  // namespace

bool Grammar::matches(std::string_view text) const {
  StackArena arena(*impl_);
  std::vector<uint32_t> stacks = arena.initial();
  std::vector<uint32_t> next;
  for (size_t i = 0; i < text.size();) {
    size_t len = 0;
    const char32_t cp = decode_utf8(text, i, &len);
    if (cp == 0xFFFD && text.substr(i, 3) != "\xEF\xBF\xBD") return false;
    i += len;
    arena.advance(stacks, cp, next);
    if (next.empty()) return false;
    stacks.swap(next);
  }
  return std::find(stacks.begin(), stacks.end(), 0u) != stacks.end();
}

// ---------------------------------------------------------------------------------------
// ConstraintVocab

namespace {

void build_trie(ConstraintVocabImpl& v,
                const std::vector<std::pair<std::string_view, int32_t>>& sorted, uint32_t node,
                size_t begin, size_t end, size_t depth) {
  v.max_depth = std::max(v.max_depth, depth);
  v.nodes[node].first_token = static_cast<uint32_t>(v.tokens.size());
  while (begin < end && sorted[begin].first.size() == depth) {
    v.tokens.push_back(sorted[begin].second);
    ++begin;
  }
  v.nodes[node].num_tokens = static_cast<uint32_t>(v.tokens.size()) - v.nodes[node].first_token;
  // Children: one per distinct byte at `depth` (the range is sorted, so groups are runs).
  std::vector<std::pair<size_t, size_t>> groups;
  for (size_t i = begin; i < end;) {
    size_t j = i;
    while (j < end && sorted[j].first[depth] == sorted[i].first[depth]) ++j;
    groups.emplace_back(i, j);
    i = j;
  }
  const auto first_child = static_cast<uint32_t>(v.nodes.size());
  v.nodes[node].first_child = first_child;
  v.nodes[node].num_children = static_cast<uint32_t>(groups.size());
  v.nodes.resize(v.nodes.size() + groups.size());
  for (size_t k = 0; k < groups.size(); ++k) {
    const uint32_t child = first_child + static_cast<uint32_t>(k);
    v.nodes[child].byte = static_cast<uint8_t>(sorted[groups[k].first].first[depth]);
    build_trie(v, sorted, child, groups[k].first, groups[k].second, depth + 1);
  }
}

}  // namespace

ConstraintVocab::ConstraintVocab(const Tokenizer& tokenizer)
    : impl_(std::make_unique<ConstraintVocabImpl>()) {
  const size_t n = tokenizer.vocab_size();
  impl_->pieces.resize(n);
  std::vector<std::pair<std::string_view, int32_t>> sorted;
  for (size_t i = 0; i < n; ++i) {
    const auto id = static_cast<TokenId>(i);
    // Control tokens and end-of-generation tokens are never text the grammar can match.
    if (tokenizer.is_special(id) || tokenizer.is_eog(id)) continue;
    impl_->pieces[i] = tokenizer.token_to_piece(id);
  }
  for (size_t i = 0; i < n; ++i) {
    if (!impl_->pieces[i].empty()) sorted.emplace_back(impl_->pieces[i], static_cast<int32_t>(i));
  }
  std::sort(sorted.begin(), sorted.end());
  impl_->nodes.resize(1);
  build_trie(*impl_, sorted, 0, 0, sorted.size(), 0);
}

ConstraintVocab::~ConstraintVocab() = default;
size_t ConstraintVocab::size() const {
  return impl_->pieces.size();
}

// ---------------------------------------------------------------------------------------
// GrammarMatcher

struct GrammarMatcher::State {
  explicit State(const GrammarImpl& g) : arena(g) {}
  StackArena arena;
  std::vector<uint32_t> stacks;
  Utf8Pending pending;
  bool finished = false;  // an end-of-generation token was accepted
  // Scratch for mask(): one stack set per trie depth, and the allowed flags.
  std::vector<std::vector<uint32_t>> levels;
  std::vector<uint8_t> allowed;
};

namespace {

// Depth-first walk of the vocabulary trie. `stacks` is the state after the node's bytes;
// a child whose byte leaves the grammar is pruned with its whole subtree.
void walk_trie(const ConstraintVocabImpl& vocab, StackArena& arena,
               std::vector<std::vector<uint32_t>>& levels, std::vector<uint8_t>& allowed,
               uint32_t node, size_t depth, const std::vector<uint32_t>& stacks,
               Utf8Pending pending) {
  const auto& n = vocab.nodes[node];
  for (uint32_t c = n.first_child; c < n.first_child + n.num_children; ++c) {
    const auto& child = vocab.nodes[c];
    Utf8Pending p = pending;
    char32_t cp = 0, lo = 0, hi = 0;
    const ByteStep step = step_utf8(p, child.byte, cp, lo, hi);
    if (step == ByteStep::kInvalid) continue;
    const std::vector<uint32_t>* next = &stacks;
    if (step == ByteStep::kPartial) {
      if (!any_top_intersects(arena, stacks, lo, hi)) continue;
    } else {
      auto& buf = levels[depth + 1];
      try {
        arena.advance(stacks, cp, buf);
      } catch (const Error&) {
        continue;  // too ambiguous: treat as not allowed (accept() reports the error)
      }
      if (buf.empty()) continue;
      next = &buf;
    }
    for (uint32_t t = child.first_token; t < child.first_token + child.num_tokens; ++t) {
      allowed[static_cast<size_t>(vocab.tokens[t])] = 1;
    }
    if (child.num_children > 0) {
      walk_trie(vocab, arena, levels, allowed, c, depth + 1, *next, p);
    }
  }
}

}  // namespace

GrammarMatcher::GrammarMatcher(std::shared_ptr<const Grammar> grammar,
                               std::shared_ptr<const ConstraintVocab> vocab,
                               std::vector<TokenId> eog_ids)
    : grammar_(std::move(grammar)), vocab_(std::move(vocab)), eog_ids_(std::move(eog_ids)) {
  MUSE_CHECK(grammar_ && vocab_, "GrammarMatcher: grammar and vocabulary are required");
  std::sort(eog_ids_.begin(), eog_ids_.end());
  state_ = std::make_unique<State>(grammar_->impl());
  state_->stacks = state_->arena.initial();
  state_->levels.resize(vocab_->impl().max_depth + 2);
  state_->allowed.resize(vocab_->size());
}

GrammarMatcher::~GrammarMatcher() = default;

bool GrammarMatcher::complete() const {
  if (state_->finished) return true;
  return state_->pending.remaining == 0 &&
         std::find(state_->stacks.begin(), state_->stacks.end(), 0u) != state_->stacks.end();
}

void GrammarMatcher::mask(std::span<float> logits) const {
  State& s = *state_;
  const auto& vocab = vocab_->impl();
  std::fill(s.allowed.begin(), s.allowed.end(), 0);
  if (!s.finished) {
    s.levels[0] = s.stacks;
    walk_trie(vocab, s.arena, s.levels, s.allowed, 0, 0, s.levels[0], s.pending);
  }
  if (complete()) {
    for (TokenId id : eog_ids_) {
      if (id >= 0 && static_cast<size_t>(id) < s.allowed.size())
        s.allowed[static_cast<size_t>(id)] = 1;
    }
  }
  const float neg_inf = -std::numeric_limits<float>::infinity();
  for (size_t i = 0; i < logits.size(); ++i) {
    if (i >= s.allowed.size() || !s.allowed[i]) logits[i] = neg_inf;
  }
}

void GrammarMatcher::accept(int32_t token) {
  State& s = *state_;
  MUSE_CHECK(token >= 0 && static_cast<size_t>(token) < vocab_->size(), "grammar: token id ", token,
             " is outside the vocabulary");
  if (std::binary_search(eog_ids_.begin(), eog_ids_.end(), token)) {
    MUSE_CHECK(complete(), "grammar: end of generation (token ", token,
               ") before the output is complete");
    s.finished = true;
    return;
  }
  MUSE_CHECK(!s.finished, "grammar: token ", token, " after end of generation");
  const std::string& piece = vocab_->impl().pieces[static_cast<size_t>(token)];
  MUSE_CHECK(!piece.empty(), "grammar: token ", token, " has no text and is not allowed");
  std::vector<uint32_t> stacks = s.stacks;
  std::vector<uint32_t> next;
  Utf8Pending pending = s.pending;
  for (char ch : piece) {
    char32_t cp = 0, lo = 0, hi = 0;
    const ByteStep step = step_utf8(pending, static_cast<uint8_t>(ch), cp, lo, hi);
    bool ok = step != ByteStep::kInvalid;
    if (step == ByteStep::kPartial) ok = any_top_intersects(s.arena, stacks, lo, hi);
    if (step == ByteStep::kComplete) {
      s.arena.advance(stacks, cp, next);
      ok = !next.empty();
      stacks.swap(next);
    }
    MUSE_CHECK(ok, "grammar: token ", token, " is not allowed here by the grammar");
  }
  s.stacks = std::move(stacks);
  s.pending = pending;
}

}  // namespace muse::text
