// Packing, activation quantization and the threaded driver of the packed GEMM
// (gemm.h), plus the scalar reference kernels every SIMD kernel is tested against.
#include "kernels/gemm.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>

#include "core/fp16.h"
#include "kernels/gemm_layout.h"
#include "kernels/kernel_table.h"
#include "kernels/matmul.h"
#include "kernels/ops.h"
#include "kernels/quant_blocks.h"
#include "muse/error.h"

namespace muse::kernels {

using namespace gemm_layout;

// ---- layouts -------------------------------------------------------------------

bool has_packed_layout(DType type) {
  switch (type) {
    case DType::F32:
    case DType::F16:
    case DType::BF16:
    case DType::Q8_0:
    case DType::Q4_0:
    case DType::Q5_0:
    case DType::Q4_K:
    case DType::Q6_K:
      return true;
    default:
      return false;
  }
}

GemmActKind gemm_act_kind(DType type) {
  switch (type) {
    case DType::Q8_0:
    case DType::Q4_0:
    case DType::Q5_0:
      return GemmActKind::Q8_0;
    case DType::Q4_K:
    case DType::Q6_K:
      return GemmActKind::Q8_K;
    default:
      return GemmActKind::F32;
  }
}

size_t packed_group_bytes(DType type, int64_t cols) {
  if (cols <= 0) return 0;
  const auto c = static_cast<size_t>(cols);
  switch (type) {
    case DType::F32:
      return c * 16 * 4;
    case DType::F16:
    case DType::BF16:
      return c * 16 * 2;
    case DType::Q8_0:
      return cols % 32 == 0 ? c / 32 * kQ8_0Chunk : 0;
    case DType::Q4_0:
      return cols % 32 == 0 ? c / 32 * kQ4_0Chunk : 0;
    case DType::Q5_0:
      return cols % 32 == 0 ? c / 32 * kQ5_0Chunk : 0;
    case DType::Q4_K:
      return cols % 256 == 0 ? c / 256 * kQ4_KChunk : 0;
    case DType::Q6_K:
      return cols % 256 == 0 ? c / 256 * kQ6_KChunk : 0;
    default:
      return 0;
  }
}

// ---- packing (runs once per weight at load) --------------------------------------

namespace {

// Packs one row group: src[r] is row r's data (null for padding rows).
using PackGroupFn = void (*)(const uint8_t* const src[16], uint8_t* dst, int64_t cols);

void pack_floats32(const uint8_t* const src[16], uint8_t* dst, int64_t cols) {
  auto* out = reinterpret_cast<float*>(dst);
  for (int r = 0; r < 16; ++r) {
    const auto* row = reinterpret_cast<const float*>(src[r]);
    for (int64_t k = 0; k < cols; ++k) out[k * 16 + r] = row ? row[k] : 0.0f;
  }
}

void pack_halves(const uint8_t* const src[16], uint8_t* dst, int64_t cols) {
  auto* out = reinterpret_cast<uint16_t*>(dst);
  for (int r = 0; r < 16; ++r) {
    const auto* row = reinterpret_cast<const uint16_t*>(src[r]);
    for (int64_t k = 0; k < cols; ++k) out[k * 16 + r] = row ? row[k] : 0;
  }
}

void put_scale(uint8_t* chunk, int r, uint16_t d) { std::memcpy(chunk + 2 * r, &d, 2); }

void pack_q8_0(const uint8_t* const src[16], uint8_t* dst, int64_t cols) {
  for (int64_t b = 0; b < cols / 32; ++b) {
    uint8_t* chunk = dst + b * kQ8_0Chunk;
    for (int r = 0; r < 16; ++r) {
      const auto* blk = src[r] ? reinterpret_cast<const BlockQ8_0*>(src[r]) + b : nullptr;
      put_scale(chunk, r, blk ? blk->d : 0);
      for (int e = 0; e < 32; ++e) {
        const int q = blk ? blk->qs[e] : 0;
        chunk[32 + (e / 4) * 64 + r * 4 + e % 4] = static_cast<uint8_t>(q + 128);
      }
    }
  }
}

void pack_q4_0(const uint8_t* const src[16], uint8_t* dst, int64_t cols) {
  for (int64_t b = 0; b < cols / 32; ++b) {
    uint8_t* chunk = dst + b * kQ4_0Chunk;
    for (int r = 0; r < 16; ++r) {
      const auto* blk = src[r] ? reinterpret_cast<const BlockQ4_0*>(src[r]) + b : nullptr;
      put_scale(chunk, r, blk ? blk->d : 0);
      for (int l = 0; l < 16; ++l)
        chunk[32 + (l / 4) * 64 + r * 4 + l % 4] = blk ? blk->qs[l] : 0x88;
    }
  }
}

void pack_q5_0(const uint8_t* const src[16], uint8_t* dst, int64_t cols) {
  for (int64_t b = 0; b < cols / 32; ++b) {
    uint8_t* chunk = dst + b * kQ5_0Chunk;
    for (int r = 0; r < 16; ++r) {
      const auto* blk = src[r] ? reinterpret_cast<const BlockQ5_0*>(src[r]) + b : nullptr;
      put_scale(chunk, r, blk ? blk->d : 0);
      uint32_t qh = 0;
      if (blk) std::memcpy(&qh, blk->qh, 4);
      for (int l = 0; l < 16; ++l)
        chunk[32 + (l / 4) * 64 + r * 4 + l % 4] = blk ? blk->qs[l] : 0;
      for (int i = 0; i < 4; ++i) {
        uint8_t plane = 0;
        for (int j = 0; j < 8; ++j) plane |= static_cast<uint8_t>(((qh >> (4 * j + i)) & 1u) << j);
        chunk[kQ5_0Planes + r * 4 + i] = plane;
      }
    }
  }
}

// Q4_K scale/min j of a block (6 bits each, see kquants_scalar.cpp).
void q4_k_scale_min(const uint8_t* s, int j, int& scale, int& min) {
  if (j < 4) {
    scale = s[j] & 63;
    min = s[j + 4] & 63;
  } else {
    scale = (s[j + 4] & 15) | ((s[j - 4] >> 6) << 4);
    min = (s[j + 4] >> 4) | ((s[j] >> 6) << 4);
  }
}

void pack_q4_k(const uint8_t* const src[16], uint8_t* dst, int64_t cols) {
  for (int64_t b = 0; b < cols / 256; ++b) {
    uint8_t* chunk = dst + b * kQ4_KChunk;
    for (int r = 0; r < 16; ++r) {
      const auto* blk = src[r] ? reinterpret_cast<const BlockQ4_K*>(src[r]) + b : nullptr;
      put_scale(chunk + kQ4_KD, r, blk ? blk->d : 0);
      put_scale(chunk + kQ4_KDmin, r, blk ? blk->dmin : 0);
      for (int j = 0; j < 8; ++j) {
        int sc = 0, m = 0;
        if (blk) q4_k_scale_min(blk->scales, j, sc, m);
        chunk[kQ4_KScales + j * 16 + r] = static_cast<uint8_t>(sc);
        const auto m16 = static_cast<int16_t>(m);
        std::memcpy(chunk + kQ4_KMins + ((j / 2) * 16 + r) * 4 + 2 * (j % 2), &m16, 2);
      }
      for (int c = 0; c < 4; ++c)
        for (int l = 0; l < 32; ++l)
          chunk[kQ4_KQuants + (c * 8 + l / 4) * 64 + r * 4 + l % 4] = blk ? blk->qs[32 * c + l] : 0;
    }
  }
}

// Q6_K quant (0..63, i.e. the signed value + 32) of element i of a block.
int q6_k_value(const BlockQ6_K& b, int i) {
  const int low = (b.ql[64 * (i / 128) + i % 64] >> (4 * ((i % 128) / 64))) & 15;
  const int high = (b.qh[32 * (i / 128) + i % 32] >> (2 * ((i % 128) / 32))) & 3;
  return low | (high << 4);
}

void pack_q6_k(const uint8_t* const src[16], uint8_t* dst, int64_t cols) {
  for (int64_t b = 0; b < cols / 256; ++b) {
    uint8_t* chunk = dst + b * kQ6_KChunk;
    for (int r = 0; r < 16; ++r) {
      const auto* blk = src[r] ? reinterpret_cast<const BlockQ6_K*>(src[r]) + b : nullptr;
      put_scale(chunk, r, blk ? blk->d : 0);
      for (int s = 0; s < 16; ++s)
        chunk[kQ6_KScales + s * 16 + r] = static_cast<uint8_t>(blk ? blk->scales[s] : 0);
      auto q = [&](int sub, int pos) { return blk ? q6_k_value(*blk, 16 * sub + pos) : 32; };
      for (int p = 0; p < 8; ++p) {
        uint8_t* base = chunk + kQ6_KQuants + p * kQ6_KPairBytes;
        for (int bi = 0; bi < 4; ++bi) {
          for (int i = 0; i < 4; ++i) {
            base[i * 64 + r * 4 + bi] =
                static_cast<uint8_t>((q(2 * p, 4 * i + bi) & 15) | ((q(2 * p + 1, 4 * i + bi) & 15) << 4));
          }
          for (int h = 0; h < 2; ++h) {
            const int v = (q(2 * p, 8 * h + bi) >> 4) | ((q(2 * p, 8 * h + 4 + bi) >> 4) << 2) |
                          ((q(2 * p + 1, 8 * h + bi) >> 4) << 4) |
                          ((q(2 * p + 1, 8 * h + 4 + bi) >> 4) << 6);
            base[256 + h * 64 + r * 4 + bi] = static_cast<uint8_t>(v);
          }
        }
      }
    }
  }
}

PackGroupFn packer(DType type) {
  switch (type) {
    case DType::F32:
      return pack_floats32;
    case DType::F16:
    case DType::BF16:
      return pack_halves;
    case DType::Q8_0:
      return pack_q8_0;
    case DType::Q4_0:
      return pack_q4_0;
    case DType::Q5_0:
      return pack_q5_0;
    case DType::Q4_K:
      return pack_q4_k;
    case DType::Q6_K:
      return pack_q6_k;
    default:
      return nullptr;
  }
}

}  // namespace

void PackedMatrix::Free::operator()(uint8_t* p) const { std::free(p); }

PackedMatrix PackedMatrix::pack(const TensorView& w, ThreadPool* pool) {
  const PackGroupFn fn = packer(w.type);
  MUSE_CHECK(fn != nullptr, "pack: type ", dtype_name(w.type), " has no packed GEMM layout");
  const int64_t rows = w.rows(), cols = w.cols();
  MUSE_CHECK(rows > 0 && cols > 0, "pack: bad weight shape ", shape_string(w));
  const size_t gbytes = packed_group_bytes(w.type, cols);
  MUSE_CHECK(gbytes > 0, "pack: row length ", cols, " does not fit the ", dtype_name(w.type),
             " block size");
  MUSE_CHECK(w.data != nullptr, "pack: weight tensor has no data");
  MUSE_CHECK(w.nbytes == 0 || w.nbytes >= static_cast<size_t>(rows) * w.row_stride(),
             "pack: weight tensor ", shape_string(w), " is truncated");
  PackedMatrix m;
  m.type_ = w.type;
  m.rows_ = rows;
  m.cols_ = cols;
  m.group_bytes_ = gbytes;
  const int64_t groups = m.groups();
  const size_t total = (static_cast<size_t>(groups) * gbytes + 63) / 64 * 64;
  m.data_.reset(static_cast<uint8_t*>(std::aligned_alloc(64, total)));
  MUSE_CHECK(m.data_ != nullptr, "pack: out of memory (", total, " bytes)");
  auto pack_range = [&](int64_t g0, int64_t g1) {
    for (int64_t g = g0; g < g1; ++g) {
      const uint8_t* src[16];
      for (int r = 0; r < 16; ++r) {
        const int64_t row = g * 16 + r;
        src[r] = row < rows ? static_cast<const uint8_t*>(w.row(row)) : nullptr;
      }
      fn(src, m.data_.get() + static_cast<size_t>(g) * gbytes, cols);
    }
  };
  if (pool != nullptr && pool->size() > 1 && groups > 1) {
    pool->parallel_for(groups, [&](int, int64_t g0, int64_t g1) { pack_range(g0, g1); });
  } else {
    pack_range(0, groups);
  }
  return m;
}

// ---- activations -----------------------------------------------------------------

void GemmActBuffer::reserve(int64_t n, int64_t k) {
  k_ = k;
  const auto nn = static_cast<size_t>(n), kk = static_cast<size_t>(k);
  if (qs_.size() < nn * kk) qs_.resize(nn * kk);
  if (d_.size() < nn * kk / 32) {
    d_.resize(nn * kk / 32);
    nsum32_.resize(nn * kk / 32);
    sum32_.resize(nn * kk / 32);
  }
  if (nsum16_.size() < nn * kk / 16) nsum16_.resize(nn * kk / 16);
}

size_t GemmActBuffer::bytes() const {
  return qs_.capacity() + d_.capacity() * 4 + nsum32_.capacity() * 4 + nsum16_.capacity() * 4 +
         sum32_.capacity() * 2;
}

size_t GemmScratch::reserve(int64_t n, int64_t k, int threads) {
  for (auto& a : acts) a.reserve(n, k);
  // Unpacked fallbacks: the widest activation rows (Q8_1/Q8_K) of every token.
  const size_t act_row = std::max(row_bytes(DType::Q8_1, (k + 255) / 256 * 256),
                                  row_bytes(DType::Q8_K, (k + 255) / 256 * 256));
  if (matmul_scratch.size() < static_cast<size_t>(n) * act_row)
    matmul_scratch.resize(static_cast<size_t>(n) * act_row);
  const size_t tiles = static_cast<size_t>(threads) * 2 * 64 * kGemmGroupRows;
  if (glu_tmp.size() < tiles) glu_tmp.resize(tiles);
  return acts[0].bytes() + acts[1].bytes() + matmul_scratch.capacity() + glu_tmp.capacity() * 4;
}

void GemmActBuffer::quantize_rows(const KernelTable& kernels, GemmActKind kind, const float* x,
                                  int64_t k, int64_t t0, int64_t t1) {
  if (kind == GemmActKind::F32) return;
  const DType block_type = kind == GemmActKind::Q8_0 ? DType::Q8_0 : DType::Q8_K;
  const QuantizeRowFn quantize = kernels.quantize_fn(block_type);
  MUSE_CHECK(quantize != nullptr, "gemm: no activation quantizer");
  thread_local std::vector<uint8_t> row;
  row.resize(row_bytes(block_type, k));
  const int64_t nb32 = k / 32;
  for (int64_t t = t0; t < t1; ++t) {
    quantize(x + t * k, row.data(), k);
    int8_t* qs = &qs_[static_cast<size_t>(t * k)];
    float* d = &d_[static_cast<size_t>(t * nb32)];
    int32_t* ns32 = &nsum32_[static_cast<size_t>(t * nb32)];
    int16_t* s32 = &sum32_[static_cast<size_t>(t * nb32)];
    int32_t* ns16 = &nsum16_[static_cast<size_t>(t * 2 * nb32)];
    if (kind == GemmActKind::Q8_0) {
      const auto* blocks = reinterpret_cast<const BlockQ8_0*>(row.data());
      for (int64_t b = 0; b < nb32; ++b) {
        std::memcpy(qs + 32 * b, blocks[b].qs, 32);
        d[b] = f16_to_f32(blocks[b].d);
        int s0 = 0, s1 = 0;
        for (int i = 0; i < 16; ++i) {
          s0 += blocks[b].qs[i];
          s1 += blocks[b].qs[16 + i];
        }
        ns16[2 * b] = -s0;
        ns16[2 * b + 1] = -s1;
        ns32[b] = -(s0 + s1);
        s32[b] = static_cast<int16_t>(s0 + s1);
      }
    } else {
      const auto* blocks = reinterpret_cast<const BlockQ8_K*>(row.data());
      for (int64_t sb = 0; sb < k / 256; ++sb) {
        std::memcpy(qs + 256 * sb, blocks[sb].qs, 256);
        for (int j = 0; j < 8; ++j) {
          const int s0 = blocks[sb].bsums[2 * j], s1 = blocks[sb].bsums[2 * j + 1];
          d[8 * sb + j] = blocks[sb].d;
          ns16[16 * sb + 2 * j] = -s0;
          ns16[16 * sb + 2 * j + 1] = -s1;
          ns32[8 * sb + j] = -(s0 + s1);
          s32[8 * sb + j] = static_cast<int16_t>(s0 + s1);
        }
      }
    }
  }
}

GemmActs GemmActBuffer::acts(GemmActKind kind, const float* x, int64_t k, int64_t t) const {
  GemmActs a{};
  a.k = k;
  if (kind == GemmActKind::F32) {
    a.x = x + t * k;
    return a;
  }
  a.qs = qs_.data() + t * k;
  a.d = d_.data() + t * (k / 32);
  a.nsum32 = nsum32_.data() + t * (k / 32);
  a.sum32 = sum32_.data() + t * (k / 32);
  a.nsum16 = nsum16_.data() + t * (k / 16);
  return a;
}

// ---- Linear ----------------------------------------------------------------------

Linear::Linear(const TensorView& w, const KernelTable& kernels, ThreadPool* pool) : view_(w) {
  if (w.data != nullptr && has_packed_layout(w.type) && kernels.gemm_fn(w.type) != nullptr &&
      packed_group_bytes(w.type, w.cols()) > 0 && w.rows() > 0) {
    packed_ = PackedMatrix::pack(w, pool);
  }
}

// ---- driver ----------------------------------------------------------------------

namespace {

// Tokens per pass over the weights: the pass's activations should stay in L2
// while each row group's weights stream through once.
int64_t token_block(int64_t n, int64_t k) {
  const int64_t fit = std::max<int64_t>(16, (384 * 1024) / std::max<int64_t>(1, k));
  if (n <= fit) return n;
  const int64_t passes = (n + fit - 1) / fit;
  return (n + passes - 1) / passes;
}

// Below this many multiply-adds the pool is not worth waking.
constexpr int64_t kParallelMin = 64 * 1024;

GemmArgs make_args(const PackedMatrix& m, int64_t g0, int64_t g1, const GemmActs& acts,
                   int64_t n_tokens, float* y, int64_t ldy) {
  GemmArgs a{};
  a.w = m.group(g0);
  a.group_bytes = m.group_bytes();
  a.n_groups = g1 - g0;
  const int64_t row_end = std::min(m.rows(), g1 * kGemmGroupRows);
  a.last_rows = static_cast<int>(row_end - (g1 - 1) * kGemmGroupRows);
  a.acts = acts;
  a.n_tokens = n_tokens;
  a.y = y + g0 * kGemmGroupRows;
  a.ldy = ldy;
  return a;
}

// Quantizes x for every activation format the packed outputs need, in parallel.
void quantize_inputs(const KernelTable& kt, std::span<const GemmActKind> kinds, const float* x,
                     int64_t x_stride, int64_t n, int64_t k, ThreadPool& pool,
                     GemmScratch& scratch, std::vector<float>& contiguous) {
  (void)x_stride;
  (void)contiguous;
  bool any = false;
  for (GemmActKind kind : kinds) any |= kind != GemmActKind::F32;
  if (!any) return;
  for (GemmActKind kind : kinds) scratch.buffer(kind).reserve(n, k);
  auto work = [&](int64_t t0, int64_t t1) {
    for (GemmActKind kind : kinds) scratch.buffer(kind).quantize_rows(kt, kind, x, k, t0, t1);
  };
  if (n * k < 32 * 1024 || pool.size() == 1) {
    work(0, n);
  } else {
    pool.parallel_for(n, [&](int, int64_t t0, int64_t t1) { work(t0, t1); });
  }
}

}  // namespace

void linear(std::span<const LinearOut> outs, const float* x, int64_t x_stride, int64_t n,
            ThreadPool& pool, GemmScratch& scratch, const KernelTable* kernels) {
  if (outs.empty() || n == 0) return;
  const KernelTable& kt = kernels != nullptr ? *kernels : best_kernels();
  const int64_t k = outs[0].w->cols();
  for (const auto& o : outs) {
    MUSE_CHECK(o.w != nullptr && o.y != nullptr, "linear: null output");
    MUSE_CHECK(o.w->cols() == k, "linear: fused outputs must share the input width");
  }
  MUSE_CHECK(x_stride == k, "linear: activations must be contiguous rows of ", k);
  // Unpacked outputs go through matmul() on their own.
  GemmActKind kinds[3];
  int n_kinds = 0;
  int64_t total_groups = 0;
  for (const auto& o : outs) {
    if (!o.w->packed()) {
      const int64_t ldy = o.ldy == 0 ? o.w->rows() : o.ldy;
      if (ldy == o.w->rows()) {
        matmul_with(kt, o.w->view(), x, n, o.y, pool, scratch.matmul_scratch);
      } else {
        scratch.glu_tmp.resize(static_cast<size_t>(n * o.w->rows()));
        matmul_with(kt, o.w->view(), x, n, scratch.glu_tmp.data(), pool, scratch.matmul_scratch);
        for (int64_t t = 0; t < n; ++t)
          std::memcpy(o.y + t * ldy, scratch.glu_tmp.data() + t * o.w->rows(),
                      static_cast<size_t>(o.w->rows()) * sizeof(float));
      }
      continue;
    }
    const GemmActKind kind = gemm_act_kind(o.w->type());
    if (std::find(kinds, kinds + n_kinds, kind) == kinds + n_kinds) kinds[n_kinds++] = kind;
    total_groups += o.w->packed_matrix().groups();
  }
  if (total_groups == 0) return;
  std::vector<float> unused;
  quantize_inputs(kt, std::span<const GemmActKind>(kinds, static_cast<size_t>(n_kinds)), x,
                  x_stride, n, k, pool, scratch, unused);
  const int64_t tb = token_block(n, k);
  // Thread t takes a contiguous share of the concatenated row groups of all outputs.
  auto work = [&](int t, int n_threads) {
    const int64_t begin = total_groups * t / n_threads, end = total_groups * (t + 1) / n_threads;
    for (int64_t t0 = 0; t0 < n; t0 += tb) {
      const int64_t nt = std::min(tb, n - t0);
      int64_t base = 0;
      for (const auto& o : outs) {
        if (!o.w->packed()) continue;
        const PackedMatrix& m = o.w->packed_matrix();
        const int64_t g0 = std::max(begin - base, int64_t{0});
        const int64_t g1 = std::min(end - base, m.groups());
        base += m.groups();
        if (g0 >= g1) continue;
        const GemmActKind kind = gemm_act_kind(m.type());
        const int64_t ldy = o.ldy == 0 ? m.rows() : o.ldy;
        const GemmArgs args = make_args(m, g0, g1, scratch.buffer(kind).acts(kind, x, k, t0), nt,
                                        o.y + t0 * ldy, ldy);
        kt.gemm_fn(m.type())(args);
      }
    }
  };
  int64_t macs = 0;
  for (const auto& o : outs) macs += o.w->rows() * k * n;
  if (pool.size() == 1 || macs < kParallelMin) {
    work(0, 1);
  } else {
    const int n_threads = pool.size();
    pool.run_on_all([&](int t) { work(t, n_threads); });
  }
}

void linear_glu(const Linear& gate, const Linear& up, GluKind kind, const float* x,
                int64_t x_stride, int64_t n, float* y, int64_t ldy, ThreadPool& pool,
                GemmScratch& scratch, const KernelTable* kernels) {
  if (n == 0) return;
  const KernelTable& kt = kernels != nullptr ? *kernels : best_kernels();
  const int64_t rows = gate.rows(), k = gate.cols();
  MUSE_CHECK(up.rows() == rows && up.cols() == k, "linear_glu: gate and up shapes differ");
  MUSE_CHECK(x_stride == k, "linear_glu: activations must be contiguous rows of ", k);
  auto glu = [kind](const float* g, const float* u, float* out, int64_t m) {
    switch (kind) {
      case GluKind::Silu:
        silu_mul(g, u, out, m);
        break;
      case GluKind::GeluTanh:
        gelu_tanh_mul(g, u, out, m);
        break;
      case GluKind::GeluErf:
        gelu_erf_mul(g, u, out, m);
        break;
    }
  };
  const bool fused = gate.packed() && up.packed() && gate.type() == up.type();
  if (!fused) {
    // Two plain products into scratch, then the element-wise step.
    std::vector<float>& tmp = scratch.glu_tmp;
    tmp.resize(static_cast<size_t>(2 * n * rows));
    const LinearOut outs[2] = {{&gate, tmp.data(), rows}, {&up, tmp.data() + n * rows, rows}};
    linear(std::span<const LinearOut>(&outs[0], 1), x, x_stride, n, pool, scratch, &kt);
    linear(std::span<const LinearOut>(&outs[1], 1), x, x_stride, n, pool, scratch, &kt);
    tmp.resize(static_cast<size_t>(2 * n * rows));
    for (int64_t t = 0; t < n; ++t)
      glu(tmp.data() + t * rows, tmp.data() + (n + t) * rows, y + t * ldy, rows);
    return;
  }
  const GemmActKind act_kind = gemm_act_kind(gate.type());
  const GemmActKind kinds[1] = {act_kind};
  std::vector<float> unused;
  quantize_inputs(kt, kinds, x, x_stride, n, k, pool, scratch, unused);
  const PackedMatrix& gm = gate.packed_matrix();
  const PackedMatrix& um = up.packed_matrix();
  const int64_t groups = gm.groups();
  const int64_t tb = std::min<int64_t>(token_block(n, k), 64);
  const int n_threads = (pool.size() == 1 || rows * k * n * 2 < kParallelMin) ? 1 : pool.size();
  const size_t tile = static_cast<size_t>(tb) * kGemmGroupRows;
  scratch.glu_tmp.resize(static_cast<size_t>(n_threads) * 2 * tile);
  const GemmKernelFn fn = kt.gemm_fn(gate.type());
  auto work = [&](int t) {
    float* tg = scratch.glu_tmp.data() + static_cast<size_t>(t) * 2 * tile;
    float* tu = tg + tile;
    const int64_t g_begin = groups * t / n_threads, g_end = groups * (t + 1) / n_threads;
    for (int64_t t0 = 0; t0 < n; t0 += tb) {
      const int64_t nt = std::min(tb, n - t0);
      const GemmActs acts = scratch.buffer(act_kind).acts(act_kind, x, k, t0);
      for (int64_t g = g_begin; g < g_end; ++g) {
        GemmArgs a = make_args(gm, g, g + 1, acts, nt, tg, kGemmGroupRows);
        a.y = tg;
        fn(a);
        GemmArgs b = make_args(um, g, g + 1, acts, nt, tu, kGemmGroupRows);
        b.y = tu;
        fn(b);
        glu(tg, tu, tg, nt * kGemmGroupRows);
        const int64_t valid = std::min<int64_t>(kGemmGroupRows, rows - g * kGemmGroupRows);
        for (int64_t i = 0; i < nt; ++i)
          std::memcpy(y + (t0 + i) * ldy + g * kGemmGroupRows, tg + i * kGemmGroupRows,
                      static_cast<size_t>(valid) * sizeof(float));
      }
    }
  };
  if (n_threads == 1) {
    work(0);
  } else {
    pool.run_on_all(work);
  }
}

void gemm_packed(const KernelTable& kernels, const PackedMatrix& w, const float* x, int64_t n,
                 float* y) {
  const GemmKernelFn fn = kernels.gemm_fn(w.type());
  MUSE_CHECK(fn != nullptr, "gemm_packed: no kernel for ", dtype_name(w.type()));
  GemmActBuffer buf;
  const GemmActKind kind = gemm_act_kind(w.type());
  buf.reserve(n, w.cols());
  buf.quantize_rows(kernels, kind, x, w.cols(), 0, n);
  fn(make_args(w, 0, w.groups(), buf.acts(kind, x, w.cols(), 0), n, y, w.rows()));
}

// ---- scalar reference kernels ----------------------------------------------------

namespace {

float load_f16(const uint8_t* p, int r) {
  uint16_t h;
  std::memcpy(&h, p + 2 * r, 2);
  return f16_to_f32(h);
}

template <typename Elem>
void gemm_float_scalar(const GemmArgs& a) {
  for (int64_t g = 0; g < a.n_groups; ++g) {
    const uint8_t* w = a.w + g * a.group_bytes;
    const int lanes = g + 1 == a.n_groups ? a.last_rows : 16;
    for (int64_t t = 0; t < a.n_tokens; ++t) {
      const float* x = a.acts.x + t * a.acts.k;
      for (int r = 0; r < lanes; ++r) {
        float acc = 0.0f;
        for (int64_t k = 0; k < a.acts.k; ++k) acc += Elem::get(w, k * 16 + r) * x[k];
        a.y[t * a.ldy + g * 16 + r] = acc;
      }
    }
  }
}

struct ElemF32 {
  static float get(const uint8_t* w, int64_t i) {
    float v;
    std::memcpy(&v, w + 4 * i, 4);
    return v;
  }
};
struct ElemF16 {
  static float get(const uint8_t* w, int64_t i) { return load_f16(w, static_cast<int>(i)); }
};
struct ElemBF16 {
  static float get(const uint8_t* w, int64_t i) {
    uint16_t h;
    std::memcpy(&h, w + 2 * i, 2);
    return bf16_to_f32(h);
  }
};

// The legacy 32-blocks: value(chunk, r, e) gives the unsigned quant of element e
// of row r, kOffset what it is stored above the signed value.
template <typename Format>
void gemm_q32_scalar(const GemmArgs& a) {
  const int64_t nb = a.acts.k / 32;
  for (int64_t g = 0; g < a.n_groups; ++g) {
    const uint8_t* w = a.w + g * a.group_bytes;
    const int lanes = g + 1 == a.n_groups ? a.last_rows : 16;
    for (int64_t t = 0; t < a.n_tokens; ++t) {
      const int8_t* qs = a.acts.qs + t * a.acts.k;
      for (int r = 0; r < lanes; ++r) {
        float acc = 0.0f;
        for (int64_t b = 0; b < nb; ++b) {
          const uint8_t* chunk = w + b * Format::kChunk;
          int32_t isum = Format::kOffset * a.acts.nsum32[t * nb + b];
          for (int e = 0; e < 32; ++e) isum += Format::value(chunk, r, e) * qs[32 * b + e];
          acc += static_cast<float>(isum) * (load_f16(chunk, r) * a.acts.d[t * nb + b]);
        }
        a.y[t * a.ldy + g * 16 + r] = acc;
      }
    }
  }
}

struct FormatQ8_0 {
  static constexpr size_t kChunk = kQ8_0Chunk;
  static constexpr int kOffset = 128;
  static int value(const uint8_t* c, int r, int e) { return c[32 + (e / 4) * 64 + r * 4 + e % 4]; }
};
struct FormatQ4_0 {
  static constexpr size_t kChunk = kQ4_0Chunk;
  static constexpr int kOffset = 8;
  static int value(const uint8_t* c, int r, int e) {
    const int l = e % 16;
    const uint8_t byte = c[32 + (l / 4) * 64 + r * 4 + l % 4];
    return e < 16 ? (byte & 15) : (byte >> 4);
  }
};
struct FormatQ5_0 {
  static constexpr size_t kChunk = kQ5_0Chunk;
  static constexpr int kOffset = 16;
  static int value(const uint8_t* c, int r, int e) {
    const uint8_t plane = c[kQ5_0Planes + r * 4 + e % 4];
    return FormatQ4_0::value(c, r, e) | (((plane >> (e / 4)) & 1) << 4);
  }
};

void gemm_q4_k_scalar(const GemmArgs& a) {
  const int64_t nsb = a.acts.k / 256;
  for (int64_t g = 0; g < a.n_groups; ++g) {
    const uint8_t* w = a.w + g * a.group_bytes;
    const int lanes = g + 1 == a.n_groups ? a.last_rows : 16;
    for (int64_t t = 0; t < a.n_tokens; ++t) {
      const int8_t* qs = a.acts.qs + t * a.acts.k;
      for (int r = 0; r < lanes; ++r) {
        float acc = 0.0f;
        for (int64_t sb = 0; sb < nsb; ++sb) {
          const uint8_t* chunk = w + sb * kQ4_KChunk;
          int32_t sumi = 0, summ = 0;
          for (int s = 0; s < 8; ++s) {
            int32_t isum = 0;
            for (int e = 0; e < 32; ++e) {
              const int c = s / 2, l = e;
              const uint8_t byte = chunk[kQ4_KQuants + (c * 8 + l / 4) * 64 + r * 4 + l % 4];
              const int q = s % 2 == 0 ? (byte & 15) : (byte >> 4);
              isum += q * qs[256 * sb + 32 * s + e];
            }
            int16_t m;
            std::memcpy(&m, chunk + kQ4_KMins + ((s / 2) * 16 + r) * 4 + 2 * (s % 2), 2);
            sumi += chunk[kQ4_KScales + s * 16 + r] * isum;
            summ += m * a.acts.sum32[t * (nsb * 8) + sb * 8 + s];
          }
          const float da = a.acts.d[t * (nsb * 8) + sb * 8];
          acc += da * (load_f16(chunk + kQ4_KD, r) * static_cast<float>(sumi) -
                       load_f16(chunk + kQ4_KDmin, r) * static_cast<float>(summ));
        }
        a.y[t * a.ldy + g * 16 + r] = acc;
      }
    }
  }
}

void gemm_q6_k_scalar(const GemmArgs& a) {
  const int64_t nsb = a.acts.k / 256;
  for (int64_t g = 0; g < a.n_groups; ++g) {
    const uint8_t* w = a.w + g * a.group_bytes;
    const int lanes = g + 1 == a.n_groups ? a.last_rows : 16;
    for (int64_t t = 0; t < a.n_tokens; ++t) {
      const int8_t* qs = a.acts.qs + t * a.acts.k;
      for (int r = 0; r < lanes; ++r) {
        float acc = 0.0f;
        for (int64_t sb = 0; sb < nsb; ++sb) {
          const uint8_t* chunk = w + sb * kQ6_KChunk;
          int32_t sumi = 0;
          for (int s = 0; s < 16; ++s) {
            const int p = s / 2;
            const uint8_t* base = chunk + kQ6_KQuants + p * kQ6_KPairBytes;
            int32_t isum = 32 * a.acts.nsum16[t * (nsb * 16) + sb * 16 + s];
            for (int e = 0; e < 16; ++e) {
              const int i = e / 4, bi = e % 4;
              const uint8_t nib = base[i * 64 + r * 4 + bi];
              const uint8_t plane = base[256 + (i / 2) * 64 + r * 4 + bi];
              const int low = s % 2 == 0 ? (nib & 15) : (nib >> 4);
              const int high = (plane >> (2 * (i % 2) + 4 * (s % 2))) & 3;
              isum += (low | (high << 4)) * qs[256 * sb + 16 * s + e];
            }
            sumi += static_cast<int8_t>(chunk[kQ6_KScales + s * 16 + r]) * isum;
          }
          const float da = a.acts.d[t * (nsb * 8) + sb * 8];
          acc += static_cast<float>(sumi) * (load_f16(chunk, r) * da);
        }
        a.y[t * a.ldy + g * 16 + r] = acc;
      }
    }
  }
}

}  // namespace

void register_gemm_scalar(KernelTable& t) {
  t.gemm[static_cast<uint32_t>(DType::F32)] = gemm_float_scalar<ElemF32>;
  t.gemm[static_cast<uint32_t>(DType::F16)] = gemm_float_scalar<ElemF16>;
  t.gemm[static_cast<uint32_t>(DType::BF16)] = gemm_float_scalar<ElemBF16>;
  t.gemm[static_cast<uint32_t>(DType::Q8_0)] = gemm_q32_scalar<FormatQ8_0>;
  t.gemm[static_cast<uint32_t>(DType::Q4_0)] = gemm_q32_scalar<FormatQ4_0>;
  t.gemm[static_cast<uint32_t>(DType::Q5_0)] = gemm_q32_scalar<FormatQ5_0>;
  t.gemm[static_cast<uint32_t>(DType::Q4_K)] = gemm_q4_k_scalar;
  t.gemm[static_cast<uint32_t>(DType::Q6_K)] = gemm_q6_k_scalar;
}

}  // namespace muse::kernels
