#include "kernels/attention.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "core/fp16.h"
#include "kernels/kernel_table.h"

namespace muse::kernels {

void attention_store_key(void* k_cache, int64_t head_dim, int64_t pos, const float* k, bool f16) {
  const int64_t at = (pos / 16) * head_dim * 16 + pos % 16;
  if (f16) {
    uint16_t* block = static_cast<uint16_t*>(k_cache) + at;
    for (int64_t d = 0; d < head_dim; ++d) block[d * 16] = f32_to_f16(k[d]);
  } else {
    float* block = static_cast<float*>(k_cache) + at;
    for (int64_t d = 0; d < head_dim; ++d) block[d * 16] = k[d];
  }
}

void attention_store_value(void* v_cache, int64_t head_dim, int64_t pos, const float* v, bool f16) {
  if (f16) {
    uint16_t* row = static_cast<uint16_t*>(v_cache) + pos * head_dim;
    for (int64_t d = 0; d < head_dim; ++d) row[d] = f32_to_f16(v[d]);
  } else {
    std::copy(v, v + head_dim, static_cast<float*>(v_cache) + pos * head_dim);
  }
}

namespace {
float element(const void* base, int64_t i, bool f16) {
  return f16 ? f16_to_f32(static_cast<const uint16_t*>(base)[i])
             : static_cast<const float*>(base)[i];
}
}  // namespace

namespace reference {

void attention(const AttnKv& kv, const AttnRow* rows, int n_rows, float scale) {
  const int64_t hd = kv.head_dim;
  std::vector<double> scores;
  std::vector<double> acc(static_cast<size_t>(hd));
  for (int r = 0; r < n_rows; ++r) {
    const AttnRow& row = rows[r];
    std::fill(acc.begin(), acc.end(), 0.0);
    if (row.lo > row.hi) {
      std::fill(row.out, row.out + hd, 0.0f);
      continue;
    }
    scores.resize(static_cast<size_t>(row.hi - row.lo + 1));
    double mx = -std::numeric_limits<double>::infinity();
    for (int32_t p = row.lo; p <= row.hi; ++p) {
      const int64_t kb = (p / 16) * hd * 16 + p % 16;
      float s = 0.0f;
      for (int64_t d = 0; d < hd; ++d) s += row.q[d] * element(kv.k, kb + d * 16, kv.f16);
      scores[static_cast<size_t>(p - row.lo)] = static_cast<double>(s) * scale;
      mx = std::max(mx, scores[static_cast<size_t>(p - row.lo)]);
    }
    double sum = 0;
    for (double& s : scores) {
      s = std::exp(s - mx);
      sum += s;
    }
    for (int32_t p = row.lo; p <= row.hi; ++p) {
      const double w = scores[static_cast<size_t>(p - row.lo)] / sum;
      for (int64_t d = 0; d < hd; ++d)
        acc[static_cast<size_t>(d)] += w * element(kv.v, p * hd + d, kv.f16);
    }
    for (int64_t d = 0; d < hd; ++d) row.out[d] = static_cast<float>(acc[static_cast<size_t>(d)]);
  }
}

}  // namespace reference

void attention(const KernelTable& kernels, const AttnKv& kv, const AttnRow* rows, int n_rows,
               float scale) {
  if (kernels.ops.attention != nullptr && kv.head_dim % 16 == 0 && kv.head_dim <= 256) {
    kernels.ops.attention(kv, rows, n_rows, scale);
  } else {
    reference::attention(kv, rows, n_rows, scale);
  }
}

}  // namespace muse::kernels
