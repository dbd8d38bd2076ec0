// Tokenizer loading from a Hugging Face tokenizer.json (+ tokenizer_config.json).
//
// Supported: a BPE model (byte-level, or character BPE with byte_fallback as in Llama's
// tokenizer.json), added tokens (special -> control, others -> user-defined, with
// lstrip/rstrip), the pre-tokenizers ByteLevel, Split, Digits, Metaspace and Sequence, the
// normalizers Prepend, Replace (literal) and Sequence, and the post-processor's BOS/EOS.
// NFC normalization is accepted and not applied (as in the GGUF path: text is tokenized
// as given). Anything else is reported as unsupported rather than silently ignored.
#include <cctype>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "core/read_file.h"
#include "muse/error.h"
#include "text/tokenizer_impl.h"
#include "text/utf8.h"

namespace muse::text {
namespace {

using nlohmann::json;
namespace fs = std::filesystem;

constexpr int64_t kMaxVocab = int64_t{1} << 26;

json parse_json(std::string_view text, const std::string& what) {
  try {
    return json::parse(text.begin(), text.end());
  } catch (const json::exception& e) {
    throw Error(what + ": invalid JSON: " + e.what());
  }
}

// A regex that matches `literal` exactly (non-alphanumeric ASCII escaped).
std::string escape_regex(std::string_view literal) {
  std::string out;
  for (char c : literal) {
    const auto u = static_cast<unsigned char>(c);
    if (u < 0x80 && !std::isalnum(u)) out += '\\';
    out += c;
  }
  return out;
}

std::string string_field(const json& obj, const char* key, const std::string& what) {
  const auto it = obj.find(key);
  MUSE_CHECK(it != obj.end() && it->is_string(), what, ": '", key, "' must be a string");
  return it->get<std::string>();
}

bool bool_field(const json& obj, const char* key, bool def) {
  const auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) return def;
  MUSE_CHECK(it->is_boolean(), "'", key, "' must be true or false");
  return it->get<bool>();
}

std::string pattern_regex(const json& pattern, const std::string& what) {
  MUSE_CHECK(pattern.is_object(), what, ": pattern must be an object");
  if (pattern.contains("Regex")) return string_field(pattern, "Regex", what);
  if (pattern.contains("String")) return escape_regex(string_field(pattern, "String", what));
  throw Error(what + ": pattern needs 'Regex' or 'String'");
}

SplitBehavior parse_behavior(const std::string& b) {
  if (b == "Isolated") return SplitBehavior::kIsolated;
  if (b == "Removed") return SplitBehavior::kRemoved;
  if (b == "MergedWithPrevious") return SplitBehavior::kMergedWithPrevious;
  if (b == "MergedWithNext") return SplitBehavior::kMergedWithNext;
  if (b == "Contiguous") return SplitBehavior::kContiguous;
  throw Error("unknown split behavior '" + b + "'");
}

struct HfPipeline {
  bool byte_level = false;
  bool prefix_marker = false;  // a space marker is prepended (SentencePiece style)
};

void add_split(TokenizerState& st, const std::string& regex, SplitBehavior behavior, bool invert) {
  st.pre.steps.push_back({std::make_shared<const Regex>(regex), behavior, invert});
}

void parse_normalizer(const json& n, TokenizerState& st, HfPipeline& p) {
  if (n.is_null()) return;
  MUSE_CHECK(n.is_object(), "normalizer must be an object");
  const std::string type = n.value("type", "");
  if (type == "Sequence") {
    const auto it = n.find("normalizers");
    MUSE_CHECK(it != n.end() && it->is_array(), "normalizer Sequence needs 'normalizers'");
    for (const json& sub : *it) parse_normalizer(sub, st, p);
  } else if (type == "Prepend") {
    const std::string prefix = string_field(n, "prepend", "normalizer Prepend");
    st.pre.rewrites.push_back({TextRewrite::Kind::kPrepend, "", prefix, false});
    p.prefix_marker = true;
  } else if (type == "Replace") {
    const auto pat = n.find("pattern");
    MUSE_CHECK(pat != n.end() && pat->is_object() && pat->contains("String"),
               "normalizer Replace: only literal ('String') patterns are supported");
    const std::string from = string_field(*pat, "String", "normalizer Replace");
    MUSE_CHECK(!from.empty(), "normalizer Replace: empty pattern");
    st.pre.rewrites.push_back(
        {TextRewrite::Kind::kReplace, from, string_field(n, "content", "normalizer Replace")});
  } else if (type == "NFC") {
    // Not applied (see the file comment).
  } else {
    throw Error("normalizer '" + type + "' is not supported");
  }
}

void parse_pre_tokenizer(const json& pt, TokenizerState& st, HfPipeline& p) {
  if (pt.is_null()) return;
  MUSE_CHECK(pt.is_object(), "pre_tokenizer must be an object");
  const std::string type = pt.value("type", "");
  if (type == "Sequence") {
    const auto it = pt.find("pretokenizers");
    MUSE_CHECK(it != pt.end() && it->is_array(), "pre_tokenizer Sequence needs 'pretokenizers'");
    for (const json& sub : *it) parse_pre_tokenizer(sub, st, p);
  } else if (type == "ByteLevel") {
    p.byte_level = true;
    st.pre.add_prefix_space = bool_field(pt, "add_prefix_space", false);
    if (bool_field(pt, "use_regex", true))
      add_split(st, kGpt2Pattern, SplitBehavior::kIsolated, false);
  } else if (type == "Split") {
    const auto pat = pt.find("pattern");
    MUSE_CHECK(pat != pt.end(), "pre_tokenizer Split needs 'pattern'");
    add_split(st, pattern_regex(*pat, "pre_tokenizer Split"),
              parse_behavior(pt.value("behavior", "Isolated")), bool_field(pt, "invert", false));
  } else if (type == "Digits") {
    add_split(st, bool_field(pt, "individual_digits", false) ? R"(\p{N})" : R"(\p{N}+)",
              SplitBehavior::kIsolated, false);
  } else if (type == "Metaspace") {
    const std::string marker = pt.value("replacement", std::string("\xE2\x96\x81"));
    MUSE_CHECK(!marker.empty(), "pre_tokenizer Metaspace: empty replacement");
    std::string scheme = pt.value("prepend_scheme", std::string());
    if (scheme.empty()) scheme = bool_field(pt, "add_prefix_space", true) ? "always" : "never";
    MUSE_CHECK(scheme == "always" || scheme == "first" || scheme == "never",
               "pre_tokenizer Metaspace: unknown prepend_scheme '", scheme, "'");
    st.pre.rewrites.push_back({TextRewrite::Kind::kReplace, " ", marker});
    if (scheme != "never") {
      st.pre.rewrites.push_back({TextRewrite::Kind::kPrepend, "", marker, scheme == "first"});
      p.prefix_marker = true;
    }
    if (bool_field(pt, "split", true))
      add_split(st, escape_regex(marker), SplitBehavior::kMergedWithNext, false);
  } else {
    throw Error("pre_tokenizer '" + type + "' is not supported");
  }
}

// Whether the decoder removes the prefix space (Strip decoder or Metaspace).
bool decoder_strips_space(const json& d) {
  if (!d.is_object()) return false;
  const std::string type = d.value("type", "");
  if (type == "Sequence") {
    if (const auto it = d.find("decoders"); it != d.end() && it->is_array())
      for (const json& sub : *it)
        if (decoder_strips_space(sub)) return true;
    return false;
  }
  if (type == "Strip") return d.value("content", std::string()) == " " && d.value("start", 0) > 0;
  if (type == "Metaspace") {
    const std::string scheme = d.value("prepend_scheme", std::string());
    return scheme.empty() ? bool_field(d, "add_prefix_space", true) : scheme != "never";
  }
  return false;
}

bool decoder_is_byte_level(const json& d) {
  if (!d.is_object()) return false;
  if (d.value("type", "") == "ByteLevel") return true;
  if (const auto it = d.find("decoders"); it != d.end() && it->is_array())
    for (const json& sub : *it)
      if (decoder_is_byte_level(sub)) return true;
  return false;
}

// The special token named by tokenizer_config.json (a string or {"content": ...}).
TokenId config_token(const json& cfg, const char* key, const TokenizerState& st) {
  const auto it = cfg.find(key);
  if (it == cfg.end() || it->is_null()) return kNoToken;
  std::string content;
  if (it->is_string())
    content = it->get<std::string>();
  else if (it->is_object())
    content = it->value("content", std::string());
  else
    throw Error(std::string("tokenizer_config.json: '") + key + "' must be a string");
  if (content.empty()) return kNoToken;
  const auto id = st.token_ids.find(content);
  MUSE_CHECK(id != st.token_ids.end(), "tokenizer_config.json: ", key, " '", content,
             "' is not in the vocabulary");
  return id->second;
}

// BOS/EOS that the post-processor's TemplateProcessing puts around a single sequence.
void template_specials(const json& pp, const TokenizerState& st, TokenId& first, TokenId& last) {
  if (!pp.is_object()) return;
  const std::string type = pp.value("type", "");
  if (type == "Sequence") {
    if (const auto it = pp.find("processors"); it != pp.end() && it->is_array())
      for (const json& sub : *it) template_specials(sub, st, first, last);
    return;
  }
  if (type != "TemplateProcessing") return;
  const auto single = pp.find("single");
  if (single == pp.end() || !single->is_array()) return;
  bool seen_sequence = false;
  for (const json& item : *single) {
    if (!item.is_object()) continue;
    if (item.contains("Sequence")) {
      seen_sequence = true;
      continue;
    }
    const auto sp = item.find("SpecialToken");
    if (sp == item.end() || !sp->is_object()) continue;
    const auto id = st.token_ids.find(sp->value("id", std::string()));
    if (id == st.token_ids.end()) continue;
    (seen_sequence ? last : first) = id->second;
  }
}

void build(const json& tok, const json& cfg, const json& gen, TokenizerState& st) {
  MUSE_CHECK(tok.is_object(), "the top level is not an object");
  const auto model_it = tok.find("model");
  MUSE_CHECK(model_it != tok.end() && model_it->is_object(), "no 'model' object");
  const json& model = *model_it;
  const std::string type = model.value("type", std::string("BPE"));
  MUSE_CHECK(type == "BPE", "model type '", type, "' is not supported (BPE is)");
  const auto vocab_it = model.find("vocab");
  MUSE_CHECK(vocab_it != model.end() && vocab_it->is_object(), "model.vocab must be an object");
  const json& vocab = *vocab_it;
  const json added = tok.value("added_tokens", json::array());
  MUSE_CHECK(added.is_array(), "added_tokens must be an array");
  MUSE_CHECK(!model.contains("dropout") || model["dropout"].is_null() ||
                 (model["dropout"].is_number() && model["dropout"].get<double>() == 0.0),
             "BPE dropout is not supported");
  for (const char* key : {"continuing_subword_prefix", "end_of_word_suffix"}) {
    const auto it = model.find(key);
    MUSE_CHECK(
        it == model.end() || it->is_null() || (it->is_string() && it->get<std::string>().empty()),
        "model.", key, " is not supported");
  }

  auto check_id = [](const json& id, const std::string& what) -> int64_t {
    MUSE_CHECK(id.is_number_integer(), what, ": id is not an integer");
    const int64_t v = id.get<int64_t>();
    MUSE_CHECK(v >= 0 && v < kMaxVocab, what, ": id ", v, " is out of range");
    return v;
  };
  int64_t n = 0;
  for (const auto& [text, id] : vocab.items())
    n = std::max(n, check_id(id, "vocab token '" + text + "'") + 1);
  for (const json& a : added) {
    MUSE_CHECK(
        a.is_object() && a.contains("id") && a.contains("content") && a["content"].is_string(),
        "added_tokens entries need 'id' and 'content'");
    n = std::max(n, check_id(a["id"], "added token") + 1);
  }
  MUSE_CHECK(n > 0, "the vocabulary is empty");
  st.tokens.assign(static_cast<size_t>(n), TokenInfo{});
  for (TokenInfo& t : st.tokens) t.type = TokenType::kUnused;  // ids no entry names
  st.byte_fallback = bool_field(model, "byte_fallback", false);
  for (const auto& [text, id] : vocab.items()) {
    TokenInfo& t = st.tokens[static_cast<size_t>(id.get<int64_t>())];
    MUSE_CHECK(t.type == TokenType::kUnused, "vocab id ", id.get<int64_t>(), " is used twice");
    t.text = text;
    const bool is_byte = text.size() == 6 && text.rfind("<0x", 0) == 0 && text[5] == '>';
    t.type = st.byte_fallback && is_byte ? TokenType::kByte : TokenType::kNormal;
  }
  TokenMap model_ids;  // merges may only use the model's own vocabulary
  model_ids.reserve(vocab.size());
  for (const auto& [text, id] : vocab.items())
    model_ids[text] = static_cast<TokenId>(id.get<int64_t>());
  for (const json& a : added) {
    TokenInfo& t = st.tokens[static_cast<size_t>(a["id"].get<int64_t>())];
    t.text = a["content"].get<std::string>();
    t.type = bool_field(a, "special", false) ? TokenType::kControl : TokenType::kUserDefined;
    t.lstrip = bool_field(a, "lstrip", false);
    t.rstrip = bool_field(a, "rstrip", false);
  }

  if (const auto unk = model.find("unk_token"); unk != model.end() && !unk->is_null()) {
    MUSE_CHECK(unk->is_string(), "model.unk_token must be a string");
    const auto it = model_ids.find(unk->get<std::string>());
    MUSE_CHECK(it != model_ids.end(), "model.unk_token '", unk->get<std::string>(),
               "' is not in the vocabulary");
    st.bpe_unk = st.unk = it->second;
    if (st.tokens[static_cast<size_t>(it->second)].type == TokenType::kNormal)
      st.tokens[static_cast<size_t>(it->second)].type = TokenType::kUnknown;
  }

  const auto merges_it = model.find("merges");
  if (merges_it != model.end() && !merges_it->is_null()) {
    MUSE_CHECK(merges_it->is_array(), "model.merges must be an array");
    st.merges.reserve(merges_it->size());
    std::string left, right;
    for (size_t r = 0; r < merges_it->size(); ++r) {
      const json& m = (*merges_it)[r];
      if (m.is_string()) {
        const std::string s = m.get<std::string>();
        const size_t sp = s.size() > 1 ? s.find(' ', 1) : std::string::npos;
        MUSE_CHECK(sp != std::string::npos, "merges[", r, "] '", s, "' is not two tokens");
        left = s.substr(0, sp);
        right = s.substr(sp + 1);
      } else {
        MUSE_CHECK(m.is_array() && m.size() == 2 && m[0].is_string() && m[1].is_string(), "merges[",
                   r, "] is not a pair of strings");
        left = m[0].get<std::string>();
        right = m[1].get<std::string>();
      }
      const auto l = model_ids.find(left), rr = model_ids.find(right),
                 res = model_ids.find(left + right);
      MUSE_CHECK(l != model_ids.end() && rr != model_ids.end() && res != model_ids.end(), "merges[",
                 r, "] '", left, " ", right, "' refers to a token that is not in the vocabulary");
      st.merges.emplace(merge_key(l->second, rr->second),
                        MergeResult{static_cast<int32_t>(r), res->second});
    }
  }
  st.ignore_merges = bool_field(model, "ignore_merges", false);

  HfPipeline p;
  parse_normalizer(tok.value("normalizer", json()), st, p);
  parse_pre_tokenizer(tok.value("pre_tokenizer", json()), st, p);
  const json decoder = tok.value("decoder", json());
  st.byte_level = p.byte_level || decoder_is_byte_level(decoder);
  st.strip_leading_space = decoder_strips_space(decoder);
  st.add_space_prefix = p.prefix_marker;
  st.pre.name = "hf";
  st.kind = TokenizerKind::kBpe;

  // Lookups by text need the maps; finalize rebuilds them after the ids below are set.
  for (size_t i = 0; i < st.tokens.size(); ++i)
    if (!st.tokens[i].text.empty()) st.token_ids[st.tokens[i].text] = static_cast<TokenId>(i);

  MUSE_CHECK(cfg.is_object(), "tokenizer_config.json: the top level is not an object");
  st.bos = config_token(cfg, "bos_token", st);
  st.eos = config_token(cfg, "eos_token", st);
  st.pad = config_token(cfg, "pad_token", st);
  if (const TokenId unk = config_token(cfg, "unk_token", st); unk != kNoToken) st.unk = unk;
  TokenId first = kNoToken, last = kNoToken;
  template_specials(tok.value("post_processor", json()), st, first, last);
  if (first != kNoToken && st.bos == kNoToken) st.bos = first;
  if (last != kNoToken && st.eos == kNoToken) st.eos = last;
  st.add_bos = bool_field(cfg, "add_bos_token", first != kNoToken);
  st.add_eos = bool_field(cfg, "add_eos_token", last != kNoToken);

  if (const auto ct = cfg.find("chat_template"); ct != cfg.end() && !ct->is_null()) {
    if (ct->is_string()) {
      st.chat_template = ct->get<std::string>();
    } else if (ct->is_array()) {  // [{"name": ..., "template": ...}]: the default one
      for (const json& e : *ct)
        if (e.is_object() && e.value("template", json()).is_string() &&
            (st.chat_template.empty() || e.value("name", std::string()) == "default"))
          st.chat_template = e["template"].get<std::string>();
    } else {
      throw Error("tokenizer_config.json: chat_template must be a string or a list");
    }
  }

  if (gen.is_object()) {
    if (const auto e = gen.find("eos_token_id"); e != gen.end()) {
      const json ids = e->is_array() ? *e : json::array({*e});
      for (const json& id : ids)
        if (id.is_number_integer()) {
          const int64_t v = id.get<int64_t>();
          MUSE_CHECK(v >= 0 && v < n, "generation_config.json: eos_token_id ", v,
                     " is out of range");
          st.extra_eog.push_back(static_cast<TokenId>(v));
        }
    }
  }
}

std::unique_ptr<Tokenizer> finish(std::unique_ptr<TokenizerState> st, const std::string& source,
                                  const json& tok, const json& cfg, const json& gen) {
  st->source = source;
  try {
    build(tok, cfg, gen, *st);
    finalize_tokenizer_state(*st);
  } catch (const json::exception& e) {
    throw Error(source + ": " + e.what());
  } catch (const Error& e) {
    const std::string msg = e.what();
    if (msg.rfind(source, 0) == 0) throw;
    throw Error(source + ": " + msg);
  }
  return std::make_unique<Tokenizer>(std::move(st));
}

}  // namespace

std::unique_ptr<Tokenizer> load_tokenizer_hf_json(std::string_view tokenizer_json,
                                                  std::string_view tokenizer_config_json,
                                                  const std::string& source) {
  const json tok = parse_json(tokenizer_json, source);
  const json cfg = tokenizer_config_json.empty()
                       ? json::object()
                       : parse_json(tokenizer_config_json, "tokenizer_config.json");
  return finish(std::make_unique<TokenizerState>(), source, tok, cfg, json());
}

std::unique_ptr<Tokenizer> load_tokenizer_hf_dir(const std::string& dir) {
  const fs::path tok_path = fs::path(dir) / "tokenizer.json";
  std::error_code ec;
  MUSE_CHECK(fs::exists(tok_path, ec), dir, ": no tokenizer.json");
  const json tok = parse_json(read_file(tok_path.string()), tok_path.string());
  json cfg = json::object(), gen;
  if (const fs::path p = fs::path(dir) / "tokenizer_config.json"; fs::exists(p, ec))
    cfg = parse_json(read_file(p.string()), p.string());
  if (const fs::path p = fs::path(dir) / "generation_config.json"; fs::exists(p, ec))
    gen = parse_json(read_file(p.string()), p.string());
  return finish(std::make_unique<TokenizerState>(), tok_path.string(), tok, cfg, gen);
}

}  // namespace muse::text
