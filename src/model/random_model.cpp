#include "model/random_model.h"

#include <algorithm>
#include <random>

#include "model/arch.h"
#include "model/gguf.h"
#include "muse/error.h"

namespace muse {

namespace {

void copy_vocabulary(const std::string& path, int64_t n_vocab, GgufWriter& w) {
  auto f = GgufFile::open(path);
  const GgufValue* tokens = f->find("tokenizer.ggml.tokens");
  MUSE_CHECK(tokens, path, ": no tokenizer.ggml.tokens");
  const int64_t n = static_cast<int64_t>(tokens->array_size());
  MUSE_CHECK(n <= n_vocab, path, ": vocabulary of ", n, " tokens is larger than the model's ", n_vocab);
  for (const auto& key : f->key_order()) {
    if (key.rfind("tokenizer.", 0) != 0) continue;
    const GgufValue& v = f->metadata().at(key);
    if (key == "tokenizer.ggml.tokens") {
      auto t = v.as_strings();
      for (int64_t i = n; i < n_vocab; ++i) t.push_back("[PAD" + std::to_string(i) + "]");
      w.set(key, GgufValue::string_array(std::move(t)));
    } else if (key == "tokenizer.ggml.token_type") {
      std::vector<int32_t> t;
      for (auto x : v.as_ints()) t.push_back(static_cast<int32_t>(x));
      t.resize(static_cast<size_t>(n_vocab), 5);  // unused
      w.set(key, GgufValue::i32_array(t));
    } else if (key == "tokenizer.ggml.scores") {
      std::vector<float> t;
      for (auto x : v.as_floats()) t.push_back(static_cast<float>(x));
      t.resize(static_cast<size_t>(n_vocab), 0.0f);
      w.set(key, GgufValue::f32_array(t));
    } else {
      w.set(key, v);
    }
  }
}

}  // namespace

ModelConfig random_model_config(const RandomModelSpec& spec) {
  const ArchSpec* arch = find_arch_by_gguf(spec.arch);
  MUSE_CHECK(arch, "unknown architecture '", spec.arch, "'");
  ModelConfig c;
  c.arch = spec.arch;
  if (spec.size == "tiny") {
    // Widths are multiples of 256 so every k-quant type applies without fallback.
    c.n_vocab = 512; c.n_embd = 256; c.n_layer = 2; c.n_head = 4; c.n_head_kv = 2;
    c.n_ff = 512; c.head_dim = 64;
  } else if (spec.size == "qwen2.5-0.5b") {
    c.n_vocab = 151936; c.n_embd = 896; c.n_layer = 24; c.n_head = 14; c.n_head_kv = 2;
    c.n_ff = 4864; c.head_dim = 64;
  } else {
    throw Error(str_cat("unknown model size '", spec.size, "' (expected tiny or qwen2.5-0.5b)"));
  }
  if (!spec.vocab_gguf.empty()) {
    auto f = GgufFile::open(spec.vocab_gguf);
    const GgufValue* tokens = f->find("tokenizer.ggml.tokens");
    MUSE_CHECK(tokens, spec.vocab_gguf, ": no tokenizer.ggml.tokens");
    const auto n = static_cast<int64_t>(tokens->array_size());
    if (spec.size == "tiny") c.n_vocab = std::max<int64_t>(c.n_vocab, (n + 63) / 64 * 64);
  }
  c.n_ctx_train = 32768;
  c.rope_dim = c.head_dim;
  c.norm_eps = 1e-6f;
  c.tied_embeddings = true;
  c.qkv_bias = spec.arch == "qwen2";
  c.qk_norm = spec.arch == "qwen3" || spec.arch == "gemma3";
  c.rope_layout = spec.arch == "llama" ? RopeLayout::Interleaved : RopeLayout::Neox;
  c.layers.assign(static_cast<size_t>(c.n_layer), LayerConfig{false, true, 1000000.0f});
  if (spec.arch == "gemma3" || spec.arch == "muse-glimmer") {
    c.sliding_window = 512;
    for (int64_t i = 0; i < c.n_layer; ++i) c.layers[static_cast<size_t>(i)].sliding = (i + 1) % 6 != 0;
    c.post_attn_norm = c.post_ffn_norm = true;
  }
  if (spec.arch == "muse-glimmer") {
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
  if (!spec.vocab_gguf.empty()) copy_vocabulary(spec.vocab_gguf, c.n_vocab, w);
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
