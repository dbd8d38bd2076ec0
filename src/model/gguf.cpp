// GGUF reader and writer. Layout (little-endian throughout):
//   header:       "GGUF", uint32 version, uint64 tensor_count, uint64 kv_count
//   kv_count x:   string key, uint32 value_type, value
//   tensor_count: string name, uint32 n_dims, uint64 ne[n_dims], uint32 type, uint64 offset
//   padding to general.alignment, then the data section; offsets are relative to it.
// Strings are a uint64 length followed by that many bytes (no terminator). An array
// value is uint32 element_type, uint64 length, then the elements' payloads (an element
// that is itself an array carries its own element type and length).
#include "model/gguf.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <limits>
#include <utility>

#include "muse/error.h"

static_assert(std::endian::native == std::endian::little,
              "the GGUF reader and writer assume a little-endian host");

namespace muse {
namespace {

constexpr uint32_t kMaxGgufType = static_cast<uint32_t>(GgufType::FLOAT64);
constexpr size_t kDefaultAlignment = 32;
constexpr uint64_t kMaxAlignment = uint64_t{1} << 30;
constexpr int kMaxArrayNesting = 8;  // real files nest at most once; bounds recursion
constexpr int kMaxDims = 4;
// Smallest possible encodings, used to reject counts that cannot fit in the file
// before anything is allocated for them.
constexpr uint64_t kMinKvBytes = 8 + 4 + 1;                  // empty key, type, 1-byte value
constexpr uint64_t kMinTensorInfoBytes = 8 + 4 + 8 + 4 + 8;  // empty name, one dim

bool is_integer_type(GgufType t) {
  switch (t) {
    case GgufType::UINT8:
    case GgufType::INT8:
    case GgufType::UINT16:
    case GgufType::INT16:
    case GgufType::UINT32:
    case GgufType::INT32:
    case GgufType::UINT64:
    case GgufType::INT64:
      return true;
    default:
      return false;
  }
}

bool is_signed_type(GgufType t) {
  return t == GgufType::INT8 || t == GgufType::INT16 || t == GgufType::INT32 ||
         t == GgufType::INT64;
}

bool is_float_type(GgufType t) {
  return t == GgufType::FLOAT32 || t == GgufType::FLOAT64;
}

// Bytes of a scalar payload; for STRING and ARRAY the smallest possible encoding.
uint64_t min_payload_bytes(GgufType t) {
  switch (t) {
    case GgufType::UINT8:
    case GgufType::INT8:
    case GgufType::BOOL:
      return 1;
    case GgufType::UINT16:
    case GgufType::INT16:
      return 2;
    case GgufType::UINT32:
    case GgufType::INT32:
    case GgufType::FLOAT32:
      return 4;
    case GgufType::UINT64:
    case GgufType::INT64:
    case GgufType::FLOAT64:
    case GgufType::STRING:
      return 8;
    case GgufType::ARRAY:
      return 12;
  }
  return 1;
}

std::string type_name(GgufType t) {
  switch (t) {
    case GgufType::UINT8:
      return "uint8";
    case GgufType::INT8:
      return "int8";
    case GgufType::UINT16:
      return "uint16";
    case GgufType::INT16:
      return "int16";
    case GgufType::UINT32:
      return "uint32";
    case GgufType::INT32:
      return "int32";
    case GgufType::FLOAT32:
      return "float32";
    case GgufType::BOOL:
      return "bool";
    case GgufType::STRING:
      return "string";
    case GgufType::ARRAY:
      return "array";
    case GgufType::UINT64:
      return "uint64";
    case GgufType::INT64:
      return "int64";
    case GgufType::FLOAT64:
      return "float64";
  }
  return str_cat("type ", static_cast<uint32_t>(t));
}

std::string value_type_name(const GgufValue& v) {
  if (v.type() != GgufType::ARRAY) return type_name(v.type());
  return "array of " + type_name(v.array_type());
}

uint64_t align_up(uint64_t x, uint64_t alignment) {
  return (x + alignment - 1) / alignment * alignment;
}

// Reads little-endian fields from a byte range, turning every out-of-range read into
// a muse::Error that names the file, the field and the item being read.
class ByteReader {
 public:
  ByteReader(const uint8_t* data, size_t size, const std::string& path)
      : data_(data), size_(size), path_(path) {}

  size_t pos() const { return pos_; }
  size_t size() const { return size_; }
  size_t remaining() const { return size_ - pos_; }
  const std::string& path() const { return path_; }
  // What is being read ("key 'general.name'", "tensor 'x'"), for error messages.
  void set_context(std::string context) { context_ = std::move(context); }
  const std::string& context() const { return context_; }

  template <typename... Args>
  [[noreturn]] void fail(Args&&... args) const {
    throw Error(str_cat(path_, ": ", std::forward<Args>(args)...));
  }

  void need(uint64_t n, const char* what) const {
    if (n > remaining())
      fail("truncated file: ", what, " of ", context_, " at offset ", pos_, " needs ", n,
           " bytes, only ", remaining(), " remain");
  }

  template <typename T>
  T read(const char* what) {
    need(sizeof(T), what);
    T v;
    std::memcpy(&v, data_ + pos_, sizeof(T));
    pos_ += sizeof(T);
    return v;
  }

  std::string read_string(const char* what) {
    const uint64_t len = read<uint64_t>(what);
    if (len > remaining())
      fail("string length ", len, " of ", what, " of ", context_, " at offset ", pos_ - 8,
           " exceeds the ", remaining(), " bytes left in the file");
    std::string s(reinterpret_cast<const char*>(data_ + pos_), static_cast<size_t>(len));
    pos_ += static_cast<size_t>(len);
    return s;
  }

 private:
  const uint8_t* data_;
  size_t size_;
  size_t pos_ = 0;
  const std::string& path_;
  std::string context_;
};

class ByteWriter {
 public:
  template <typename T>
  void put(T v) {
    const size_t at = out_.size();
    out_.resize(at + sizeof(T));
    std::memcpy(out_.data() + at, &v, sizeof(T));
  }
  void put_string(const std::string& s) {
    put<uint64_t>(s.size());
    out_.insert(out_.end(), s.begin(), s.end());
  }
  void put_bytes(const std::vector<uint8_t>& b) { out_.insert(out_.end(), b.begin(), b.end()); }
  void pad_to(uint64_t alignment) { out_.resize(align_up(out_.size(), alignment), 0); }
  size_t size() const { return out_.size(); }
  std::vector<uint8_t> take() { return std::move(out_); }

 private:
  std::vector<uint8_t> out_;
};

}  // namespace

// ---------------------------------------------------------------------------
// GgufValue

// Signed integers are stored sign-extended, so as_i64 reads them back directly.
GgufValue GgufValue::u8(uint8_t v) { return {GgufType::UINT8, v, 0}; }
GgufValue GgufValue::i8(int8_t v) { return {GgufType::INT8, static_cast<uint64_t>(int64_t{v}), 0}; }
GgufValue GgufValue::u16(uint16_t v) { return {GgufType::UINT16, v, 0}; }
GgufValue GgufValue::i16(int16_t v) { return {GgufType::INT16, static_cast<uint64_t>(int64_t{v}), 0}; }
GgufValue GgufValue::u32(uint32_t v) { return {GgufType::UINT32, v, 0}; }
GgufValue GgufValue::i32(int32_t v) { return {GgufType::INT32, static_cast<uint64_t>(int64_t{v}), 0}; }
GgufValue GgufValue::u64(uint64_t v) { return {GgufType::UINT64, v, 0}; }
GgufValue GgufValue::i64(int64_t v) { return {GgufType::INT64, static_cast<uint64_t>(v), 0}; }
GgufValue GgufValue::f32(float v) { return {GgufType::FLOAT32, 0, v}; }
GgufValue GgufValue::f64(double v) { return {GgufType::FLOAT64, 0, v}; }
GgufValue GgufValue::boolean(bool v) { return {GgufType::BOOL, v ? 1u : 0u, 0}; }
GgufValue GgufValue::string(std::string v) {
  GgufValue r;
  r.type_ = GgufType::STRING;
  r.str_ = std::move(v);
  return r;
}
GgufValue GgufValue::string_array(std::vector<std::string> v) {
  GgufValue r;
  r.type_ = GgufType::ARRAY;
  r.array_type_ = GgufType::STRING;
  r.strs_ = std::move(v);
  return r;
}
GgufValue GgufValue::i32_array(const std::vector<int32_t>& v) {
  GgufValue r;
  r.type_ = GgufType::ARRAY;
  r.array_type_ = GgufType::INT32;
  r.ints_.assign(v.begin(), v.end());
  return r;
}
GgufValue GgufValue::f32_array(const std::vector<float>& v) {
  GgufValue r;
  r.type_ = GgufType::ARRAY;
  r.array_type_ = GgufType::FLOAT32;
  r.reals_.assign(v.begin(), v.end());
  return r;
}

GgufValue GgufValue::array(GgufType elem_type, std::vector<GgufValue> elems) {
  MUSE_CHECK(static_cast<uint32_t>(elem_type) <= kMaxGgufType, "unknown GGUF value type ",
             static_cast<uint32_t>(elem_type));
  GgufValue r;
  r.type_ = GgufType::ARRAY;
  r.array_type_ = elem_type;
  for (size_t i = 0; i < elems.size(); ++i)
    MUSE_CHECK(elems[i].type_ == elem_type, "GGUF array of ", type_name(elem_type), ": element ", i,
               " is a ", value_type_name(elems[i]));
  if (elem_type == GgufType::ARRAY) {
    r.nested_ = std::move(elems);
  } else if (elem_type == GgufType::STRING) {
    r.strs_.reserve(elems.size());
    for (auto& e : elems) r.strs_.push_back(std::move(e.str_));
  } else if (is_float_type(elem_type)) {
    r.reals_.reserve(elems.size());
    for (const auto& e : elems) r.reals_.push_back(e.real_);
  } else {
    r.ints_.reserve(elems.size());
    for (const auto& e : elems) r.ints_.push_back(static_cast<int64_t>(e.bits_));
  }
  return r;
}

int64_t GgufValue::as_i64() const {
  if (type_ == GgufType::BOOL || is_signed_type(type_)) return static_cast<int64_t>(bits_);
  if (is_integer_type(type_)) {
    MUSE_CHECK(bits_ <= static_cast<uint64_t>(std::numeric_limits<int64_t>::max()), "GGUF value ",
               bits_, " does not fit in int64");
    return static_cast<int64_t>(bits_);
  }
  throw Error(str_cat("GGUF value is a ", value_type_name(*this), ", not an integer"));
}

uint64_t GgufValue::as_u64() const {
  if (type_ == GgufType::BOOL || (is_integer_type(type_) && !is_signed_type(type_))) return bits_;
  if (is_signed_type(type_)) {
    MUSE_CHECK(static_cast<int64_t>(bits_) >= 0, "GGUF value ", static_cast<int64_t>(bits_),
               " is negative, expected an unsigned integer");
    return bits_;
  }
  throw Error(str_cat("GGUF value is a ", value_type_name(*this), ", not an integer"));
}

double GgufValue::as_f64() const {
  if (is_float_type(type_)) return real_;
  if (is_signed_type(type_)) return static_cast<double>(static_cast<int64_t>(bits_));
  if (is_integer_type(type_)) return static_cast<double>(bits_);
  throw Error(str_cat("GGUF value is a ", value_type_name(*this), ", not a number"));
}

bool GgufValue::as_bool() const {
  if (type_ == GgufType::BOOL) return bits_ != 0;
  if (is_integer_type(type_) && bits_ <= 1) return bits_ != 0;
  throw Error(str_cat("GGUF value is a ", value_type_name(*this), ", not a bool"));
}

const std::string& GgufValue::as_string() const {
  MUSE_CHECK(type_ == GgufType::STRING, "GGUF value is a ", value_type_name(*this),
             ", not a string");
  return str_;
}

size_t GgufValue::array_size() const {
  if (type_ != GgufType::ARRAY) return 0;
  if (array_type_ == GgufType::ARRAY) return nested_.size();
  if (array_type_ == GgufType::STRING) return strs_.size();
  if (is_float_type(array_type_)) return reals_.size();
  return ints_.size();
}

const std::vector<std::string>& GgufValue::as_strings() const {
  MUSE_CHECK(type_ == GgufType::ARRAY && array_type_ == GgufType::STRING, "GGUF value is a ",
             value_type_name(*this), ", not an array of strings");
  return strs_;
}

std::vector<int64_t> GgufValue::as_ints() const {
  const bool ok =
      type_ == GgufType::ARRAY && (is_integer_type(array_type_) || array_type_ == GgufType::BOOL);
  MUSE_CHECK(ok, "GGUF value is a ", value_type_name(*this), ", not an array of integers");
  if (array_type_ == GgufType::UINT64)
    for (int64_t v : ints_)
      MUSE_CHECK(v >= 0, "GGUF array value ", static_cast<uint64_t>(v), " does not fit in int64");
  return ints_;
}

std::vector<double> GgufValue::as_floats() const {
  MUSE_CHECK(
      type_ == GgufType::ARRAY && (is_float_type(array_type_) || is_integer_type(array_type_)),
      "GGUF value is a ", value_type_name(*this), ", not an array of numbers");
  if (is_float_type(array_type_)) return reals_;
  std::vector<double> out;
  out.reserve(ints_.size());
  for (int64_t v : ints_)
    out.push_back(array_type_ == GgufType::UINT64 ? static_cast<double>(static_cast<uint64_t>(v))
                                                  : static_cast<double>(v));
  return out;
}

const std::vector<GgufValue>& GgufValue::as_array() const {
  MUSE_CHECK(type_ == GgufType::ARRAY && array_type_ == GgufType::ARRAY, "GGUF value is a ",
             value_type_name(*this), ", not an array of arrays");
  return nested_;
}

// ---------------------------------------------------------------------------
// Value payload encoding, shared by the reader and the writer.

struct GgufValueCodec {
  static GgufType read_type(ByteReader& r, const char* what) {
    const uint32_t raw = r.read<uint32_t>(what);
    if (raw > kMaxGgufType) r.fail("unknown value type ", raw, " (", what, ") of ", r.context());
    return static_cast<GgufType>(raw);
  }

  // Reads an integer/bool payload as its sign-extended 64-bit pattern.
  static uint64_t read_int_bits(ByteReader& r, GgufType t) {
    switch (t) {
      case GgufType::UINT8:
        return r.read<uint8_t>("uint8 value");
      case GgufType::INT8:
        return static_cast<uint64_t>(int64_t{r.read<int8_t>("int8 value")});
      case GgufType::UINT16:
        return r.read<uint16_t>("uint16 value");
      case GgufType::INT16:
        return static_cast<uint64_t>(int64_t{r.read<int16_t>("int16 value")});
      case GgufType::UINT32:
        return r.read<uint32_t>("uint32 value");
      case GgufType::INT32:
        return static_cast<uint64_t>(int64_t{r.read<int32_t>("int32 value")});
      case GgufType::UINT64:
        return r.read<uint64_t>("uint64 value");
      case GgufType::INT64:
        return static_cast<uint64_t>(r.read<int64_t>("int64 value"));
      case GgufType::BOOL: {
        const uint8_t b = r.read<uint8_t>("bool value");
        if (b > 1) r.fail("invalid bool value ", int{b}, " of ", r.context(), " (must be 0 or 1)");
        return b;
      }
      default:
        r.fail("internal error: ", type_name(t), " is not an integer type");
    }
  }

  static double read_real(ByteReader& r, GgufType t) {
    if (t == GgufType::FLOAT32) return r.read<float>("float32 value");
    return r.read<double>("float64 value");
  }

  static GgufValue read(ByteReader& r, GgufType t, int depth) {
    GgufValue v;
    v.type_ = t;
    if (t == GgufType::STRING) {
      v.str_ = r.read_string("string value");
    } else if (is_float_type(t)) {
      v.real_ = read_real(r, t);
    } else if (t != GgufType::ARRAY) {
      v.bits_ = read_int_bits(r, t);
    } else {
      if (depth >= kMaxArrayNesting)
        r.fail("arrays of ", r.context(), " are nested deeper than ", kMaxArrayNesting, " levels");
      v.array_type_ = read_type(r, "array element type");
      const uint64_t n = r.read<uint64_t>("array length");
      const uint64_t min_bytes = min_payload_bytes(v.array_type_);
      if (n > r.remaining() / min_bytes)
        r.fail("array length ", n, " of ", r.context(), " (", type_name(v.array_type_),
               " elements) exceeds the ", r.remaining(), " bytes left in the file");
      const size_t count = static_cast<size_t>(n);
      const GgufType et = v.array_type_;
      if (et == GgufType::ARRAY) {
        v.nested_.reserve(count);
        for (size_t i = 0; i < count; ++i) v.nested_.push_back(read(r, et, depth + 1));
      } else if (et == GgufType::STRING) {
        v.strs_.reserve(count);
        for (size_t i = 0; i < count; ++i) v.strs_.push_back(r.read_string("array element"));
      } else if (is_float_type(et)) {
        v.reals_.reserve(count);
        for (size_t i = 0; i < count; ++i) v.reals_.push_back(read_real(r, et));
      } else {
        v.ints_.reserve(count);
        for (size_t i = 0; i < count; ++i)
          v.ints_.push_back(static_cast<int64_t>(read_int_bits(r, et)));
      }
    }
    return v;
  }

  static void write_int_bits(ByteWriter& w, GgufType t, uint64_t bits) {
    switch (t) {
      case GgufType::UINT8:
      case GgufType::INT8:
      case GgufType::BOOL:
        w.put(static_cast<uint8_t>(bits));
        break;
      case GgufType::UINT16:
      case GgufType::INT16:
        w.put(static_cast<uint16_t>(bits));
        break;
      case GgufType::UINT32:
      case GgufType::INT32:
        w.put(static_cast<uint32_t>(bits));
        break;
      default:
        w.put(bits);
        break;
    }
  }

  static void write_real(ByteWriter& w, GgufType t, double v) {
    if (t == GgufType::FLOAT32)
      w.put(static_cast<float>(v));
    else
      w.put(v);
  }

  // Writes the payload only; the caller writes the type tag where the format has one.
  static void write(ByteWriter& w, const GgufValue& v) {
    const GgufType t = v.type_;
    if (t == GgufType::STRING) {
      w.put_string(v.str_);
    } else if (is_float_type(t)) {
      write_real(w, t, v.real_);
    } else if (t != GgufType::ARRAY) {
      write_int_bits(w, t, v.bits_);
    } else {
      const GgufType et = v.array_type_;
      w.put(static_cast<uint32_t>(et));
      w.put<uint64_t>(v.array_size());
      if (et == GgufType::ARRAY) {
        for (const auto& e : v.nested_) write(w, e);
      } else if (et == GgufType::STRING) {
        for (const auto& s : v.strs_) w.put_string(s);
      } else if (is_float_type(et)) {
        for (double x : v.reals_) write_real(w, et, x);
      } else {
        for (int64_t x : v.ints_) write_int_bits(w, et, static_cast<uint64_t>(x));
      }
    }
  }
};

namespace {

// Validates a general.alignment value; returns the error text or an empty string.
std::string alignment_problem(const GgufValue& v, uint64_t* alignment) {
  if (!is_integer_type(v.type()))
    return str_cat("general.alignment must be an integer, got a ", value_type_name(v));
  if (is_signed_type(v.type()) && v.as_i64() < 0)
    return str_cat("general.alignment ", v.as_i64(), " is not a nonzero power of two");
  const uint64_t a = v.as_u64();
  if (a == 0 || !std::has_single_bit(a))
    return str_cat("general.alignment ", a, " is not a nonzero power of two");
  if (a > kMaxAlignment)
    return str_cat("general.alignment ", a, " is too large (at most ", kMaxAlignment, ")");
  *alignment = a;
  return {};
}

// Bytes and elements of a tensor of `info`'s type with dims ne; false when either
// exceeds int64.
bool checked_tensor_bytes(const DTypeInfo& info, const std::array<int64_t, 4>& ne, uint64_t* nbytes,
                          uint64_t* n_elements) {
  uint64_t elems = 1;
  for (int64_t d : ne)
    if (__builtin_mul_overflow(elems, static_cast<uint64_t>(d), &elems)) return false;
  if (elems > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) return false;
  const uint64_t blocks = elems / static_cast<uint64_t>(info.block_size);
  uint64_t bytes = 0;
  if (__builtin_mul_overflow(blocks, uint64_t{info.block_bytes}, &bytes) ||
      bytes > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()))
    return false;
  *nbytes = bytes;
  *n_elements = elems;
  return true;
}

}  // namespace

// ---------------------------------------------------------------------------
// GgufFile

std::unique_ptr<GgufFile> GgufFile::open(const std::string& path) {
  return parse(MappedFile::open(path));
}

std::unique_ptr<GgufFile> GgufFile::parse(std::shared_ptr<MappedFile> file) {
  MUSE_CHECK(file != nullptr, "GgufFile::parse: no file");
  auto g = std::make_unique<GgufFile>();
  g->file_ = std::move(file);
  const std::string& path = g->file_->path();
  ByteReader r(g->file_->data(), g->file_->size(), path);
  r.set_context("the header");

  // Header.
  if (r.size() < 4) r.fail("truncated file: ", r.size(), " bytes is too small for a GGUF header");
  const uint8_t* d = g->file_->data();
  if (std::memcmp(d, "GGUF", 4) != 0) {
    std::string shown;
    for (int i = 0; i < 4; ++i)
      shown += (d[i] >= 0x20 && d[i] < 0x7f) ? std::string(1, static_cast<char>(d[i]))
                                             : str_cat("\\x", std::hex, int{d[i]});
    r.fail("not a GGUF file (bad magic '", shown, "')");
  }
  r.read<uint32_t>("magic");
  const uint32_t version = r.read<uint32_t>("version");
  if (version == 1) r.fail("GGUF version 1 is not supported (only versions 2 and 3 are)");
  if (version != 2 && version != 3) {
    const uint32_t swapped = __builtin_bswap32(version);
    if (swapped >= 1 && swapped <= 3)
      r.fail("big-endian GGUF files are not supported (version field ", version, ")");
    r.fail("unsupported GGUF version ", version, " (only versions 2 and 3 are supported)");
  }
  g->version_ = version;
  const uint64_t n_tensors = r.read<uint64_t>("tensor count");
  const uint64_t n_kv = r.read<uint64_t>("key-value count");
  if (n_tensors > r.remaining() / kMinTensorInfoBytes)
    r.fail("tensor count ", n_tensors, " is implausible for a file of ", r.size(), " bytes");
  const uint64_t left_for_kv = r.remaining() - n_tensors * kMinTensorInfoBytes;
  if (n_kv > left_for_kv / kMinKvBytes)
    r.fail("key-value count ", n_kv, " is implausible for a file of ", r.size(), " bytes");

  // Metadata.
  g->key_order_.reserve(static_cast<size_t>(n_kv));
  for (uint64_t i = 0; i < n_kv; ++i) {
    r.set_context(str_cat("key-value pair ", i));
    std::string key = r.read_string("key");
    r.set_context(str_cat("key '", key, "'"));
    const GgufType type = GgufValueCodec::read_type(r, "value type");
    GgufValue value = GgufValueCodec::read(r, type, 0);
    if (g->kv_.count(key)) r.fail("duplicate key '", key, "'");
    g->kv_.emplace(key, std::move(value));
    g->key_order_.push_back(std::move(key));
  }

  uint64_t alignment = kDefaultAlignment;
  if (const GgufValue* a = g->find("general.alignment")) {
    const std::string problem = alignment_problem(*a, &alignment);
    if (!problem.empty()) r.fail(problem);
  }
  g->alignment_ = static_cast<size_t>(alignment);

  // Tensor infos.
  struct Raw {
    uint64_t offset;
    uint64_t nbytes;
  };
  std::vector<Raw> raw;
  raw.reserve(static_cast<size_t>(n_tensors));
  g->tensors_.reserve(static_cast<size_t>(n_tensors));
  for (uint64_t i = 0; i < n_tensors; ++i) {
    r.set_context(str_cat("tensor info ", i));
    std::string name = r.read_string("tensor name");
    if (name.empty()) r.fail("tensor info ", i, " has an empty tensor name");
    r.set_context(str_cat("tensor '", name, "'"));
    if (g->tensor_index_.count(name)) r.fail("duplicate tensor name '", name, "'");
    const uint32_t n_dims = r.read<uint32_t>("n_dims");
    if (n_dims < 1 || n_dims > kMaxDims)
      r.fail("tensor '", name, "' has n_dims ", n_dims, " (must be 1 to ", kMaxDims, ")");
    TensorView view;
    view.n_dims = static_cast<int>(n_dims);
    for (uint32_t j = 0; j < n_dims; ++j) {
      const uint64_t dim = r.read<uint64_t>("dimension");
      if (dim > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()))
        r.fail("tensor '", name, "' dimension ", j, " is negative (", static_cast<int64_t>(dim),
               ")");
      view.ne[j] = static_cast<int64_t>(dim);
    }
    const uint32_t type_id = r.read<uint32_t>("tensor type");
    const std::optional<DTypeInfo> info = dtype_info(type_id);
    if (!info) r.fail("tensor '", name, "' has an unknown tensor type ", type_id);
    view.type = info->type;
    const uint64_t offset = r.read<uint64_t>("data offset");

    if (view.ne[0] % info->block_size != 0)
      r.fail("tensor '", name, "' ne[0] = ", view.ne[0], " is not a multiple of the block size ",
             info->block_size, " of type ", info->name);
    uint64_t nbytes = 0, n_elements = 0;
    if (!checked_tensor_bytes(*info, view.ne, &nbytes, &n_elements))
      r.fail("tensor '", name, "' size overflows (shape ", shape_string(view), ", type ",
             info->name, ")");
    if (offset % alignment != 0)
      r.fail("tensor '", name, "' data offset ", offset, " is not a multiple of the alignment ",
             alignment);
    view.nbytes = static_cast<size_t>(nbytes);
    g->tensor_index_.emplace(name, g->tensors_.size());
    g->tensors_.push_back(GgufTensorInfo{std::move(name), view, offset});
    raw.push_back(Raw{offset, nbytes});
  }

  // Data section: every tensor must lie inside the file. (A file without tensors may
  // end before the aligned data start: llama.cpp's vocab-only files do.)
  const uint64_t data_start = align_up(r.pos(), alignment);
  const uint64_t file_size = r.size();
  for (size_t i = 0; i < g->tensors_.size(); ++i) {
    GgufTensorInfo& t = g->tensors_[i];
    uint64_t begin = 0, end = 0;
    if (__builtin_add_overflow(data_start, raw[i].offset, &begin) ||
        __builtin_add_overflow(begin, raw[i].nbytes, &end) || end > file_size)
      r.fail("tensor '", t.name, "' data (offset ", data_start + raw[i].offset, ", ", raw[i].nbytes,
             " bytes) extends past the end of the file (", file_size, " bytes)");
    t.view.data = g->file_->data() + begin;
  }

  // No two tensors may share bytes (empty tensors share none).
  std::vector<size_t> by_offset;
  for (size_t i = 0; i < raw.size(); ++i)
    if (raw[i].nbytes > 0) by_offset.push_back(i);
  std::sort(by_offset.begin(), by_offset.end(),
            [&](size_t a, size_t b) { return raw[a].offset < raw[b].offset; });
  for (size_t k = 1; k < by_offset.size(); ++k) {
    const size_t prev = by_offset[k - 1], cur = by_offset[k];
    if (raw[prev].offset + raw[prev].nbytes > raw[cur].offset)
      r.fail("tensor '", g->tensors_[cur].name, "' (data offset ", raw[cur].offset, ", ",
             raw[cur].nbytes, " bytes) overlaps tensor '", g->tensors_[prev].name,
             "' (data offset ", raw[prev].offset, ", ", raw[prev].nbytes, " bytes)");
  }
  return g;
}

const GgufValue* GgufFile::find(const std::string& key) const {
  auto it = kv_.find(key);
  return it == kv_.end() ? nullptr : &it->second;
}

const GgufTensorInfo* GgufFile::find_tensor(const std::string& name) const {
  auto it = tensor_index_.find(name);
  return it == tensor_index_.end() ? nullptr : &tensors_[it->second];
}

namespace {

// Runs an accessor on a key's value, naming the file and key in any error.
template <typename F>
auto get_checked(const GgufFile& g, const std::string& key, F&& get) {
  const GgufValue* v = g.find(key);
  MUSE_CHECK(v != nullptr, g.path(), ": missing key '", key, "'");
  try {
    return get(*v);
  } catch (const Error& e) {
    throw Error(str_cat(g.path(), ": key '", key, "': ", e.what()));
  }
}

}  // namespace

std::string GgufFile::get_string(const std::string& key) const {
  return get_checked(*this, key, [](const GgufValue& v) { return v.as_string(); });
}
int64_t GgufFile::get_int(const std::string& key) const {
  return get_checked(*this, key, [](const GgufValue& v) { return v.as_i64(); });
}
double GgufFile::get_float(const std::string& key) const {
  return get_checked(*this, key, [](const GgufValue& v) { return v.as_f64(); });
}
bool GgufFile::get_bool(const std::string& key) const {
  return get_checked(*this, key, [](const GgufValue& v) { return v.as_bool(); });
}
int64_t GgufFile::get_int_or(const std::string& key, int64_t def) const {
  return find(key) ? get_int(key) : def;
}
double GgufFile::get_float_or(const std::string& key, double def) const {
  return find(key) ? get_float(key) : def;
}
bool GgufFile::get_bool_or(const std::string& key, bool def) const {
  return find(key) ? get_bool(key) : def;
}
std::string GgufFile::get_string_or(const std::string& key, const std::string& def) const {
  return find(key) ? get_string(key) : def;
}

// ---------------------------------------------------------------------------
// GgufWriter

void GgufWriter::set(const std::string& key, GgufValue value) {
  for (auto& kv : kv_) {
    if (kv.first == key) {
      kv.second = std::move(value);
      return;
    }
  }
  kv_.emplace_back(key, std::move(value));
}

void GgufWriter::add_tensor(const std::string& name, DType type, const std::vector<int64_t>& ne,
                            const void* data, size_t nbytes) {
  MUSE_CHECK(!name.empty(), "GgufWriter: empty tensor name");
  for (const auto& t : tensors_)
    MUSE_CHECK(t.name != name, "GgufWriter: duplicate tensor name '", name, "'");
  MUSE_CHECK(!ne.empty() && ne.size() <= kMaxDims, "GgufWriter: tensor '", name, "' has ",
             ne.size(), " dimensions (must be 1 to ", kMaxDims, ")");
  const DTypeInfo& info = dtype_info(type);
  std::array<int64_t, 4> dims{1, 1, 1, 1};
  for (size_t i = 0; i < ne.size(); ++i) {
    MUSE_CHECK(ne[i] >= 0, "GgufWriter: tensor '", name, "' dimension ", i, " is negative");
    dims[i] = ne[i];
  }
  MUSE_CHECK(ne[0] % info.block_size == 0, "GgufWriter: tensor '", name, "' ne[0] = ", ne[0],
             " is not a multiple of the block size ", info.block_size, " of ", info.name);
  uint64_t expected = 0, n_elements = 0;
  MUSE_CHECK(checked_tensor_bytes(info, dims, &expected, &n_elements), "GgufWriter: tensor '", name,
             "' size overflows");
  MUSE_CHECK(nbytes == expected, "GgufWriter: tensor '", name, "' has ", nbytes,
             " bytes of data, its shape and type need ", expected);
  MUSE_CHECK(data != nullptr || nbytes == 0, "GgufWriter: tensor '", name, "' has no data");
  const auto* bytes = static_cast<const uint8_t*>(data);
  tensors_.push_back(PendingTensor{name, type, ne, std::vector<uint8_t>(bytes, bytes + nbytes)});
}

std::vector<uint8_t> GgufWriter::serialize() const {
  uint64_t alignment = kDefaultAlignment;
  for (const auto& [key, value] : kv_) {
    if (key != "general.alignment") continue;
    const std::string problem = alignment_problem(value, &alignment);
    MUSE_CHECK(problem.empty(), "GgufWriter: ", problem);
  }

  ByteWriter w;
  w.put<uint32_t>(0x46554747);  // "GGUF" read as a little-endian uint32
  w.put<uint32_t>(3);
  w.put<uint64_t>(tensors_.size());
  w.put<uint64_t>(kv_.size());
  for (const auto& [key, value] : kv_) {
    w.put_string(key);
    w.put(static_cast<uint32_t>(value.type()));
    GgufValueCodec::write(w, value);
  }
  uint64_t offset = 0;
  for (const auto& t : tensors_) {
    w.put_string(t.name);
    w.put(static_cast<uint32_t>(t.ne.size()));
    for (int64_t d : t.ne) w.put(static_cast<uint64_t>(d));
    w.put(static_cast<uint32_t>(t.type));
    w.put<uint64_t>(offset);
    offset = align_up(offset + t.data.size(), alignment);
  }
  w.pad_to(alignment);
  for (const auto& t : tensors_) {
    w.put_bytes(t.data);
    w.pad_to(alignment);
  }
  return w.take();
}

namespace detail {

// Writes to a temporary file next to `path`, then renames it over `path`, so readers
// never see a half-written file. Also used by the safetensors writer (safetensors.cpp
// declares it).
void write_file_atomically(const std::string& path, const std::vector<uint8_t>& bytes) {
  std::string tmp = path + ".tmp-XXXXXX";
  const int fd = ::mkstemp(tmp.data());
  if (fd < 0)
    throw Error(str_cat("cannot create a temporary file for ", path, ": ", std::strerror(errno)));
  auto fail = [&](const char* step) {
    const int err = errno;
    ::close(fd);
    ::unlink(tmp.c_str());
    throw Error(str_cat("cannot write ", path, ": ", step, ": ", std::strerror(err)));
  };
  size_t done = 0;
  while (done < bytes.size()) {
    const ssize_t n = ::write(fd, bytes.data() + done, bytes.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) fail("write");
    done += static_cast<size_t>(n);
  }
  if (::fchmod(fd, 0644) != 0) fail("chmod");
  if (::fsync(fd) != 0) fail("fsync");
  if (::close(fd) != 0) {
    const int err = errno;
    ::unlink(tmp.c_str());
    throw Error(str_cat("cannot write ", path, ": close: ", std::strerror(err)));
  }
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    const int err = errno;
    ::unlink(tmp.c_str());
    throw Error(str_cat("cannot write ", path, ": rename: ", std::strerror(err)));
  }
}

}  // namespace detail

void GgufWriter::write(const std::string& path) const {
  detail::write_file_atomically(path, serialize());
}

}  // namespace muse
