// safetensors reader/writer: the reference files produced by Hugging Face's
// safetensors, byte-exact writer output, round trips, and sharded model directories.
#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "common/parse_errors.h"
#include "model/safetensors.h"
#include "muse/error.h"

namespace muse {
namespace {

namespace fs = std::filesystem;

const std::string kGoldens = std::string(MUSE_SHARED_DIR) + "/goldens";

// A raw image: 8-byte length, the header text as given, then `data`.
std::vector<uint8_t> image(const std::string& header, const std::vector<uint8_t>& data = {}) {
  std::vector<uint8_t> out(8 + header.size() + data.size());
  const uint64_t n = header.size();
  std::memcpy(out.data(), &n, 8);
  std::memcpy(out.data() + 8, header.data(), header.size());
  if (!data.empty()) std::memcpy(out.data() + 8 + header.size(), data.data(), data.size());
  return out;
}

std::unique_ptr<SafetensorsFile> parse_bytes(std::vector<uint8_t> bytes) {
  return SafetensorsFile::parse(MappedFile::from_bytes(std::move(bytes), "mem.safetensors"));
}

using test::error_of;
using test::random_bytes;

#define EXPECT_ERROR_CONTAINS(stmt, phrase)                                 \
  do {                                                                      \
    const std::string _msg = error_of([&] { stmt; });                       \
    EXPECT_NE(_msg.find(phrase), std::string::npos) << "message: " << _msg; \
  } while (0)

// A fresh, empty scratch directory.
std::string scratch(const std::string& name) {
  const fs::path dir = fs::path(MUSE_TEST_TMP) / "safetensors" / name;
  fs::remove_all(dir);
  fs::create_directories(dir);
  return dir.string();
}

void write_text(const std::string& path, const std::string& text) {
  std::ofstream(path, std::ios::binary) << text;
}

std::vector<float> floats_of(const TensorView& v, size_t first, size_t n) {
  std::vector<float> out(n);
  std::memcpy(out.data(), static_cast<const float*>(v.data) + first, n * 4);
  return out;
}

TEST(SafetensorsGolden, LlamaModel) {
  const std::string path = kGoldens + "/llama/model.safetensors";
  auto st = SafetensorsFile::open(path);
  EXPECT_EQ(st->path(), path);
  EXPECT_EQ(st->tensors().size(), 30u);
  EXPECT_EQ(st->metadata(), (std::map<std::string, std::string>{{"format", "pt"}}));
  // Tensors are listed in file order.
  EXPECT_EQ(st->tensors()[0].name, "lm_head.weight");
  EXPECT_EQ(st->tensors()[1].name, "model.embed_tokens.weight");

  const SafetensorsTensor* emb = st->find("model.embed_tokens.weight");
  ASSERT_NE(emb, nullptr);
  EXPECT_EQ(emb->shape, (std::vector<int64_t>{1024, 128}));
  EXPECT_EQ(emb->view.type, DType::F32);
  EXPECT_EQ(emb->view.n_dims, 2);
  EXPECT_EQ(emb->view.ne, (std::array<int64_t, 4>{128, 1024, 1, 1}));
  EXPECT_EQ(emb->view.nbytes, 524288u);
  EXPECT_EQ(
      floats_of(emb->view, 0, 3),
      (std::vector<float>{-0.02529369480907917f, -0.023165563121438026f, 0.03029421716928482f}));
  EXPECT_EQ(floats_of(emb->view, 1024 * 128 - 1, 1)[0], -0.0014203645987436175f);

  const SafetensorsTensor* norm = st->find("model.norm.weight");
  ASSERT_NE(norm, nullptr);
  EXPECT_EQ(norm->view.n_dims, 1);
  EXPECT_EQ(norm->view.ne, (std::array<int64_t, 4>{128, 1, 1, 1}));
  EXPECT_EQ(floats_of(norm->view, 0, 4),
            (std::vector<float>{0.7033535838127136f, 1.0443060398101807f, 0.8302758932113647f,
                                1.045876145362854f}));
  EXPECT_EQ(st->find("model.layers.0.mlp.down_proj.weight")->view.ne[0], 344);
  EXPECT_EQ(st->find("missing"), nullptr);
}

TEST(SafetensorsGolden, LlamaInputsAndOutputs) {
  auto in = SafetensorsFile::open(kGoldens + "/llama/inputs.safetensors");
  const SafetensorsTensor* ids = in->find("input_ids");
  ASSERT_NE(ids, nullptr);
  EXPECT_EQ(ids->view.type, DType::I32);
  EXPECT_EQ(ids->shape, (std::vector<int64_t>{24}));
  std::vector<int32_t> got(24);
  std::memcpy(got.data(), ids->view.data, 96);
  EXPECT_EQ(got,
            (std::vector<int32_t>{916, 244, 877, 21,  798, 232, 760, 10,  123, 1001, 701, 919,
                                  675, 827, 152, 224, 303, 904, 207, 574, 821, 1021, 893, 842}));
  EXPECT_TRUE(in->metadata().empty());

  auto out = SafetensorsFile::open(kGoldens + "/llama/outputs.safetensors");
  const SafetensorsTensor* logits = out->find("logits");
  ASSERT_NE(logits, nullptr);
  EXPECT_EQ(logits->view.ne, (std::array<int64_t, 4>{1024, 24, 1, 1}));
  EXPECT_EQ(floats_of(logits->view, 0, 2),
            (std::vector<float>{-0.1288289874792099f, -0.03251982480287552f}));
  EXPECT_EQ(out->find("greedy_ids")->view.type, DType::I32);
}

TEST(SafetensorsGolden, AllReferenceFilesOpen) {
  int files = 0;
  for (const auto& dir : fs::directory_iterator(kGoldens)) {
    for (const auto& entry : fs::directory_iterator(dir.path())) {
      if (entry.path().extension() != ".safetensors") continue;
      SCOPED_TRACE(entry.path().string());
      ++files;
      auto st = SafetensorsFile::open(entry.path().string());
      EXPECT_FALSE(st->tensors().empty());
      for (const auto& t : st->tensors()) {
        EXPECT_TRUE(t.view.type == DType::F32 || t.view.type == DType::I32) << t.name;
        EXPECT_EQ(t.view.nbytes, static_cast<size_t>(t.view.n_elements()) * 4) << t.name;
      }
    }
    if (fs::exists(dir.path() / "model.safetensors")) {
      auto model = SafetensorsModel::open_dir(dir.path().string());
      EXPECT_FALSE(model->names().empty());
    }
  }
  EXPECT_GE(files, 30);
  auto llama = SafetensorsModel::open_dir(kGoldens + "/llama");
  EXPECT_EQ(llama->names().size(), 30u);
  EXPECT_EQ(llama->find("model.norm.weight")->view.ne[0], 128);
  EXPECT_EQ(llama->find("nope"), nullptr);
}

// Conv3d kernels have rank 5: the view folds the outer dimensions into ne[3].
TEST(SafetensorsGolden, RankFiveTensor) {
  auto st = SafetensorsFile::open(kGoldens + "/qwen25omni/model.safetensors");
  const SafetensorsTensor* t = st->find("visual.patch_embed.proj.weight");
  ASSERT_NE(t, nullptr);
  EXPECT_EQ(t->shape, (std::vector<int64_t>{64, 3, 2, 14, 14}));
  EXPECT_EQ(t->view.n_dims, 4);
  EXPECT_EQ(t->view.ne, (std::array<int64_t, 4>{14, 14, 2, 192}));
  EXPECT_EQ(t->view.nbytes, 5079808u - 4778752u);
}

TEST(SafetensorsWriter, ExactBytes) {
  SafetensorsWriter w;
  w.set_metadata("format", "pt");
  const float a[2] = {1.0f, -2.0f};
  const int32_t b[1] = {7};
  w.add("a", DType::F32, {2}, a, sizeof(a));
  w.add("b", DType::I32, {}, b, sizeof(b));
  std::string header =
      R"({"__metadata__":{"format":"pt"},"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
      R"("b":{"dtype":"I32","shape":[],"data_offsets":[8,12]}})";
  while (header.size() % 8) header += ' ';
  std::vector<uint8_t> data(12);
  std::memcpy(data.data(), a, 8);
  std::memcpy(data.data() + 8, b, 4);
  EXPECT_EQ(w.serialize(), image(header, data));
}

TEST(SafetensorsWriter, RoundTripEveryDtype) {
  struct Spec {
    std::string name;
    DType type;
    std::vector<int64_t> shape;
    size_t elem;
  };
  const std::vector<Spec> specs = {
      {"f64", DType::F64, {3}, 8},       {"f32", DType::F32, {2, 3}, 4},
      {"f16", DType::F16, {2, 1, 3}, 2}, {"bf16", DType::BF16, {1, 2, 3, 4}, 2},
      {"i64", DType::I64, {5}, 8},       {"i32", DType::I32, {}, 4},
      {"i16", DType::I16, {4, 1}, 2},    {"i8", DType::I8, {7}, 1},
      {"empty", DType::F32, {0, 3}, 4},
  };
  SafetensorsWriter w;
  w.set_metadata("b", "2");
  w.set_metadata("a", "\xc3\xa9 \"quoted\"");
  std::vector<std::vector<uint8_t>> data;
  for (size_t i = 0; i < specs.size(); ++i) {
    size_t n = specs[i].elem;
    for (int64_t d : specs[i].shape) n *= static_cast<size_t>(d);
    data.push_back(random_bytes(n, static_cast<uint32_t>(i + 10)));
    w.add(specs[i].name, specs[i].type, specs[i].shape, data.back().data(), n);
  }
  const std::string path = scratch("roundtrip") + "/t.safetensors";
  w.write(path);
  auto st = SafetensorsFile::open(path);
  EXPECT_EQ(st->metadata().at("a"), "\xc3\xa9 \"quoted\"");
  EXPECT_EQ(st->metadata().at("b"), "2");
  ASSERT_EQ(st->tensors().size(), specs.size());
  for (size_t i = 0; i < specs.size(); ++i) {
    SCOPED_TRACE(specs[i].name);
    const SafetensorsTensor* t = st->find(specs[i].name);
    ASSERT_NE(t, nullptr);
    EXPECT_EQ(t->view.type, specs[i].type);
    EXPECT_EQ(t->shape, specs[i].shape);
    EXPECT_EQ(t->view.n_dims, static_cast<int>(specs[i].shape.size()));
    const size_t r = specs[i].shape.size();
    for (size_t d = 0; d < 4; ++d) EXPECT_EQ(t->view.ne[d], d < r ? specs[i].shape[r - 1 - d] : 1);
    ASSERT_EQ(t->view.nbytes, data[i].size());
    const auto* p = static_cast<const uint8_t*>(t->view.data);
    EXPECT_EQ(std::vector<uint8_t>(p, p + t->view.nbytes), data[i]);
  }
  // Scalars: no dimensions, one element.
  EXPECT_EQ(st->find("i32")->view.n_elements(), 1);
  EXPECT_EQ(st->find("empty")->view.n_elements(), 0);

  // What the reference loader demands: header a multiple of 8 starting with '{',
  // offsets contiguous from 0 and covering the whole data section.
  const auto bytes = w.serialize();
  uint64_t header_len = 0;
  std::memcpy(&header_len, bytes.data(), 8);
  EXPECT_EQ(header_len % 8, 0u);
  EXPECT_EQ(bytes[8], '{');
  size_t expected_begin = 0;
  for (const auto& t : st->tensors()) {  // file order
    const auto* p = static_cast<const uint8_t*>(t.view.data);
    EXPECT_EQ(static_cast<size_t>(p - static_cast<const uint8_t*>(st->tensors()[0].view.data)),
              expected_begin);
    expected_begin += t.view.nbytes;
  }
  EXPECT_EQ(8 + header_len + expected_begin, bytes.size());
  EXPECT_EQ(fs::file_size(path), bytes.size());
  for (const auto& entry : fs::directory_iterator(fs::path(path).parent_path()))
    EXPECT_EQ(entry.path().filename(), "t.safetensors");  // no temporary left behind
}

TEST(SafetensorsFile, ZeroCopyViews) {
  SafetensorsWriter w;
  const auto d = random_bytes(16, 5);
  w.add("x", DType::F32, {4}, d.data(), 16);
  auto mapped = MappedFile::from_bytes(w.serialize(), "zc.safetensors");
  auto st = SafetensorsFile::parse(mapped);
  EXPECT_EQ(st->path(), "zc.safetensors");
  const auto* p = static_cast<const uint8_t*>(st->find("x")->view.data);
  EXPECT_EQ(p, mapped->data() + mapped->size() - 16);
}

TEST(SafetensorsFile, UnsignedAndBoolMapToI8) {
  const std::string header = R"({"m":{"dtype":"U8","shape":[2],"data_offsets":[0,2]},)"
                             R"("b":{"dtype":"BOOL","shape":[1],"data_offsets":[2,3]},)"
                             R"("z":{"dtype":"F32","shape":[0],"data_offsets":[3,3]}})";
  auto st = parse_bytes(image(header, {200, 1, 1}));
  EXPECT_EQ(st->find("m")->view.type, DType::I8);
  EXPECT_EQ(st->find("b")->view.type, DType::I8);
  EXPECT_EQ(static_cast<const uint8_t*>(st->find("m")->view.data)[0], 200);
  EXPECT_EQ(st->find("z")->view.nbytes, 0u);
  // Trailing spaces after the JSON (the reference padding) are fine.
  EXPECT_NO_THROW(parse_bytes(image(R"({"__metadata__":{}})"
                                    "     ")));
}

// A header length that fits in the file but exceeds the reference limit (100 MB) is
// refused before any JSON is parsed. The file is sparse, so this costs no disk space.
TEST(SafetensorsFile, RejectsAbsurdHeaderLength) {
  const std::string path = scratch("absurd") + "/big.safetensors";
  const uint64_t header_len = 100'000'008;
  {
    std::ofstream out(path, std::ios::binary);
    out.write(reinterpret_cast<const char*>(&header_len), 8);
  }
  fs::resize_file(path, 8 + header_len + 8);
  EXPECT_ERROR_CONTAINS(SafetensorsFile::open(path), "header length 100000008 is absurdly large");
  fs::remove(path);
}

TEST(SafetensorsWriter, RejectsBadInput) {
  SafetensorsWriter w;
  const auto d = random_bytes(64, 1);
  w.add("a", DType::F32, {2}, d.data(), 8);
  EXPECT_ERROR_CONTAINS(w.add("a", DType::F32, {2}, d.data(), 8), "duplicate tensor name 'a'");
  EXPECT_ERROR_CONTAINS(w.add("q", DType::Q8_0, {32}, d.data(), 34), "cannot be stored");
  EXPECT_ERROR_CONTAINS(w.add("s", DType::F32, {3}, d.data(), 8), "need 12");
  EXPECT_THROW(w.add("n", DType::F32, {-1}, d.data(), 0), Error);
  EXPECT_THROW(w.add("__metadata__", DType::F32, {1}, d.data(), 4), Error);
  SafetensorsWriter bad_utf8;
  bad_utf8.add("\xff", DType::F32, {1}, d.data(), 4);
  EXPECT_THROW(bad_utf8.serialize(), Error);
}

// A sharded model directory: two shards and an index.
struct ShardedDir {
  std::string dir;
  std::vector<uint8_t> a = random_bytes(16, 1), b = random_bytes(8, 2), c = random_bytes(12, 3);
  explicit ShardedDir(const std::string& name) : dir(scratch(name)) {
    SafetensorsWriter s1, s2;
    s1.add("a", DType::F32, {2, 2}, a.data(), a.size());
    s1.add("b", DType::I16, {4}, b.data(), b.size());
    s2.add("c", DType::F32, {3}, c.data(), c.size());
    s1.write(dir + "/model-00001-of-00002.safetensors");
    s2.write(dir + "/model-00002-of-00002.safetensors");
  }
  void index(const std::string& weight_map) {
    write_text(dir + "/model.safetensors.index.json",
               R"({"metadata":{"total_size":36},"weight_map":)" + weight_map + "}");
  }
  static std::string standard_map() {
    return R"({"a":"model-00001-of-00002.safetensors","b":"model-00001-of-00002.safetensors",)"
           R"("c":"model-00002-of-00002.safetensors"})";
  }
};

TEST(SafetensorsModel, ShardedDirectory) {
  ShardedDir d("sharded");
  d.index(ShardedDir::standard_map());
  auto m = SafetensorsModel::open_dir(d.dir);
  EXPECT_EQ(m->names(), (std::vector<std::string>{"a", "b", "c"}));
  const SafetensorsTensor* c = m->find("c");
  ASSERT_NE(c, nullptr);
  const auto* p = static_cast<const uint8_t*>(c->view.data);
  EXPECT_EQ(std::vector<uint8_t>(p, p + 12), d.c);
  EXPECT_EQ(m->find("b")->view.type, DType::I16);
  EXPECT_EQ(m->find("a")->view.ne, (std::array<int64_t, 4>{2, 2, 1, 1}));
}

// The Hugging Face cache layout: the shards are symlinks to blobs outside the folder.
TEST(SafetensorsModel, SymlinkedShards) {
  ShardedDir blobs("blobs");
  const std::string dir = scratch("snapshot");
  for (const char* f : {"model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"})
    fs::create_symlink(blobs.dir + "/" + f, dir + "/" + f);
  write_text(dir + "/model.safetensors.index.json",
             R"({"weight_map":)" + ShardedDir::standard_map() + "}");
  EXPECT_EQ(SafetensorsModel::open_dir(dir)->names(), (std::vector<std::string>{"a", "b", "c"}));
}

TEST(SafetensorsModel, SingleFileWins) {
  ShardedDir d("single");
  d.index(ShardedDir::standard_map());
  SafetensorsWriter w;
  w.add("only", DType::F32, {1}, d.a.data(), 4);
  w.write(d.dir + "/model.safetensors");
  EXPECT_EQ(SafetensorsModel::open_dir(d.dir)->names(), (std::vector<std::string>{"only"}));
}

TEST(SafetensorsModel, RejectsBadIndexes) {
  {
    const std::string empty = scratch("empty");
    EXPECT_ERROR_CONTAINS(SafetensorsModel::open_dir(empty),
                          "no model.safetensors or model.safetensors.index.json");
  }
  {
    ShardedDir d("escape");
    write_text(fs::path(d.dir).parent_path().string() + "/outside.safetensors", "");
    d.index(R"({"a":"../outside.safetensors"})");
    EXPECT_ERROR_CONTAINS(SafetensorsModel::open_dir(d.dir), "outside the model directory");
    d.index(R"({"a":"/etc/passwd"})");
    EXPECT_ERROR_CONTAINS(SafetensorsModel::open_dir(d.dir), "outside the model directory");
    d.index(R"({"a":"sub/../../outside.safetensors"})");
    EXPECT_ERROR_CONTAINS(SafetensorsModel::open_dir(d.dir), "outside the model directory");
  }
  {
    ShardedDir d("missing_shard");
    d.index(R"({"a":"model-00003-of-00003.safetensors"})");
    EXPECT_ERROR_CONTAINS(SafetensorsModel::open_dir(d.dir), "does not exist");
  }
  {
    ShardedDir d("name_not_in_shard");
    d.index(R"({"a":"model-00001-of-00002.safetensors","c":"model-00001-of-00002.safetensors"})");
    EXPECT_ERROR_CONTAINS(SafetensorsModel::open_dir(d.dir),
                          "tensor 'c' is listed in shard 'model-00001-of-00002.safetensors' but");
  }
  {
    ShardedDir d("two_shards");
    SafetensorsWriter w;
    w.add("x", DType::F32, {1}, d.a.data(), 4);
    w.add("a", DType::F32, {1}, d.a.data(), 4);
    w.write(d.dir + "/extra.safetensors");
    d.index(R"({"a":"model-00001-of-00002.safetensors","x":"extra.safetensors"})");
    EXPECT_ERROR_CONTAINS(SafetensorsModel::open_dir(d.dir), "tensor 'a' is in two shards");
  }
  {
    ShardedDir d("no_weight_map");
    write_text(d.dir + "/model.safetensors.index.json", R"({"metadata":{}})");
    EXPECT_ERROR_CONTAINS(SafetensorsModel::open_dir(d.dir), "missing 'weight_map'");
    write_text(d.dir + "/model.safetensors.index.json", R"({"weight_map":{"a":1}})");
    EXPECT_ERROR_CONTAINS(SafetensorsModel::open_dir(d.dir), "is not a string");
    write_text(d.dir + "/model.safetensors.index.json", R"({"weight_map":{"a":"x","a":"y"}})");
    EXPECT_ERROR_CONTAINS(SafetensorsModel::open_dir(d.dir), "duplicate key 'a'");
    write_text(d.dir + "/model.safetensors.index.json", "{");
    EXPECT_ERROR_CONTAINS(SafetensorsModel::open_dir(d.dir), "invalid JSON");
  }
}

}  // namespace
}  // namespace muse
