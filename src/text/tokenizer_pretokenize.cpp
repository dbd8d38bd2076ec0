// Pre-tokenizers: the regex splits that run before BPE, with PCRE2 (UTF + UCP, so \p{L},
// \p{N}, \s follow Unicode, and lookahead such as `\s+(?!\S)` works as in the reference).
//
// The patterns are the published pre-tokenizer definitions of each model family (the
// Hugging Face tokenizer.json `pre_tokenizer`, as named by llama.cpp's
// `tokenizer.ggml.pre`). Several patterns are applied in sequence: each splits every piece
// left by the previous one into its matches and the text between them ("Isolated").
#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <algorithm>
#include <array>

#include "muse/error.h"
#include "text/tokenizer_impl.h"

namespace muse::text {
namespace {

std::string pcre2_message(int code) {
  PCRE2_UCHAR buf[256];
  if (pcre2_get_error_message(code, buf, sizeof(buf)) < 0) return "error " + std::to_string(code);
  return reinterpret_cast<const char*>(buf);
}

// Per-thread match data and JIT stack, shared by all patterns (only the whole-match
// offsets are read, so a fixed ovector size serves every pattern).
struct MatchScratch {
  pcre2_match_data* data = nullptr;
  pcre2_match_context* context = nullptr;
  pcre2_jit_stack* jit_stack = nullptr;
  MatchScratch() {
    data = pcre2_match_data_create(16, nullptr);
    context = pcre2_match_context_create(nullptr);
    jit_stack = pcre2_jit_stack_create(32 * 1024, 4 * 1024 * 1024, nullptr);
    if (context && jit_stack) pcre2_jit_stack_assign(context, nullptr, jit_stack);
  }
  ~MatchScratch() {
    pcre2_jit_stack_free(jit_stack);
    pcre2_match_context_free(context);
    pcre2_match_data_free(data);
  }
};

MatchScratch& match_scratch() {
  thread_local MatchScratch scratch;
  if (!scratch.data || !scratch.context) throw Error("pre-tokenizer: out of memory for PCRE2");
  return scratch;
}

size_t utf8_char_len(uint8_t lead) {
  if (lead < 0x80) return 1;
  if (lead >= 0xF0) return 4;
  if (lead >= 0xE0) return 3;
  if (lead >= 0xC0) return 2;
  return 1;
}

struct Segment {
  size_t begin, end;
  bool match;
};

}  // namespace

Regex::Regex(const std::string& pattern) : pattern_(pattern) {
  int err = 0;
  PCRE2_SIZE err_offset = 0;
  pcre2_code* code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern.data()), pattern.size(),
                                   PCRE2_UTF | PCRE2_UCP, &err, &err_offset, nullptr);
  MUSE_CHECK(code != nullptr, "pre-tokenizer regex '", pattern, "' is invalid at offset ",
             err_offset, ": ", pcre2_message(err));
  // JIT is an optimisation only: the interpreter gives the same matches.
  (void)pcre2_jit_compile(code, PCRE2_JIT_COMPLETE);
  code_ = code;
}

Regex::~Regex() {
  pcre2_code_free(static_cast<pcre2_code*>(code_));
}

void Regex::find_all(std::string_view subject, std::vector<std::pair<size_t, size_t>>& out) const {
  MatchScratch& ms = match_scratch();
  const auto* subj = reinterpret_cast<PCRE2_SPTR>(subject.data());
  const size_t n = subject.size();
  size_t pos = 0;
  while (pos < n) {
    // The text was validated as UTF-8 once by the caller.
    const int rc = pcre2_match(static_cast<const pcre2_code*>(code_), subj, n, pos,
                               PCRE2_NO_UTF_CHECK, ms.data, ms.context);
    if (rc == PCRE2_ERROR_NOMATCH) break;
    MUSE_CHECK(rc >= 0, "pre-tokenizer regex '", pattern_, "' failed: ", pcre2_message(rc));
    const PCRE2_SIZE* ov = pcre2_get_ovector_pointer(ms.data);
    const size_t begin = ov[0], end = ov[1];
    if (end <= begin) {  // empty match: not a piece; move on by one character
      if (begin >= n) break;
      pos = begin + utf8_char_len(static_cast<uint8_t>(subject[begin]));
      continue;
    }
    out.emplace_back(begin, end);
    pos = end;
  }
}

namespace {

// Splits `piece` by one step; appends the resulting non-empty pieces.
void split_piece(const SplitStep& step, std::string_view piece,
                 std::vector<std::pair<size_t, size_t>>& matches, std::vector<Segment>& segs,
                 std::vector<std::string_view>& out) {
  matches.clear();
  step.regex->find_all(piece, matches);
  if (step.behavior == SplitBehavior::kIsolated) {  // the common case, no folding needed
    size_t prev = 0;
    for (const auto& [b, e] : matches) {
      if (b > prev) out.push_back(piece.substr(prev, b - prev));
      out.push_back(piece.substr(b, e - b));
      prev = e;
    }
    if (prev < piece.size()) out.push_back(piece.substr(prev));
    return;
  }
  segs.clear();
  size_t prev = 0;
  for (const auto& [b, e] : matches) {
    if (b > prev) segs.push_back({prev, b, step.invert});
    segs.push_back({b, e, !step.invert});
    prev = e;
  }
  if (prev < piece.size()) segs.push_back({prev, piece.size(), step.invert});

  std::vector<Segment> folded;
  switch (step.behavior) {
    case SplitBehavior::kIsolated:
      folded = segs;
      break;
    case SplitBehavior::kRemoved:
      for (const auto& s : segs)
        if (!s.match) folded.push_back(s);
      break;
    case SplitBehavior::kMergedWithPrevious: {
      bool previous_match = false;
      for (const auto& s : segs) {
        if (s.match && !previous_match && !folded.empty())
          folded.back().end = s.end;
        else
          folded.push_back(s);
        previous_match = s.match;
      }
      break;
    }
    case SplitBehavior::kMergedWithNext: {
      bool previous_match = false;  // (the segment after, walking backwards)
      for (size_t i = segs.size(); i-- > 0;) {
        const Segment& s = segs[i];
        if (s.match && !previous_match && !folded.empty())
          folded.back().begin = s.begin;
        else
          folded.push_back(s);
        previous_match = s.match;
      }
      std::reverse(folded.begin(), folded.end());
      break;
    }
    case SplitBehavior::kContiguous: {
      bool previous_match = false;
      for (const auto& s : segs) {
        if (s.match == previous_match && !folded.empty())
          folded.back().end = s.end;
        else
          folded.push_back(s);
        previous_match = s.match;
      }
      break;
    }
  }
  for (const auto& s : folded)
    if (s.end > s.begin) out.push_back(piece.substr(s.begin, s.end - s.begin));
}

}  // namespace

void pre_tokenize(const PreTokenizer& pre, std::string_view text,
                  std::vector<std::string_view>& pieces) {
  pieces.clear();
  if (text.empty()) return;
  pieces.push_back(text);
  std::vector<std::string_view> next;
  std::vector<std::pair<size_t, size_t>> matches;
  std::vector<Segment> segs;
  for (const SplitStep& step : pre.steps) {
    next.clear();
    for (std::string_view piece : pieces) split_piece(step, piece, matches, segs, next);
    pieces.swap(next);
  }
}

// Hugging Face's ByteLevel pattern; llama.cpp's GPT-2 list omits the final `|\s+`, which
// splits identically (whitespace it leaves unmatched becomes a piece of its own anyway).
const char* const kGpt2Pattern =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";

namespace {

// Llama 3 / Qwen 2 patterns. Their tokenizer.json spells the contractions
// `(?i:'s|'t|...)`; the reference (llama.cpp) matches them ASCII-case-insensitively,
// which is what the explicit classes below do.
constexpr const char* kContractionsCi =
    R"((?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD]))";

std::string llama3_pattern(const char* digits) {
  return std::string(kContractionsCi) + R"(|[^\r\n\p{L}\p{N}]?\p{L}+|)" + digits +
         R"(| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
}

}  // namespace

NamedPreTokenizer named_pre_tokenizer(const std::string& name) {
  NamedPreTokenizer p;
  auto is = [&](std::initializer_list<const char*> names) {
    for (const char* n : names)
      if (name == n) return true;
    return false;
  };
  if (is({"llama3", "llama-v3", "llama-bpe", "falcon3"})) {
    p.regexes = {llama3_pattern(R"(\p{N}{1,3})")};
    p.ignore_merges = true;
    p.add_bos = true;
  } else if (is({"dbrx", "smaug-bpe", "chatglm-bpe"})) {
    p.regexes = {llama3_pattern(R"(\p{N}{1,3})")};
  } else if (is({"qwen2", "stablelm2", "megrez"})) {
    p.regexes = {llama3_pattern(R"(\p{N})")};
  } else if (is({"deepseek-llm"})) {
    p.regexes = {
        "[\r\n]",
        // Cased letters (Unicode ranges, written as escapes so that no editor's
        // normalization can change them: several are NFC-unstable, e.g. U+2126, U+212A).
        "\\s?[A-Za-z\\x{B5}\\x{C0}-\\x{D6}\\x{D8}-\\x{F6}\\x{F8}-\\x{1BA}"
        "\\x{1BC}-\\x{1BF}\\x{1C4}-\\x{293}\\x{295}-\\x{2AF}\\x{370}-\\x{373}\\x{376}"
        "\\x{377}\\x{37B}-\\x{37D}\\x{37F}\\x{386}\\x{388}-\\x{38A}\\x{38C}"
        "\\x{38E}-\\x{3A1}\\x{3A3}-\\x{3F5}\\x{3F7}-\\x{481}\\x{48A}-\\x{52F}"
        "\\x{531}-\\x{556}\\x{10A0}-\\x{10C5}\\x{13A0}-\\x{13F5}\\x{13F8}-\\x{13FD}"
        "\\x{1C90}-\\x{1CBA}\\x{1CBD}-\\x{1CBF}\\x{1D00}-\\x{1D2B}\\x{1D6B}-\\x{1D77}"
        "\\x{1D79}-\\x{1D9A}\\x{1E00}-\\x{1F15}\\x{1F18}-\\x{1F1D}\\x{1F20}-\\x{1F45}"
        "\\x{1F48}-\\x{1F4D}\\x{1F50}-\\x{1F57}\\x{1F59}\\x{1F5B}\\x{1F5D}"
        "\\x{1F5F}-\\x{1F7D}\\x{1F80}-\\x{1FB4}\\x{1FB6}-\\x{1FBC}\\x{1FBE}"
        "\\x{1FC2}-\\x{1FC4}\\x{1FC6}-\\x{1FCC}\\x{1FD0}-\\x{1FD3}\\x{1FD6}-\\x{1FDB}"
        "\\x{1FE0}-\\x{1FEC}\\x{1FF2}-\\x{1FF4}\\x{1FF6}-\\x{1FFC}\\x{2102}\\x{2107}"
        "\\x{210A}-\\x{2113}\\x{2115}\\x{2119}-\\x{211D}\\x{2124}\\x{2126}\\x{2128}"
        "\\x{212A}-\\x{212D}\\x{212F}-\\x{2134}\\x{2139}\\x{213C}-\\x{213F}"
        "\\x{2145}-\\x{2149}\\x{214E}\\x{2183}\\x{2184}\\x{2C00}-\\x{2C7B}"
        "\\x{2C7E}-\\x{2CE4}\\x{2CEB}-\\x{2CEE}\\x{2CF2}\\x{2CF3}\\x{A640}-\\x{A66D}"
        "\\x{A680}-\\x{A69B}\\x{A722}-\\x{A76F}\\x{A771}-\\x{A787}\\x{A78B}-\\x{A78E}"
        "\\x{AB70}-\\x{ABBF}\\x{FB00}-\\x{FB06}\\x{FB13}-\\x{FB17}\\x{FF21}-\\x{FF3A}"
        "\\x{FF41}-\\x{FF5A}\\x{10400}-\\x{1044F}\\x{104B0}-\\x{104D3}"
        "\\x{104D8}-\\x{104FB}\\x{10C80}-\\x{10CB2}\\x{10CC0}-\\x{10CF2}"
        "\\x{118A0}-\\x{118DF}\\x{1E900}-\\x{1E943}]+",
        "\\s?[!-/:-~\\x{FF01}-\\x{FF0F}\\x{FF1A}-\\x{FF5E}\\x{2018}-\\x{201F}\\x{3000}-\\x{3002}]+",
        // `\s+$` with a possessive repeat: same matches, no quadratic backtracking over
        // long runs of spaces that do not reach the end.
        "\\s++$",
        "[\\x{4E00}-\\x{9FA5}\\x{800}-\\x{4E00}\\x{AC00}-\\x{D7FF}]+",
        "\\p{N}+",
    };
  } else if (is({"deepseek-coder"})) {
    p.regexes = {"[\r\n]", "\\s?\\p{L}+", "\\s?\\p{P}+",
                 "[\\x{4E00}-\\x{9FA5}\\x{800}-\\x{4E00}\\x{AC00}-\\x{D7FF}]+", "\\p{N}"};
  } else if (is({"deepseek-v3"})) {
    p.regexes = {
        "\\p{N}{1,3}",
        "[\\x{4E00}-\\x{9FA5}\\x{3040}-\\x{309F}\\x{30A0}-\\x{30FF}]+",
        "[!\"#$%&'()*+,\\-./:;<=>?@\\[\\\\\\]^_`{|}~][A-Za-z]+|[^\r\n\\p{L}\\p{P}\\p{S}]?[\\p{L}"
        "\\p{M}]+| ?[\\p{P}\\p{S}]+[\r\n]*|\\s*[\r\n]+|\\s+(?!\\S)|\\s+",
    };
  } else if (is({"falcon"})) {
    p.regexes = {R"([\p{P}\$\+<=>\^~\|`]+)", kGpt2Pattern, "[0-9][0-9][0-9]"};
  } else if (is({"starcoder", "refact", "command-r", "smollm", "codeshell", "exaone",
                 "minerva-7b"})) {
    p.regexes = {R"(\p{N})", kGpt2Pattern};
  } else if (is({"gpt-2", "gpt2", "mpt", "olmo", "jais", "phi-2", "jina-es", "jina-de", "gigachat",
                 "jina-v1-en", "jina-v2-es", "jina-v2-de", "jina-v2-code", "roberta-bpe"})) {
    p.regexes = {kGpt2Pattern};
  } else if (is({"poro-chat", "bloom", "gpt3-finnish"})) {
    p.regexes = {" ?[^(\\s|.,!?\\x{2026}\\x{3002}\\x{FF0C}\\x{3001}\\x{964}\\x{6D4}\\x{60C})]+"};
  } else if (is({"viking"})) {
    p.regexes = {" ?[^(\\s|.,!?\\x{2026}\\x{3002}\\x{FF0C}\\x{3001}\\x{964}\\x{6D4}\\x{60C})]+",
                 R"(\p{N})"};
  } else if (is({"tekken"})) {
    p.regexes = {
        R"([^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+|)"
        R"([^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*|\p{N}|)"
        R"( ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+)"};
    p.ignore_merges = true;
    p.add_bos = true;
  } else if (is({"default"})) {
    // llama.cpp's fallback for BPE vocabularies without a pre-tokenizer name.
    p.regexes = {R"([\p{P}\$\+<=>\^~\|]+)", kGpt2Pattern, R"(\p{N}+)", "[0-9][0-9][0-9]"};
  } else {
    throw Error("unknown pre-tokenizer '" + name + "' (tokenizer.ggml.pre)");
  }
  return p;
}

namespace {

struct ByteMap {
  std::array<char32_t, 256> to_cp{};
  std::array<int16_t, 512> to_byte{};
  ByteMap() {
    to_byte.fill(-1);
    // Printable Latin-1 bytes stand for themselves; the others are moved to U+0100 on.
    int next = 0;
    for (int b = 0; b < 256; ++b) {
      const bool printable = (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE);
      to_cp[static_cast<size_t>(b)] =
          printable ? static_cast<char32_t>(b) : static_cast<char32_t>(256 + next++);
      to_byte[to_cp[static_cast<size_t>(b)]] = static_cast<int16_t>(b);
    }
  }
};

const ByteMap& byte_map() {
  static const ByteMap map;
  return map;
}

}  // namespace

char32_t byte_to_codepoint(uint8_t b) {
  return byte_map().to_cp[b];
}

int codepoint_to_byte(char32_t cp) {
  return cp < 512 ? byte_map().to_byte[cp] : -1;
}

}  // namespace muse::text
