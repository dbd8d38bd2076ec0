// SentencePiece-style merging (Llama / Phi-3 GGUF vocabularies, `tokenizer.ggml.model =
// "llama"`).
//
// The fragment (spaces already escaped to U+2581) starts as one symbol per UTF-8
// character. Every adjacent pair whose concatenation is a normal token is a candidate,
// scored by that token's score; the highest score merges first (ties: the leftmost pair),
// then the new symbol's two neighbouring pairs are queued. Symbols left that are not
// tokens are emitted as their UTF-8 bytes, `<0xNN>` each (byte fallback).
//
// Only normal tokens take part: control tokens (`<s>`) and byte tokens (`<0x41>`) are never
// formed from plain text, so text cannot smuggle them in.
#include <algorithm>

#include "text/tokenizer_impl.h"

namespace muse::text {
namespace {

struct SpmSymbol {
  uint32_t begin, len;  // len 0 once merged into the left neighbour
  int32_t prev, next;
};

struct SpmCandidate {
  float score;
  int32_t left, right;
  uint32_t size;  // bytes of the merged text, to recognise stale entries
};

// Heap order: the top is the highest score, then the leftmost pair.
bool candidate_after(const SpmCandidate& a, const SpmCandidate& b) {
  return a.score < b.score || (a.score == b.score && a.left > b.left);
}

size_t utf8_char_len(uint8_t lead) {
  if (lead < 0x80) return 1;
  if (lead >= 0xF0) return 4;
  if (lead >= 0xE0) return 3;
  if (lead >= 0xC0) return 2;
  return 1;
}

}  // namespace

void spm_encode_fragment(const TokenizerState& st, std::string_view text,
                         std::vector<TokenId>& out) {
  if (text.empty()) return;
  std::vector<SpmSymbol> sym;
  sym.reserve(text.size());
  for (size_t i = 0; i < text.size();) {
    const size_t len = std::min(utf8_char_len(static_cast<uint8_t>(text[i])), text.size() - i);
    const auto idx = static_cast<int32_t>(sym.size());
    sym.push_back({static_cast<uint32_t>(i), static_cast<uint32_t>(len), idx - 1, idx + 1});
    i += len;
  }
  sym.back().next = -1;

  std::vector<SpmCandidate> heap;
  auto try_add = [&](int32_t left, int32_t right) {
    if (left < 0 || right < 0) return;
    const SpmSymbol& l = sym[static_cast<size_t>(left)];
    const SpmSymbol& r = sym[static_cast<size_t>(right)];
    const uint32_t size = l.len + r.len;
    const auto it = st.normal_ids.find(text.substr(l.begin, size));
    if (it == st.normal_ids.end()) return;
    heap.push_back({st.tokens[static_cast<size_t>(it->second)].score, left, right, size});
    std::push_heap(heap.begin(), heap.end(), candidate_after);
  };
  for (size_t i = 1; i < sym.size(); ++i)
    try_add(static_cast<int32_t>(i - 1), static_cast<int32_t>(i));

  while (!heap.empty()) {
    std::pop_heap(heap.begin(), heap.end(), candidate_after);
    const SpmCandidate c = heap.back();
    heap.pop_back();
    SpmSymbol& left = sym[static_cast<size_t>(c.left)];
    SpmSymbol& right = sym[static_cast<size_t>(c.right)];
    if (left.len == 0 || right.len == 0 || left.len + right.len != c.size) continue;
    left.len += right.len;
    right.len = 0;
    left.next = right.next;
    if (right.next >= 0) sym[static_cast<size_t>(right.next)].prev = c.left;
    try_add(left.prev, c.left);
    try_add(c.left, left.next);
  }

  for (int32_t i = 0; i >= 0; i = sym[static_cast<size_t>(i)].next) {
    const SpmSymbol& s = sym[static_cast<size_t>(i)];
    const std::string_view piece = text.substr(s.begin, s.len);
    if (const auto it = st.normal_ids.find(piece); it != st.normal_ids.end()) {
      out.push_back(it->second);
      continue;
    }
    for (char c : piece) {
      const TokenId b = st.byte_token[static_cast<uint8_t>(c)];
      if (b != kNoToken)
        out.push_back(b);
      else if (st.unk != kNoToken)
        out.push_back(st.unk);
    }
  }
}

}  // namespace muse::text
