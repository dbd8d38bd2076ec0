// The flash-style attention kernels (kernels/attention.h) against the scalar
// reference (double-precision softmax over the full score row) on every ISA this
// CPU runs: head sizes, tile sizes (1..9 rows), visible ranges that start and end
// inside and across the 16- and 64-position blocks (causal and sliding windows),
// empty ranges; plus a hand-computed case. Also the SIMD row ops (ops.h) against
// their scalar versions, and the table-driven rotary embedding.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "common/compare.h"
#include "kernels/attention.h"
#include "kernels/cpu_features.h"
#include "kernels/kernel_table.h"
#include "kernels/ops.h"

namespace muse::kernels {
namespace {

using test::max_abs_diff;

std::vector<Isa> supported_isas() {
  std::vector<Isa> isas;
  for (Isa isa : {Isa::Scalar, Isa::Avx2, Isa::Avx512, Isa::Neon})
    if (isa_supported(isa)) isas.push_back(isa);
  return isas;
}

std::vector<float> random_values(size_t n, uint32_t seed, float scale = 1.0f) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.0f, scale);
  std::vector<float> v(n);
  for (auto& x : v) x = normal(rng);
  return v;
}

// A cache of n_ctx positions in the kernel layout, filled from row-major keys and
// values; slots past the end hold huge garbage that must stay masked.
struct Cache {
  int64_t hd, n_ctx;
  KvElem k_elem, v_elem;
  std::vector<float> keys, values;  // what was stored, row-major
  std::vector<uint8_t> k, v;
  Cache(int64_t head_dim, int64_t ctx, uint32_t seed, KvElem ke, KvElem ve)
      : hd(head_dim), n_ctx((ctx + 15) / 16 * 16), k_elem(ke), v_elem(ve) {
    keys = random_values(static_cast<size_t>(n_ctx * hd), seed, 1.5f);
    values = random_values(static_cast<size_t>(n_ctx * hd), seed + 1);
    // 0x7b: 6.5e4 as f16, 1.3e36 as f32, -5 x a 1.3e36 scale as Q8_0.
    k.assign(static_cast<size_t>(attention_key_bytes(k_elem, hd, n_ctx)), 0x7b);
    v.assign(static_cast<size_t>(attention_value_bytes(v_elem, hd, n_ctx)), 0);
    for (int64_t p = 0; p < ctx; ++p) {
      attention_store_key(k.data(), hd, p, &keys[p * hd], k_elem);
      attention_store_value(v.data(), hd, p, &values[p * hd], v_elem);
    }
  }
  AttnKv view() const { return {k.data(), v.data(), hd, k_elem, v_elem}; }
};

// x rounded by the Q8_0 rule (d = max|x| / 127 per 32, ties to even) and
// dequantized.
std::vector<float> q8_rounded(std::vector<float> x) {
  for (size_t b = 0; b < x.size(); b += 32) {
    float amax = 0;
    for (size_t i = b; i < b + 32; ++i) amax = std::max(amax, std::fabs(x[i]));
    const float d = amax / 127;
    for (size_t i = b; i < b + 32; ++i) x[i] = d > 0 ? d * std::nearbyint(x[i] * (1.0f / d)) : 0.0f;
  }
  return x;
}

const char* elem_name(KvElem e) {
  return e == KvElem::F32 ? "f32" : e == KvElem::F16 ? "f16" : "q8_0";
}

TEST(Attention, StoreLayout) {
  std::vector<float> cache(2 * 16 * 4, 0.0f);
  const float key[4] = {1, 2, 3, 4};
  attention_store_key(cache.data(), 4, 17, key, KvElem::F32);  // block 1, lane 1
  EXPECT_EQ(cache[64 + 0 * 16 + 1], 1.0f);
  EXPECT_EQ(cache[64 + 3 * 16 + 1], 4.0f);
  std::vector<uint16_t> half(2 * 16 * 4, 0);
  attention_store_key(half.data(), 4, 17, key, KvElem::F16);
  EXPECT_EQ(half[64 + 3 * 16 + 1], 0x4400);  // 4.0 in f16
  attention_store_value(half.data(), 4, 2, key, KvElem::F16);
  EXPECT_EQ(half[2 * 4 + 1], 0x4000);  // 2.0
}

// Q8_0 keys: block 1 (position 17 = lane 1) starts at 18 * hd bytes; dimension d
// sits at group d / 4, byte d % 4, biased by 128; the scale max|k| / 127 follows
// the 16 * hd quant bytes.
TEST(Attention, StoreLayoutQ8) {
  const int64_t hd = 32;
  std::vector<float> key(hd, 0.0f);
  key[0] = 2.54f;    // the block's max: quantizes to 127, scale 0.02
  key[5] = -1.0f;    // -50
  key[31] = 0.031f;  // 1.55: 2
  std::vector<uint8_t> cache(static_cast<size_t>(attention_key_bytes(KvElem::Q8_0, hd, 32)), 0);
  ASSERT_EQ(cache.size(), static_cast<size_t>(2 * 18 * hd));
  attention_store_key(cache.data(), hd, 17, key.data(), KvElem::Q8_0);
  const uint8_t* block = cache.data() + 18 * hd;
  EXPECT_EQ(block[0 * 64 + 1 * 4 + 0], 128 + 127);
  EXPECT_EQ(block[1 * 64 + 1 * 4 + 1], 128 - 50);
  EXPECT_EQ(block[7 * 64 + 1 * 4 + 3], 128 + 2);
  EXPECT_EQ(block[2 * 64 + 1 * 4 + 2], 128);
  float scale;
  std::memcpy(&scale, block + 16 * hd + 1 * 4, 4);
  EXPECT_FLOAT_EQ(scale, 2.54f / 127);
  EXPECT_EQ(block[0 * 64 + 0 * 4 + 0], 0);  // lane 0 untouched
}

// Q8_0 values: position 18 is lane 2 of block 1, in group 0 (lanes 0-3) at
// byte 2 of each dimension's 4; signed quants, no bias; the scales as for keys.
TEST(Attention, StoreLayoutQ8Values) {
  const int64_t hd = 64;
  std::vector<float> value(hd, 0.0f);
  value[0] = -2.54f;   // block 0 max: -127, scale 0.02
  value[5] = 1.0f;     // 50
  value[40] = 0.5f;    // block 1 max: 127, scale 0.5 / 127
  value[63] = -0.25f;  // -63.5: -64 (ties to even)
  std::vector<uint8_t> cache(static_cast<size_t>(attention_value_bytes(KvElem::Q8_0, hd, 32)), 0);
  ASSERT_EQ(cache.size(), static_cast<size_t>(2 * 18 * hd));
  attention_store_value(cache.data(), hd, 18, value.data(), KvElem::Q8_0);
  const auto* block = reinterpret_cast<const int8_t*>(cache.data() + 18 * hd);
  EXPECT_EQ(block[0 * 4 + 2], -127);
  EXPECT_EQ(block[5 * 4 + 2], 50);
  EXPECT_EQ(block[40 * 4 + 2], 127);
  EXPECT_EQ(block[63 * 4 + 2], -64);
  EXPECT_EQ(block[1 * 4 + 2], 0);
  float scales[2];
  std::memcpy(&scales[0], block + 16 * hd + 2 * 4, 4);
  std::memcpy(&scales[1], block + 16 * hd + (16 + 2) * 4, 4);
  EXPECT_FLOAT_EQ(scales[0], 2.54f / 127);
  EXPECT_FLOAT_EQ(scales[1], 0.5f / 127);
  for (int64_t i = 0; i < 16 * hd; ++i)  // other positions untouched
    if (i % 4 != 2 || i >= 4 * hd) {
      ASSERT_EQ(block[i], 0) << i;
    }
}

// Two positions, one row: weights softmax([1, 3] * 0.5) on values [2, 6].
TEST(Attention, KnownValues) {
  std::vector<float> k(16 * 2, 0.0f), v(16 * 2, 0.0f);
  const float k0[2] = {1, 0}, k1[2] = {3, 0};
  attention_store_key(k.data(), 2, 0, k0, KvElem::F32);
  attention_store_key(k.data(), 2, 1, k1, KvElem::F32);
  v[0] = 2;
  v[2] = 6;
  const float q[2] = {1, 5};
  float out[2];
  AttnRow row{q, out, 0, 1};
  reference::attention({k.data(), v.data(), 2, KvElem::F32, KvElem::F32}, &row, 1, 0.5f);
  const double w1 = std::exp(1.5) / (std::exp(0.5) + std::exp(1.5));
  EXPECT_NEAR(out[0], 2 * (1 - w1) + 6 * w1, 1e-6);
  EXPECT_NEAR(out[1], 0.0, 1e-7);
}

struct ElemCase {
  KvElem k, v;
};
constexpr ElemCase kElemCases[] = {
    {KvElem::F32, KvElem::F32},   {KvElem::F16, KvElem::F16},  {KvElem::F32, KvElem::F16},
    {KvElem::F16, KvElem::F32},   {KvElem::Q8_0, KvElem::F16}, {KvElem::Q8_0, KvElem::F32},
    {KvElem::Q8_0, KvElem::Q8_0}, {KvElem::F32, KvElem::Q8_0}, {KvElem::F16, KvElem::Q8_0}};

TEST(Attention, KernelsMatchReference) {
  for (Isa isa : supported_isas()) {
    const KernelTable& kt = kernels_for(isa);
    for (int64_t hd : {16, 32, 64, 128}) {
      for (const ElemCase& ec : kElemCases) {
        if ((ec.k == KvElem::Q8_0 || ec.v == KvElem::Q8_0) && hd % 32 != 0) continue;
        const int64_t ctx = 300;
        // Q8_0 values: the kernels round the weights to 16 bits (attention.h),
        // which moves these outputs by up to ~3e-4.
        const double tol = ec.v == KvElem::Q8_0 ? 1e-3 : 2e-5;
        const Cache cache(hd, ctx, static_cast<uint32_t>(hd), ec.k, ec.v);
        // Visible ranges: causal prefixes ending inside/at block edges, sliding
        // windows, a single position, and empty.
        const std::pair<int32_t, int32_t> ranges[] = {{0, 0},    {0, 15},    {0, 16}, {0, 63},
                                                      {0, 64},   {0, 299},   {5, 40}, {17, 17},
                                                      {70, 210}, {250, 299}, {9, 8}};
        for (int n_rows = 1; n_rows <= 9; ++n_rows) {
          const std::vector<float> q = random_values(static_cast<size_t>(n_rows * hd), 7 + n_rows);
          for (size_t ri = 0; ri < std::size(ranges); ++ri) {
            std::vector<float> out(static_cast<size_t>(n_rows * hd), -7.0f), ref(out.size());
            std::vector<float> lse(static_cast<size_t>(n_rows), -7.0f), ref_lse(lse.size());
            std::vector<AttnRow> rows, ref_rows;
            for (int r = 0; r < n_rows; ++r) {
              // Rows of one tile may see different ranges (tokens of one sequence).
              const auto [lo, hi] = ranges[(ri + static_cast<size_t>(r % 2)) % std::size(ranges)];
              rows.push_back({&q[r * hd], &out[r * hd], lo, hi, &lse[r]});
              ref_rows.push_back({&q[r * hd], &ref[r * hd], lo, hi, &ref_lse[r]});
            }
            reference::attention(cache.view(), ref_rows.data(), n_rows, 0.125f);
            attention(kt, cache.view(), rows.data(), n_rows, 0.125f);
            const auto where = [&] {
              return std::string(isa_name(isa)) + " hd=" + std::to_string(hd) +
                     " k=" + elem_name(ec.k) + " v=" + elem_name(ec.v) +
                     " rows=" + std::to_string(n_rows) + " range#" + std::to_string(ri);
            };
            for (size_t i = 0; i < out.size(); ++i)
              ASSERT_NEAR(out[i], ref[i], tol * (1 + std::fabs(ref[i]))) << where() << " i=" << i;
            for (size_t r = 0; r < lse.size(); ++r) {
              if (std::isinf(ref_lse[r])) {
                ASSERT_TRUE(std::isinf(lse[r]) && lse[r] < 0) << where() << " lse " << lse[r];
              } else {
                ASSERT_NEAR(lse[r], ref_lse[r], 2e-5 * (1 + std::fabs(ref_lse[r])))
                    << where() << " row " << r;
              }
            }
          }
        }
      }
    }
  }
}

// A long context split into position ranges (as the decoder splits it over
// threads), each part run with its log-sum-exp and the parts merged, gives the
// attention over the whole range, on every ISA and cache type; parts that a row
// does not see (a sliding window) are empty and must not count.
TEST(Attention, SplitRangesMergeToWhole) {
  const int64_t hd = 64, ctx = 700;
  const int n_rows = 7;
  const std::vector<float> q = random_values(static_cast<size_t>(n_rows * hd), 31, 2.0f);
  // Part boundaries: 64-aligned as the decoder cuts them, and uneven ones.
  const std::vector<std::vector<int32_t>> cuts = {{0, 256, 512, 700}, {0, 17, 18, 333, 640, 700}};
  const std::pair<int32_t, int32_t> ranges[] = {{0, 699}, {0, 300}, {290, 650}, {600, 601}};
  for (Isa isa : supported_isas()) {
    const KernelTable& kt = kernels_for(isa);
    for (const ElemCase& ec : kElemCases) {
      const Cache cache(hd, ctx, 11, ec.k, ec.v);
      const double tol = ec.v == KvElem::Q8_0 ? 1e-3 : 2e-5;
      for (const auto& cut : cuts) {
        for (const auto& [lo, hi] : ranges) {
          const int n_parts = static_cast<int>(cut.size()) - 1;
          std::vector<float> parts(static_cast<size_t>(n_parts * n_rows * hd), -7.0f);
          std::vector<float> lse(static_cast<size_t>(n_parts * n_rows), -7.0f);
          for (int p = 0; p < n_parts; ++p) {
            std::vector<AttnRow> rows;
            for (int r = 0; r < n_rows; ++r)
              rows.push_back({&q[r * hd], &parts[(p * n_rows + r) * hd], std::max(lo, cut[p]),
                              std::min(hi, cut[p + 1] - 1), &lse[p * n_rows + r]});
            attention(kt, cache.view(), rows.data(), n_rows, 0.125f);
          }
          std::vector<float> whole(static_cast<size_t>(n_rows * hd));
          std::vector<AttnRow> ref_rows;
          for (int r = 0; r < n_rows; ++r) ref_rows.push_back({&q[r * hd], &whole[r * hd], lo, hi});
          reference::attention(cache.view(), ref_rows.data(), n_rows, 0.125f);
          for (int r = 0; r < n_rows; ++r) {
            std::vector<float> merged(static_cast<size_t>(hd), -7.0f);
            attention_merge(&parts[r * hd], n_rows * hd, &lse[r], n_rows, n_parts, hd,
                            merged.data());
            for (int64_t d = 0; d < hd; ++d)
              ASSERT_NEAR(merged[d], whole[r * hd + d], tol * (1 + std::fabs(whole[r * hd + d])))
                  << isa_name(isa) << " k=" << elem_name(ec.k) << " v=" << elem_name(ec.v)
                  << " parts=" << n_parts << " range " << lo << ".." << hi << " row " << r
                  << " d=" << d;
          }
        }
      }
    }
  }
}

// Every part empty: zeros, not NaN.
TEST(Attention, MergeOfEmptyPartsIsZero) {
  const float outs[2 * 4] = {0, 0, 0, 0, 0, 0, 0, 0};
  const float lse[2] = {-std::numeric_limits<float>::infinity(),
                        -std::numeric_limits<float>::infinity()};
  float out[4] = {-7, -7, -7, -7};
  attention_merge(outs, 4, lse, 1, 2, 4, out);
  for (float x : out) EXPECT_EQ(x, 0.0f);
}

// The Q8_0 key cache computes exact attention over the Q8_0-rounded keys and
// query: the same rows over an f32 cache holding the dequantized keys (and with
// the dequantized query) agree to float rounding; against the unrounded keys the
// outputs move by a small fraction of the values' spread (a wrong scale, bias or
// lane would move them by about 1).
TEST(Attention, Q8KeysAreRoundedKeys) {
  const int64_t hd = 64, ctx = 500;
  const int n_rows = 7;
  const float scale = 0.125f;
  const Cache q8(hd, ctx, 3, KvElem::Q8_0, KvElem::F32);
  const Cache exact(hd, ctx, 3, KvElem::F32, KvElem::F32);
  Cache deq(hd, ctx, 3, KvElem::F32, KvElem::F32);
  const std::vector<float> deq_keys = q8_rounded(exact.keys);
  for (int64_t p = 0; p < ctx; ++p)
    attention_store_key(deq.k.data(), hd, p, &deq_keys[p * hd], KvElem::F32);
  const std::vector<float> q = random_values(static_cast<size_t>(n_rows * hd), 11);
  const std::vector<float> q_deq = q8_rounded(q);
  std::vector<float> out(static_cast<size_t>(n_rows * hd)), ref(out.size()), ref_deq(out.size());
  std::vector<AttnRow> rows, ref_rows, deq_rows;
  for (int r = 0; r < n_rows; ++r) {
    const auto hi = static_cast<int32_t>(ctx - 1 - 50 * r);
    rows.push_back({&q[r * hd], &out[r * hd], 0, hi});
    ref_rows.push_back({&q[r * hd], &ref[r * hd], 0, hi});
    deq_rows.push_back({&q_deq[r * hd], &ref_deq[r * hd], 0, hi});
  }
  attention(best_kernels(), q8.view(), rows.data(), n_rows, scale);
  reference::attention(exact.view(), ref_rows.data(), n_rows, scale);
  reference::attention(deq.view(), deq_rows.data(), n_rows, scale);
  const double max_err = max_abs_diff(out, ref), max_err_deq = max_abs_diff(out, ref_deq);
  EXPECT_LT(max_err_deq, 1e-5);
  EXPECT_LT(max_err, 0.03);
  EXPECT_GT(max_err, 1e-4);  // the keys were rounded
}

// The Q8_0 value cache computes attention over the Q8_0-rounded values: the
// same rows over an f32 cache holding the dequantized values agree up to the
// kernels' 16-bit rounding of the weights; against the unrounded values they
// move by a small fraction of the values' spread (a wrong scale, lane or group
// would move them by about 1).
TEST(Attention, Q8ValuesAreRoundedValues) {
  const int64_t hd = 128, ctx = 700;
  const int n_rows = 7;
  const float scale = 0.09f;
  const Cache exact(hd, ctx, 5, KvElem::F32, KvElem::F32);
  const Cache q8(hd, ctx, 5, KvElem::F32, KvElem::Q8_0);
  Cache deq(hd, ctx, 5, KvElem::F32, KvElem::F32);
  const std::vector<float> deq_values = q8_rounded(exact.values);
  for (int64_t p = 0; p < ctx; ++p)
    attention_store_value(deq.v.data(), hd, p, &deq_values[p * hd], KvElem::F32);
  const std::vector<float> q = random_values(static_cast<size_t>(n_rows * hd), 13);
  for (Isa isa : supported_isas()) {
    std::vector<float> out(static_cast<size_t>(n_rows * hd)), ref(out.size()), ref_deq(out.size());
    std::vector<AttnRow> rows, ref_rows, deq_rows;
    for (int r = 0; r < n_rows; ++r) {
      const auto lo = static_cast<int32_t>(30 * r), hi = static_cast<int32_t>(ctx - 1 - 70 * r);
      rows.push_back({&q[r * hd], &out[r * hd], lo, hi});
      ref_rows.push_back({&q[r * hd], &ref[r * hd], lo, hi});
      deq_rows.push_back({&q[r * hd], &ref_deq[r * hd], lo, hi});
    }
    attention(kernels_for(isa), q8.view(), rows.data(), n_rows, scale);
    reference::attention(exact.view(), ref_rows.data(), n_rows, scale);
    reference::attention(deq.view(), deq_rows.data(), n_rows, scale);
    const double max_err = max_abs_diff(out, ref), max_err_deq = max_abs_diff(out, ref_deq);
    EXPECT_LT(max_err_deq, 2e-4) << isa_name(isa);
    EXPECT_LT(max_err, 0.015) << isa_name(isa);
    EXPECT_GT(max_err, 1e-3) << isa_name(isa);  // the values were rounded
  }
}

TEST(Attention, QueryQ8) {
  std::vector<float> q(64, 0.0f);
  q[3] = -3.81f;  // block 0 max: -127, d 0.03
  q[4] = 0.06f;   // 2
  q[40] = 1.0f;   // block 1: 127, d 1/127
  QueryQ8 out;
  quantize_query_q8(q.data(), 64, 0.5f, out);
  EXPECT_EQ(out.q[3], -127);
  EXPECT_EQ(out.q[4], 2);
  EXPECT_EQ(out.q[40], 127);
  EXPECT_FLOAT_EQ(out.d[0], 0.03f);
  EXPECT_FLOAT_EQ(out.d[1], 1.0f / 127);
  EXPECT_FLOAT_EQ(out.d_scaled[1], 0.5f / 127);
  EXPECT_EQ(out.bias[0], 128 * (-127 + 2));
  EXPECT_EQ(out.bias[1], 128 * 127);
}

// ---- row ops ----------------------------------------------------------------------

TEST(RowOps, SimdMatchScalar) {
  for (Isa isa : supported_isas()) {
    const RowOps& ops = kernels_for(isa).ops;
    for (int64_t n : {1, 7, 8, 15, 16, 17, 64, 100, 896}) {
      const auto a = random_values(static_cast<size_t>(n), 1, 3.0f);
      const auto b = random_values(static_cast<size_t>(n), 2);
      const auto w = random_values(static_cast<size_t>(n), 3);
      std::vector<float> y(a.size()), ref(a.size());
      auto check = [&](const char* what, double tol) {
        for (int64_t i = 0; i < n; ++i)
          ASSERT_NEAR(y[i], ref[i], tol * (1 + std::fabs(ref[i])))
              << what << " " << isa_name(isa) << " n=" << n << " i=" << i;
      };
      if (ops.silu_mul) {
        ops.silu_mul(a.data(), b.data(), y.data(), n);
        reference::silu_mul(a.data(), b.data(), ref.data(), n);
        check("silu_mul", 1e-6);
      }
      if (ops.gelu_tanh_mul) {
        ops.gelu_tanh_mul(a.data(), b.data(), y.data(), n);
        reference::gelu_tanh_mul(a.data(), b.data(), ref.data(), n);
        check("gelu_tanh_mul", 1e-6);
      }
      if (ops.rms_norm) {
        for (const float* wp : {w.data(), static_cast<const float*>(nullptr)}) {
          ops.rms_norm(a.data(), wp, y.data(), n, 1e-6f);
          reference::rms_norm(a.data(), wp, ref.data(), n, 1e-6f);
          check("rms_norm", 1e-6);
        }
      }
      if (ops.add_inplace) {
        y = a;
        ref = a;
        ops.add_inplace(y.data(), b.data(), n);
        reference::add_inplace(ref.data(), b.data(), n);
        check("add_inplace", 0);
      }
      if (ops.scale_inplace) {
        y = a;
        ref = a;
        ops.scale_inplace(y.data(), 0.3f, n);
        reference::scale_inplace(ref.data(), 0.3f, n);
        check("scale_inplace", 0);
      }
      if (ops.axpy) {
        y = b;
        ref = b;
        ops.axpy(0.7f, a.data(), y.data(), n);
        reference::axpy(0.7f, a.data(), ref.data(), n);
        check("axpy", 1e-7);
      }
      if (ops.max) {
        EXPECT_EQ(ops.max(a.data(), n), reference::max_value(a.data(), n));
      }
      if (ops.exp_sum) {
        y = a;
        ref = a;
        y[0] = ref[0] = -std::numeric_limits<float>::infinity();  // masked entry -> 0
        const float mx = reference::max_value(a.data(), n);
        const float s = ops.exp_sum(y.data(), n, mx);
        const float rs = reference::exp_sum(ref.data(), n, mx);
        check("exp_sum", 2e-7);
        EXPECT_EQ(y[0], 0.0f);
        EXPECT_NEAR(s, rs, 1e-6 * rs);
      }
    }
  }
}

TEST(RowOps, SoftmaxHandlesMaskedRows) {
  std::vector<float> x = {-INFINITY, 0.0f, std::log(3.0f)};
  softmax_inplace(x.data(), 3);
  EXPECT_EQ(x[0], 0.0f);
  EXPECT_NEAR(x[1], 0.25f, 1e-6);
  EXPECT_NEAR(x[2], 0.75f, 1e-6);
  std::vector<float> masked(5, -INFINITY);
  softmax_inplace(masked.data(), 5);
  for (float v : masked) EXPECT_EQ(v, 0.0f);
}

TEST(RowOps, RopeTableMatchesDirect) {
  const int64_t dim = 64;
  std::vector<float> inv(dim / 2);
  for (int64_t i = 0; i < dim / 2; ++i) inv[i] = std::pow(10000.0f, -2.0f * i / dim);
  for (bool interleaved : {false, true}) {
    for (float pos : {0.0f, 1.0f, 517.0f, 4095.0f}) {
      auto x = random_values(dim, 5);
      auto y = x;
      rope_inplace(x.data(), dim, pos, inv.data(), interleaved);
      std::vector<float> c(dim / 2), s(dim / 2);
      rope_cos_sin(pos, inv.data(), dim / 2, c.data(), s.data());
      rope_apply(y.data(), dim, c.data(), s.data(), interleaved);
      for (int64_t i = 0; i < dim; ++i) EXPECT_EQ(x[i], y[i]) << pos << " " << i;
    }
  }
}

}  // namespace
}  // namespace muse::kernels
