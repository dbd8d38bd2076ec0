// Packed weights and register-blocked matrix multiplication (GEMM) for the
// forward pass.
//
// At load, a weight matrix is repacked once into a kernel-friendly layout: rows
// are taken 16 at a time ("row groups", the last one padded with zero rows) and
// interleaved so that one 512-bit register (or two 256-bit ones) holds the same
// 4 bytes (quantized types) or the same element (float types) of all 16 rows.
// A kernel then multiplies 16 rows by several tokens per inner loop: each weight
// register is loaded once and used for every token of the tile, each activation
// value is broadcast once and used for 16 rows, and every lane accumulates its
// own row, so no horizontal reductions remain.
//
// Packed layouts (per row group; `blocks` follow each other in column order):
//   F32/F16/BF16  per column k: the 16 rows' values (64 or 32 bytes).
//   Q8_0   per 32-column block: 16 f16 scales (32 B), then 8 quads x 16 rows x 4
//          bytes: byte i of row r in quad j is q[r][4j+i] + 128 (unsigned).
//   Q4_0   16 f16 scales, then 4 quads x 16 rows x 4 bytes of the original packed
//          nibbles: low nibbles are columns 4j..4j+3, high nibbles 16+4j..16+4j+3.
//   Q5_0   as Q4_0, then a 64-byte plane of fifth bits: byte i of row r holds in
//          bit j the fifth bit of column 4j+i.
//   Q4_1, Q5_1  as Q4_0 and Q5_0, then the 16 rows' f16 mins (x = d q + m).
//   Q2_K   per 256-column super-block: 16 f16 d, 16 f16 dmin, the 16 sub-blocks'
//          scale/min bytes [sub-block][row], then per sub-block j a 64-byte group
//          of 2-bit quants: byte i of row r holds column 16j+4s+i in bits 2s, 2s+1.
//   Q3_K   16 f16 d, the 16 signed scales as int8 [sub-block][row], the low 2 bits
//          as Q2_K's groups, then per sub-block pair (2p, 2p+1) a 64-byte plane
//          of third bits: byte i of row r, bit s + 4h is column 16(2p+h)+4s+i;
//          values are q + 4 (0..7).
//   Q4_K   per 256-column super-block: 16 f16 d, 16 f16 dmin, the 8 six-bit
//          scales as bytes [sub-block][row], the 8 mins as int16 pairs
//          [pair][row][2], then for each 64-column chunk c 8 quads x 16 rows x 4
//          bytes: low nibbles = columns 64c+4j.., high nibbles = 64c+32+4j...
//   Q5_K   as Q4_K, then per chunk c two 64-byte planes of fifth bits (as Q5_0's)
//          for the low-nibble and the high-nibble columns.
//   Q6_K   per super-block: 16 f16 d, the 16 int8 scales [sub-block][row], then
//          for each pair of 16-column sub-blocks (2p, 2p+1): 4 nibble quads (low
//          nibble quad i of sub-block 2p, high nibble quad i of 2p+1) and 2 planes
//          of high bit pairs (plane h: bits 0-1 quad 2h of 2p, 2-3 quad 2h+1 of
//          2p, 4-5 quad 2h of 2p+1, 6-7 quad 2h+1 of 2p+1); values are q + 32.
// Quantized kernels take activations quantized once per matmul (GemmActs), with
// exactly the quants of the weight type's vec_dot activation format (Q8_0 for
// the 32-blocks, whose Q8_1 for Q4_1/Q5_1 has the same quants; Q8_K for the
// k-quants), so results match vec_dot up to the order of float additions and,
// for Q4_1/Q5_1, the f16 rounding of Q8_1's block sum that vec_dot reads.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <vector>

#include "core/tensor.h"
#include "core/stealing_ranges.h"
#include "core/thread_pool.h"
#include "kernels/gemm_layout.h"

namespace muse::kernels {

struct KernelTable;

// Which activation format a packed type's kernel consumes.
enum class GemmActKind { F32, Q8_0, Q8_K };

// Bytes of one packed row group of a type with `cols` columns (0 when the type
// has no packed layout or cols does not fit its block size).
size_t packed_group_bytes(DType type, int64_t cols);
bool has_packed_layout(DType type);
GemmActKind gemm_act_kind(DType type);

// A large allocation (weights, KV cache) aligned to 2 MiB and advised for
// transparent huge pages where the OS has them: streaming hundreds of MiB per
// token through 4 KiB pages costs a TLB miss per page and restarts the hardware
// prefetchers at every page boundary.
class LargeBuffer {
 public:
  LargeBuffer() = default;
  explicit LargeBuffer(size_t bytes, bool zero = true);
  uint8_t* data() const { return data_.get(); }
  size_t size() const { return size_; }

 private:
  struct Free {
    void operator()(uint8_t* p) const;
  };
  std::unique_ptr<uint8_t[], Free> data_;
  size_t size_ = 0;
};

// Bytes PackedMatrix::pack needs for `w` (0 when its type or shape has no packed
// layout), a multiple of 64.
size_t packed_bytes(const TensorView& w);

// A weight matrix repacked for the GEMM kernels (64-byte aligned; owns its memory
// unless packed into caller-provided storage).
class PackedMatrix {
 public:
  PackedMatrix() = default;
  // Called with each range of source rows [row0, row1) once it is packed (so the
  // caller can release the source pages while a large matrix is being packed).
  using PackedRowsFn = std::function<void(int64_t row0, int64_t row1)>;

  // Repacks `w` (rows x cols of a type with a packed layout); throws muse::Error
  // for other types or bad shapes. Uses `pool` to pack row groups in parallel.
  // With `storage` (packed_bytes(w) bytes, 64-byte aligned, outliving the
  // result) the packed matrix is written there instead of a new allocation.
  static PackedMatrix pack(const TensorView& w, ThreadPool* pool = nullptr,
                           const PackedRowsFn& on_packed = nullptr, uint8_t* storage = nullptr);

  DType type() const { return type_; }
  int64_t rows() const { return rows_; }
  int64_t cols() const { return cols_; }
  int64_t groups() const { return (rows_ + kGemmGroupRows - 1) / kGemmGroupRows; }
  size_t group_bytes() const { return group_bytes_; }
  const uint8_t* group(int64_t g) const { return data_ + static_cast<size_t>(g) * group_bytes_; }
  size_t bytes() const { return static_cast<size_t>(groups()) * group_bytes_; }
  // Writes row r in its original format (row_bytes(type, cols) bytes, identical to
  // the source row), e.g. for embedding lookups in a tied output matrix.
  void unpack_row(int64_t r, void* out) const;
  bool empty() const { return data_ == nullptr; }

 private:
  struct Free {
    void operator()(uint8_t* p) const;
  };
  DType type_ = DType::F32;
  int64_t rows_ = 0, cols_ = 0;
  size_t group_bytes_ = 0;
  uint8_t* data_ = nullptr;
  std::unique_ptr<uint8_t[], Free> owned_;
};

// Activation buffers for all the tokens of one forward chunk, grown as needed.
class GemmActBuffer {
 public:
  // Quantizes n rows of x (stride k) into `kind` format with `kernels`' quantizer
  // (rows [t0, t1) only, so threads can share the work). reserve() first.
  void reserve(int64_t n, int64_t k);
  size_t bytes() const;
  void quantize_rows(const KernelTable& kernels, GemmActKind kind, const float* x, int64_t k,
                     int64_t t0, int64_t t1);
  // The activations of rows [t, ...) in `kind` format; x is used for F32.
  GemmActs acts(GemmActKind kind, const float* x, int64_t k, int64_t t) const;

 private:
  std::vector<int8_t> qs_;
  std::vector<float> d_;
  std::vector<int32_t> nsum32_, nsum16_, q4_offset_;
  std::vector<int16_t> sum32_;
  std::vector<std::vector<uint8_t>> block_tmp_;  // per-thread block rows (reserve()d)
  int64_t k_ = 0;
};

// The weight matrix of one linear layer as the forward pass uses it: packed when
// the kernel table has a GEMM kernel for its type, else the original tensor
// (multiplied through matmul()).
class Linear {
 public:
  Linear() = default;
  // Packs into `storage` when given (see PackedMatrix::pack); whether `w` will be
  // packed is packs(w, kernels).
  Linear(const TensorView& w, const KernelTable& kernels, ThreadPool* pool,
         const PackedMatrix::PackedRowsFn& on_packed = nullptr, uint8_t* storage = nullptr);
  static bool packs(const TensorView& w, const KernelTable& kernels);
  bool packed() const { return !packed_.empty(); }
  const PackedMatrix& packed_matrix() const { return packed_; }
  const TensorView& view() const { return view_; }
  int64_t rows() const { return view_.rows(); }
  int64_t cols() const { return view_.cols(); }
  DType type() const { return view_.type; }
  size_t packed_bytes() const { return packed_.bytes(); }

 private:
  TensorView view_;
  PackedMatrix packed_;
};

// One output of a fused multiplication: y[t * ldy + r] = sum_k W[r, k] x[t, k].
struct LinearOut {
  const Linear* w = nullptr;
  float* y = nullptr;
  int64_t ldy = 0;  // 0 means w->rows()
};

// Element-wise combination of two outputs (gate, up) -> y, see linear_glu().
enum class GluKind { Silu, GeluTanh, GeluErf };

struct GemmScratch {
  GemmActBuffer acts[2];                // Q8_0-style and Q8_K-style activations
  std::vector<uint8_t> matmul_scratch;  // for unpacked fallbacks
  std::vector<float> glu_tmp;           // per-thread gate/up tiles
  std::vector<float> strided_tmp;       // unpacked products bound for a strided output
  StealingRanges steal;                 // row groups of a one-pass product over the threads
  GemmActBuffer& buffer(GemmActKind kind) { return acts[kind == GemmActKind::Q8_K ? 1 : 0]; }
  // Allocates everything n tokens of width up to k need on `threads` threads, so
  // later calls allocate nothing; returns the bytes held.
  size_t reserve(int64_t n, int64_t k, int threads);
};

// Multiplies every output in `outs` (all with the same input width) by the n rows
// of x (stride x_stride, >= cols) in one parallel pass: activations are quantized
// once per format, then the union of all row groups is split over the pool.
void linear(std::span<const LinearOut> outs, const float* x, int64_t x_stride, int64_t n,
            ThreadPool& pool, GemmScratch& scratch, const KernelTable* kernels = nullptr);

// y[t * ldy + r] = act(gate x)[t, r] * (up x)[t, r]: both products and the
// activation in one pass, tile by tile (the products never reach memory).
void linear_glu(const Linear& gate, const Linear& up, GluKind kind, const float* x,
                int64_t x_stride, int64_t n, float* y, int64_t ldy, ThreadPool& pool,
                GemmScratch& scratch, const KernelTable* kernels = nullptr);

// Reference for tests: the packed kernels of `kernels` on one packed matrix,
// single-threaded, all tokens.
void gemm_packed(const KernelTable& kernels, const PackedMatrix& w, const float* x, int64_t n,
                 float* y);

}  // namespace muse::kernels
