#include "kernels/matmul.h"

#include <algorithm>
#include <cstring>

#include "kernels/kernel_table.h"
#include "muse/error.h"

namespace muse::kernels {
namespace {

// Weight bytes a thread keeps hot while it runs every token over them: small
// enough for L2, so prefill reads each weight block from memory once.
constexpr size_t kRowBlockBytes = 64 * 1024;

// Below this many activation elements, converting them costs less than waking
// the pool (a decode step's single row is a few microseconds of work).
constexpr int64_t kParallelConvertMin = 32 * 1024;
// Likewise for the products: below this many multiply-adds one thread does them.
constexpr int64_t kParallelMultiplyMin = 32 * 1024;

struct Plan {
  VecDotFn vec_dot = nullptr;
  QuantizeRowFn quantize_act = nullptr;  // null when activations stay f32
  int64_t rows = 0, cols = 0;
  size_t act_row_bytes = 0;
  int64_t act_block = 1;       // elements per activation block
  size_t act_block_bytes = 4;  // bytes per activation block
};

// Validates the shapes and picks the kernels; throws muse::Error on bad input.
Plan make_plan(const KernelTable& kernels, const TensorView& w, int64_t n_tokens) {
  MUSE_CHECK(n_tokens >= 0, "matmul: negative token count ", n_tokens);
  const DTypeInfo& winfo = dtype_info(w.type);
  Plan p;
  p.rows = w.rows();
  p.cols = w.cols();
  MUSE_CHECK(p.rows >= 0 && p.cols > 0, "matmul: bad weight shape ", shape_string(w));
  const DType act = vec_dot_act_type(w.type);
  const DTypeInfo& ainfo = dtype_info(act);
  MUSE_CHECK(p.cols % winfo.block_size == 0 && p.cols % ainfo.block_size == 0,
             "matmul: row length ", p.cols, " of a ", winfo.name,
             " weight is not a multiple of its block size");
  MUSE_CHECK(w.data != nullptr || p.rows == 0, "matmul: weight tensor has no data");
  MUSE_CHECK(w.nbytes == 0 || w.nbytes >= static_cast<size_t>(p.rows) * w.row_stride(),
             "matmul: weight tensor ", shape_string(w), " of type ", winfo.name, " needs ",
             static_cast<size_t>(p.rows) * w.row_stride(), " bytes but has ", w.nbytes);
  p.vec_dot = kernels.vec_dot_fn(w.type);
  MUSE_CHECK(p.vec_dot != nullptr, "matmul: no dot-product kernel for type ", winfo.name);
  if (act != DType::F32) {
    p.quantize_act = kernels.quantize_fn(act);
    MUSE_CHECK(p.quantize_act != nullptr, "matmul: no quantizer for activation type ", ainfo.name);
  }
  p.act_row_bytes = row_bytes(act, p.cols);
  p.act_block = ainfo.block_size;
  p.act_block_bytes = ainfo.block_bytes;
  return p;
}

// Everything the per-thread work needs, passed by one pointer so the
// std::function built for the pool stores it inline (no allocation).
struct Job {
  const Plan* plan;
  const TensorView* w;
  const float* x;
  int64_t n_tokens;
  float* y;
  uint8_t* act;  // converted activations, or null when x is used directly
  int n_threads;
};

// Thread t's share [begin, end) of n items.
inline void share(int64_t n, int t, int n_threads, int64_t* begin, int64_t* end) {
  *begin = n * t / n_threads;
  *end = n * (t + 1) / n_threads;
}

// Converts this thread's share of all activation blocks (token-major), so the
// work splits evenly even for a single token.
void convert_activations(const Job& job, int t) {
  const Plan& p = *job.plan;
  const int64_t blocks_per_row = p.cols / p.act_block;
  int64_t begin, end;
  share(job.n_tokens * blocks_per_row, t, job.n_threads, &begin, &end);
  while (begin < end) {
    const int64_t token = begin / blocks_per_row;
    const int64_t first = begin - token * blocks_per_row;
    const int64_t count = std::min(end - begin, blocks_per_row - first);
    p.quantize_act(job.x + token * p.cols + first * p.act_block,
                   job.act + token * p.act_row_bytes + first * p.act_block_bytes,
                   count * p.act_block);
    begin += count;
  }
}

void multiply_rows(const Job& job, int t) {
  const Plan& p = *job.plan;
  int64_t r0, r1;
  share(p.rows, t, job.n_threads, &r0, &r1);
  const size_t stride = job.w->row_stride();
  const int64_t block_rows =
      std::max<int64_t>(1, static_cast<int64_t>(kRowBlockBytes / std::max<size_t>(1, stride)));
  const auto* act = job.act != nullptr ? job.act : reinterpret_cast<const uint8_t*>(job.x);
  for (int64_t rb = r0; rb < r1; rb += block_rows) {
    const int64_t re = std::min(r1, rb + block_rows);
    for (int64_t tok = 0; tok < job.n_tokens; ++tok) {
      const uint8_t* a = act + tok * p.act_row_bytes;
      float* y = job.y + tok * p.rows;
      for (int64_t r = rb; r < re; ++r) p.vec_dot(p.cols, &y[r], job.w->row(r), a);
    }
  }
}

}  // namespace

void matmul_with(const KernelTable& kernels, const TensorView& w, const float* x, int64_t n_tokens,
                 float* y, ThreadPool& pool, std::vector<uint8_t>& scratch) {
  const Plan plan = make_plan(kernels, w, n_tokens);
  if (n_tokens == 0 || plan.rows == 0) return;
  MUSE_CHECK(x != nullptr && y != nullptr, "matmul: null activation or output buffer");

  Job job{&plan, &w, x, n_tokens, y, nullptr, pool.size()};
  if (plan.quantize_act != nullptr) {
    const size_t need = static_cast<size_t>(n_tokens) * plan.act_row_bytes;
    if (scratch.size() < need) scratch.resize(need);
    job.act = scratch.data();
    if (n_tokens * plan.cols < kParallelConvertMin || pool.size() == 1) {
      Job inline_job = job;
      inline_job.n_threads = 1;
      convert_activations(inline_job, 0);
    } else {
      const Job* j = &job;
      pool.run_on_all([j](int t) { convert_activations(*j, t); });
    }
  }
  if (plan.rows * plan.cols * n_tokens < kParallelMultiplyMin || pool.size() == 1) {
    job.n_threads = 1;
    multiply_rows(job, 0);
    return;
  }
  const Job* j = &job;
  pool.run_on_all([j](int t) { multiply_rows(*j, t); });
}

void matmul(const TensorView& w, const float* x, int64_t n_tokens, float* y, ThreadPool& pool,
            std::vector<uint8_t>& scratch) {
  matmul_with(best_kernels(), w, x, n_tokens, y, pool, scratch);
}

void matmul_reference(const TensorView& w, const float* x, int64_t n_tokens, float* y) {
  const Plan p = make_plan(scalar_kernels(), w, n_tokens);
  if (n_tokens == 0 || p.rows == 0) return;
  MUSE_CHECK(x != nullptr && y != nullptr, "matmul: null activation or output buffer");
  std::vector<uint8_t> act_row(p.act_row_bytes);
  for (int64_t tok = 0; tok < n_tokens; ++tok) {
    const float* xt = x + tok * p.cols;
    const void* a = xt;
    if (p.quantize_act != nullptr) {
      p.quantize_act(xt, act_row.data(), p.cols);
      a = act_row.data();
    }
    for (int64_t r = 0; r < p.rows; ++r) p.vec_dot(p.cols, &y[tok * p.rows + r], w.row(r), a);
  }
}

void dequantize_row(const TensorView& w, int64_t r, float* out) {
  const DTypeInfo& info = dtype_info(w.type);
  MUSE_CHECK(r >= 0 && r < w.rows(), "dequantize_row: row ", r, " out of range for tensor ",
             shape_string(w));
  MUSE_CHECK(w.data != nullptr, "dequantize_row: tensor has no data");
  MUSE_CHECK(w.cols() % info.block_size == 0, "dequantize_row: row length ", w.cols(),
             " is not a multiple of the ", info.name, " block size");
  const DequantizeRowFn fn = best_kernels().dequantize_fn(w.type);
  MUSE_CHECK(fn != nullptr, "dequantize_row: cannot convert type ", info.name, " to f32");
  fn(w.row(r), out, w.cols());
}

}  // namespace muse::kernels
