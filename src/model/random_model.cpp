#include "model/random_model.h"

#include <algorithm>
#include <random>

#include "model/arch.h"
#include "model/gguf.h"
#include "muse/error.h"

namespace muse {

namespace {

// The spec's added specials that `vocab` lacks, each once, in the spec's order.
std::vector<std::string> specials_to_append(const std::vector<std::string>& vocab,
                                            const RandomModelSpec& spec) {
  std::vector<std::string> out;
  for (const auto& t : spec.add_special) {
    MUSE_CHECK(!t.empty(), "an added special token must not be empty");
    if (std::find(vocab.begin(), vocab.end(), t) == vocab.end() &&
        std::find(out.begin(), out.end(), t) == out.end())
      out.push_back(t);
  }
  return out;
}

// Number of tokens the copied vocabulary will hold before padding.
int64_t copied_vocabulary_size(const RandomModelSpec& spec) {
  auto f = GgufFile::open(spec.vocab_gguf);
  const GgufValue* tokens = f->find("tokenizer.ggml.tokens");
  MUSE_CHECK(tokens && tokens->array_type() == GgufType::STRING, spec.vocab_gguf,
             ": no tokenizer.ggml.tokens string array");
  return static_cast<int64_t>(tokens->array_size() +
                              specials_to_append(tokens->as_strings(), spec).size());
}

int32_t token_id_of(const std::vector<std::string>& tokens, const std::string& text,
                    const char* what) {
  auto it = std::find(tokens.begin(), tokens.end(), text);
  MUSE_CHECK(it != tokens.end(), "the ", what, " token '", text,
             "' is not in the vocabulary (add it with --add-special)");
  return static_cast<int32_t>(it - tokens.begin());
}

// Copies tokenizer.* metadata, appends the added specials (control tokens) and pads the
// token list with unused "[PADn]" tokens up to n_vocab.
void copy_vocabulary(const RandomModelSpec& spec, int64_t n_vocab, GgufWriter& w) {
  const std::string& path = spec.vocab_gguf;
  auto f = GgufFile::open(path);
  const GgufValue* tokens_v = f->find("tokenizer.ggml.tokens");
  MUSE_CHECK(tokens_v && tokens_v->array_type() == GgufType::STRING, path,
             ": no tokenizer.ggml.tokens string array");
  std::vector<std::string> tokens = tokens_v->as_strings();
  const auto n_copied = static_cast<int64_t>(tokens.size());
  for (auto& t : specials_to_append(tokens, spec)) tokens.push_back(std::move(t));
  const auto n = static_cast<int64_t>(tokens.size());
  MUSE_CHECK(n <= n_vocab, path, ": vocabulary of ", n, " tokens is larger than the model's ",
             n_vocab);
  for (int64_t i = n; i < n_vocab; ++i) tokens.push_back("[PAD" + std::to_string(i) + "]");

  // Types: the copied ones (normal where the file has none), control for the added
  // specials, unused for the padding.
  std::vector<int32_t> types(static_cast<size_t>(n_copied), 1);
  if (const GgufValue* v = f->find("tokenizer.ggml.token_type")) {
    const auto ints = v->as_ints();
    MUSE_CHECK(static_cast<int64_t>(ints.size()) == n_copied, path,
               ": tokenizer.ggml.token_type does not match the token count");
    for (size_t i = 0; i < ints.size(); ++i) types[i] = static_cast<int32_t>(ints[i]);
  }
  types.resize(static_cast<size_t>(n), 3);
  types.resize(static_cast<size_t>(n_vocab), 5);

  for (const auto& key : f->key_order()) {
    if (key.rfind("tokenizer.", 0) != 0) continue;
    const GgufValue& v = f->metadata().at(key);
    if (key == "tokenizer.ggml.tokens" || key == "tokenizer.ggml.token_type") {
      continue;  // written below
    } else if (key == "tokenizer.ggml.scores") {
      std::vector<float> t;
      for (auto x : v.as_floats()) t.push_back(static_cast<float>(x));
      t.resize(static_cast<size_t>(n_vocab), 0.0f);
      w.set(key, GgufValue::f32_array(t));
    } else {
      w.set(key, v);
    }
  }
  if (!spec.bos_token.empty())
    w.set("tokenizer.ggml.bos_token_id",
          GgufValue::u32(static_cast<uint32_t>(token_id_of(tokens, spec.bos_token, "BOS"))));
  if (!spec.eos_token.empty()) {
    const auto eos = static_cast<uint32_t>(token_id_of(tokens, spec.eos_token, "EOS"));
    w.set("tokenizer.ggml.eos_token_id", GgufValue::u32(eos));
    w.set("tokenizer.ggml.eot_token_id", GgufValue::u32(eos));
  }
  w.set("tokenizer.ggml.tokens", GgufValue::string_array(std::move(tokens)));
  w.set("tokenizer.ggml.token_type", GgufValue::i32_array(types));
}

}  // namespace

ModelConfig random_model_config(const RandomModelSpec& spec) {
  const ArchSpec* arch = find_arch_by_gguf(spec.arch);
  MUSE_CHECK(arch, "unknown architecture '", spec.arch, "'");
  ModelConfig c;
  c.arch = spec.arch;
  const bool tiny = spec.size == "tiny" || spec.size == "tiny-mm";
  if (spec.size == "tiny") {
    // Widths are multiples of 256 so every k-quant type applies without fallback.
    c.n_vocab = 512; c.n_embd = 256; c.n_layer = 2; c.n_head = 4; c.n_head_kv = 2;
    c.n_ff = 512; c.head_dim = 64;
  } else if (spec.size == "tiny-mm") {
    // The width of the golden multimodal checkpoints' encoder outputs (128), so a test
    // model pairs with their mmproj. Widths are multiples of 32 (the 32-block types).
    c.n_vocab = 512; c.n_embd = 128; c.n_layer = 2; c.n_head = 4; c.n_head_kv = 2;
    c.n_ff = 256; c.head_dim = 32;
  } else if (spec.size == "qwen2.5-0.5b") {
    c.n_vocab = 151936; c.n_embd = 896; c.n_layer = 24; c.n_head = 14; c.n_head_kv = 2;
    c.n_ff = 4864; c.head_dim = 64;
  } else if (spec.size == "gemma3-1b") {
    // Gemma 3 1B: one KV head, so a decoding step has one attention job per
    // layer (how the decoder splits a long context over threads is measured on it).
    c.n_vocab = 262144; c.n_embd = 1152; c.n_layer = 26; c.n_head = 4; c.n_head_kv = 1;
    c.n_ff = 6912; c.head_dim = 256;
  } else {
    throw Error(str_cat("unknown model size '", spec.size,
                        "' (expected tiny, tiny-mm, qwen2.5-0.5b or gemma3-1b)"));
  }
  if (!spec.vocab_gguf.empty()) {
    const int64_t n = copied_vocabulary_size(spec);
    if (tiny) c.n_vocab = std::max<int64_t>(c.n_vocab, (n + 63) / 64 * 64);
  } else {
    MUSE_CHECK(spec.add_special.empty() && spec.bos_token.empty() && spec.eos_token.empty(),
               "added special tokens and BOS/EOS choices need a vocabulary (--vocab)");
  }
  c.n_ctx_train = 32768;
  c.rope_dim = c.head_dim;
  c.norm_eps = 1e-6f;
  c.tied_embeddings = true;
  c.qkv_bias = spec.arch == "qwen2" || spec.arch == "qwen2vl";
  c.qk_norm = spec.arch == "qwen3" || spec.arch == "gemma3";
  c.rope_layout = spec.arch == "llama" ? RopeLayout::Interleaved : RopeLayout::Neox;
  c.layers.assign(static_cast<size_t>(c.n_layer), LayerConfig{false, true, 1000000.0f});
  if (spec.arch == "qwen2vl") {
    // M-RoPE: the rotary pairs split t/h/w in Qwen2.5's proportions (16/24/24 of 64).
    const int64_t pairs = c.head_dim / 2, t = pairs / 4;
    c.mrope_sections = {t, (pairs - t) / 2, pairs - t - (pairs - t) / 2};
  }
  if (spec.arch == "gemma3" || spec.arch == "muse-glimmer") {
    c.sliding_window = 512;
    for (int64_t i = 0; i < c.n_layer; ++i) c.layers[static_cast<size_t>(i)].sliding = (i + 1) % 6 != 0;
    c.post_attn_norm = c.post_ffn_norm = true;
  }
  if (spec.arch == "muse-glimmer") {
    // As in Muse Glimmer, the global layer uses no rotary positions (NoPE); "tiny-mm"
    // makes its last layer global so both kinds of layer are exercised.
    if (spec.size == "tiny-mm") {
      c.layers.back().sliding = false;
      c.layers.back().use_rope = false;
    }
    c.qk_norm_unweighted = true;
    c.attn_output_gate = true;
    c.qk_norm_scale = 4.0f;
  }
  c.validate();
  return c;
}

void write_random_model(const RandomModelSpec& spec, const QuantTarget& target,
                        const std::string& out) {
  const ModelConfig c = random_model_config(spec);
  const ArchSpec& arch = *find_arch_by_gguf(spec.arch);
  GgufWriter w;
  arch.to_gguf(c, w);
  w.set("general.name", GgufValue::string("random " + spec.arch + " " + spec.size));
  w.set("general.file_type", GgufValue::u32(llama_file_type(target)));
  w.set("general.quantization_version", GgufValue::u32(2));
  if (!spec.vocab_gguf.empty()) copy_vocabulary(spec, c.n_vocab, w);
  if (!spec.chat_template.empty())
    w.set("tokenizer.chat_template", GgufValue::string(spec.chat_template));
  std::mt19937_64 rng(spec.seed);
  std::normal_distribution<float> normal(0.0f, 0.02f);
  for (const auto& ts : arch.tensors) {
    if (ts.required && !ts.required(c)) continue;
    const int64_t n_layers = ts.layer_member ? c.n_layer : 1;
    for (int64_t l = 0; l < n_layers; ++l) {
      const std::string name = layer_name(ts.gguf_name, l);
      const std::vector<int64_t> ne = tensor_shape(ts, c);
      const bool is_norm = is_vector_role(ts) && ts.layer_member != &LayerWeights::bq &&
                           ts.layer_member != &LayerWeights::bk && ts.layer_member != &LayerWeights::bv;
      int64_t n = 1;
      for (auto d : ne) n *= d;
      std::vector<float> data(static_cast<size_t>(n));
      for (auto& v : data) v = is_norm ? 1.0f : normal(rng);
      TensorView view;
      view.type = DType::F32;
      view.n_dims = static_cast<int>(ne.size());
      for (size_t i = 0; i < ne.size(); ++i) view.ne[i] = ne[i];
      view.data = data.data();
      view.nbytes = data.size() * 4;
      const DType type = tensor_type_for(target, name, view.n_dims, ne[0], c.n_layer, c.tied_embeddings);
      auto bytes = convert_tensor(view, type);
      w.add_tensor(name, type, ne, bytes.data(), bytes.size());
    }
  }
  w.write(out);
}

}  // namespace muse
