// GGUF reader/writer: value accessors, byte-exact encoding against hand-built
// images, round trips of every value type and several tensor types, and the
// vocab-only GGUF files written by llama.cpp.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <limits>
#include <string>
#include <vector>

#include "common/parse_errors.h"
#include "model/gguf.h"
#include "muse/error.h"

namespace muse {
namespace {

namespace fs = std::filesystem;

// Independent little-endian encoder used to build expected images by hand.
struct Bytes {
  std::vector<uint8_t> b;
  template <typename T>
  Bytes& put(T v) {
    uint8_t raw[sizeof(T)];
    std::memcpy(raw, &v, sizeof(T));
    b.insert(b.end(), raw, raw + sizeof(T));
    return *this;
  }
  Bytes& str(const std::string& s) {
    put<uint64_t>(s.size());
    b.insert(b.end(), s.begin(), s.end());
    return *this;
  }
  Bytes& pad(size_t alignment) {
    while (b.size() % alignment) b.push_back(0);
    return *this;
  }
};

std::unique_ptr<GgufFile> parse_bytes(std::vector<uint8_t> bytes,
                                      const std::string& name = "mem.gguf") {
  return GgufFile::parse(MappedFile::from_bytes(std::move(bytes), name));
}

using test::error_of;
using test::random_bytes;

std::string tmp_dir() {
  const fs::path dir = fs::path(MUSE_TEST_TMP) / "gguf";
  fs::create_directories(dir);
  return dir.string();
}

TEST(GgufValue, ScalarAccessors) {
  EXPECT_EQ(GgufValue::u8(200).as_i64(), 200);
  EXPECT_EQ(GgufValue::u8(200).as_u64(), 200u);
  EXPECT_EQ(GgufValue::i8(-5).as_i64(), -5);
  EXPECT_THROW(GgufValue::i8(-5).as_u64(), Error);
  EXPECT_EQ(GgufValue::i16(-300).as_i64(), -300);
  EXPECT_EQ(GgufValue::u16(65535).as_i64(), 65535);
  EXPECT_EQ(GgufValue::i32(std::numeric_limits<int32_t>::min()).as_i64(),
            std::numeric_limits<int32_t>::min());
  EXPECT_EQ(GgufValue::u32(4000000000u).as_i64(), 4000000000LL);
  const uint64_t big = std::numeric_limits<uint64_t>::max();
  EXPECT_EQ(GgufValue::u64(big).as_u64(), big);
  EXPECT_THROW(GgufValue::u64(big).as_i64(), Error);
  EXPECT_EQ(GgufValue::i64(std::numeric_limits<int64_t>::min()).as_i64(),
            std::numeric_limits<int64_t>::min());
  EXPECT_DOUBLE_EQ(GgufValue::i64(-7).as_f64(), -7.0);
  EXPECT_DOUBLE_EQ(GgufValue::u64(big).as_f64(), 18446744073709551615.0);
  EXPECT_FLOAT_EQ(static_cast<float>(GgufValue::f32(1.25f).as_f64()), 1.25f);
  EXPECT_DOUBLE_EQ(GgufValue::f64(-2.5).as_f64(), -2.5);
  EXPECT_THROW(GgufValue::f32(1.0f).as_i64(), Error);
  EXPECT_TRUE(GgufValue::boolean(true).as_bool());
  EXPECT_EQ(GgufValue::boolean(true).as_i64(), 1);
  EXPECT_TRUE(GgufValue::u8(1).as_bool());
  EXPECT_THROW(GgufValue::u8(2).as_bool(), Error);
  EXPECT_THROW(GgufValue::string("x").as_bool(), Error);
  EXPECT_EQ(GgufValue::string("abc").as_string(), "abc");
  EXPECT_EQ(GgufValue::string("abc").array_size(), 0u);
  EXPECT_THROW(GgufValue::string("1").as_i64(), Error);
  EXPECT_THROW(GgufValue::u32(1).as_string(), Error);
  EXPECT_EQ(GgufValue::u32(1).type(), GgufType::UINT32);
}

TEST(GgufValue, ArrayAccessors) {
  const auto s = GgufValue::string_array({"a", "bc"});
  EXPECT_EQ(s.type(), GgufType::ARRAY);
  EXPECT_EQ(s.array_type(), GgufType::STRING);
  EXPECT_EQ(s.array_size(), 2u);
  EXPECT_EQ(s.as_strings()[1], "bc");
  EXPECT_THROW(s.as_ints(), Error);
  EXPECT_THROW(s.as_string(), Error);

  const auto i = GgufValue::i32_array({-1, 2, 3});
  EXPECT_EQ(i.as_ints(), (std::vector<int64_t>{-1, 2, 3}));
  EXPECT_EQ(i.as_floats(), (std::vector<double>{-1, 2, 3}));
  EXPECT_THROW(i.as_strings(), Error);
  EXPECT_THROW(i.as_array(), Error);

  const auto f = GgufValue::f32_array({0.5f, -1.0f});
  EXPECT_EQ(f.as_floats(), (std::vector<double>{0.5, -1.0}));
  EXPECT_THROW(f.as_ints(), Error);

  const auto u = GgufValue::array(GgufType::UINT64, {GgufValue::u64(5), GgufValue::u64(~0ull)});
  EXPECT_EQ(u.array_size(), 2u);
  EXPECT_THROW(u.as_ints(), Error);  // 2^64-1 does not fit in int64
  EXPECT_DOUBLE_EQ(u.as_floats()[1], 18446744073709551615.0);

  const auto nested = GgufValue::array(GgufType::ARRAY, {i, s});
  EXPECT_EQ(nested.array_size(), 2u);
  EXPECT_EQ(nested.as_array()[1].as_strings()[0], "a");
  EXPECT_THROW(GgufValue::array(GgufType::INT32, {GgufValue::u8(1)}), Error);
  EXPECT_THROW(GgufValue::array(static_cast<GgufType>(13), {}), Error);
}

// The writer's output for a small file, compared byte for byte with an image built
// by hand from the specification.
TEST(GgufWriter, ExactBytes) {
  GgufWriter w;
  w.set("a", GgufValue::u32(7));
  w.set("names", GgufValue::string_array({"x", "yz"}));
  const float data[2] = {1.0f, 2.0f};
  w.add_tensor("t", DType::F32, {2}, data, sizeof(data));
  w.add_tensor("q", DType::Q8_0, {32}, std::vector<uint8_t>(34, 0xab).data(), 34);

  Bytes e;
  e.put<uint32_t>(0x46554747).put<uint32_t>(3).put<uint64_t>(2).put<uint64_t>(2);
  e.str("a").put<uint32_t>(4).put<uint32_t>(7);
  e.str("names").put<uint32_t>(9).put<uint32_t>(8).put<uint64_t>(2).str("x").str("yz");
  e.str("t").put<uint32_t>(1).put<uint64_t>(2).put<uint32_t>(0).put<uint64_t>(0);
  e.str("q").put<uint32_t>(1).put<uint64_t>(32).put<uint32_t>(8).put<uint64_t>(32);
  e.pad(32);
  e.put(1.0f).put(2.0f).pad(32);
  for (int i = 0; i < 34; ++i) e.put<uint8_t>(0xab);
  e.pad(32);
  EXPECT_EQ(w.serialize(), e.b);
  EXPECT_EQ(std::memcmp(w.serialize().data(), "GGUF", 4), 0);
}

// A hand-built image (not from our writer) with a custom alignment.
TEST(GgufFile, ParsesHandBuiltImage) {
  Bytes e;
  e.put<uint32_t>(0x46554747).put<uint32_t>(3).put<uint64_t>(2).put<uint64_t>(3);
  e.str("general.architecture").put<uint32_t>(8).str("llama");
  e.str("general.alignment").put<uint32_t>(4).put<uint32_t>(64);
  e.str("nested").put<uint32_t>(9).put<uint32_t>(9).put<uint64_t>(2);
  e.put<uint32_t>(5).put<uint64_t>(2).put<int32_t>(-1).put<int32_t>(7);  // [-1, 7]
  e.put<uint32_t>(8).put<uint64_t>(1).str("s");                          // ["s"]
  e.str("w").put<uint32_t>(2).put<uint64_t>(4).put<uint64_t>(2).put<uint32_t>(0).put<uint64_t>(64);
  e.str("b").put<uint32_t>(1).put<uint64_t>(3).put<uint32_t>(0).put<uint64_t>(0);
  e.pad(64);
  const size_t data_start = e.b.size();
  for (float x : {10.f, 11.f, 12.f}) e.put(x);
  e.pad(64);
  for (int i = 0; i < 8; ++i) e.put(static_cast<float>(i) * 0.5f);

  auto g = parse_bytes(e.b);
  EXPECT_EQ(g->version(), 3u);
  EXPECT_EQ(g->alignment(), 64u);
  EXPECT_EQ(g->get_string("general.architecture"), "llama");
  EXPECT_EQ(g->key_order(),
            (std::vector<std::string>{"general.architecture", "general.alignment", "nested"}));
  const auto& nested = g->find("nested")->as_array();
  ASSERT_EQ(nested.size(), 2u);
  EXPECT_EQ(nested[0].as_ints(), (std::vector<int64_t>{-1, 7}));
  EXPECT_EQ(nested[1].as_strings(), (std::vector<std::string>{"s"}));

  ASSERT_EQ(g->tensors().size(), 2u);
  const GgufTensorInfo* w = g->find_tensor("w");
  ASSERT_NE(w, nullptr);
  EXPECT_EQ(w->offset, 64u);
  EXPECT_EQ(w->view.n_dims, 2);
  EXPECT_EQ(w->view.ne, (std::array<int64_t, 4>{4, 2, 1, 1}));
  EXPECT_EQ(w->view.nbytes, 32u);
  const uint8_t* base = g->mapping()->data();
  EXPECT_EQ(static_cast<const uint8_t*>(w->view.data), base + data_start + 64);
  EXPECT_EQ(reinterpret_cast<const float*>(w->view.row(1))[3], 3.5f);
  const GgufTensorInfo* b = g->find_tensor("b");
  ASSERT_NE(b, nullptr);
  EXPECT_EQ(b->view.n_dims, 1);
  EXPECT_EQ(static_cast<const float*>(b->view.data)[2], 12.f);
  EXPECT_EQ(g->find_tensor("nope"), nullptr);
  EXPECT_EQ(g->find("nope"), nullptr);
}

GgufWriter every_value_type_writer() {
  GgufWriter w;
  w.set("u8", GgufValue::u8(255));
  w.set("i8", GgufValue::i8(-128));
  w.set("u16", GgufValue::u16(65535));
  w.set("i16", GgufValue::i16(-32768));
  w.set("u32", GgufValue::u32(4294967295u));
  w.set("i32", GgufValue::i32(-2147483647 - 1));
  w.set("u64", GgufValue::u64(18446744073709551615ull));
  w.set("i64", GgufValue::i64(std::numeric_limits<int64_t>::min()));
  w.set("f32", GgufValue::f32(3.14159f));
  w.set("f64", GgufValue::f64(-1e300));
  w.set("bool.true", GgufValue::boolean(true));
  w.set("bool.false", GgufValue::boolean(false));
  w.set("str", GgufValue::string(std::string("h\0llo \xc3\xa9", 9)));
  w.set("str.empty", GgufValue::string(""));
  w.set("arr.str", GgufValue::string_array({"a", "", "\xe2\x96\x81x"}));
  w.set("arr.i32", GgufValue::i32_array({1, -2, 2147483647}));
  w.set("arr.f32", GgufValue::f32_array({0.5f, -0.0f, 1e-30f}));
  w.set("arr.u8", GgufValue::array(GgufType::UINT8, {GgufValue::u8(0), GgufValue::u8(255)}));
  w.set("arr.i8", GgufValue::array(GgufType::INT8, {GgufValue::i8(-1)}));
  w.set("arr.u16", GgufValue::array(GgufType::UINT16, {GgufValue::u16(65535)}));
  w.set("arr.i16", GgufValue::array(GgufType::INT16, {GgufValue::i16(-2)}));
  w.set("arr.u32", GgufValue::array(GgufType::UINT32, {GgufValue::u32(4000000000u)}));
  w.set("arr.u64", GgufValue::array(GgufType::UINT64, {GgufValue::u64(~0ull), GgufValue::u64(3)}));
  w.set("arr.i64", GgufValue::array(GgufType::INT64, {GgufValue::i64(-9)}));
  w.set("arr.f64", GgufValue::array(GgufType::FLOAT64, {GgufValue::f64(0.1)}));
  w.set("arr.bool",
        GgufValue::array(GgufType::BOOL, {GgufValue::boolean(true), GgufValue::boolean(false)}));
  w.set("arr.empty", GgufValue::array(GgufType::FLOAT32, {}));
  w.set("arr.nested",
        GgufValue::array(GgufType::ARRAY,
                         {GgufValue::i32_array({4, 5}), GgufValue::string_array({"z"}),
                          GgufValue::array(GgufType::ARRAY, {GgufValue::f32_array({9.f})}),
                          GgufValue::array(GgufType::INT8, {})}));
  return w;
}

void expect_every_value_type(const GgufFile& g) {
  EXPECT_EQ(g.find("u8")->type(), GgufType::UINT8);
  EXPECT_EQ(g.find("u8")->as_u64(), 255u);
  EXPECT_EQ(g.find("i8")->type(), GgufType::INT8);
  EXPECT_EQ(g.find("i8")->as_i64(), -128);
  EXPECT_EQ(g.find("u16")->as_u64(), 65535u);
  EXPECT_EQ(g.find("i16")->as_i64(), -32768);
  EXPECT_EQ(g.find("u32")->as_u64(), 4294967295u);
  EXPECT_EQ(g.find("i32")->as_i64(), -2147483648LL);
  EXPECT_EQ(g.find("u64")->as_u64(), 18446744073709551615ull);
  EXPECT_EQ(g.find("i64")->as_i64(), std::numeric_limits<int64_t>::min());
  EXPECT_EQ(g.find("f32")->type(), GgufType::FLOAT32);
  EXPECT_EQ(static_cast<float>(g.find("f32")->as_f64()), 3.14159f);
  EXPECT_EQ(g.find("f64")->type(), GgufType::FLOAT64);
  EXPECT_EQ(g.find("f64")->as_f64(), -1e300);
  EXPECT_EQ(g.find("bool.true")->type(), GgufType::BOOL);
  EXPECT_TRUE(g.get_bool("bool.true"));
  EXPECT_FALSE(g.get_bool("bool.false"));
  EXPECT_EQ(g.get_string("str"), std::string("h\0llo \xc3\xa9", 9));
  EXPECT_EQ(g.get_string("str.empty"), "");
  EXPECT_EQ(g.find("arr.str")->as_strings(), (std::vector<std::string>{"a", "", "\xe2\x96\x81x"}));
  EXPECT_EQ(g.find("arr.i32")->array_type(), GgufType::INT32);
  EXPECT_EQ(g.find("arr.i32")->as_ints(), (std::vector<int64_t>{1, -2, 2147483647}));
  const auto f = g.find("arr.f32")->as_floats();
  ASSERT_EQ(f.size(), 3u);
  EXPECT_EQ(f[0], 0.5);
  EXPECT_TRUE(std::signbit(f[1]));
  EXPECT_EQ(static_cast<float>(f[2]), 1e-30f);
  EXPECT_EQ(g.find("arr.u8")->array_type(), GgufType::UINT8);
  EXPECT_EQ(g.find("arr.u8")->as_ints(), (std::vector<int64_t>{0, 255}));
  EXPECT_EQ(g.find("arr.i8")->as_ints(), (std::vector<int64_t>{-1}));
  EXPECT_EQ(g.find("arr.u16")->as_ints(), (std::vector<int64_t>{65535}));
  EXPECT_EQ(g.find("arr.i16")->as_ints(), (std::vector<int64_t>{-2}));
  EXPECT_EQ(g.find("arr.u32")->as_ints(), (std::vector<int64_t>{4000000000LL}));
  EXPECT_EQ(g.find("arr.u64")->array_type(), GgufType::UINT64);
  EXPECT_EQ(g.find("arr.u64")->as_floats()[0], 18446744073709551615.0);
  EXPECT_EQ(g.find("arr.i64")->as_ints(), (std::vector<int64_t>{-9}));
  EXPECT_EQ(g.find("arr.f64")->array_type(), GgufType::FLOAT64);
  EXPECT_EQ(g.find("arr.f64")->as_floats(), (std::vector<double>{0.1}));
  EXPECT_EQ(g.find("arr.bool")->array_type(), GgufType::BOOL);
  EXPECT_EQ(g.find("arr.bool")->as_ints(), (std::vector<int64_t>{1, 0}));
  EXPECT_EQ(g.find("arr.empty")->array_type(), GgufType::FLOAT32);
  EXPECT_EQ(g.find("arr.empty")->array_size(), 0u);
  const auto& n = g.find("arr.nested")->as_array();
  ASSERT_EQ(n.size(), 4u);
  EXPECT_EQ(n[0].as_ints(), (std::vector<int64_t>{4, 5}));
  EXPECT_EQ(n[1].as_strings(), (std::vector<std::string>{"z"}));
  ASSERT_EQ(n[2].as_array().size(), 1u);
  EXPECT_EQ(n[2].as_array()[0].as_floats(), (std::vector<double>{9.0}));
  EXPECT_EQ(n[3].array_type(), GgufType::INT8);
  EXPECT_EQ(n[3].array_size(), 0u);
}

TEST(GgufRoundTrip, EveryValueTypeAndTensorTypes) {
  GgufWriter w = every_value_type_writer();
  struct Spec {
    std::string name;
    DType type;
    std::vector<int64_t> ne;
    size_t nbytes;
  };
  const std::vector<Spec> specs = {
      {"f32", DType::F32, {8, 3}, 8 * 3 * 4},
      {"f16", DType::F16, {16}, 32},
      {"q8_0", DType::Q8_0, {64, 2, 3}, 2 * 34 * 2 * 3},
      {"q4_k", DType::Q4_K, {256, 2}, 144 * 2},
      {"tiny", DType::F32, {1, 1, 1, 1}, 4},
  };
  std::vector<std::vector<uint8_t>> data;
  for (size_t i = 0; i < specs.size(); ++i) {
    data.push_back(random_bytes(specs[i].nbytes, static_cast<uint32_t>(i + 1)));
    w.add_tensor(specs[i].name, specs[i].type, specs[i].ne, data.back().data(), specs[i].nbytes);
  }
  const std::string path = tmp_dir() + "/roundtrip.gguf";
  w.write(path);
  auto g = GgufFile::open(path);
  EXPECT_EQ(g->path(), path);
  EXPECT_EQ(g->version(), 3u);
  EXPECT_EQ(g->alignment(), 32u);
  expect_every_value_type(*g);
  // Insertion order is kept.
  std::vector<std::string> expected_order = {"u8", "i8", "u16", "i16", "u32", "i32", "u64", "i64"};
  EXPECT_EQ(std::vector<std::string>(g->key_order().begin(), g->key_order().begin() + 8),
            expected_order);
  EXPECT_EQ(g->key_order().size(), g->metadata().size());

  ASSERT_EQ(g->tensors().size(), specs.size());
  const uint8_t* base = g->mapping()->data();
  for (size_t i = 0; i < specs.size(); ++i) {
    const GgufTensorInfo& t = g->tensors()[i];
    SCOPED_TRACE(t.name);
    EXPECT_EQ(t.name, specs[i].name);
    EXPECT_EQ(t.view.type, specs[i].type);
    EXPECT_EQ(t.view.n_dims, static_cast<int>(specs[i].ne.size()));
    for (size_t d = 0; d < 4; ++d)
      EXPECT_EQ(t.view.ne[d], d < specs[i].ne.size() ? specs[i].ne[d] : 1);
    EXPECT_EQ(t.view.nbytes, specs[i].nbytes);
    EXPECT_EQ(t.offset % 32, 0u);
    const auto* p = static_cast<const uint8_t*>(t.view.data);
    EXPECT_TRUE(p >= base && p + t.view.nbytes <= base + g->mapping()->size());  // zero-copy
    EXPECT_EQ((p - base) % 32, 0);
    EXPECT_EQ(std::vector<uint8_t>(p, p + t.view.nbytes), data[i]);
  }
  EXPECT_EQ(g->find_tensor("q8_0")->view.row_stride(), 68u);
  EXPECT_EQ(g->mapping()->size() % 32, 0u);
  // The atomic write leaves no temporary file behind.
  for (const auto& entry : fs::directory_iterator(tmp_dir()))
    EXPECT_EQ(entry.path().filename().string().find(".tmp-"), std::string::npos);

  // Parsing the in-memory image gives the same result.
  auto g2 = parse_bytes(w.serialize());
  expect_every_value_type(*g2);
}

TEST(GgufRoundTrip, CustomAlignment) {
  for (uint64_t alignment : {1u, 8u, 64u, 4096u}) {
    SCOPED_TRACE(alignment);
    GgufWriter w;
    w.set("general.alignment", GgufValue::u32(static_cast<uint32_t>(alignment)));
    const auto a = random_bytes(12, 1), b = random_bytes(34, 2);
    w.add_tensor("a", DType::F32, {3}, a.data(), a.size());
    w.add_tensor("b", DType::Q8_0, {32}, b.data(), b.size());
    auto g = parse_bytes(w.serialize());
    EXPECT_EQ(g->alignment(), alignment);
    const uint8_t* base = g->mapping()->data();
    for (const auto& t : g->tensors()) {
      EXPECT_EQ(t.offset % alignment, 0u);
      EXPECT_EQ((static_cast<const uint8_t*>(t.view.data) - base) % alignment, 0u);
    }
    EXPECT_EQ(g->find_tensor("b")->offset,
              alignment == 1 ? 12u : std::max<uint64_t>(alignment, 16));
    const auto* bp = static_cast<const uint8_t*>(g->find_tensor("b")->view.data);
    EXPECT_EQ(std::vector<uint8_t>(bp, bp + 34), b);
  }
  // Any integer type is accepted for the alignment.
  GgufWriter w;
  w.set("general.alignment", GgufValue::u64(16));
  EXPECT_EQ(parse_bytes(w.serialize())->alignment(), 16u);
}

TEST(GgufWriter, SetReplacesInPlace) {
  GgufWriter w;
  w.set("a", GgufValue::u32(1));
  w.set("b", GgufValue::u32(2));
  w.set("a", GgufValue::string("x"));
  auto g = parse_bytes(w.serialize());
  EXPECT_EQ(g->key_order(), (std::vector<std::string>{"a", "b"}));
  EXPECT_EQ(g->get_string("a"), "x");
}

TEST(GgufWriter, RejectsBadInput) {
  const auto d = random_bytes(64, 3);
  GgufWriter w;
  w.add_tensor("t", DType::F32, {4}, d.data(), 16);
  EXPECT_NE(error_of([&] {
              w.add_tensor("t", DType::F32, {4}, d.data(), 16);
            }).find("duplicate tensor name"),
            std::string::npos);
  EXPECT_THROW(w.add_tensor("u", DType::F32, {4}, d.data(), 15), Error);
  EXPECT_THROW(w.add_tensor("u", DType::Q8_0, {16}, d.data(), 17), Error);
  EXPECT_THROW(w.add_tensor("u", DType::F32, {1, 1, 1, 1, 1}, d.data(), 4), Error);
  EXPECT_THROW(w.add_tensor("u", DType::F32, {}, d.data(), 4), Error);
  EXPECT_THROW(w.add_tensor("u", DType::F32, {-1}, d.data(), 4), Error);
  EXPECT_THROW(w.add_tensor("", DType::F32, {1}, d.data(), 4), Error);
  for (auto bad :
       {GgufValue::u32(0), GgufValue::u32(48), GgufValue::string("32"), GgufValue::i32(-32)}) {
    GgufWriter wa;
    wa.set("general.alignment", bad);
    EXPECT_NE(error_of([&] { wa.serialize(); }).find("general.alignment"), std::string::npos);
  }
  GgufWriter ok;
  EXPECT_NE(error_of([&] { ok.write("/nonexistent-dir/x.gguf"); }).find("/nonexistent-dir/x.gguf"),
            std::string::npos);
}

TEST(GgufFile, AcceptsVersion2) {
  GgufWriter w = every_value_type_writer();
  auto bytes = w.serialize();
  bytes[4] = 2;
  auto g = parse_bytes(bytes);
  EXPECT_EQ(g->version(), 2u);
  expect_every_value_type(*g);
}

TEST(GgufFile, Getters) {
  GgufWriter w;
  w.set("s", GgufValue::string("text"));
  w.set("i", GgufValue::u32(42));
  w.set("f", GgufValue::f32(0.25f));
  w.set("b", GgufValue::boolean(true));
  auto g = parse_bytes(w.serialize(), "getters.gguf");
  EXPECT_EQ(g->get_string("s"), "text");
  EXPECT_EQ(g->get_int("i"), 42);
  EXPECT_EQ(g->get_float("f"), 0.25);
  EXPECT_EQ(g->get_float("i"), 42.0);
  EXPECT_TRUE(g->get_bool("b"));
  EXPECT_EQ(g->get_int_or("missing", -3), -3);
  EXPECT_EQ(g->get_int_or("i", -3), 42);
  EXPECT_EQ(g->get_float_or("missing", 1.5), 1.5);
  EXPECT_FALSE(g->get_bool_or("missing", false));
  EXPECT_EQ(g->get_string_or("missing", "def"), "def");
  EXPECT_EQ(g->get_string_or("s", "def"), "text");
  const std::string missing = error_of([&] { g->get_int("nope"); });
  EXPECT_NE(missing.find("getters.gguf"), std::string::npos) << missing;
  EXPECT_NE(missing.find("missing key 'nope'"), std::string::npos) << missing;
  const std::string wrong = error_of([&] { g->get_int("s"); });
  EXPECT_NE(wrong.find("key 's'"), std::string::npos) << wrong;
  EXPECT_NE(wrong.find("not an integer"), std::string::npos) << wrong;
  EXPECT_THROW(g->get_string("i"), Error);
  EXPECT_THROW(g->get_int_or("s", 0), Error);  // present but of the wrong kind
  EXPECT_THROW(g->get_bool("f"), Error);
}

// Vocab-only GGUF v3 files written by llama.cpp.
std::string vocab(const std::string& name) {
  return std::string(MUSE_SHARED_DIR) + "/tokenizers/ggml-vocab-" + name + ".gguf";
}

TEST(GgufLlamaCpp, Gpt2Vocab) {
  auto g = GgufFile::open(vocab("gpt-2"));
  EXPECT_EQ(g->version(), 3u);
  EXPECT_TRUE(g->tensors().empty());
  EXPECT_EQ(g->metadata().size(), 16u);
  EXPECT_EQ(g->key_order().front(), "general.architecture");
  EXPECT_EQ(g->get_string("general.architecture"), "gpt2");
  EXPECT_EQ(g->get_string("tokenizer.ggml.model"), "gpt2");
  EXPECT_EQ(g->get_string("tokenizer.ggml.pre"), "gpt-2");
  EXPECT_EQ(g->get_int("gpt2.context_length"), 1024);
  EXPECT_EQ(g->get_int("tokenizer.ggml.bos_token_id"), 50256);
  EXPECT_NEAR(g->get_float("gpt2.attention.layer_norm_epsilon"), 1e-5, 1e-12);
  const auto& tokens = g->find("tokenizer.ggml.tokens")->as_strings();
  ASSERT_EQ(tokens.size(), 50257u);
  EXPECT_EQ(tokens[0], "!");
  EXPECT_EQ(tokens[220], "\xc4\xa0");
  EXPECT_EQ(tokens[50256], "<|endoftext|>");
  const auto& merges = g->find("tokenizer.ggml.merges")->as_strings();
  ASSERT_EQ(merges.size(), 50000u);
  EXPECT_EQ(merges.front(), "\xc4\xa0 t");
  EXPECT_EQ(merges.back(), "\xc4\xa0g azed");
  const auto types = g->find("tokenizer.ggml.token_type")->as_ints();
  ASSERT_EQ(types.size(), 50257u);
  EXPECT_EQ(types[0], 1);
  EXPECT_EQ(types[50256], 3);
}

TEST(GgufLlamaCpp, LlamaSpmVocab) {
  auto g = GgufFile::open(vocab("llama-spm"));
  EXPECT_EQ(g->get_string("tokenizer.ggml.model"), "llama");
  const auto& tokens = g->find("tokenizer.ggml.tokens")->as_strings();
  ASSERT_EQ(tokens.size(), 32000u);
  EXPECT_EQ(tokens[1], "<s>");
  EXPECT_EQ(tokens[259], "\xe2\x96\x81\xe2\x96\x81");
  const auto scores = g->find("tokenizer.ggml.scores")->as_floats();
  ASSERT_EQ(scores.size(), 32000u);
  EXPECT_EQ(scores[259], -1e9);
  EXPECT_EQ(scores[31999], -31740.0);
  EXPECT_EQ(g->find("tokenizer.ggml.token_type")->as_ints()[3], 6);
  EXPECT_TRUE(g->get_bool("tokenizer.ggml.add_bos_token"));
  EXPECT_FALSE(g->get_bool("tokenizer.ggml.add_eos_token"));
}

// Every vocab file opens, and re-encoding what was read reproduces llama.cpp's bytes
// (our writer may add zero padding at the end).
TEST(GgufLlamaCpp, AllVocabsReencodeIdentically) {
  int files = 0;
  for (const auto& entry : fs::directory_iterator(std::string(MUSE_SHARED_DIR) + "/tokenizers")) {
    if (entry.path().extension() != ".gguf") continue;
    SCOPED_TRACE(entry.path().string());
    ++files;
    auto g = GgufFile::open(entry.path().string());
    EXPECT_FALSE(g->get_string("tokenizer.ggml.model").empty());
    EXPECT_GT(g->find("tokenizer.ggml.tokens")->array_size(), 30000u);
    GgufWriter w;
    for (const auto& key : g->key_order()) w.set(key, *g->find(key));
    const auto bytes = w.serialize();
    const auto& original = *g->mapping();
    ASSERT_GE(bytes.size(), original.size());
    EXPECT_EQ(std::memcmp(bytes.data(), original.data(), original.size()), 0);
    for (size_t i = original.size(); i < bytes.size(); ++i) ASSERT_EQ(bytes[i], 0);
  }
  EXPECT_EQ(files, 7);
}

}  // namespace
}  // namespace muse
