// Tokenizer: special-token partitioning, BOS/EOS, dispatch to the BPE / SPM merging, and
// decoding (whole sequences and streams).
#include "text/tokenizer.h"

#include <algorithm>

#include "muse/error.h"
#include "text/tokenizer_impl.h"
#include "text/utf8.h"

namespace muse::text {
namespace {

constexpr std::string_view kSpaceMarker = "\xE2\x96\x81";      // U+2581, SentencePiece's space
constexpr std::string_view kReplacementChar = "\xEF\xBF\xBD";  // U+FFFD

// Offset of the first byte that is not part of valid UTF-8, or npos.
size_t first_invalid_utf8(std::string_view s) {
  for (size_t i = 0; i < s.size();) {
    const auto b = static_cast<uint8_t>(s[i]);
    if (b < 0x80) {  // ASCII fast path
      ++i;
      continue;
    }
    size_t len = 1;
    const char32_t cp = decode_utf8(s, i, &len);
    if (cp == 0xFFFD && s.substr(i, len) != kReplacementChar) return i;
    i += len;
  }
  return std::string_view::npos;
}

// Valid UTF-8 with every byte that cannot start or continue a character replaced by U+FFFD.
void append_sanitized(std::string& out, std::string_view s) {
  for (size_t i = 0; i < s.size();) {
    size_t len = 1;
    const char32_t cp = decode_utf8(s, i, &len);
    if (cp == 0xFFFD && s.substr(i, len) != kReplacementChar)
      out += kReplacementChar;
    else
      out.append(s.data() + i, len);
    i += len;
  }
}

// ASCII whitespace, as the reference's lstrip/rstrip of special tokens.
bool is_ascii_space(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r';
}

void replace_all(std::string& s, std::string_view from, std::string_view to) {
  if (from.empty() || s.find(from) == std::string::npos) return;
  std::string out;
  out.reserve(s.size() + s.size() / 4);
  size_t pos = 0;
  for (size_t hit; (hit = s.find(from, pos)) != std::string::npos; pos = hit + from.size()) {
    out.append(s, pos, hit - pos);
    out += to;
  }
  out.append(s, pos, std::string::npos);
  s.swap(out);
}

struct Fragment {
  std::string_view text;  // empty for a token fragment
  TokenId token;          // kNoToken for a text fragment
  size_t offset;          // where it starts in the input
};

// Splits `text` at the special/added tokens it may contain, leftmost first and the longest
// token at a position (Hugging Face's added-vocabulary matching).
std::vector<Fragment> partition(const TokenizerState& st, std::string_view text,
                                bool parse_special) {
  std::vector<Fragment> frags;
  size_t seg = 0, i = 0;
  const size_t n = text.size();
  while (i < n) {
    TokenId hit = kNoToken;
    for (TokenId id : st.special_by_first_byte[static_cast<uint8_t>(text[i])]) {
      const TokenInfo& t = st.tokens[static_cast<size_t>(id)];
      if (!parse_special && (t.type == TokenType::kControl || t.type == TokenType::kUnknown))
        continue;
      if (text.compare(i, t.text.size(), t.text) == 0) {
        hit = id;
        break;
      }
    }
    if (hit == kNoToken) {
      ++i;
      continue;
    }
    const TokenInfo& t = st.tokens[static_cast<size_t>(hit)];
    size_t left_end = i;
    if (t.lstrip)
      while (left_end > seg && is_ascii_space(text[left_end - 1])) --left_end;
    if (left_end > seg) frags.push_back({text.substr(seg, left_end - seg), kNoToken, seg});
    frags.push_back({{}, hit, i});
    i += t.text.size();
    if (t.rstrip)
      while (i < n && is_ascii_space(text[i])) ++i;
    seg = i;
  }
  if (seg < n) frags.push_back({text.substr(seg), kNoToken, seg});
  return frags;
}

// Results of pre-tokens already seen in this call: natural text repeats its words a lot.
class PieceCache {
 public:
  bool lookup(std::string_view piece, std::vector<TokenId>& out) const {
    const auto it = map_.find(piece);
    if (it == map_.end()) return false;
    out.insert(out.end(), ids_.begin() + it->second.first,
               ids_.begin() + it->second.first + it->second.second);
    return true;
  }
  void store(std::string_view piece, const TokenId* ids, size_t count) {
    if (piece.size() > kMaxPieceBytes || map_.size() >= kMaxEntries) return;
    map_.emplace(std::string(piece), std::make_pair(ids_.size(), count));
    ids_.insert(ids_.end(), ids, ids + count);
  }

 private:
  static constexpr size_t kMaxPieceBytes = 128;
  static constexpr size_t kMaxEntries = 1 << 17;
  std::unordered_map<std::string, std::pair<size_t, size_t>, StringViewHash, std::equal_to<>> map_;
  std::vector<TokenId> ids_;
};

void encode_bpe_fragment(const TokenizerState& st, std::string_view text, bool first_fragment,
                         PieceCache& cache, BpeScratch& scratch,
                         std::vector<std::string_view>& pieces, std::vector<TokenId>& out) {
  std::string rewritten;
  if (!st.pre.rewrites.empty() || st.pre.add_prefix_space) {
    rewritten.assign(text);
    for (const TextRewrite& r : st.pre.rewrites) {
      if (r.kind == TextRewrite::Kind::kReplace)
        replace_all(rewritten, r.from, r.to);
      else if (!r.first_fragment_only || first_fragment)
        rewritten.insert(0, r.to);
    }
    if (st.pre.add_prefix_space && (rewritten.empty() || rewritten[0] != ' '))
      rewritten.insert(0, 1, ' ');
    text = rewritten;
  }
  pre_tokenize(st.pre, text, pieces);
  for (std::string_view piece : pieces) {
    if (cache.lookup(piece, out)) continue;
    const size_t before = out.size();
    bpe_encode_piece(st, piece, scratch, out);
    cache.store(piece, out.data() + before, out.size() - before);
  }
}

// SentencePiece: optional prefix space, spaces escaped to U+2581, then merged word by word
// when the vocabulary allows it (see TokenizerState::spm_word_split).
void encode_spm_fragment(const TokenizerState& st, std::string_view text, bool prefix_space,
                         PieceCache& cache, std::string& buf, std::vector<TokenId>& out) {
  buf.clear();
  if (prefix_space) buf += ' ';
  buf += text;
  replace_all(buf, " ", kSpaceMarker);
  if (!st.spm_word_split) {
    spm_encode_fragment(st, buf, out);
    return;
  }
  // A word starts at a marker that follows another character.
  const std::string_view all = buf;
  const size_t m = kSpaceMarker.size();
  size_t start = 0;
  for (size_t pos = 0;;) {
    const size_t hit = all.find(kSpaceMarker, pos);
    const bool last = hit == std::string_view::npos;
    const bool after_marker = !last && hit >= m && all.compare(hit - m, m, kSpaceMarker) == 0;
    if (last || (hit > start && !after_marker)) {
      const std::string_view word = all.substr(start, (last ? all.size() : hit) - start);
      if (!cache.lookup(word, out)) {
        const size_t before = out.size();
        spm_encode_fragment(st, word, out);
        cache.store(word, out.data() + before, out.size() - before);
      }
      if (last) return;
      start = hit;
    }
    pos = hit + m;
  }
}

void check_id(const TokenizerState& st, TokenId id) {
  MUSE_CHECK(id >= 0 && static_cast<size_t>(id) < st.tokens.size(), "token id ", id,
             " is out of range (vocabulary size ", st.tokens.size(), ")");
}

}  // namespace

Tokenizer::Tokenizer(std::unique_ptr<TokenizerState> state) : state_(std::move(state)) {
  MUSE_CHECK(state_ != nullptr && !state_->tokens.empty(), "tokenizer has no vocabulary");
}

Tokenizer::~Tokenizer() = default;

std::vector<TokenId> Tokenizer::encode(std::string_view text, bool add_special,
                                       bool parse_special) const {
  const TokenizerState& st = *state_;
  if (const size_t bad = first_invalid_utf8(text); bad != std::string_view::npos)
    throw Error(
        str_cat("text to tokenize is not valid UTF-8 (byte ", bad, " of ", text.size(), ")"));
  std::vector<TokenId> out;
  out.reserve(text.size() / 3 + 2);
  if (add_special && st.add_bos) out.push_back(st.bos);

  const std::vector<Fragment> frags = partition(st, text, parse_special);
  PieceCache cache;
  auto scratch = make_bpe_scratch();
  std::vector<std::string_view> pieces;
  std::string spm_text;
  bool prev_special = true;  // SPM: a text fragment at the start or after a token gets ' '
  for (const Fragment& f : frags) {
    if (f.token != kNoToken) {
      out.push_back(f.token);
      prev_special = true;
      continue;
    }
    if (st.kind == TokenizerKind::kSpm) {
      encode_spm_fragment(st, f.text, st.add_space_prefix && prev_special, cache, spm_text, out);
    } else {
      encode_bpe_fragment(st, f.text, f.offset == 0, cache, *scratch, pieces, out);
    }
    prev_special = false;
  }
  if (add_special && st.add_eos) out.push_back(st.eos);
  return out;
}

std::string Tokenizer::decode(std::span<const TokenId> ids, const DecodeOptions& options) const {
  const TokenizerState& st = *state_;
  for (TokenId id : ids) check_id(st, id);
  std::string out;
  bool at_start = true;
  const bool strip = options.strip_leading_space && st.strip_leading_space;
  for (TokenId id : ids) {
    const TokenInfo& t = st.tokens[static_cast<size_t>(id)];
    if (!options.render_special && (t.type == TokenType::kControl || t.type == TokenType::kUnknown))
      continue;
    if (t.piece.empty()) continue;
    if (at_start && strip && t.piece[0] == ' ')
      out.append(t.piece, 1, std::string::npos);
    else
      out += t.piece;
    at_start = false;
  }
  return out;
}

const std::string& Tokenizer::token_to_piece(TokenId id) const {
  check_id(*state_, id);
  return state_->tokens[static_cast<size_t>(id)].piece;
}

const std::string& Tokenizer::token_text(TokenId id) const {
  check_id(*state_, id);
  return state_->tokens[static_cast<size_t>(id)].text;
}

TokenType Tokenizer::token_type(TokenId id) const {
  check_id(*state_, id);
  return state_->tokens[static_cast<size_t>(id)].type;
}

bool Tokenizer::is_special(TokenId id) const {
  const TokenType t = token_type(id);
  return t == TokenType::kControl || t == TokenType::kUnknown;
}

std::optional<TokenId> Tokenizer::find_token(std::string_view token_text) const {
  const auto it = state_->token_ids.find(token_text);
  if (it == state_->token_ids.end()) return std::nullopt;
  return it->second;
}

size_t Tokenizer::vocab_size() const {
  return state_->tokens.size();
}
TokenizerKind Tokenizer::kind() const {
  return state_->kind;
}
const std::string& Tokenizer::pre_tokenizer() const {
  return state_->pre.name;
}
TokenId Tokenizer::bos() const {
  return state_->bos;
}
TokenId Tokenizer::eos() const {
  return state_->eos;
}
TokenId Tokenizer::eot() const {
  return state_->eot;
}
TokenId Tokenizer::unk() const {
  return state_->unk;
}
TokenId Tokenizer::pad() const {
  return state_->pad;
}
bool Tokenizer::add_bos() const {
  return state_->add_bos;
}
bool Tokenizer::add_eos() const {
  return state_->add_eos;
}
bool Tokenizer::add_space_prefix() const {
  return state_->add_space_prefix;
}
bool Tokenizer::is_eog(TokenId id) const {
  return std::binary_search(state_->eog.begin(), state_->eog.end(), id);
}
const std::vector<TokenId>& Tokenizer::eog_ids() const {
  return state_->eog;
}
const std::string& Tokenizer::chat_template() const {
  return state_->chat_template;
}

StreamDecoder::StreamDecoder(const Tokenizer& tokenizer, DecodeOptions options)
    : tokenizer_(&tokenizer), options_(options) {}

std::string StreamDecoder::push(TokenId id) {
  const TokenizerState& st = tokenizer_->state();
  check_id(st, id);
  const TokenInfo& t = st.tokens[static_cast<size_t>(id)];
  if (!options_.render_special && (t.type == TokenType::kControl || t.type == TokenType::kUnknown))
    return {};
  if (t.piece.empty()) return {};
  std::string_view piece = t.piece;
  if (at_start_ && options_.strip_leading_space && st.strip_leading_space && piece[0] == ' ')
    piece.remove_prefix(1);
  at_start_ = false;
  pending_ += piece;
  const size_t ready = pending_.size() - incomplete_utf8_tail(pending_);
  std::string out;
  append_sanitized(out, std::string_view(pending_).substr(0, ready));
  pending_.erase(0, ready);
  return out;
}

std::string StreamDecoder::flush() {
  std::string out;
  append_sanitized(out, pending_);
  reset();
  return out;
}

void StreamDecoder::reset() {
  pending_.clear();
  at_start_ = true;
}

}  // namespace muse::text
