// Internal representation of a parsed grammar and the stack machinery that matches it.
//
// A grammar is compiled into one flat element array. Each rule has alternatives; an
// alternative is a run of elements (character sets and rule references) ended by kEnd.
// Repetitions, groups and optionals are desugared into generated rules by the parser, so
// the matcher only knows sequences, alternatives and references.
//
// Matching state is a set of pushdown stacks. A stack is an interned linked list of
// frames (StackArena): a frame is (element position, parent frame id); the top frame of a
// live stack always points at a character set; id 0 is the empty stack (the input so far
// is a complete sentence). Because frames are interned, equal stacks have equal ids, so a
// state set is a small vector of ids, and the stacks that follow a stack once its top
// character set has matched do not depend on which code point matched: they are computed
// once per stack id and cached (successors()).
#pragma once

#include <cstdint>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "text/grammar.h"

namespace muse::text {

inline constexpr char32_t kMaxCodePoint = 0x10FFFF;

// A set of code points: sorted, disjoint, non-adjacent ranges (surrogates never included),
// with a bitmap for ASCII.
struct CharSet {
  std::vector<std::pair<char32_t, char32_t>> ranges;
  uint64_t ascii[2] = {0, 0};

  bool contains(char32_t cp) const {
    if (cp < 128) return (ascii[cp >> 6] >> (cp & 63)) & 1;
    for (const auto& [lo, hi] : ranges) {
      if (cp < lo) return false;
      if (cp <= hi) return true;
    }
    return false;
  }
  // True when some code point in [lo, hi] is in the set.
  bool intersects(char32_t lo, char32_t hi) const {
    for (const auto& r : ranges) {
      if (r.first > hi) return false;
      if (r.second >= lo) return true;
    }
    return false;
  }
  // Builds from arbitrary ranges (negated: the complement over all scalar values).
  static CharSet from_ranges(std::vector<std::pair<char32_t, char32_t>> ranges, bool negated);
};

struct GrammarElement {
  enum Kind : uint8_t { kChars, kRule, kEnd };
  Kind kind;
  uint32_t index;  // kChars: index into charsets; kRule: rule id
};

struct GrammarRule {
  std::string name;
  std::vector<uint32_t> alternatives;  // start positions in GrammarImpl::elements
};

struct GrammarImpl {
  std::vector<GrammarElement> elements;
  std::vector<CharSet> charsets;
  std::vector<GrammarRule> rules;
  uint32_t root = 0;
};

// Limits that keep pathological grammars bounded (exceeding them throws muse::Error).
inline constexpr size_t kMaxStacks = 2048;      // stacks in one state set
inline constexpr size_t kMaxFrames = 1u << 20;  // interned frames per arena

// Interned stacks of one matching session (not thread-safe; one per matcher / match call).
class StackArena {
 public:
  explicit StackArena(const GrammarImpl& grammar);

  // The stacks at the start of the input.
  std::vector<uint32_t> initial();
  // Stacks that follow `stack` once its top character set has consumed a code point.
  // Returns a view into the cache: valid until the next call that creates frames.
  std::pair<const uint32_t*, size_t> successors(uint32_t stack);
  const CharSet& top_chars(uint32_t stack) const {
    return grammar_.charsets[grammar_.elements[frames_[stack].pos].index];
  }
  // Appends successors of every stack in `in` whose top accepts `cp` to `out` (deduplicated,
  // `out` is cleared first). Throws muse::Error when the set grows past kMaxStacks.
  void advance(const std::vector<uint32_t>& in, char32_t cp, std::vector<uint32_t>& out);

 private:
  struct Frame {
    uint32_t pos;
    uint32_t parent;
  };
  uint32_t intern(uint32_t pos, uint32_t parent);
  // Adds every stack reachable from "at `pos`, then continue with `parent`" whose top is a
  // character set (or the empty stack) to `out`.
  void expand(uint32_t pos, uint32_t parent, std::vector<uint32_t>& out,
              std::vector<uint64_t>& visited);

  const GrammarImpl& grammar_;
  std::vector<Frame> frames_;
  std::unordered_map<uint64_t, uint32_t> index_;
  std::vector<uint32_t> succ_offset_;  // UINT32_MAX: not computed yet
  std::vector<uint32_t> succ_len_;
  std::vector<uint32_t> succ_data_;
  std::vector<uint32_t> stamp_;
  uint32_t stamp_now_ = 0;
};

// The vocabulary trie: nodes in depth-first order; children of a node are contiguous.
struct ConstraintVocabImpl {
  struct Node {
    uint32_t first_child = 0;
    uint32_t num_children = 0;
    uint32_t first_token = 0;  // into tokens
    uint32_t num_tokens = 0;
    uint8_t byte = 0;  // the byte leading to this node
  };
  std::vector<Node> nodes;  // nodes[0] is the root (empty prefix)
  std::vector<int32_t> tokens;
  std::vector<std::string> pieces;  // per token id; empty for tokens never allowed as text
  size_t max_depth = 0;
};

}  // namespace muse::text
