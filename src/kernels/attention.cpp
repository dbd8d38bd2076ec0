#include "kernels/attention.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "core/fp16.h"
#include "kernels/kernel_table.h"

namespace muse::kernels {

namespace {

constexpr int64_t kQ8Block = 32;

// Q8_0 block of 16 positions: quants, then scales [hd/32][16].
int64_t q8_block_bytes(int64_t head_dim) {
  return 18 * head_dim;
}
// Where dimension dim of the position in `lane` sits in its block: keys
// [hd/4][16][4], values [4][hd][4].
int64_t q8_key_offset(int64_t dim, int64_t lane) {
  return (dim / 4) * 64 + lane * 4 + dim % 4;
}
int64_t q8_value_offset(int64_t hd, int64_t dim, int64_t lane) {
  return (lane / 4) * hd * 4 + dim * 4 + lane % 4;
}

// Round to nearest, ties to even (as llama.cpp's SIMD quantizers do), without the
// libm call of lround: adding and removing 1.5 x 2^23 leaves the rounded value
// for |x| <= 2^22 (here |x| <= 127). The query of every tile goes through this.
int8_t round_q8(float x, float inv_d) {
  constexpr float kShift = 12582912.0f;
  return static_cast<int8_t>(static_cast<int>((x * inv_d + kShift) - kShift));
}

float q8_scale(const float* x) {
  float amax = 0.0f;
  for (int64_t i = 0; i < kQ8Block; ++i) amax = std::max(amax, std::fabs(x[i]));
  return amax / 127.0f;
}

// Stores x (hd floats) as Q8_0 at position pos; the quant of dimension dim goes
// to offset(dim, lane) of the position's block, plus `bias`.
template <typename Offset>
void store_q8(uint8_t* cache, int64_t hd, int64_t pos, const float* x, int bias, Offset offset) {
  uint8_t* block = cache + (pos / 16) * q8_block_bytes(hd);
  float* scales = reinterpret_cast<float*>(block + 16 * hd);
  const int64_t lane = pos % 16;
  for (int64_t b = 0; b < hd / kQ8Block; ++b) {
    const float* xb = x + b * kQ8Block;
    const float d = q8_scale(xb);
    const float inv = d > 0.0f ? 1.0f / d : 0.0f;
    scales[b * 16 + lane] = d;
    for (int64_t i = 0; i < kQ8Block; ++i)
      block[offset(b * kQ8Block + i, lane)] = static_cast<uint8_t>(round_q8(xb[i], inv) + bias);
  }
}

}  // namespace

bool kv_elems_of(DType kv_type, KvElems& out) {
  switch (kv_type) {
    case DType::F32:
      out = {KvElem::F32, KvElem::F32};
      return true;
    case DType::F16:
      out = {KvElem::F16, KvElem::F16};
      return true;
    case DType::Q8_0:
      out = {KvElem::Q8_0, KvElem::Q8_0};
      return true;
    default:
      return false;
  }
}

namespace {
int64_t cache_bytes(KvElem elem, int64_t head_dim, int64_t n_ctx) {
  switch (elem) {
    case KvElem::F32:
      return n_ctx * head_dim * 4;
    case KvElem::F16:
      return n_ctx * head_dim * 2;
    case KvElem::Q8_0:
      return n_ctx / 16 * q8_block_bytes(head_dim);
  }
  return 0;
}
}  // namespace

int64_t attention_key_bytes(KvElem elem, int64_t head_dim, int64_t n_ctx) {
  return cache_bytes(elem, head_dim, n_ctx);
}

int64_t attention_value_bytes(KvElem elem, int64_t head_dim, int64_t n_ctx) {
  return cache_bytes(elem, head_dim, n_ctx);
}

void attention_store_key(void* k_cache, int64_t head_dim, int64_t pos, const float* k,
                         KvElem elem) {
  const int64_t at = (pos / 16) * head_dim * 16 + pos % 16;
  if (elem == KvElem::Q8_0) {
    store_q8(static_cast<uint8_t*>(k_cache), head_dim, pos, k, 128, q8_key_offset);
  } else if (elem == KvElem::F16) {
    uint16_t* block = static_cast<uint16_t*>(k_cache) + at;
    for (int64_t d = 0; d < head_dim; ++d) block[d * 16] = f32_to_f16(k[d]);
  } else {
    float* block = static_cast<float*>(k_cache) + at;
    for (int64_t d = 0; d < head_dim; ++d) block[d * 16] = k[d];
  }
}

void attention_store_value(void* v_cache, int64_t head_dim, int64_t pos, const float* v,
                           KvElem elem) {
  if (elem == KvElem::Q8_0) {
    store_q8(
        static_cast<uint8_t*>(v_cache), head_dim, pos, v, 0,
        [head_dim](int64_t dim, int64_t lane) { return q8_value_offset(head_dim, dim, lane); });
  } else if (elem == KvElem::F16) {
    uint16_t* row = static_cast<uint16_t*>(v_cache) + pos * head_dim;
    for (int64_t d = 0; d < head_dim; ++d) row[d] = f32_to_f16(v[d]);
  } else {
    std::copy(v, v + head_dim, static_cast<float*>(v_cache) + pos * head_dim);
  }
}

void quantize_query_q8(const float* q, int64_t head_dim, float softmax_scale, QueryQ8& out) {
  for (int64_t b = 0; b < head_dim / kQ8Block; ++b) {
    const float* x = q + b * kQ8Block;
    const float d = q8_scale(x);
    const float inv = d > 0.0f ? 1.0f / d : 0.0f;
    int32_t sum = 0;
    for (int64_t i = 0; i < kQ8Block; ++i) {
      out.q[b * kQ8Block + i] = round_q8(x[i], inv);
      sum += out.q[b * kQ8Block + i];
    }
    out.d[b] = d;
    out.d_scaled[b] = d * softmax_scale;
    out.bias[b] = 128 * sum;
  }
}

namespace {
float element(const void* base, int64_t i, KvElem elem) {
  return elem == KvElem::F16 ? f16_to_f32(static_cast<const uint16_t*>(base)[i])
                             : static_cast<const float*>(base)[i];
}

// Dimension d of the value at position p, dequantized.
float value_at(const AttnKv& kv, int32_t p, int64_t d) {
  const int64_t hd = kv.head_dim;
  if (kv.v_elem != KvElem::Q8_0) return element(kv.v, p * hd + d, kv.v_elem);
  const uint8_t* block = static_cast<const uint8_t*>(kv.v) + (p / 16) * q8_block_bytes(hd);
  const float* scales = reinterpret_cast<const float*>(block + 16 * hd);
  return scales[d / kQ8Block * 16 + p % 16] *
         static_cast<float>(static_cast<int8_t>(block[q8_value_offset(hd, d, p % 16)]));
}

// q . k for position p, in the cache's own arithmetic.
float key_dot(const AttnKv& kv, const float* q, const QueryQ8& q8, int32_t p) {
  const int64_t hd = kv.head_dim;
  if (kv.k_elem == KvElem::Q8_0) {
    const uint8_t* block = static_cast<const uint8_t*>(kv.k) + (p / 16) * q8_block_bytes(hd);
    const float* scales = reinterpret_cast<const float*>(block + 16 * hd);
    float s = 0.0f;
    for (int64_t b = 0; b < hd / kQ8Block; ++b) {
      int32_t dot = 0;
      for (int64_t dim = b * kQ8Block; dim < (b + 1) * kQ8Block; ++dim)
        dot += q8.q[dim] * (block[q8_key_offset(dim, p % 16)] - 128);
      s += static_cast<float>(dot) * q8.d[b] * scales[b * 16 + p % 16];
    }
    return s;
  }
  const int64_t kb = (p / 16) * hd * 16 + p % 16;
  float s = 0.0f;
  for (int64_t d = 0; d < hd; ++d) s += q[d] * element(kv.k, kb + d * 16, kv.k_elem);
  return s;
}
}  // namespace

namespace reference {

void attention(const AttnKv& kv, const AttnRow* rows, int n_rows, float scale) {
  const int64_t hd = kv.head_dim;
  std::vector<double> scores;
  std::vector<double> acc(static_cast<size_t>(hd));
  QueryQ8 q8;
  for (int r = 0; r < n_rows; ++r) {
    const AttnRow& row = rows[r];
    std::fill(acc.begin(), acc.end(), 0.0);
    if (row.lo > row.hi) {
      std::fill(row.out, row.out + hd, 0.0f);
      if (row.lse != nullptr) *row.lse = -std::numeric_limits<float>::infinity();
      continue;
    }
    if (kv.k_elem == KvElem::Q8_0) quantize_query_q8(row.q, hd, 1.0f, q8);
    scores.resize(static_cast<size_t>(row.hi - row.lo + 1));
    double mx = -std::numeric_limits<double>::infinity();
    for (int32_t p = row.lo; p <= row.hi; ++p) {
      scores[static_cast<size_t>(p - row.lo)] =
          static_cast<double>(key_dot(kv, row.q, q8, p)) * scale;
      mx = std::max(mx, scores[static_cast<size_t>(p - row.lo)]);
    }
    double sum = 0;
    for (double& s : scores) {
      s = std::exp(s - mx);
      sum += s;
    }
    if (row.lse != nullptr) *row.lse = static_cast<float>(mx + std::log(sum));
    for (int32_t p = row.lo; p <= row.hi; ++p) {
      const double w = scores[static_cast<size_t>(p - row.lo)] / sum;
      for (int64_t d = 0; d < hd; ++d) acc[static_cast<size_t>(d)] += w * value_at(kv, p, d);
    }
    for (int64_t d = 0; d < hd; ++d) row.out[d] = static_cast<float>(acc[static_cast<size_t>(d)]);
  }
}

}  // namespace reference

void attention_merge(const float* outs, int64_t out_stride, const float* lse, int64_t lse_stride,
                     int n_parts, int64_t head_dim, float* out) {
  float mx = -std::numeric_limits<float>::infinity();
  for (int i = 0; i < n_parts; ++i) mx = std::max(mx, lse[i * lse_stride]);
  std::fill(out, out + head_dim, 0.0f);
  if (mx == -std::numeric_limits<float>::infinity()) return;
  float total = 0.0f;
  for (int i = 0; i < n_parts; ++i) {
    const float l = lse[i * lse_stride];
    if (l == -std::numeric_limits<float>::infinity()) continue;  // empty part: zeros
    const float w = std::exp(l - mx);
    total += w;
    const float* part = outs + i * out_stride;
    for (int64_t d = 0; d < head_dim; ++d) out[d] += w * part[d];
  }
  const float inv = 1.0f / total;  // >= 1: the part with the largest lse has w = 1
  for (int64_t d = 0; d < head_dim; ++d) out[d] *= inv;
}

void attention(const KernelTable& kernels, const AttnKv& kv, const AttnRow* rows, int n_rows,
               float scale) {
  if (kernels.ops.attention != nullptr && kv.head_dim % 16 == 0 && kv.head_dim <= 256) {
    kernels.ops.attention(kv, rows, n_rows, scale);
  } else {
    reference::attention(kv, rows, n_rows, scale);
  }
}

}  // namespace muse::kernels
