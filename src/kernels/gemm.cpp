// Activation quantization, Linear and the threaded drivers of the packed GEMM
// (gemm.h). Packing: gemm_pack.cpp; scalar kernels: gemm_scalar.cpp.
#include "kernels/gemm.h"

#include <algorithm>
#include <cstring>

#include "core/fp16.h"
#include "kernels/kernel_table.h"
#include "kernels/matmul.h"
#include "kernels/ops.h"
#include "kernels/quant_blocks.h"
#include "muse/error.h"

namespace muse::kernels {

// ---- activations -----------------------------------------------------------------

// GemmActs::q4_offset of one block from the quant sums of its columns 0,1 and
// 2,3 mod 4; 8 x 16 x 128 = 16384 fits each int16 lane.
static int32_t q4_offset_pair(int even_lanes, int odd_lanes) {
  const auto lane = [](int sum) { return static_cast<uint32_t>(static_cast<uint16_t>(-8 * sum)); };
  return static_cast<int32_t>(lane(even_lanes) | lane(odd_lanes) << 16);
}

void GemmActBuffer::reserve(int64_t n, int64_t k) {
  k_ = k;
  const auto nn = static_cast<size_t>(n), kk = static_cast<size_t>(k);
  if (qs_.size() < nn * kk) qs_.resize(nn * kk);
  if (d_.size() < nn * kk / 32) {
    d_.resize(nn * kk / 32);
    nsum32_.resize(nn * kk / 32);
    q4_offset_.resize(nn * kk / 32);
    sum32_.resize(nn * kk / 32);
  }
  if (nsum16_.size() < nn * kk / 16) nsum16_.resize(nn * kk / 16);
}

size_t GemmActBuffer::bytes() const {
  return qs_.capacity() + d_.capacity() * 4 + nsum32_.capacity() * 4 + nsum16_.capacity() * 4 +
         q4_offset_.capacity() * 4 + sum32_.capacity() * 2;
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
      int32_t* q4_off = &q4_offset_[static_cast<size_t>(t * nb32)];
      for (int64_t b = 0; b < nb32; ++b) {
        std::memcpy(qs + 32 * b, blocks[b].qs, 32);
        d[b] = f16_to_f32(blocks[b].d);
        int s0 = 0, s1 = 0, pair_sums[2] = {0, 0};
        for (int i = 0; i < 16; ++i) {
          s0 += blocks[b].qs[i];
          s1 += blocks[b].qs[16 + i];
          pair_sums[(i / 2) % 2] += blocks[b].qs[i] + blocks[b].qs[16 + i];
        }
        q4_off[b] = q4_offset_pair(pair_sums[0], pair_sums[1]);
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
    a.x = x;
  } else {
    a.qs = qs_.data();
    a.d = d_.data();
    a.nsum32 = nsum32_.data();
    a.sum32 = sum32_.data();
    a.nsum16 = nsum16_.data();
    a.q4_offset = q4_offset_.data();
  }
  return offset_acts(a, t);
}

// ---- Linear ----------------------------------------------------------------------

bool Linear::packs(const TensorView& w, const KernelTable& kernels) {
  return w.data != nullptr && kernels.gemm_fn(w.type) != nullptr && kernels::packed_bytes(w) > 0 &&
         packed_group_bytes(w.type, w.cols()) > 0;
}

Linear::Linear(const TensorView& w, const KernelTable& kernels, ThreadPool* pool,
               const PackedMatrix::PackedRowsFn& on_packed, uint8_t* storage)
    : view_(w) {
  if (packs(w, kernels)) packed_ = PackedMatrix::pack(w, pool, on_packed, storage);
}

// ---- driver ----------------------------------------------------------------------

namespace {

// Tokens per pass over the weights: the pass's activations should stay in L2
// while each row group's weights stream through once. An activation element is
// a byte when quantized (Q8_0, Q8_K, plus a scale per block) and 4 as f32.
int64_t token_block(int64_t n, int64_t k, std::span<const GemmActKind> kinds) {
  int64_t elem_bytes = 1;
  for (GemmActKind kind : kinds)
    if (kind == GemmActKind::F32) elem_bytes = 4;
  const int64_t fit = std::max<int64_t>(16, (384 * 1024) / std::max<int64_t>(1, k * elem_bytes));
  if (n <= fit) return n;
  const int64_t passes = (n + fit - 1) / fit;
  return (n + passes - 1) / passes;
}

// Below this many multiply-adds the pool is not worth waking.
constexpr int64_t kParallelMin = 64 * 1024;
// Row groups per stolen item in a one-pass linear(): 64 rows, tens of KiB of
// weights, so taking an item (one compare-and-swap) costs nothing in comparison.
constexpr int64_t kStealGroups = 4;

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

// Calls body(t, g0, g1, t0, nt) on thread t for row groups [g0, g1) and tokens
// [t0, t0 + nt) until all `groups` x n tokens (token blocks of tb) are done, on
// n_threads threads (1: inline). One token block (decoding): items of per_item
// groups through `steal`. Several (prefill): thread t keeps one contiguous share
// of the groups for all blocks, so its weights stay in its L2 from block to block.
template <typename Body>
void split_groups(ThreadPool& pool, int n_threads, StealingRanges& steal, int64_t groups,
                  int64_t per_item, int64_t n, int64_t tb, Body body) {
  if (n_threads == 1) {
    for (int64_t t0 = 0; t0 < n; t0 += tb) body(0, 0, groups, t0, std::min(tb, n - t0));
  } else if (n <= tb) {
    steal.reset((groups + per_item - 1) / per_item, n_threads);
    pool.run_on_all([&](int t) {
      for (int64_t i; (i = steal.next(t)) >= 0;)
        body(t, i * per_item, std::min(groups, (i + 1) * per_item), 0, n);
    });
  } else {
    pool.run_on_all([&](int t) {
      const int64_t g0 = groups * t / n_threads, g1 = groups * (t + 1) / n_threads;
      for (int64_t t0 = 0; t0 < n; t0 += tb) body(t, g0, g1, t0, std::min(tb, n - t0));
    });
  }
}

// Quantizes x for every activation format the packed outputs need, in parallel.
void quantize_inputs(const KernelTable& kt, std::span<const GemmActKind> kinds, const float* x,
                     int64_t n, int64_t k, ThreadPool& pool, GemmScratch& scratch) {
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
        scratch.strided_tmp.resize(static_cast<size_t>(n * o.w->rows()));
        matmul_with(kt, o.w->view(), x, n, scratch.strided_tmp.data(), pool,
                    scratch.matmul_scratch);
        for (int64_t t = 0; t < n; ++t)
          std::memcpy(o.y + t * ldy, scratch.strided_tmp.data() + t * o.w->rows(),
                      static_cast<size_t>(o.w->rows()) * sizeof(float));
      }
      continue;
    }
    const GemmActKind kind = gemm_act_kind(o.w->type());
    if (std::find(kinds, kinds + n_kinds, kind) == kinds + n_kinds) kinds[n_kinds++] = kind;
    total_groups += o.w->packed_matrix().groups();
  }
  if (total_groups == 0) return;
  const std::span<const GemmActKind> act_kinds(kinds, static_cast<size_t>(n_kinds));
  quantize_inputs(kt, act_kinds, x, n, k, pool, scratch);
  const int64_t tb = token_block(n, k, act_kinds);
  // Row groups [begin, end) of the concatenated outputs, tokens [t0, t0 + nt).
  auto run_groups = [&](int64_t begin, int64_t end, int64_t t0, int64_t nt) {
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
  };
  int64_t macs = 0;
  for (const auto& o : outs) macs += o.w->rows() * k * n;
  const int n_threads = macs < kParallelMin ? 1 : pool.size();
  split_groups(pool, n_threads, scratch.steal, total_groups, kStealGroups, n, tb,
               [&](int, int64_t g0, int64_t g1, int64_t t0, int64_t nt) {
                 run_groups(g0, g1, t0, nt);
               });
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
    linear(outs, x, x_stride, n, pool, scratch, &kt);
    for (int64_t t = 0; t < n; ++t)
      glu(tmp.data() + t * rows, tmp.data() + (n + t) * rows, y + t * ldy, rows);
    return;
  }
  const GemmActKind act_kind = gemm_act_kind(gate.type());
  const GemmActKind kinds[1] = {act_kind};
  quantize_inputs(kt, kinds, x, n, k, pool, scratch);
  const PackedMatrix& gm = gate.packed_matrix();
  const PackedMatrix& um = up.packed_matrix();
  const int64_t groups = gm.groups();
  const int64_t tb = std::min<int64_t>(token_block(n, k, kinds), 64);
  const int n_threads = (pool.size() == 1 || rows * k * n * 2 < kParallelMin) ? 1 : pool.size();
  const size_t tile = static_cast<size_t>(tb) * kGemmGroupRows;
  scratch.glu_tmp.resize(static_cast<size_t>(n_threads) * 2 * tile);
  const GemmKernelFn fn = kt.gemm_fn(gate.type());
  // Row group g for tokens [t0, t0 + nt) on thread t (its gate/up tiles).
  auto run_group = [&](int t, int64_t g, int64_t t0, int64_t nt) {
    float* tg = scratch.glu_tmp.data() + static_cast<size_t>(t) * 2 * tile;
    float* tu = tg + tile;
    const GemmActs acts = scratch.buffer(act_kind).acts(act_kind, x, k, t0);
    GemmArgs a = make_args(gm, g, g + 1, acts, nt, tg, kGemmGroupRows);
    a.y = tg;
    fn(a);
    GemmArgs b = make_args(um, g, g + 1, acts, nt, tu, kGemmGroupRows);
    b.y = tu;
    fn(b);
    glu(tg, tu, tg, nt * kGemmGroupRows);
    const int64_t valid = std::min<int64_t>(kGemmGroupRows, rows - g * kGemmGroupRows);
    float* out = y + t0 * ldy + g * kGemmGroupRows;
    if (valid == kGemmGroupRows) {  // fixed-size copies the compiler inlines
      for (int64_t i = 0; i < nt; ++i)
        std::memcpy(out + i * ldy, tg + i * kGemmGroupRows, kGemmGroupRows * sizeof(float));
    } else {
      for (int64_t i = 0; i < nt; ++i)
        std::copy(tg + i * kGemmGroupRows, tg + i * kGemmGroupRows + valid, out + i * ldy);
    }
  };
  split_groups(pool, n_threads, scratch.steal, groups, 1, n, tb,
               [&](int t, int64_t g0, int64_t g1, int64_t t0, int64_t nt) {
                 for (int64_t g = g0; g < g1; ++g) run_group(t, g, t0, nt);
               });
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

}  // namespace muse::kernels
