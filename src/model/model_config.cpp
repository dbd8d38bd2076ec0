#include "model/model_config.h"

#include <cmath>

#include "muse/error.h"

namespace muse {

float ModelConfig::softmax_scale() const {
  return attn_scale > 0 ? attn_scale : 1.0f / std::sqrt(static_cast<float>(head_dim));
}

void ModelConfig::validate() const {
  constexpr int64_t kMax = int64_t{1} << 24;
  auto in_range = [&](int64_t v, const char* what, int64_t lo = 1) {
    MUSE_CHECK(v >= lo && v <= kMax, arch, ": ", what, " = ", v, " is out of range");
  };
  in_range(n_vocab, "vocabulary size");
  in_range(n_embd, "embedding length");
  in_range(n_layer, "block count");
  in_range(n_head, "head count");
  in_range(n_head_kv, "KV head count");
  in_range(head_dim, "head dimension");
  in_range(n_ff, "feed-forward length");
  MUSE_CHECK(n_head % n_head_kv == 0, arch, ": head count ", n_head,
             " is not a multiple of the KV head count ", n_head_kv);
  MUSE_CHECK(head_dim % 2 == 0, arch, ": head dimension ", head_dim, " is odd");
  MUSE_CHECK(rope_dim > 0 && rope_dim <= head_dim && rope_dim % 2 == 0, arch,
             ": rope dimension ", rope_dim, " is invalid for head dimension ", head_dim);
  MUSE_CHECK(static_cast<int64_t>(layers.size()) == n_layer, arch, ": ", layers.size(),
             " layer descriptions for ", n_layer, " layers");
  MUSE_CHECK(rope_freq_factors.empty() ||
                 static_cast<int64_t>(rope_freq_factors.size()) == rope_dim / 2,
             arch, ": rope frequency factors have ", rope_freq_factors.size(),
             " entries, expected ", rope_dim / 2);
  for (float f : rope_freq_factors)
    MUSE_CHECK(std::isfinite(f) && f > 0, arch, ": rope frequency factor ", f, " is invalid");
  for (const auto& l : layers) {
    if (l.use_rope)
      MUSE_CHECK(std::isfinite(l.rope_base) && l.rope_base > 1.0f, arch, ": rope base ",
                 l.rope_base, " is invalid");
    if (l.sliding) MUSE_CHECK(sliding_window > 0, arch, ": sliding layer without a window size");
  }
  MUSE_CHECK(std::isfinite(norm_eps) && norm_eps >= 0, arch, ": invalid norm epsilon");
  if (!mrope_sections.empty()) {
    int64_t sum = 0;
    for (int64_t s : mrope_sections) {
      MUSE_CHECK(s >= 0 && s <= rope_dim, arch, ": M-RoPE section ", s, " is invalid");
      sum += s;
    }
    MUSE_CHECK(mrope_sections.size() == 3 && sum == rope_dim / 2, arch,
               ": M-RoPE sections must be three counts of frequency pairs summing to ",
               rope_dim / 2);
  }
}

std::vector<float> rope_inv_freq(const ModelConfig& c, const LayerConfig& layer) {
  const int64_t half = c.rope_dim / 2;
  std::vector<float> f(static_cast<size_t>(half));
  for (int64_t i = 0; i < half; ++i) {
    double v = std::pow(static_cast<double>(layer.rope_base),
                        -2.0 * static_cast<double>(i) / static_cast<double>(c.rope_dim));
    if (!c.rope_freq_factors.empty()) v /= c.rope_freq_factors[static_cast<size_t>(i)];
    v *= layer.rope_freq_scale;
    f[static_cast<size_t>(i)] = static_cast<float>(v);
  }
  return f;
}

std::vector<float> llama3_rope_factors(int64_t rope_dim, float base, float factor,
                                       float low_freq_factor, float high_freq_factor,
                                       float original_max_positions) {
  const double low_wavelen = original_max_positions / low_freq_factor;
  const double high_wavelen = original_max_positions / high_freq_factor;
  std::vector<float> out;
  for (int64_t i = 0; i < rope_dim; i += 2) {
    const double freq = 1.0 / std::pow(static_cast<double>(base), static_cast<double>(i) / rope_dim);
    const double wavelen = 2 * M_PI / freq;
    double f;
    if (wavelen < high_wavelen) {
      f = 1.0;
    } else if (wavelen > low_wavelen) {
      f = factor;
    } else {
      const double smooth = (original_max_positions / wavelen - low_freq_factor) /
                            (high_freq_factor - low_freq_factor);
      f = 1.0 / ((1 - smooth) / factor + smooth);
    }
    out.push_back(static_cast<float>(f));
  }
  return out;
}

}  // namespace muse
