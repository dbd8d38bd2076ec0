// Tokenizers: text <-> token ids, byte-exact with the reference tokenizers.
//
// Two algorithms cover the supported vocabularies:
//  - byte-level BPE (GPT-2 family; GGUF `tokenizer.ggml.model = "gpt2"` or a Hugging Face
//    tokenizer.json with a BPE model): the text is split by the pre-tokenizer's regexes
//    (chosen by `tokenizer.ggml.pre` or the tokenizer.json `pre_tokenizer`), each piece is
//    mapped to byte-level characters and merged by merge rank;
//  - SentencePiece-style BPE (GGUF `tokenizer.ggml.model = "llama"`: Llama / Phi-3): spaces
//    become U+2581, a space is prepended to each text fragment (add_space_prefix), pieces
//    merge by score, characters without a token fall back to `<0xNN>` byte tokens.
//    (A Hugging Face tokenizer.json with `byte_fallback` runs the same way by merge rank.)
//
// Special tokens. Control tokens (`<|im_start|>`, `<s>`, ...) are recognised in the text
// only when the caller passes parse_special = true (chat-template output); with false
// their text is tokenized as ordinary text, so user content cannot inject them.
// User-defined (non-special added) tokens are always recognised, as in the reference.
//
// Errors. Loading malformed metadata (count mismatches, merges naming unknown tokens,
// special ids out of range, unsupported models or pre-tokenizers) throws muse::Error.
// encode() throws muse::Error for text that is not valid UTF-8; decode() throws for ids
// outside the vocabulary. Nothing reachable from input aborts.
//
// Thread safety: a Tokenizer is immutable after loading; all const methods may be called
// from several threads at once. A StreamDecoder belongs to one stream (one thread).
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace muse {
class GgufFile;
class Model;
}  // namespace muse

namespace muse::text {

using TokenId = int32_t;
inline constexpr TokenId kNoToken = -1;

// GGUF `tokenizer.ggml.token_type` values (llama.cpp's numbering).
enum class TokenType : uint8_t {
  kUndefined = 0,
  kNormal = 1,
  kUnknown = 2,
  kControl = 3,
  kUserDefined = 4,
  kUnused = 5,
  kByte = 6,
};

enum class TokenizerKind { kBpe, kSpm };

struct DecodeOptions {
  // Render control and unknown tokens as their text (`<|im_end|>`); false drops them.
  bool render_special = true;
  // SentencePiece vocabularies with add_space_prefix: remove one leading space from the
  // start of the decoded text (the prefix the encoder added), as the reference decoder
  // does. Only applies at the start of a sequence / stream; no effect for BPE.
  bool strip_leading_space = true;
};

struct TokenizerState;  // internal (tokenizer_impl.h)

class Tokenizer {
 public:
  explicit Tokenizer(std::unique_ptr<TokenizerState> state);
  ~Tokenizer();
  Tokenizer(const Tokenizer&) = delete;
  Tokenizer& operator=(const Tokenizer&) = delete;

  // Tokenizes `text` (must be valid UTF-8, else muse::Error). add_special: add BOS/EOS as
  // the model's metadata asks (add_bos()/add_eos()). parse_special: recognise control
  // tokens written in the text (see the header comment).
  std::vector<TokenId> encode(std::string_view text, bool add_special, bool parse_special) const;

  // Concatenated bytes of the tokens' pieces, with the SPM leading-space rule applied
  // (see DecodeOptions). The bytes are exactly what the pieces hold: ids that were not
  // produced by encode() may give invalid UTF-8 (use StreamDecoder for display text).
  // Throws muse::Error for an id outside [0, vocab_size()).
  std::string decode(std::span<const TokenId> ids, const DecodeOptions& options = {}) const;

  // The bytes one token stands for: byte-level BPE tokens decoded to bytes, U+2581 turned
  // into spaces for SPM, `<0xNN>` into that byte, special/added tokens as their text.
  // Unused tokens give "". Throws muse::Error for an id out of range.
  const std::string& token_to_piece(TokenId id) const;
  // The vocabulary's own string for the token (e.g. "Ġhello", "▁Hello", "<0x0A>").
  const std::string& token_text(TokenId id) const;
  TokenType token_type(TokenId id) const;
  // Control and unknown tokens (not rendered by DecodeOptions{.render_special = false}).
  bool is_special(TokenId id) const;
  // Exact vocabulary lookup of a token string.
  std::optional<TokenId> find_token(std::string_view token_text) const;

  size_t vocab_size() const;
  TokenizerKind kind() const;
  // Pre-tokenizer name (GGUF `tokenizer.ggml.pre`, "hf" for a tokenizer.json pipeline,
  // "spm" for SentencePiece vocabularies).
  const std::string& pre_tokenizer() const;

  // Special ids; kNoToken when the vocabulary has none.
  TokenId bos() const;
  TokenId eos() const;
  TokenId eot() const;  // end of turn (<|eot_id|>, <|im_end|>, <|end|>, ...)
  TokenId unk() const;
  TokenId pad() const;
  bool add_bos() const;           // encode(add_special=true) prepends BOS
  bool add_eos() const;           // encode(add_special=true) appends EOS
  bool add_space_prefix() const;  // SPM: a space is prepended to each text fragment
  // End of generation: EOS, EOT, EOM and the end-of-turn tokens named in the vocabulary.
  bool is_eog(TokenId id) const;
  const std::vector<TokenId>& eog_ids() const;  // sorted

  // The chat template from the metadata (`tokenizer.chat_template` or tokenizer_config.json
  // `chat_template`); empty when there is none.
  const std::string& chat_template() const;

  const TokenizerState& state() const { return *state_; }

 private:
  std::unique_ptr<TokenizerState> state_;
};

// Incremental detokenizer for streaming output. push() takes one id and returns the text
// that is complete so far; it never returns part of a UTF-8 character: bytes that start
// an incomplete character are held back until the rest arrives. Byte sequences that can
// never become valid UTF-8 are replaced by U+FFFD, so everything returned is valid UTF-8.
// The concatenation of all push() results and flush() equals decode() of the same ids
// whenever that is valid UTF-8.
class StreamDecoder {
 public:
  explicit StreamDecoder(const Tokenizer& tokenizer, DecodeOptions options = {});
  // Throws muse::Error for an id out of range (the decoder state is unchanged then).
  std::string push(TokenId id);
  // Ends the stream: returns the held-back bytes (an incomplete character becomes U+FFFD)
  // and resets the decoder to the start of a new stream.
  std::string flush();
  void reset();

 private:
  const Tokenizer* tokenizer_;
  DecodeOptions options_;
  std::string pending_;   // bytes not yet returned (an incomplete UTF-8 character)
  bool at_start_ = true;  // nothing visible emitted yet (SPM leading-space rule)
};

// Loaders. Each throws muse::Error naming the file/key and the problem.
// From GGUF metadata (tokenizer.ggml.*). The GgufFile need not outlive the result.
std::unique_ptr<Tokenizer> load_tokenizer_gguf(const GgufFile& gguf);
// From a Hugging Face directory: tokenizer.json (+ tokenizer_config.json, and
// generation_config.json for extra end-of-generation ids).
std::unique_ptr<Tokenizer> load_tokenizer_hf_dir(const std::string& dir);
// From tokenizer.json / tokenizer_config.json contents (config may be empty or "{}").
// `source` names the input in error messages.
std::unique_ptr<Tokenizer> load_tokenizer_hf_json(std::string_view tokenizer_json,
                                                  std::string_view tokenizer_config_json,
                                                  const std::string& source = "tokenizer.json");
// A .gguf file (vocab-only files work) or a Hugging Face directory.
std::unique_ptr<Tokenizer> load_tokenizer(const std::string& path);
// The tokenizer of a loaded model (its GGUF metadata or its Hugging Face directory).
std::unique_ptr<Tokenizer> load_tokenizer(const Model& model);

}  // namespace muse::text
