// Kernel arguments and byte offsets of the packed GEMM layouts (described in
// gemm.h), shared by the packer and every ISA's kernels. This header is included
// by files built with different ISA flags, where an inline function could be
// compiled with instructions older CPUs lack: its one function is `static`, so
// each file gets its own copy, built with its own flags.
#pragma once

#include <cstddef>
#include <cstdint>

namespace muse::kernels {

constexpr int kGemmGroupRows = 16;

// Activations for the packed kernels, for tokens t = 0..n-1 (row strides in
// elements: qs k, x k, d k/32, nsum32 k/32, sum32 k/32, nsum16 k/16, q4_offset k/32).
struct GemmActs {
  const float* x;         // f32 rows (float weight types)
  const int8_t* qs;       // int8 quants (quantized types)
  const float* d;         // scale of each 32-column block
  const int32_t* nsum32;  // minus the sum of each 32-block's quants
  const int16_t* sum32;   // the same sums, positive, as int16
  const int32_t* nsum16;  // minus the sum of each 16-column group's quants
  // Q4_0's offset (its quants are stored as q + 8) per 32-block, as the two
  // int16 lanes into which a row's 4-byte quads add their byte-pair products
  // (vpmaddubsw): -8 x the sum of the quants of columns 0,1 mod 4 (low lane)
  // and of columns 2,3 mod 4 (high lane). Q8_0 activations only.
  const int32_t* q4_offset;
  int64_t k;              // columns
};

// `a` advanced by t tokens (every activation row the kernels read).
static inline GemmActs offset_acts(const GemmActs& a, int64_t t) {
  GemmActs r = a;
  const int64_t k = a.k;
  if (a.x) r.x = a.x + t * k;
  if (a.qs) {
    r.qs = a.qs + t * k;
    r.d = a.d + t * (k / 32);
    r.nsum32 = a.nsum32 + t * (k / 32);
    r.sum32 = a.sum32 + t * (k / 32);
    r.nsum16 = a.nsum16 + t * (k / 16);
    r.q4_offset = a.q4_offset + t * (k / 32);
  }
  return r;
}

// One kernel call: row groups [0, n_groups) of `w` (already offset to the first
// group) times tokens [0, n_tokens) of `acts`; writes y[t * ldy + 16 g + lane]
// for lane < 16, except lanes >= last_rows of the last group.
struct GemmArgs {
  const uint8_t* w;
  size_t group_bytes;
  int64_t n_groups;
  int last_rows;
  GemmActs acts;
  int64_t n_tokens;
  float* y;
  int64_t ldy;
};

}  // namespace muse::kernels

namespace muse::kernels::gemm_layout {

// Legacy 32-column blocks, per row group: 16 f16 scales, then the quants.
constexpr size_t kQ8_0Chunk = 32 + 8 * 64;  // 8 quads of 16 rows x 4 bytes
constexpr size_t kQ4_0Chunk = 32 + 4 * 64;  // 4 quads of packed nibbles
constexpr size_t kQ5_0Planes = kQ4_0Chunk;  // fifth-bit plane after the nibbles
constexpr size_t kQ5_0Chunk = kQ5_0Planes + 64;
// Q4_1/Q5_1: the Q4_0/Q5_0 chunk followed by the 16 rows' f16 mins.
constexpr size_t kQ4_1Mins = kQ4_0Chunk;
constexpr size_t kQ4_1Chunk = kQ4_1Mins + 32;
constexpr size_t kQ5_1Mins = kQ5_0Chunk;
constexpr size_t kQ5_1Chunk = kQ5_1Mins + 32;

// Q4_K super-block (256 columns), per row group.
constexpr size_t kQ4_KD = 0;         // 16 f16
constexpr size_t kQ4_KDmin = 32;     // 16 f16
constexpr size_t kQ4_KScales = 64;   // [8 sub-blocks][16 rows] u8
constexpr size_t kQ4_KMins = 192;    // [4 pairs][16 rows][2] int16
constexpr size_t kQ4_KQuants = 448;  // [4 chunks][8 quads][16 rows][4] nibbles
constexpr size_t kQ4_KChunk = kQ4_KQuants + 4 * 8 * 64;
// Q5_K: the Q4_K chunk followed by fifth-bit planes [4 chunks][low, high half][64].
constexpr size_t kQ5_KPlanes = kQ4_KChunk;
constexpr size_t kQ5_KChunk = kQ5_KPlanes + 4 * 2 * 64;

// Q2_K and Q3_K super-blocks, per row group: the low 2 bits of each 16-column
// sub-block j in one 64-byte group [16 rows][4] (byte i, bits 2s..2s+1: column
// 16j + 4s + i).
constexpr size_t kQ2_KD = 0;         // 16 f16
constexpr size_t kQ2_KDmin = 32;     // 16 f16
constexpr size_t kQ2_KScales = 64;   // [16 sub-blocks][16 rows] scale | min << 4
constexpr size_t kQ2_KQuants = 320;  // [16 sub-blocks][64]
constexpr size_t kQ2_KChunk = kQ2_KQuants + 16 * 64;
constexpr size_t kQ3_KScales = 32;   // after 16 f16 d: [16 sub-blocks][16 rows] int8
constexpr size_t kQ3_KQuants = 288;  // [16 sub-blocks][64] low 2 bits
constexpr size_t kQ3_KHigh = kQ3_KQuants + 16 * 64;  // [8 pairs][64] third bits
constexpr size_t kQ3_KChunk = kQ3_KHigh + 8 * 64;

// Q6_K super-block, per row group.
constexpr size_t kQ6_KScales = 32;                  // after 16 f16 d: [16 sub-blocks][16 rows] int8
constexpr size_t kQ6_KQuants = 288;                 // 8 sub-block pairs of kQ6_KPairBytes
constexpr size_t kQ6_KPairBytes = 4 * 64 + 2 * 64;  // 4 nibble quads + 2 high-bit planes
constexpr size_t kQ6_KChunk = kQ6_KQuants + 8 * kQ6_KPairBytes;

static_assert(kQ2_KChunk == 1344 && kQ3_KChunk == 1824 && kQ4_KChunk == 2496 &&
              kQ5_KChunk == 3008 && kQ6_KChunk == 3360);

}  // namespace muse::kernels::gemm_layout
