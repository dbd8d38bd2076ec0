// Forward-pass properties that the goldens do not isolate: batching across
// sequences, chunking, incremental decoding, input validation, and model-file
// validation at the architecture level.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>

#include "common/test_tmp.h"
#include "model/attention_parts.h"
#include "model/convert.h"
#include "model/decoder.h"
#include "model/random_model.h"
#include "muse/error.h"

namespace muse {
namespace {
namespace fs = std::filesystem;

std::string tmp(const std::string& name) {
  return test::tmp_path(name);
}

std::shared_ptr<Model> tiny(const std::string& arch, const std::string& type = "f32") {
  const std::string path = tmp("decoder-" + arch + "-" + type + ".gguf");
  RandomModelSpec spec;
  spec.arch = arch;
  write_random_model(spec, parse_quant_target(type), path);
  return Model::load(path);
}

std::vector<float> run(Decoder& d, const std::vector<int32_t>& ids, int32_t seq) {
  std::vector<BatchItem> items;
  for (size_t i = 0; i < ids.size(); ++i)
    items.push_back({ids[i], static_cast<int32_t>(i), seq, true});
  d.clear(seq);
  auto out = d.forward(items);
  return {out.begin(), out.end()};
}

double max_diff(std::span<const float> a, std::span<const float> b) {
  double m = 0;
  for (size_t i = 0; i < a.size(); ++i) m = std::max(m, std::abs(double(a[i]) - b[i]));
  return m;
}

class DecoderArch : public ::testing::TestWithParam<const char*> {};

TEST_P(DecoderArch, ChunkedAndIncrementalMatchOnePass) {
  auto model = tiny(GetParam());
  const std::vector<int32_t> ids = {1, 7, 300, 42, 5, 99, 511, 0, 17, 23, 64, 128};
  Decoder whole(model, {64, 1, 512, 2});
  const auto ref = run(whole, ids, 0);
  Decoder chunked(model, {64, 1, 5, 2});  // 12 tokens in chunks of 5
  EXPECT_LE(max_diff(run(chunked, ids, 0), ref), 1e-5);
  // One token at a time.
  Decoder inc(model, {64, 1, 512, 1});
  const int64_t V = model->config().n_vocab;
  for (size_t i = 0; i < ids.size(); ++i) {
    BatchItem it{ids[i], static_cast<int32_t>(i), 0, true};
    auto out = inc.forward(std::span<const BatchItem>(&it, 1));
    ASSERT_EQ(static_cast<int64_t>(out.size()), V);
    EXPECT_LE(max_diff(out, std::span<const float>(ref).subspan(i * V, V)), 1e-5)
        << "position " << i;
  }
}

TEST_P(DecoderArch, InterleavedSequencesMatchSeparateRuns) {
  auto model = tiny(GetParam());
  const std::vector<int32_t> a = {3, 1, 4, 1, 5, 9, 2, 6}, b = {2, 7, 1, 8, 2, 8};
  Decoder single(model, {32, 1, 512, 2});
  const auto ra = run(single, a, 0);
  const auto rb = run(single, b, 0);
  Decoder multi(model, {32, 3, 512, 2});
  std::vector<BatchItem> items;
  for (size_t i = 0; i < std::max(a.size(), b.size()); ++i) {
    if (i < b.size()) items.push_back({b[i], static_cast<int32_t>(i), 2, true});
    if (i < a.size()) items.push_back({a[i], static_cast<int32_t>(i), 0, true});
  }
  auto out = multi.forward(items);
  const int64_t V = model->config().n_vocab;
  size_t row = 0;
  for (size_t i = 0; i < std::max(a.size(), b.size()); ++i) {
    if (i < b.size()) {
      EXPECT_LE(max_diff(out.subspan(row++ * V, V), std::span<const float>(rb).subspan(i * V, V)),
                1e-5);
    }
    if (i < a.size()) {
      EXPECT_LE(max_diff(out.subspan(row++ * V, V), std::span<const float>(ra).subspan(i * V, V)),
                1e-5);
    }
  }
}

// The rounded KV caches against the exact (f32) one over 40 positions (three key
// blocks): f16 moves the logits a little, Q8_0 keys more (most where the model
// sharpens attention: QK-norm scales); both must move them (the cache type is in
// use) and stay close.
TEST_P(DecoderArch, RoundedKvCachesStayCloseToExact) {
  auto model = tiny(GetParam());
  std::vector<int32_t> ids;
  for (int32_t i = 0; i < 40; ++i) ids.push_back((i * 37 + 11) % 500);
  Decoder exact(model, {64, 1, 512, 2});
  const auto ref = run(exact, ids, 0);
  const struct {
    DType kv;
    double tol;
  } cases[] = {{DType::F16, 5e-3}, {DType::Q8_0, 8e-2}};
  for (const auto& c : cases) {
    DecoderOptions o{64, 1, 512, 2};
    o.kv_type = c.kv;
    Decoder d(model, o);
    const double diff = max_diff(run(d, ids, 0), ref);
    EXPECT_LE(diff, c.tol) << dtype_name(c.kv);
    EXPECT_GT(diff, 0.0) << dtype_name(c.kv);
  }
  DecoderOptions bad{64, 1, 512, 2};
  bad.kv_type = DType::Q4_0;
  EXPECT_THROW(Decoder(model, bad), Error);
}

// Decoding at a long context with several threads cuts each (KV head, token)
// job into position parts whose outputs are merged by their log-sum-exp
// (attention_parts.h); the logits must match one thread's, which never splits.
// 1100 positions: 4 parts of 320 on 3 threads; Gemma 3's sliding layers (512)
// leave the first parts of a late token empty.
TEST_P(DecoderArch, SplitLongContextMatchesOneThread) {
  auto model = tiny(GetParam());
  std::vector<int32_t> ids;
  for (int32_t i = 0; i < 1100; ++i) ids.push_back((i * 131 + 7) % 500);
  ASSERT_GT(attention_parts(model->config().n_head_kv, 1100, 3).parts, 1);
  Decoder one(model, {1200, 1, 512, 1}), three(model, {1200, 1, 512, 3});
  const int64_t V = model->config().n_vocab;
  std::vector<BatchItem> prompt;
  for (size_t i = 0; i < ids.size(); ++i)
    prompt.push_back({ids[i], static_cast<int32_t>(i), 0, false});
  prompt.back().logits = true;
  for (Decoder* d : {&one, &three}) d->forward(prompt);
  for (int32_t pos = 1100; pos < 1104; ++pos) {
    const BatchItem it{(pos * 17) % 500, pos, 0, true};
    const auto a = one.forward(std::span<const BatchItem>(&it, 1));
    const std::vector<float> ref(a.begin(), a.end());
    const auto b = three.forward(std::span<const BatchItem>(&it, 1));
    ASSERT_EQ(static_cast<int64_t>(b.size()), V);
    EXPECT_LE(max_diff(b, ref), 1e-5) << "position " << pos;
  }
}

INSTANTIATE_TEST_SUITE_P(Archs, DecoderArch,
                         ::testing::Values("llama", "qwen2", "qwen3", "gemma3", "muse-glimmer"),
                         [](const auto& info) {
                           std::string s = info.param;
                           for (auto& ch : s)
                             if (ch == '-') ch = '_';
                           return s;
                         });

// The split of one layer's attention: only with fewer jobs than items wanted and
// parts of at least the minimum length; whole tiles; never an empty trailing
// part; never more items than the decoder's scratch holds.
TEST(AttentionParts, SplitsFewLongJobsWithinTheScratch) {
  EXPECT_EQ(attention_parts(2, 4096, 1).parts, 1);       // one thread
  EXPECT_EQ(attention_parts(2, 300, 2).parts, 1);        // short context
  EXPECT_EQ(attention_parts(16, 4096, 2).parts, 1);      // enough jobs
  const AttentionParts p = attention_parts(2, 4096, 2);  // Qwen2.5-0.5B decoding
  EXPECT_EQ(p.parts, 8);
  EXPECT_EQ(p.span, 512);
  for (int threads : {2, 3, 16, 64})
    for (int64_t jobs = 1; jobs <= 4 * kAttentionItemsPerThread * threads; ++jobs)
      for (int64_t positions : {1, 255, 511, 512, 700, 4096, 100001, 262144}) {
        const AttentionParts s = attention_parts(jobs, positions, threads);
        if (s.parts == 1) continue;
        EXPECT_LE(jobs * s.parts, attention_part_items_max(threads));
        EXPECT_EQ(s.span % 64, 0);
        EXPECT_GE(s.span, kAttentionMinPartPositions);
        EXPECT_GE(s.parts * s.span, positions);
        EXPECT_LT((s.parts - 1) * s.span, positions) << jobs << " " << positions;
      }
}

TEST(Decoder, BadInputIsAnErrorAndLeavesTheCacheAlone) {
  auto model = tiny("qwen2");
  Decoder d(model, {4, 1, 512, 1});
  BatchItem ok{1, 0, 0, true};
  d.forward(std::span<const BatchItem>(&ok, 1));
  BatchItem bad_token{100000, 1, 0, true};
  EXPECT_THROW(d.forward(std::span<const BatchItem>(&bad_token, 1)), Error);
  BatchItem gap{1, 5, 0, true};
  EXPECT_THROW(d.forward(std::span<const BatchItem>(&gap, 1)), Error);
  BatchItem bad_seq{1, 1, 3, true};
  EXPECT_THROW(d.forward(std::span<const BatchItem>(&bad_seq, 1)), Error);
  EXPECT_EQ(d.seq_length(0), 1);
  std::vector<BatchItem> fill = {{1, 1, 0, false}, {2, 2, 0, false}, {3, 3, 0, false}};
  d.forward(fill);
  BatchItem full{1, 4, 0, true};
  try {
    d.forward(std::span<const BatchItem>(&full, 1));
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("full"), std::string::npos) << e.what();
  }
  EXPECT_EQ(d.seq_length(0), 4);
}

TEST(ModelFile, MissingAndMisshapenTensorsAreNamed) {
  auto model = tiny("qwen3");
  const auto& c = model->config();
  auto write_without = [&](const std::string& skip, const std::string& reshape) {
    GgufWriter w;
    model->arch().to_gguf(c, w);
    for (const auto& t : model->tensors()) {
      if (t.name == skip) continue;
      std::vector<int64_t> ne(t.view.ne.begin(), t.view.ne.begin() + t.view.n_dims);
      if (t.name == reshape) std::swap(ne[0], ne[1]);
      w.add_tensor(t.name, t.view.type, ne, t.view.data, t.view.nbytes);
    }
    const std::string path = tmp("broken.gguf");
    w.write(path);
    return path;
  };
  try {
    Model::load(write_without("blk.1.attn_k_norm.weight", ""));
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("'blk.1.attn_k_norm.weight' is missing"),
              std::string::npos)
        << e.what();
  }
  try {
    Model::load(write_without("", "blk.0.ffn_up.weight"));
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("'blk.0.ffn_up.weight' has shape"), std::string::npos)
        << e.what();
  }
  GgufWriter w;
  w.set("general.architecture", GgufValue::string("mamba9"));
  w.write(tmp("unknown-arch.gguf"));
  EXPECT_THROW(Model::load(tmp("unknown-arch.gguf")), Error);
}

TEST(RopeScaling, Llama3FactorsFollowTheReferenceFormula) {
  // Llama 3.1: base 500000, factor 8, low 1, high 4, original context 8192, head dim 128.
  const auto f = llama3_rope_factors(128, 500000.0f, 8.0f, 1.0f, 4.0f, 8192.0f);
  ASSERT_EQ(f.size(), 64u);
  EXPECT_FLOAT_EQ(f[0], 1.0f);   // wavelength 2*pi: high frequency, unscaled
  EXPECT_FLOAT_EQ(f[63], 8.0f);  // longest wavelength: fully scaled
  // A pair in the smooth band: wavelength between 2048 and 8192.
  for (size_t i = 0; i < f.size(); ++i) {
    const double freq = std::pow(500000.0, -2.0 * i / 128.0);
    const double wl = 2 * M_PI / freq;
    if (wl > 2048 && wl < 8192) {
      const double smooth = (8192 / wl - 1) / 3;
      EXPECT_NEAR(f[i], 1 / ((1 - smooth) / 8 + smooth), 1e-5);
    }
  }
}

TEST(Quantize, Q4KMMixtureMatchesTheNamedRecipe) {
  const QuantTarget t = parse_quant_target("q4_k_m");
  EXPECT_EQ(tensor_type_for(t, "output.weight", 2, 1024, 24, false), DType::Q6_K);
  EXPECT_EQ(tensor_type_for(t, "token_embd.weight", 2, 1024, 24, true), DType::Q6_K);
  EXPECT_EQ(tensor_type_for(t, "token_embd.weight", 2, 1024, 24, false), DType::Q4_K);
  EXPECT_EQ(tensor_type_for(t, "blk.0.attn_v.weight", 2, 1024, 24, false), DType::Q6_K);
  EXPECT_EQ(tensor_type_for(t, "blk.4.attn_v.weight", 2, 1024, 24, false), DType::Q4_K);
  EXPECT_EQ(tensor_type_for(t, "blk.5.ffn_down.weight", 2, 4864, 24, false), DType::Q6_K);
  EXPECT_EQ(tensor_type_for(t, "blk.23.ffn_down.weight", 2, 4864, 24, false), DType::Q6_K);
  EXPECT_EQ(tensor_type_for(t, "blk.10.attn_q.weight", 2, 1024, 24, false), DType::Q4_K);
  EXPECT_EQ(tensor_type_for(t, "blk.10.attn_norm.weight", 1, 896, 24, false), DType::F32);
  // Rows that do not split into 256-blocks fall back to a 32-block type.
  EXPECT_EQ(tensor_type_for(parse_quant_target("q4_k"), "blk.0.attn_q.weight", 2, 160, 24, false),
            DType::Q5_0);
  EXPECT_EQ(tensor_type_for(t, "blk.0.attn_v.weight", 2, 896, 24, false), DType::Q8_0);
  EXPECT_EQ(tensor_type_for(t, "blk.4.attn_v.weight", 2, 896, 24, false), DType::Q5_0);
  EXPECT_EQ(tensor_type_for(parse_quant_target("q8_0"), "blk.0.attn_q.weight", 2, 100, 24, false),
            DType::F16);
  // Q5_K_M: the same recipe over Q5_K (llama.cpp's file type 17).
  const QuantTarget t5 = parse_quant_target("Q5_K_M");
  EXPECT_EQ(t5.base, DType::Q5_K);
  EXPECT_EQ(tensor_type_for(t5, "blk.0.attn_v.weight", 2, 1024, 24, false), DType::Q6_K);
  EXPECT_EQ(tensor_type_for(t5, "blk.4.attn_v.weight", 2, 1024, 24, false), DType::Q5_K);
  EXPECT_EQ(tensor_type_for(t5, "output.weight", 2, 1024, 24, false), DType::Q6_K);
  EXPECT_EQ(tensor_type_for(t5, "blk.4.attn_v.weight", 2, 896, 24, false), DType::Q5_1);
  EXPECT_EQ(llama_file_type(t5), 17u);
  EXPECT_THROW(parse_quant_target("q9_9"), Error);
}

}  // namespace
}  // namespace muse
