// Tokenizer loading from GGUF metadata (`tokenizer.ggml.*`, llama.cpp's keys), the shared
// finishing step of all loaders, and the path / Model entry points.
#include <algorithm>
#include <climits>
#include <filesystem>

#include "model/gguf.h"
#include "model/model.h"
#include "muse/error.h"
#include "text/tokenizer_impl.h"
#include "text/utf8.h"

namespace muse::text {
namespace {

constexpr std::string_view kSpaceMarker = "\xE2\x96\x81";

std::string spm_piece(const std::string& text) {
  std::string out;
  out.reserve(text.size());
  for (size_t pos = 0;;) {
    const size_t hit = text.find(kSpaceMarker, pos);
    out.append(text, pos, hit == std::string::npos ? std::string::npos : hit - pos);
    if (hit == std::string::npos) break;
    out += ' ';
    pos = hit + kSpaceMarker.size();
  }
  return out;
}

std::string byte_level_piece(const std::string& text) {
  std::string out;
  for (size_t i = 0; i < text.size();) {
    size_t len = 1;
    const char32_t cp = decode_utf8(text, i, &len);
    const int b = codepoint_to_byte(cp);
    // A character outside the byte map (not produced by byte-level encoding) is kept as is.
    if (b >= 0)
      out += static_cast<char>(b);
    else
      out.append(text, i, len);
    i += len;
  }
  return out;
}

// "<0xNN>" -> NN, or -1.
int byte_token_value(const std::string& text) {
  if (text.size() != 6 || text.compare(0, 3, "<0x") != 0 || text[5] != '>') return -1;
  int v = 0;
  for (size_t i = 3; i < 5; ++i) {
    const char c = text[i];
    int d;
    if (c >= '0' && c <= '9')
      d = c - '0';
    else if (c >= 'A' && c <= 'F')
      d = c - 'A' + 10;
    else if (c >= 'a' && c <= 'f')
      d = c - 'a' + 10;
    else
      return -1;
    v = v * 16 + d;
  }
  return v;
}

std::string lower(std::string s) {
  for (char& c : s)
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  return s;
}

}  // namespace

void finalize_tokenizer_state(TokenizerState& st) {
  const std::string& src = st.source;
  const size_t n = st.tokens.size();
  MUSE_CHECK(n > 0, src, ": the vocabulary is empty");
  MUSE_CHECK(n < static_cast<size_t>(INT32_MAX), src, ": the vocabulary is too large (", n,
             " tokens)");

  st.token_ids.clear();
  st.normal_ids.clear();
  st.token_ids.reserve(n);
  st.normal_ids.reserve(n);
  for (size_t i = 0; i < n; ++i) {
    const TokenInfo& t = st.tokens[i];
    if (t.text.empty()) continue;  // never matches text
    st.token_ids[t.text] = static_cast<TokenId>(i);
    if (t.type == TokenType::kNormal) st.normal_ids[t.text] = static_cast<TokenId>(i);
  }

  auto check_special = [&](TokenId id, const char* what) {
    MUSE_CHECK(id == kNoToken || (id >= 0 && static_cast<size_t>(id) < n), src, ": ", what,
               " token id ", id, " is out of range (vocabulary size ", n, ")");
  };
  check_special(st.bos, "BOS");
  check_special(st.eos, "EOS");
  check_special(st.eot, "EOT");
  check_special(st.eom, "EOM");
  check_special(st.unk, "UNK");
  check_special(st.pad, "padding");
  check_special(st.sep, "separator");
  check_special(st.bpe_unk, "UNK");
  for (TokenId id : st.extra_eog) check_special(id, "end-of-generation");
  MUSE_CHECK(!st.add_bos || st.bos != kNoToken, src,
             ": add_bos_token is set but there is no BOS token");
  MUSE_CHECK(!st.add_eos || st.eos != kNoToken, src,
             ": add_eos_token is set but there is no EOS token");

  st.byte_token.fill(kNoToken);
  for (size_t i = 0; i < n; ++i) {
    const int b = byte_token_value(st.tokens[i].text);
    if (b >= 0 && (st.tokens[i].type == TokenType::kByte || st.kind == TokenizerKind::kSpm ||
                   st.byte_fallback))
      if (st.byte_token[static_cast<size_t>(b)] == kNoToken)
        st.byte_token[static_cast<size_t>(b)] = static_cast<TokenId>(i);
  }
  st.byte_char_token.fill(kNoToken);
  if (st.kind == TokenizerKind::kBpe && st.byte_level) {
    std::string ch;
    for (int b = 0; b < 256; ++b) {
      ch.clear();
      append_utf8(ch, byte_to_codepoint(static_cast<uint8_t>(b)));
      if (const auto it = st.token_ids.find(ch); it != st.token_ids.end())
        st.byte_char_token[static_cast<size_t>(b)] = it->second;
    }
  }

  // End of generation: the metadata's ids plus the end-of-turn tokens known by name (the
  // reference does the same; such tokens are treated as control tokens).
  auto find_text = [&](std::initializer_list<const char*> names) -> TokenId {
    for (const char* name : names)
      if (const auto it = st.token_ids.find(std::string_view(name)); it != st.token_ids.end())
        return it->second;
    return kNoToken;
  };
  if (st.eot == kNoToken)
    st.eot =
        find_text({"<|eot_id|>", "<|im_end|>", "<|end|>", "<end_of_turn>", "<|endoftext|>", "<EOT>",
                   "<\xEF\xBD\x9C"
                   "end\xE2\x96\x81"
                   "of\xE2\x96\x81"
                   "sentence\xEF\xBD\x9C>"});
  if (st.eom == kNoToken) st.eom = find_text({"<|eom_id|>"});
  std::vector<TokenId> eog = st.extra_eog;
  for (TokenId id : {st.eos, st.eot, st.eom})
    if (id != kNoToken) eog.push_back(id);
  for (const char* name :
       {"<|eot_id|>", "<|im_end|>", "<|end|>", "<end_of_turn>", "<|endoftext|>", "<|eom_id|>",
        "<EOT>", "<|fim_pad|>", "<|fim_repo|>", "<|repo_name|>", "<|file_sep|>"}) {
    const TokenId id = find_text({name});
    if (id == kNoToken) continue;
    eog.push_back(id);
    TokenInfo& t = st.tokens[static_cast<size_t>(id)];
    if (t.type == TokenType::kNormal || t.type == TokenType::kUserDefined) {
      if (t.type == TokenType::kNormal) st.normal_ids.erase(t.text);
      t.type = TokenType::kControl;
    }
  }
  std::sort(eog.begin(), eog.end());
  eog.erase(std::unique(eog.begin(), eog.end()), eog.end());
  st.eog = std::move(eog);

  if (st.kind == TokenizerKind::kSpm) {
    st.spm_word_split = true;
    for (const TokenInfo& t : st.tokens) {
      if (t.type != TokenType::kNormal) continue;
      size_t lead = 0;  // leading markers
      while (t.text.compare(lead, kSpaceMarker.size(), kSpaceMarker) == 0)
        lead += kSpaceMarker.size();
      if (t.text.find(kSpaceMarker, lead) != std::string::npos) {
        st.spm_word_split = false;
        break;
      }
    }
  }

  // Pieces (what each token decodes to).
  for (TokenInfo& t : st.tokens) {
    switch (t.type) {
      case TokenType::kControl:
      case TokenType::kUnknown:
      case TokenType::kUserDefined:
        t.piece = t.text;
        break;
      case TokenType::kByte: {
        const int b = byte_token_value(t.text);
        t.piece = b >= 0 ? std::string(1, static_cast<char>(b)) : t.text;
        break;
      }
      case TokenType::kNormal:
        if (st.kind == TokenizerKind::kBpe && st.byte_level)
          t.piece = byte_level_piece(t.text);
        else
          t.piece = spm_piece(t.text);
        break;
      case TokenType::kUnused:
      case TokenType::kUndefined:
        t.piece.clear();
        break;
    }
  }

  // Tokens recognised in text before splitting: control, unknown and user-defined tokens
  // whose text is valid UTF-8 (so matches fall on character boundaries).
  for (auto& v : st.special_by_first_byte) v.clear();
  for (size_t i = 0; i < n; ++i) {
    const TokenInfo& t = st.tokens[i];
    if (t.text.empty() || !is_valid_utf8(t.text)) continue;
    if (t.type == TokenType::kControl || t.type == TokenType::kUnknown ||
        t.type == TokenType::kUserDefined)
      st.special_by_first_byte[static_cast<uint8_t>(t.text[0])].push_back(static_cast<TokenId>(i));
  }
  for (auto& v : st.special_by_first_byte)
    std::stable_sort(v.begin(), v.end(), [&](TokenId a, TokenId b) {
      return st.tokens[static_cast<size_t>(a)].text.size() >
             st.tokens[static_cast<size_t>(b)].text.size();
    });
}

std::unique_ptr<Tokenizer> load_tokenizer_gguf(const GgufFile& gguf) {
  auto st = std::make_unique<TokenizerState>();
  const std::string src = gguf.path().empty() ? std::string("GGUF") : gguf.path();
  st->source = src;
  auto need = [&](const char* key) -> const GgufValue& {
    const GgufValue* v = gguf.find(key);
    MUSE_CHECK(v != nullptr, src, ": missing tokenizer key ", key);
    return *v;
  };
  try {
    const std::string model = need("tokenizer.ggml.model").as_string();
    if (model == "gpt2")
      st->kind = TokenizerKind::kBpe;
    else if (model == "llama")
      st->kind = TokenizerKind::kSpm;
    else
      throw Error("tokenizer model '" + model + "' is not supported (gpt2 and llama are)");

    const GgufValue& tokens_v = need("tokenizer.ggml.tokens");
    MUSE_CHECK(tokens_v.type() == GgufType::ARRAY && tokens_v.array_type() == GgufType::STRING,
               "tokenizer.ggml.tokens is not an array of strings");
    const std::vector<std::string>& texts = tokens_v.as_strings();
    const size_t n = texts.size();
    MUSE_CHECK(n > 0, "tokenizer.ggml.tokens is empty");
    MUSE_CHECK(n < static_cast<size_t>(INT32_MAX), "tokenizer.ggml.tokens has too many entries");
    st->tokens.resize(n);
    for (size_t i = 0; i < n; ++i) st->tokens[i].text = texts[i];

    if (const GgufValue* types = gguf.find("tokenizer.ggml.token_type")) {
      const std::vector<int64_t> v = types->as_ints();
      MUSE_CHECK(v.size() == n, "tokenizer.ggml.token_type has ", v.size(), " entries for ", n,
                 " tokens");
      for (size_t i = 0; i < n; ++i) {
        MUSE_CHECK(v[i] >= 0 && v[i] <= 6, "tokenizer.ggml.token_type[", i, "] = ", v[i],
                   " is not a token type (0..6)");
        st->tokens[i].type = static_cast<TokenType>(v[i]);
      }
    }
    if (const GgufValue* scores = gguf.find("tokenizer.ggml.scores")) {
      const std::vector<double> v = scores->as_floats();
      MUSE_CHECK(v.size() == n, "tokenizer.ggml.scores has ", v.size(), " entries for ", n,
                 " tokens");
      for (size_t i = 0; i < n; ++i) st->tokens[i].score = static_cast<float>(v[i]);
    }

    std::string pre_name = "spm";
    if (st->kind == TokenizerKind::kBpe) {
      pre_name = gguf.get_string_or("tokenizer.ggml.pre", "default");
      const NamedPreTokenizer named = named_pre_tokenizer(pre_name);
      for (const std::string& re : named.regexes)
        st->pre.steps.push_back(
            {std::make_shared<const Regex>(re), SplitBehavior::kIsolated, false});
      st->ignore_merges = named.ignore_merges;
      st->add_bos = named.add_bos;
      st->byte_level = true;

      // Merges refer to tokens by text; they are keyed by id here.
      TokenMap ids;
      ids.reserve(n);
      for (size_t i = 0; i < n; ++i) ids[st->tokens[i].text] = static_cast<TokenId>(i);
      const GgufValue& merges_v = need("tokenizer.ggml.merges");
      MUSE_CHECK(merges_v.type() == GgufType::ARRAY && merges_v.array_type() == GgufType::STRING,
                 "tokenizer.ggml.merges is not an array of strings");
      const std::vector<std::string>& merges = merges_v.as_strings();
      st->merges.reserve(merges.size());
      std::string joined;
      for (size_t r = 0; r < merges.size(); ++r) {
        const std::string& m = merges[r];
        const size_t sp = m.size() > 1 ? m.find(' ', 1) : std::string::npos;
        MUSE_CHECK(sp != std::string::npos && sp + 1 < m.size(), "tokenizer.ggml.merges[", r, "] '",
                   m, "' is not two tokens separated by a space");
        const std::string_view left(m.data(), sp), right(m.data() + sp + 1, m.size() - sp - 1);
        joined.assign(left);
        joined += right;
        const auto l = ids.find(left), rr = ids.find(right), res = ids.find(joined);
        MUSE_CHECK(l != ids.end() && rr != ids.end() && res != ids.end(), "tokenizer.ggml.merges[",
                   r, "] '", m, "' refers to a token that is not in the vocabulary");
        // The first (lowest-rank) rule for a pair wins.
        st->merges.emplace(merge_key(l->second, rr->second),
                           MergeResult{static_cast<int32_t>(r), res->second});
      }
    } else {
      st->add_bos = true;
      st->add_space_prefix = true;
    }
    st->pre.name = pre_name;

    auto special = [&](const char* key, TokenId& id) {
      const GgufValue* v = gguf.find(key);
      if (!v) return;
      const int64_t x = v->as_i64();
      MUSE_CHECK(x >= 0 && static_cast<uint64_t>(x) < n, key, " = ", x,
                 " is out of range (vocabulary size ", n, ")");
      id = static_cast<TokenId>(x);
    };
    if (st->kind == TokenizerKind::kSpm) {  // SentencePiece's defaults
      st->unk = 0;
      st->bos = n > 1 ? 1 : kNoToken;
      st->eos = n > 2 ? 2 : kNoToken;
    }
    special("tokenizer.ggml.bos_token_id", st->bos);
    special("tokenizer.ggml.eos_token_id", st->eos);
    special("tokenizer.ggml.eot_token_id", st->eot);
    special("tokenizer.ggml.eom_token_id", st->eom);
    special("tokenizer.ggml.unknown_token_id", st->unk);
    special("tokenizer.ggml.padding_token_id", st->pad);
    special("tokenizer.ggml.seperator_token_id", st->sep);
    for (const char* key : {"tokenizer.ggml.fim_pad_token_id", "tokenizer.ggml.fim_rep_token_id",
                            "tokenizer.ggml.fim_sep_token_id"}) {
      TokenId id = kNoToken;
      special(key, id);
      if (id != kNoToken) st->extra_eog.push_back(id);
    }
    // The default add_bos of a pre-tokenizer applies only where there is a BOS token; an
    // explicit add_bos_token without one is an error (finalize checks).
    if (st->bos == kNoToken) st->add_bos = false;
    st->add_bos = gguf.get_bool_or("tokenizer.ggml.add_bos_token", st->add_bos);
    st->add_eos = gguf.get_bool_or("tokenizer.ggml.add_eos_token", false);
    if (st->kind == TokenizerKind::kSpm)
      st->add_space_prefix = gguf.get_bool_or("tokenizer.ggml.add_space_prefix", true);
    st->strip_leading_space = st->add_space_prefix;
    st->chat_template = gguf.get_string_or("tokenizer.chat_template", "");

    // Phi-3: its special tokens swallow the whitespace after them (Hugging Face's rstrip),
    // which GGUF does not record; the reference applies it by model name.
    const std::string name = lower(gguf.get_string_or("general.name", ""));
    if (name.find("phi-3") != std::string::npos || name.find("phi3") != std::string::npos) {
      for (TokenInfo& t : st->tokens)
        if (t.type == TokenType::kControl || t.type == TokenType::kUserDefined ||
            t.type == TokenType::kUnknown)
          t.rstrip = true;
      for (TokenInfo& t : st->tokens) {
        if (t.text == "</s>") t.rstrip = true;
        if (t.text == "<unk>" || t.text == "<s>" || t.text == "<|endoftext|>") t.rstrip = false;
      }
    }
    finalize_tokenizer_state(*st);
  } catch (const Error& e) {
    const std::string msg = e.what();
    if (msg.rfind(src, 0) == 0) throw;
    throw Error(src + ": " + msg);
  }
  return std::make_unique<Tokenizer>(std::move(st));
}

std::unique_ptr<Tokenizer> load_tokenizer(const std::string& path) {
  namespace fs = std::filesystem;
  std::error_code ec;
  if (fs::is_directory(path, ec)) return load_tokenizer_hf_dir(path);
  MUSE_CHECK(fs::exists(path, ec), path, ": no such file or directory");
  const auto gguf = GgufFile::open(path);
  return load_tokenizer_gguf(*gguf);
}

std::unique_ptr<Tokenizer> load_tokenizer(const Model& model) {
  if (model.gguf() != nullptr) return load_tokenizer_gguf(*model.gguf());
  MUSE_CHECK(!model.hf_dir().empty(), model.path(), ": the model has no tokenizer metadata");
  return load_tokenizer_hf_dir(model.hf_dir());
}

}  // namespace muse::text
