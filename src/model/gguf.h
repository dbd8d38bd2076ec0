// GGUF v2/v3 reader and writer (format: ggml's docs/gguf.md).
//
// The reader memory-maps the file and validates everything before exposing it:
// magic, version, counts, every string and array length, key and tensor name
// uniqueness, tensor types, dimension products (no overflow), data offsets and
// alignment, and that every tensor's bytes lie inside the file. A malformed file
// throws muse::Error whose message names the problem; it never reads out of bounds.
// Tensor data is zero-copy: TensorView::data points into the mapping.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "core/mapped_file.h"
#include "core/tensor.h"

namespace muse {

enum class GgufType : uint32_t {
  UINT8 = 0,
  INT8 = 1,
  UINT16 = 2,
  INT16 = 3,
  UINT32 = 4,
  INT32 = 5,
  FLOAT32 = 6,
  BOOL = 7,
  STRING = 8,
  ARRAY = 9,
  UINT64 = 10,
  INT64 = 11,
  FLOAT64 = 12,
};

// One metadata value: a scalar, a string, or an array of scalars or strings
// (nested arrays are kept as arrays of GgufValue).
class GgufValue {
 public:
  GgufValue() = default;
  static GgufValue u8(uint8_t v);
  static GgufValue i8(int8_t v);
  static GgufValue u16(uint16_t v);
  static GgufValue i16(int16_t v);
  static GgufValue u32(uint32_t v);
  static GgufValue i32(int32_t v);
  static GgufValue u64(uint64_t v);
  static GgufValue i64(int64_t v);
  static GgufValue f32(float v);
  static GgufValue f64(double v);
  static GgufValue boolean(bool v);
  static GgufValue string(std::string v);
  static GgufValue string_array(std::vector<std::string> v);
  static GgufValue i32_array(const std::vector<int32_t>& v);
  static GgufValue f32_array(const std::vector<float>& v);
  static GgufValue array(GgufType elem_type, std::vector<GgufValue> elems);

  GgufType type() const { return type_; }
  GgufType array_type() const { return array_type_; }  // element type when type()==ARRAY

  // Typed accessors. Integer accessors accept any integer (or bool) type whose value
  // fits; as_f64 accepts any numeric type. Mismatches throw muse::Error.
  int64_t as_i64() const;
  uint64_t as_u64() const;
  double as_f64() const;
  bool as_bool() const;
  const std::string& as_string() const;

  size_t array_size() const;  // 0 when not an array
  // Whole-array accessors (throw on a mismatched element type).
  const std::vector<std::string>& as_strings() const;
  std::vector<int64_t> as_ints() const;
  std::vector<double> as_floats() const;
  const std::vector<GgufValue>& as_array() const;  // arrays of arrays only

 private:
  // A scalar of `type` (integers/bool in `bits`, sign-extended; floats in `real`).
  GgufValue(GgufType type, uint64_t bits, double real) : type_(type), bits_(bits), real_(real) {}
  friend struct GgufValueCodec;  // the reader/writer in gguf.cpp fill and read the payload
  GgufType type_ = GgufType::UINT32;
  GgufType array_type_ = GgufType::UINT32;
  uint64_t bits_ = 0;  // integer / bool payload (sign-extended for signed types)
  double real_ = 0;    // float payload
  std::string str_;
  std::vector<std::string> strs_;
  std::vector<int64_t> ints_;   // integer/bool arrays
  std::vector<double> reals_;   // float arrays
  std::vector<GgufValue> nested_;
};

struct GgufTensorInfo {
  std::string name;
  TensorView view;   // data points into the mapping
  uint64_t offset;   // relative to the start of the data section
};

class GgufFile {
 public:
  // Opens, maps and validates. Throws muse::Error("<path>: <problem>") on any defect.
  static std::unique_ptr<GgufFile> open(const std::string& path);
  // Parses an in-memory image (used by tests and fuzzing); `file` keeps bytes alive.
  static std::unique_ptr<GgufFile> parse(std::shared_ptr<MappedFile> file);

  uint32_t version() const { return version_; }
  size_t alignment() const { return alignment_; }
  const std::map<std::string, GgufValue>& metadata() const { return kv_; }
  const std::vector<std::string>& key_order() const { return key_order_; }
  const GgufValue* find(const std::string& key) const;  // nullptr if absent

  // Convenience getters: throw muse::Error naming the key if it is missing or of
  // the wrong kind; the *_or forms return the default when the key is absent.
  std::string get_string(const std::string& key) const;
  int64_t get_int(const std::string& key) const;
  double get_float(const std::string& key) const;
  bool get_bool(const std::string& key) const;
  int64_t get_int_or(const std::string& key, int64_t def) const;
  double get_float_or(const std::string& key, double def) const;
  bool get_bool_or(const std::string& key, bool def) const;
  std::string get_string_or(const std::string& key, const std::string& def) const;

  const std::vector<GgufTensorInfo>& tensors() const { return tensors_; }
  const GgufTensorInfo* find_tensor(const std::string& name) const;  // nullptr if absent
  const std::string& path() const { return file_->path(); }
  std::shared_ptr<MappedFile> mapping() const { return file_; }

 private:
  std::shared_ptr<MappedFile> file_;
  uint32_t version_ = 0;
  size_t alignment_ = 32;
  std::map<std::string, GgufValue> kv_;
  std::vector<std::string> key_order_;
  std::vector<GgufTensorInfo> tensors_;
  std::map<std::string, size_t> tensor_index_;
};

// Builds a GGUF v3 file. Metadata keys keep insertion order; tensors are written
// in the order added, each aligned to general.alignment (default 32).
class GgufWriter {
 public:
  void set(const std::string& key, GgufValue value);  // replaces an existing key
  // `data` must hold row_bytes(type, ne[0]) * rows bytes; it is copied.
  void add_tensor(const std::string& name, DType type, const std::vector<int64_t>& ne,
                  const void* data, size_t nbytes);
  // Writes atomically (temporary file + rename). Throws muse::Error on I/O failure.
  void write(const std::string& path) const;
  // The serialised file image (for tests that corrupt it).
  std::vector<uint8_t> serialize() const;

 private:
  struct PendingTensor {
    std::string name;
    DType type;
    std::vector<int64_t> ne;
    std::vector<uint8_t> data;
  };
  std::vector<std::pair<std::string, GgufValue>> kv_;
  std::vector<PendingTensor> tensors_;
};

}  // namespace muse
