// Malformed GGUF and safetensors files. Each case starts from a valid image made
// by the writers (or a hand-written safetensors header), damages one thing, and
// checks that the reader throws muse::Error with a message naming that problem.
// Then truncation at every length and random byte flips: the readers must either
// load or throw muse::Error, never crash or read out of bounds. Built and run under
// ASan+UBSan by `make test` (label sanitize).
#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <functional>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#include "model/gguf.h"
#include "model/safetensors.h"
#include "muse/error.h"

namespace muse {
namespace {

using Image = std::vector<uint8_t>;
constexpr const char* kGgufName = "corrupt.gguf";
constexpr const char* kStName = "corrupt.safetensors";

std::unique_ptr<GgufFile> parse_gguf(const Image& img) {
  return GgufFile::parse(MappedFile::from_bytes(img, kGgufName));
}
std::unique_ptr<SafetensorsFile> parse_st(const Image& img) {
  return SafetensorsFile::parse(MappedFile::from_bytes(img, kStName));
}

// Runs f; returns the muse::Error message, or a marker when it succeeded or threw
// something else.
std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  } catch (const std::exception& e) {
    return std::string("(not a muse::Error: ") + e.what() + ")";
  }
  return "(no error)";
}

template <typename T>
void poke(Image& img, size_t at, T v) {
  ASSERT_LE(at + sizeof(T), img.size());
  std::memcpy(img.data() + at, &v, sizeof(T));
}

// Offset of the encoded string s (its uint64 length field) in a GGUF image.
size_t find_encoded(const Image& img, const std::string& s) {
  Image pattern(8 + s.size());
  const uint64_t n = s.size();
  std::memcpy(pattern.data(), &n, 8);
  std::memcpy(pattern.data() + 8, s.data(), s.size());
  auto it = std::search(img.begin(), img.end(), pattern.begin(), pattern.end());
  if (it == img.end()) throw std::logic_error("test bug: string not in image: " + s);
  return static_cast<size_t>(it - img.begin());
}
// Offset just past the encoded string s: a key's value type, a tensor's n_dims.
size_t after(const Image& img, const std::string& s) {
  return find_encoded(img, s) + 8 + s.size();
}

// Tensor info field offsets of a tensor with n_dims dimensions.
size_t ne_at(const Image& img, const std::string& name, int dim) {
  return after(img, name) + 4 + 8 * dim;
}
size_t type_at(const Image& img, const std::string& name, int n_dims) {
  return after(img, name) + 4 + 8 * n_dims;
}
size_t offset_at(const Image& img, const std::string& name, int n_dims) {
  return type_at(img, name, n_dims) + 4;
}

GgufWriter base_writer() {
  GgufWriter w;
  w.set("general.architecture", GgufValue::string("corrupt-test"));
  w.set("general.alignment", GgufValue::u32(32));
  w.set("test.count", GgufValue::u32(7));
  w.set("test.flag", GgufValue::boolean(true));
  w.set("test.list", GgufValue::string_array({"x", "yz"}));
  w.set("test.nested", GgufValue::array(GgufType::ARRAY, {GgufValue::i32_array({1, 2}),
                                                          GgufValue::string_array({"s"})}));
  w.set("dup.key1", GgufValue::u32(1));
  w.set("dup.key2", GgufValue::u32(2));
  std::vector<uint8_t> data(68);
  for (size_t i = 0; i < data.size(); ++i) data[i] = static_cast<uint8_t>(i * 7);
  w.add_tensor("tensor.a", DType::F32, {8, 2}, data.data(), 64);  // offset 0
  w.add_tensor("tensor.b", DType::Q8_0, {64}, data.data(), 68);   // offset 64
  w.add_tensor("tensor.c", DType::F16, {4}, data.data(), 8);      // offset 160
  return w;
}

Image valid_gguf() {
  return base_writer().serialize();
}

struct Case {
  const char* what;
  std::function<void(Image&)> corrupt;
  const char* phrase;
};

TEST(CorruptGguf, BaseImageIsValid) {
  auto g = parse_gguf(valid_gguf());
  EXPECT_EQ(g->tensors().size(), 3u);
  EXPECT_EQ(g->find_tensor("tensor.b")->offset, 64u);
  EXPECT_EQ(g->find_tensor("tensor.c")->offset, 160u);
  EXPECT_EQ(g->get_int("test.count"), 7);
}

TEST(CorruptGguf, EachDefectIsNamed) {
  const uint64_t huge = uint64_t{1} << 60;
  const std::vector<Case> cases = {
      {"bad magic", [](Image& b) { b[3] = 'X'; }, "bad magic"},
      {"version 1", [](Image& b) { poke<uint32_t>(b, 4, 1); }, "version 1 is not supported"},
      {"version 4", [](Image& b) { poke<uint32_t>(b, 4, 4); }, "unsupported GGUF version 4"},
      {"version 0", [](Image& b) { poke<uint32_t>(b, 4, 0); }, "unsupported GGUF version 0"},
      {"big-endian", [](Image& b) { poke<uint32_t>(b, 4, 0x03000000); }, "big-endian"},
      {"huge tensor count", [&](Image& b) { poke<uint64_t>(b, 8, huge); },
       "tensor count 1152921504606846976 is implausible"},
      {"huge kv count", [&](Image& b) { poke<uint64_t>(b, 16, huge); },
       "key-value count 1152921504606846976 is implausible"},
      {"max kv count", [](Image& b) { poke<uint64_t>(b, 16, ~uint64_t{0}); }, "implausible"},
      {"key length past EOF",
       [](Image& b) { poke<uint64_t>(b, find_encoded(b, "test.count"), 1000000); },
       "string length 1000000"},
      {"string value length past EOF",
       [](Image& b) { poke<uint64_t>(b, after(b, "general.architecture") + 4, uint64_t{1} << 62); },
       "string length 4611686018427387904"},
      {"string array element length past EOF",
       [](Image& b) { poke<uint64_t>(b, find_encoded(b, "yz"), 99999); }, "string length 99999"},
      {"huge array length",
       [](Image& b) { poke<uint64_t>(b, after(b, "test.list") + 8, uint64_t{1} << 40); },
       "array length 1099511627776"},
      {"huge nested array length",
       [](Image& b) { poke<uint64_t>(b, after(b, "test.nested") + 8, ~uint64_t{0}); },
       "array length 18446744073709551615"},
      {"unknown value type", [](Image& b) { poke<uint32_t>(b, after(b, "test.count"), 13); },
       "unknown value type 13"},
      {"unknown array element type",
       [](Image& b) { poke<uint32_t>(b, after(b, "test.list") + 4, 0xdead); },
       "unknown value type 57005 (array element type)"},
      {"invalid bool", [](Image& b) { b[after(b, "test.flag") + 4] = 2; }, "invalid bool value 2"},
      {"duplicate key", [](Image& b) { b[find_encoded(b, "dup.key2") + 8 + 7] = '1'; },
       "duplicate key 'dup.key1'"},
      {"alignment 0", [](Image& b) { poke<uint32_t>(b, after(b, "general.alignment") + 4, 0); },
       "general.alignment 0 is not a nonzero power of two"},
      {"alignment 48", [](Image& b) { poke<uint32_t>(b, after(b, "general.alignment") + 4, 48); },
       "general.alignment 48 is not a nonzero power of two"},
      {"alignment too large",
       [](Image& b) { poke<uint32_t>(b, after(b, "general.alignment") + 4, 1u << 31); },
       "general.alignment 2147483648 is too large"},
      {"alignment of float type",
       [](Image& b) { poke<uint32_t>(b, after(b, "general.alignment"), 6); },
       "general.alignment must be an integer"},
      {"unknown tensor type", [](Image& b) { poke<uint32_t>(b, type_at(b, "tensor.a", 2), 99); },
       "tensor 'tensor.a' has an unknown tensor type 99"},
      {"removed tensor type 4", [](Image& b) { poke<uint32_t>(b, type_at(b, "tensor.c", 1), 4); },
       "unknown tensor type 4"},
      {"n_dims 0", [](Image& b) { poke<uint32_t>(b, after(b, "tensor.a"), 0); },
       "tensor 'tensor.a' has n_dims 0"},
      {"n_dims 5", [](Image& b) { poke<uint32_t>(b, after(b, "tensor.c"), 5); },
       "tensor 'tensor.c' has n_dims 5"},
      {"huge n_dims", [](Image& b) { poke<uint32_t>(b, after(b, "tensor.c"), 0xffffffff); },
       "has n_dims 4294967295"},
      {"negative dimension", [](Image& b) { poke<int64_t>(b, ne_at(b, "tensor.a", 1), -2); },
       "tensor 'tensor.a' dimension 1 is negative"},
      {"element count overflow",
       [](Image& b) {
         poke<uint64_t>(b, ne_at(b, "tensor.a", 0), uint64_t{1} << 32);
         poke<uint64_t>(b, ne_at(b, "tensor.a", 1), uint64_t{1} << 32);
       },
       "tensor 'tensor.a' size overflows"},
      {"byte size overflow",
       [](Image& b) { poke<uint64_t>(b, ne_at(b, "tensor.c", 0), uint64_t{1} << 62); },
       "tensor 'tensor.c' size overflows"},
      {"ne[0] not a multiple of the block size",
       [](Image& b) { poke<uint64_t>(b, ne_at(b, "tensor.b", 0), 48); },
       "tensor 'tensor.b' ne[0] = 48 is not a multiple of the block size 32"},
      {"misaligned offset", [](Image& b) { poke<uint64_t>(b, offset_at(b, "tensor.b", 1), 68); },
       "tensor 'tensor.b' data offset 68 is not a multiple of the alignment 32"},
      {"data past EOF", [](Image& b) { poke<uint64_t>(b, offset_at(b, "tensor.c", 1), 4096); },
       "tensor 'tensor.c' data (offset"},
      {"offset near 2^64",
       [](Image& b) { poke<uint64_t>(b, offset_at(b, "tensor.c", 1), ~uint64_t{31}); },
       "extends past the end of the file"},
      {"size past EOF", [](Image& b) { poke<uint64_t>(b, ne_at(b, "tensor.c", 0), 4096); },
       "tensor 'tensor.c' data (offset"},
      {"overlapping tensors", [](Image& b) { poke<uint64_t>(b, offset_at(b, "tensor.b", 1), 32); },
       "tensor 'tensor.b' (data offset 32, 68 bytes) overlaps tensor 'tensor.a'"},
      {"duplicate tensor name", [](Image& b) { b[find_encoded(b, "tensor.c") + 8 + 7] = 'a'; },
       "duplicate tensor name 'tensor.a'"},
      {"empty tensor name",
       [](Image& b) {
         // Shift tensor.c's info by its name, so that a zero length is well formed.
         const size_t at = find_encoded(b, "tensor.c");
         b.erase(b.begin() + static_cast<std::ptrdiff_t>(at + 8),
                 b.begin() + static_cast<std::ptrdiff_t>(at + 16));
         poke<uint64_t>(b, at, 0);
       },
       "tensor info 2 has an empty tensor name"},
      {"too small for a header", [](Image& b) { b.resize(3); }, "too small for a GGUF header"},
  };
  EXPECT_GE(cases.size(), 30u);
  const Image valid = valid_gguf();
  for (const auto& c : cases) {
    SCOPED_TRACE(c.what);
    Image img = valid;
    c.corrupt(img);
    ASSERT_NE(img, valid);
    const std::string msg = error_of([&] { parse_gguf(img); });
    EXPECT_EQ(msg.rfind(std::string(kGgufName) + ": ", 0), 0u) << msg;
    EXPECT_NE(msg.find(c.phrase), std::string::npos) << "expected '" << c.phrase << "' in: " << msg;
  }
}

TEST(CorruptGguf, DeeplyNestedArrays) {
  GgufValue v = GgufValue::i32_array({1});
  for (int i = 0; i < 12; ++i) v = GgufValue::array(GgufType::ARRAY, {v});
  GgufWriter w;
  w.set("deep", v);
  const std::string msg = error_of([&] { parse_gguf(w.serialize()); });
  EXPECT_NE(msg.find("key 'deep' are nested deeper than"), std::string::npos) << msg;
}

// Every proper prefix of a valid file that cuts into the tensor data or anything
// before it is rejected; prefixes that only drop trailing padding still load.
TEST(CorruptGguf, TruncatedAtEveryLength) {
  const Image valid = valid_gguf();
  size_t needed = 0;
  {
    auto g = parse_gguf(valid);
    const uint8_t* base = g->mapping()->data();
    for (const auto& t : g->tensors())
      needed =
          std::max(needed, static_cast<size_t>(static_cast<const uint8_t*>(t.view.data) - base) +
                               t.view.nbytes);
  }
  ASSERT_LT(needed, valid.size());  // the last tensor is followed by padding
  for (size_t len = 0; len < valid.size(); ++len) {
    SCOPED_TRACE(len);
    const Image prefix(valid.begin(), valid.begin() + static_cast<std::ptrdiff_t>(len));
    const std::string msg = error_of([&] { parse_gguf(prefix); });
    if (len >= needed) {
      EXPECT_EQ(msg, "(no error)");
      continue;
    }
    const bool named = msg.find("truncated") != std::string::npos ||
                       msg.find("exceeds the") != std::string::npos ||
                       msg.find("implausible") != std::string::npos ||
                       msg.find("extends past the end of the file") != std::string::npos;
    EXPECT_TRUE(named) << msg;
  }
}

// ---------------------------------------------------------------------------
// safetensors

Image st_image(const std::string& header, size_t data_bytes) {
  Image out(8 + header.size() + data_bytes, 0);
  const uint64_t n = header.size();
  std::memcpy(out.data(), &n, 8);
  std::memcpy(out.data() + 8, header.data(), header.size());
  return out;
}

// {"w": F32 [2,3] at [0,24], "b": F16 [4] at [24,32]} with 32 data bytes.
std::string entry(const std::string& name, const std::string& dtype, const std::string& shape,
                  const std::string& offsets) {
  return "\"" + name + "\":{\"dtype\":" + dtype + ",\"shape\":" + shape +
         ",\"data_offsets\":" + offsets + "}";
}
const std::string kW = entry("w", "\"F32\"", "[2,3]", "[0,24]");
const std::string kB = entry("b", "\"F16\"", "[4]", "[24,32]");

Image valid_st() {
  SafetensorsWriter w;
  w.set_metadata("format", "pt");
  std::vector<uint8_t> data(24);
  for (size_t i = 0; i < data.size(); ++i) data[i] = static_cast<uint8_t>(i);
  w.add("w", DType::F32, {2, 3}, data.data(), 24);
  w.add("b", DType::F16, {4}, data.data(), 8);
  w.add("s", DType::I32, {}, data.data(), 4);
  return w.serialize();
}

TEST(CorruptSafetensors, BaseImagesAreValid) {
  EXPECT_EQ(parse_st(valid_st())->tensors().size(), 3u);
  EXPECT_EQ(parse_st(st_image("{" + kW + "," + kB + "}", 32))->tensors().size(), 2u);
}

TEST(CorruptSafetensors, EachDefectIsNamed) {
  struct StCase {
    const char* what;
    Image image;
    const char* phrase;
  };
  auto header = [](const std::string& h, size_t data = 32) { return st_image(h, data); };
  Image short_len = header("{}", 0);
  poke<uint64_t>(short_len, 0, 1000);
  Image huge_len = header("{}", 0);
  poke<uint64_t>(huge_len, 0, ~uint64_t{0});
  Image zero_len = header("{}", 0);
  poke<uint64_t>(zero_len, 0, 0);
  const std::vector<StCase> cases = {
      {"shorter than the length field", Image{1, 2, 3}, "file too small (3 bytes)"},
      {"header length past EOF", short_len, "header length 1000 extends past the end of the file"},
      {"header length 2^64-1", huge_len, "header length 18446744073709551615 extends past"},
      {"header length 0", zero_len, "header length is 0"},
      {"invalid JSON", header("{" + kW + ","), "invalid JSON header"},
      {"JSON garbage", header("not json at all"), "invalid JSON header"},
      {"invalid UTF-8", header("{\"\xff\":1}"), "invalid JSON header"},
      {"NUL in header", header(std::string("{}\0", 3)), "invalid JSON header"},
      {"JSON array", header("[1,2]"), "header is not a JSON object"},
      {"JSON string", header("\"x\""), "header is not a JSON object"},
      {"entry not an object", header("{\"w\":[1]}"), "tensor 'w' entry is not a JSON object"},
      {"missing dtype", header("{\"w\":{\"shape\":[1],\"data_offsets\":[0,4]}}"),
       "tensor 'w' is missing 'dtype'"},
      {"dtype not a string", header("{" + entry("w", "4", "[1]", "[0,4]") + "}"),
       "tensor 'w' dtype is not a string"},
      {"unknown dtype", header("{" + entry("w", "\"F8_E4M3\"", "[1]", "[0,1]") + "}"),
       "tensor 'w' has an unknown dtype 'F8_E4M3'"},
      {"lower-case dtype", header("{" + entry("w", "\"f32\"", "[1]", "[0,4]") + "}"),
       "unknown dtype 'f32'"},
      {"missing shape", header("{\"w\":{\"dtype\":\"F32\",\"data_offsets\":[0,4]}}"),
       "tensor 'w' is missing 'shape'"},
      {"shape not a list", header("{" + entry("w", "\"F32\"", "6", "[0,24]") + "}"),
       "tensor 'w' shape is not a list"},
      {"negative shape", header("{" + entry("w", "\"F32\"", "[-2,3]", "[0,24]") + "}"),
       "tensor 'w' shape has a negative dimension -2"},
      {"fractional shape", header("{" + entry("w", "\"F32\"", "[2.5]", "[0,10]") + "}"),
       "tensor 'w' shape entry 2.5 is not an integer"},
      {"string in shape", header("{" + entry("w", "\"F32\"", "[\"2\"]", "[0,8]") + "}"),
       "is not an integer"},
      {"shape overflow",
       header("{" + entry("w", "\"F32\"", "[4294967296,4294967296]", "[0,8]") + "}"),
       "tensor 'w' shape [4294967296, 4294967296] overflows"},
      {"missing data_offsets", header("{\"w\":{\"dtype\":\"F32\",\"shape\":[1]}}"),
       "tensor 'w' is missing 'data_offsets'"},
      {"one offset", header("{" + entry("w", "\"F32\"", "[1]", "[4]") + "}"),
       "must be a list of two non-negative integers"},
      {"negative offset", header("{" + entry("w", "\"F32\"", "[1]", "[-4,0]") + "}"),
       "must be a list of two non-negative integers"},
      {"offsets not a list", header("{" + entry("w", "\"F32\"", "[1]", "{}") + "}"),
       "must be a list of two"},
      {"offsets reversed", header("{" + entry("w", "\"F32\"", "[0]", "[8,4]") + "}"),
       "tensor 'w' data_offsets [8, 4] are reversed"},
      {"offsets past the data", header("{" + entry("w", "\"F32\"", "[2]", "[32,40]") + "}"),
       "tensor 'w' data_offsets [32, 40] extend past the end of the data section (32 bytes)"},
      {"size mismatch", header("{" + entry("w", "\"F32\"", "[2,3]", "[0,20]") + "}"),
       "tensor 'w' size mismatch: data_offsets [0, 20] hold 20 bytes but dtype F32 and shape "
       "[2, 3] need 24"},
      {"overlap", header("{" + kW + "," + entry("b", "\"F16\"", "[4]", "[16,24]") + "}"),
       "tensor 'b' data_offsets [16, 24] overlap tensor 'w' [0, 24]"},
      {"duplicate names", header("{" + kW + "," + kW + "}"), "duplicate tensor name 'w'"},
      {"duplicate field",
       header("{\"w\":{\"dtype\":\"F32\",\"dtype\":\"F16\",\"shape\":[1],\"data_offsets\":[0,4]}}"),
       "duplicate key 'dtype'"},
      {"metadata not an object", header("{\"__metadata__\":[\"a\"]," + kW + "}"),
       "__metadata__ is not a JSON object"},
      {"metadata value not a string", header("{\"__metadata__\":{\"n\":1}," + kW + "}"),
       "__metadata__ value for key 'n' is not a string"},
      {"deep nesting",
       header("{\"__metadata__\":" + std::string(50, '[') + std::string(50, ']') + "}"),
       "nested deeper than"},
  };
  EXPECT_GE(cases.size(), 30u);
  for (const auto& c : cases) {
    SCOPED_TRACE(c.what);
    const std::string msg = error_of([&] { parse_st(c.image); });
    EXPECT_EQ(msg.rfind(std::string(kStName) + ": ", 0), 0u) << msg;
    EXPECT_NE(msg.find(c.phrase), std::string::npos) << "expected '" << c.phrase << "' in: " << msg;
  }
}

TEST(CorruptSafetensors, TruncatedAtEveryLength) {
  const Image valid = valid_st();
  for (size_t len = 0; len < valid.size(); ++len) {
    SCOPED_TRACE(len);
    const Image prefix(valid.begin(), valid.begin() + static_cast<std::ptrdiff_t>(len));
    const std::string msg = error_of([&] { parse_st(prefix); });
    const bool named =
        msg.find("too small") != std::string::npos || msg.find("past the end") != std::string::npos;
    EXPECT_TRUE(named) << msg;
  }
}

// ---------------------------------------------------------------------------
// Random damage: load or throw muse::Error, nothing else. When a damaged file
// still loads, every byte of every tensor view must be readable (ASan checks).

template <typename Parse, typename Touch>
void fuzz(const Image& valid, size_t focus_bytes, uint32_t seed, Parse parse, Touch touch) {
  std::mt19937 rng(seed);
  int loaded = 0, rejected = 0;
  for (int iter = 0; iter < 2000; ++iter) {
    Image img = valid;
    const int flips = 1 + static_cast<int>(rng() % 4);
    for (int f = 0; f < flips; ++f) {
      // Mostly damage the metadata, where the parsing happens.
      const size_t span = (rng() % 4 != 0) ? std::min(focus_bytes, img.size()) : img.size();
      img[rng() % span] ^= static_cast<uint8_t>(1 + rng() % 255);
    }
    if (rng() % 8 == 0) img.resize(rng() % (img.size() + 1));
    try {
      touch(*parse(img));
      ++loaded;
    } catch (const Error&) {
      ++rejected;
    } catch (const std::exception& e) {
      ADD_FAILURE() << "iteration " << iter << ": not a muse::Error: " << e.what();
    }
  }
  EXPECT_GT(rejected, 0);
  EXPECT_GT(loaded, 0);  // some flips hit tensor data only
}

TEST(FuzzGguf, RandomByteFlips) {
  const Image valid = valid_gguf();
  size_t data_start = 0;
  {
    auto g = parse_gguf(valid);
    data_start = static_cast<size_t>(static_cast<const uint8_t*>(g->tensors()[0].view.data) -
                                     g->mapping()->data());
  }
  fuzz(valid, data_start, 12345, parse_gguf, [](const GgufFile& g) {
    unsigned sum = 0;
    for (const auto& t : g.tensors()) {
      const auto* p = static_cast<const uint8_t*>(t.view.data);
      for (size_t i = 0; i < t.view.nbytes; ++i) sum += p[i];
    }
    for (const auto& key : g.key_order()) sum += static_cast<unsigned>(g.find(key)->array_size());
    (void)sum;
  });
}

TEST(FuzzSafetensors, RandomByteFlips) {
  const Image valid = valid_st();
  uint64_t header_len = 0;
  std::memcpy(&header_len, valid.data(), 8);
  fuzz(valid, 8 + header_len, 54321, parse_st, [](const SafetensorsFile& st) {
    unsigned sum = 0;
    for (const auto& t : st.tensors()) {
      const auto* p = static_cast<const uint8_t*>(t.view.data);
      for (size_t i = 0; i < t.view.nbytes; ++i) sum += p[i];
    }
    (void)sum;
  });
}

}  // namespace
}  // namespace muse
