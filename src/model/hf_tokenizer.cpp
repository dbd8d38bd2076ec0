#include "model/hf_tokenizer.h"

#include <filesystem>
#include <nlohmann/json.hpp>

#include "model/model.h"
#include "muse/error.h"

namespace muse {
namespace fs = std::filesystem;
namespace {

// llama.cpp token types.
constexpr int32_t kNormal = 1, kControl = 3, kUserDefined = 4, kUnused = 5;

void collect_patterns(const nlohmann::json& pre, std::string& out) {
  if (!pre.is_object()) return;
  if (pre.value("type", "") == "Split") {
    if (auto p = pre.find("pattern"); p != pre.end() && p->is_object())
      out += p->value("Regex", p->value("String", ""));
  }
  if (auto seq = pre.find("pretokenizers"); seq != pre.end() && seq->is_array())
    for (const auto& sub : *seq) collect_patterns(sub, out);
}

std::optional<int64_t> token_id(const nlohmann::json& vocab, const nlohmann::json& added,
                                const nlohmann::json& cfg, const char* key) {
  auto it = cfg.find(key);
  if (it == cfg.end()) return std::nullopt;
  std::string content;
  if (it->is_string()) content = it->get<std::string>();
  else if (it->is_object()) content = it->value("content", "");
  if (content.empty()) return std::nullopt;
  for (const auto& a : added)
    if (a.value("content", "") == content) return a.value("id", int64_t{-1});
  if (auto v = vocab.find(content); v != vocab.end() && v->is_number_integer())
    return v->get<int64_t>();
  return std::nullopt;
}

}  // namespace

std::string detect_bpe_pre_tokenizer(const std::string& pat, const std::string& arch) {
  if (!pat.empty()) {
    const bool digits3 = pat.find("\\p{N}{1,3}") != std::string::npos;
    const bool ci_contractions = pat.find("(?i:'s|'t|'re|'ve|'m|'ll|'d)") != std::string::npos;
    if (digits3 && ci_contractions) return "llama-bpe";
    if (ci_contractions && pat.find("\\p{N}|") != std::string::npos) return "qwen2";
  }
  if (arch == "qwen2" || arch == "qwen3") return "qwen2";
  if (arch == "llama") return "llama-bpe";
  return "default";
}

void add_hf_tokenizer_metadata(const std::string& dir, const ModelConfig& c, GgufWriter& w) {
  const fs::path tok_path = fs::path(dir) / "tokenizer.json";
  if (!fs::exists(tok_path)) return;
  const nlohmann::json tok = read_json_file(tok_path.string());
  const fs::path cfg_path = fs::path(dir) / "tokenizer_config.json";
  const nlohmann::json cfg = fs::exists(cfg_path) ? read_json_file(cfg_path.string()) : nlohmann::json::object();
  MUSE_CHECK(tok.is_object() && tok.contains("model") && tok["model"].is_object(),
             tok_path.string(), ": no tokenizer model");
  const auto& model = tok["model"];
  const std::string type = model.value("type", "");
  MUSE_CHECK(model.contains("vocab") && model["vocab"].is_object(), tok_path.string(),
             ": only tokenizers with a vocab object (BPE) are supported, got '", type, "'");
  MUSE_CHECK(type == "BPE", tok_path.string(), ": tokenizer type '", type, "' is not supported yet");
  const auto& vocab = model["vocab"];
  const nlohmann::json added = tok.value("added_tokens", nlohmann::json::array());

  int64_t n = c.n_vocab;
  for (const auto& [text, id] : vocab.items()) {
    MUSE_CHECK(id.is_number_integer() && id.get<int64_t>() >= 0, tok_path.string(),
               ": bad id for token '", text, "'");
    n = std::max(n, id.get<int64_t>() + 1);
  }
  for (const auto& a : added) n = std::max(n, a.value("id", int64_t{0}) + 1);
  MUSE_CHECK(n <= (int64_t{1} << 24), tok_path.string(), ": vocabulary too large");
  std::vector<std::string> tokens(static_cast<size_t>(n));
  std::vector<int32_t> types(static_cast<size_t>(n), kUnused);
  for (const auto& [text, id] : vocab.items()) {
    tokens[static_cast<size_t>(id.get<int64_t>())] = text;
    types[static_cast<size_t>(id.get<int64_t>())] = kNormal;
  }
  for (const auto& a : added) {
    const auto id = static_cast<size_t>(a.value("id", int64_t{0}));
    tokens[id] = a.value("content", "");
    types[id] = a.value("special", false) ? kControl : kUserDefined;
  }
  for (size_t i = 0; i < tokens.size(); ++i)
    if (types[i] == kUnused) tokens[i] = "[PAD" + std::to_string(i) + "]";

  std::vector<std::string> merges;
  if (auto m = model.find("merges"); m != model.end() && m->is_array()) {
    for (const auto& e : *m) {
      if (e.is_string()) merges.push_back(e.get<std::string>());
      else if (e.is_array() && e.size() == 2) merges.push_back(e[0].get<std::string>() + " " + e[1].get<std::string>());
      else throw Error(tok_path.string() + ": malformed merge entry");
    }
  }
  std::string pattern;
  if (tok.contains("pre_tokenizer")) collect_patterns(tok["pre_tokenizer"], pattern);

  w.set("tokenizer.ggml.model", GgufValue::string("gpt2"));
  w.set("tokenizer.ggml.pre", GgufValue::string(detect_bpe_pre_tokenizer(pattern, c.arch)));
  w.set("tokenizer.ggml.tokens", GgufValue::string_array(std::move(tokens)));
  w.set("tokenizer.ggml.token_type", GgufValue::i32_array(types));
  w.set("tokenizer.ggml.merges", GgufValue::string_array(std::move(merges)));
  if (auto id = token_id(vocab, added, cfg, "bos_token"))
    w.set("tokenizer.ggml.bos_token_id", GgufValue::u32(static_cast<uint32_t>(*id)));
  if (auto id = token_id(vocab, added, cfg, "eos_token"))
    w.set("tokenizer.ggml.eos_token_id", GgufValue::u32(static_cast<uint32_t>(*id)));
  if (auto id = token_id(vocab, added, cfg, "pad_token"))
    w.set("tokenizer.ggml.padding_token_id", GgufValue::u32(static_cast<uint32_t>(*id)));
  if (auto id = token_id(vocab, added, cfg, "unk_token"))
    w.set("tokenizer.ggml.unknown_token_id", GgufValue::u32(static_cast<uint32_t>(*id)));
  if (auto b = cfg.find("add_bos_token"); b != cfg.end() && b->is_boolean())
    w.set("tokenizer.ggml.add_bos_token", GgufValue::boolean(b->get<bool>()));
  if (auto t = cfg.find("chat_template"); t != cfg.end() && t->is_string())
    w.set("tokenizer.chat_template", GgufValue::string(t->get<std::string>()));
}

}  // namespace muse
