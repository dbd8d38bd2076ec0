// Internals of the tokenizers (not part of the public contract in tokenizer.h): the
// loaded vocabulary, the pre-tokenizer pipeline (PCRE2 regexes), and the two merge
// algorithms. Loaders fill a TokenizerState and call finalize_tokenizer_state().
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "text/tokenizer.h"

namespace muse::text {

// Hash map keyed by std::string that can be probed with a string_view.
struct StringViewHash {
  using is_transparent = void;
  size_t operator()(std::string_view s) const noexcept { return std::hash<std::string_view>{}(s); }
};
using TokenMap = std::unordered_map<std::string, TokenId, StringViewHash, std::equal_to<>>;

struct TokenInfo {
  std::string text;   // the vocabulary string
  std::string piece;  // the bytes it decodes to (filled by finalize_tokenizer_state)
  float score = 0.0f;
  TokenType type = TokenType::kNormal;
  bool lstrip = false;  // when matched as a special token: absorb whitespace on its left
  bool rstrip = false;  // ... and on its right
};

// A compiled PCRE2 regex (UTF + UCP), shareable between threads.
class Regex {
 public:
  // Throws muse::Error naming the pattern and PCRE2's message for an invalid pattern.
  explicit Regex(const std::string& pattern);
  ~Regex();
  Regex(const Regex&) = delete;
  Regex& operator=(const Regex&) = delete;

  // Appends [begin, end) of each non-empty, non-overlapping match in `subject` (valid
  // UTF-8; the subject is the whole string the pattern sees: `$` and lookaheads stop at
  // its end). Throws muse::Error if PCRE2 gives up (match limit).
  void find_all(std::string_view subject, std::vector<std::pair<size_t, size_t>>& out) const;
  const std::string& pattern() const { return pattern_; }

 private:
  std::string pattern_;
  void* code_ = nullptr;  // pcre2_code_8
};

// How a split step treats the regex matches (Hugging Face SplitDelimiterBehavior).
enum class SplitBehavior { kIsolated, kRemoved, kMergedWithPrevious, kMergedWithNext, kContiguous };

struct SplitStep {
  std::shared_ptr<const Regex> regex;
  SplitBehavior behavior = SplitBehavior::kIsolated;
  bool invert = false;  // the matches are the pieces and the gaps the delimiters
};

// Text rewriting applied to each text fragment before splitting (Hugging Face normalizers
// and the Metaspace pre-tokenizer; GGUF vocabularies use none).
struct TextRewrite {
  enum class Kind { kReplace, kPrepend } kind = Kind::kReplace;
  std::string from;                  // kReplace: literal to replace (non-empty)
  std::string to;                    // replacement / prefix
  bool first_fragment_only = false;  // kPrepend: only for the first fragment of the text
};

struct PreTokenizer {
  std::string name;
  std::vector<TextRewrite> rewrites;
  std::vector<SplitStep> steps;   // applied in order, each to every piece of the previous
  bool add_prefix_space = false;  // HF ByteLevel: prepend ' ' unless the fragment starts with one
};

// Splits one text fragment into pre-tokens (views into `text`).
void pre_tokenize(const PreTokenizer& pre, std::string_view text,
                  std::vector<std::string_view>& pieces);
// The regex list of a GGUF `tokenizer.ggml.pre` name; throws for an unknown name.
struct NamedPreTokenizer {
  std::vector<std::string> regexes;
  bool ignore_merges = false;
  bool add_bos = false;  // default of add_bos when the metadata does not say
};
NamedPreTokenizer named_pre_tokenizer(const std::string& name);
// GPT-2's split pattern (used by Hugging Face's ByteLevel pre-tokenizer with use_regex).
extern const char* const kGpt2Pattern;

// GPT-2's byte <-> printable code point mapping used by byte-level BPE.
char32_t byte_to_codepoint(uint8_t b);
int codepoint_to_byte(char32_t cp);  // -1 when cp is not one of the 256 mapped code points

struct MergeResult {
  int32_t rank;
  TokenId result;
};

struct TokenizerState {
  TokenizerKind kind = TokenizerKind::kBpe;
  std::string source;  // file or directory, for messages

  std::vector<TokenInfo> tokens;
  TokenMap token_ids;   // every token's text -> id (the last id wins on duplicates)
  TokenMap normal_ids;  // text -> id of Normal tokens only (what plain text may form)

  // Special ids (kNoToken when absent).
  TokenId bos = kNoToken, eos = kNoToken, eot = kNoToken, eom = kNoToken, unk = kNoToken,
          pad = kNoToken, sep = kNoToken;
  std::vector<TokenId> extra_eog;  // further end-of-generation ids (FIM, generation_config)
  bool add_bos = false, add_eos = false;
  bool add_space_prefix = false;  // SPM: prepend ' ' to each text fragment
  // SPM: no normal token has U+2581 after another character, so no merge can cross the
  // start of a "▁word" and fragments may be merged word by word (same result, and words
  // repeat, so they are cached). Set by finalize_tokenizer_state.
  bool spm_word_split = false;
  bool strip_leading_space = false;  // decoder removes one leading space
  std::string chat_template;

  PreTokenizer pre;

  // BPE
  bool byte_level = true;      // pieces are mapped to GPT-2 byte characters
  bool byte_fallback = false;  // unknown characters become <0xNN> tokens
  bool ignore_merges = false;  // a pre-token that is a whole token is emitted as is
  TokenId bpe_unk = kNoToken;  // emitted for a character without a token (HF unk_token)
  std::unordered_map<uint64_t, MergeResult> merges;  // (left << 32 | right) -> rank, result
  std::array<TokenId, 256> byte_char_token{};        // byte-level: token of each byte's char
  std::array<TokenId, 256> byte_token{};             // <0xNN> tokens (kNoToken if absent)

  // Derived by finalize_tokenizer_state():
  std::vector<TokenId> eog;  // sorted
  // Tokens recognised in text, grouped by first byte, longest first.
  std::array<std::vector<TokenId>, 256> special_by_first_byte;
};

// Validates special ids, builds the lookup maps, pieces, special-token matcher and the
// end-of-generation set. Throws muse::Error (prefixed with state.source) on bad data.
void finalize_tokenizer_state(TokenizerState& state);

inline uint64_t merge_key(TokenId left, TokenId right) {
  return (static_cast<uint64_t>(static_cast<uint32_t>(left)) << 32) | static_cast<uint32_t>(right);
}

// Per-call scratch of the merge algorithms (reused across the pieces of one encode call).
struct BpeScratch;
struct BpeScratchDeleter {
  void operator()(BpeScratch* s) const;
};
std::unique_ptr<BpeScratch, BpeScratchDeleter> make_bpe_scratch();

// Byte-level / character BPE over one pre-token; appends its ids to `out`.
void bpe_encode_piece(const TokenizerState& state, std::string_view piece, BpeScratch& scratch,
                      std::vector<TokenId>& out);
// SentencePiece score merging over one text fragment (spaces already escaped to U+2581).
void spm_encode_fragment(const TokenizerState& state, std::string_view text,
                         std::vector<TokenId>& out);

}  // namespace muse::text
