// Element types of tensors. The numeric values are those of the GGUF
// specification (ggml_type), so a type read from a file maps directly.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>

namespace muse {

enum class DType : uint32_t {
  F32 = 0,
  F16 = 1,
  Q4_0 = 2,
  Q4_1 = 3,
  Q5_0 = 6,
  Q5_1 = 7,
  Q8_0 = 8,
  Q8_1 = 9,
  Q2_K = 10,
  Q3_K = 11,
  Q4_K = 12,
  Q5_K = 13,
  Q6_K = 14,
  Q8_K = 15,
  I8 = 24,
  I16 = 25,
  I32 = 26,
  I64 = 27,
  F64 = 28,
  BF16 = 30,
};

struct DTypeInfo {
  DType type;
  std::string_view name;  // lower case, as `muse convert --type` spells it: "q4_k"
  int64_t block_size;     // elements per block (1 for plain types)
  size_t block_bytes;     // bytes per block
  bool quantized;
};

// Info for a raw GGUF type id; nullopt when the id is unknown or unsupported.
std::optional<DTypeInfo> dtype_info(uint32_t raw);
const DTypeInfo& dtype_info(DType t);
std::optional<DType> dtype_from_name(std::string_view name);  // case-insensitive
inline std::string_view dtype_name(DType t) { return dtype_info(t).name; }

// Bytes for n elements of type t laid out as consecutive blocks; n must be a
// multiple of the block size (callers validate shapes before asking).
size_t row_bytes(DType t, int64_t n);

}  // namespace muse
