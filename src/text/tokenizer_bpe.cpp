// BPE merging over one pre-token.
//
// The pre-token becomes a doubly linked list of symbols (one per byte for byte-level
// vocabularies, one per UTF-8 character otherwise), each carrying its token id. Adjacent
// pairs that have a merge rule go into a min-heap ordered by (rank, left position): the
// lowest rank merges first and, between equal ranks, the leftmost pair, exactly as the
// reference. After a merge only the two pairs next to the new symbol are added, and stale
// heap entries are recognised by the ids they were made from, so a piece of n symbols
// costs O(n log n) (no rescans).
#include <algorithm>

#include "text/tokenizer_impl.h"
#include "text/utf8.h"

namespace muse::text {

struct BpeSymbol {
  uint32_t begin;  // byte offset in the piece
  uint32_t len;    // 0 once merged into its left neighbour
  TokenId id;      // kNoToken for a character the vocabulary lacks
  int32_t prev, next;
};

struct BpeCandidate {
  int32_t rank;
  int32_t left, right;
  TokenId left_id, right_id, result;
};

struct BpeScratch {
  std::vector<BpeSymbol> symbols;
  std::vector<BpeCandidate> heap;
  std::string key;  // byte-level spelling of the piece (ignore_merges lookups)
};

void BpeScratchDeleter::operator()(BpeScratch* s) const {
  delete s;
}

std::unique_ptr<BpeScratch, BpeScratchDeleter> make_bpe_scratch() {
  return std::unique_ptr<BpeScratch, BpeScratchDeleter>(new BpeScratch());
}

namespace {

// Heap order: the top is the lowest rank, then the leftmost pair.
bool candidate_after(const BpeCandidate& a, const BpeCandidate& b) {
  return a.rank > b.rank || (a.rank == b.rank && a.left > b.left);
}

void try_add_pair(const TokenizerState& st, BpeScratch& s, int32_t left, int32_t right) {
  if (left < 0 || right < 0) return;
  const TokenId l = s.symbols[static_cast<size_t>(left)].id;
  const TokenId r = s.symbols[static_cast<size_t>(right)].id;
  if (l < 0 || r < 0) return;
  const auto it = st.merges.find(merge_key(l, r));
  if (it == st.merges.end()) return;
  s.heap.push_back({it->second.rank, left, right, l, r, it->second.result});
  std::push_heap(s.heap.begin(), s.heap.end(), candidate_after);
}

// Ids for the bytes of a symbol that has no token.
void emit_unknown(const TokenizerState& st, std::string_view bytes, std::vector<TokenId>& out) {
  if (st.byte_fallback) {
    bool all = true;
    for (char c : bytes) all = all && st.byte_token[static_cast<uint8_t>(c)] != kNoToken;
    if (all) {
      for (char c : bytes) out.push_back(st.byte_token[static_cast<uint8_t>(c)]);
      return;
    }
  }
  // GGUF byte-level vocabularies drop such bytes (as the reference does); a Hugging Face
  // model with an unk_token emits it.
  if (st.bpe_unk != kNoToken) out.push_back(st.bpe_unk);
}

}  // namespace

void bpe_encode_piece(const TokenizerState& st, std::string_view piece, BpeScratch& s,
                      std::vector<TokenId>& out) {
  if (piece.empty()) return;
  if (st.ignore_merges) {
    std::string_view key = piece;
    if (st.byte_level) {
      s.key.clear();
      for (char c : piece) append_utf8(s.key, byte_to_codepoint(static_cast<uint8_t>(c)));
      key = s.key;
    }
    if (auto it = st.normal_ids.find(key); it != st.normal_ids.end()) {
      out.push_back(it->second);
      return;
    }
  }

  auto& sym = s.symbols;
  sym.clear();
  s.heap.clear();
  if (st.byte_level) {
    for (size_t i = 0; i < piece.size(); ++i) {
      const auto idx = static_cast<int32_t>(i);
      sym.push_back({static_cast<uint32_t>(i), 1,
                     st.byte_char_token[static_cast<uint8_t>(piece[i])], idx - 1, idx + 1});
    }
  } else {
    for (size_t i = 0; i < piece.size();) {
      size_t len = 1;
      (void)decode_utf8(piece, i, &len);
      const auto it = st.normal_ids.find(piece.substr(i, len));
      const auto idx = static_cast<int32_t>(sym.size());
      sym.push_back({static_cast<uint32_t>(i), static_cast<uint32_t>(len),
                     it == st.normal_ids.end() ? kNoToken : it->second, idx - 1, idx + 1});
      i += len;
    }
  }
  sym.back().next = -1;

  for (size_t i = 1; i < sym.size(); ++i)
    try_add_pair(st, s, static_cast<int32_t>(i - 1), static_cast<int32_t>(i));

  while (!s.heap.empty()) {
    std::pop_heap(s.heap.begin(), s.heap.end(), candidate_after);
    const BpeCandidate c = s.heap.back();
    s.heap.pop_back();
    BpeSymbol& left = sym[static_cast<size_t>(c.left)];
    BpeSymbol& right = sym[static_cast<size_t>(c.right)];
    // Stale: one side was merged away or has grown since the pair was queued.
    if (left.len == 0 || right.len == 0 || left.id != c.left_id || right.id != c.right_id) continue;
    left.len += right.len;
    left.id = c.result;
    right.len = 0;
    left.next = right.next;
    if (right.next >= 0) sym[static_cast<size_t>(right.next)].prev = c.left;
    try_add_pair(st, s, left.prev, c.left);
    try_add_pair(st, s, c.left, left.next);
  }

  for (int32_t i = 0; i >= 0; i = sym[static_cast<size_t>(i)].next) {
    const BpeSymbol& x = sym[static_cast<size_t>(i)];
    if (x.id >= 0)
      out.push_back(x.id);
    else
      emit_unknown(st, piece.substr(x.begin, x.len), out);
  }
}

}  // namespace muse::text
