// Every weight type end to end: a model written in f32, converted with
// `muse quantize` to each type, loads, gets the expected tensor types (the
// Q4_K_M and Q5_K_M mixtures included), and computes logits close to the f32 model's, the
// closeness ordered by bits per weight.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>

#include "common/test_tmp.h"
#include "engine/generate.h"
#include "model/convert.h"
#include "model/random_model.h"

namespace muse {
namespace {
namespace fs = std::filesystem;

std::string tmp(const std::string& name) {
  return test::tmp_path(name);
}

struct TypeCase {
  const char* type;
  double max_rel_rms;  // rms(logits - f32 logits) / rms(f32 logits)
};

const std::vector<int32_t> kIds = {5, 17, 300, 2, 99, 411, 8, 64, 250, 1, 33, 480};

std::vector<float> logits_of(const std::string& path) {
  Decoder d(Model::load(path), {32, 1, 512, 2});
  return all_logits(d, kIds);
}

const std::string& f32_model() {
  static const std::string path = [] {
    const std::string p = tmp("quant-types-f32.gguf");
    RandomModelSpec spec;
    spec.arch = "qwen3";
    write_random_model(spec, parse_quant_target("f32"), p);
    return p;
  }();
  return path;
}

class QuantTypes : public ::testing::TestWithParam<TypeCase> {};

TEST_P(QuantTypes, QuantizeLoadsAndStaysClose) {
  const TypeCase& tc = GetParam();
  const std::string out = tmp(std::string("quant-types-") + tc.type + ".gguf");
  const std::string cmd = std::string(MUSE_BIN_DIR) + "/muse quantize " + f32_model() + " " + out +
                          " " + tc.type + " 2>/dev/null";
  ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd;

  auto file = GgufFile::open(out);
  const QuantTarget target = parse_quant_target(tc.type);
  const int64_t n_layer = file->get_int("qwen3.block_count");
  for (const auto& t : file->tensors()) {
    EXPECT_EQ(t.view.type, tensor_type_for(target, t.name, t.view.n_dims, t.view.ne[0], n_layer,
                                           file->find_tensor("output.weight") == nullptr))
        << t.name;
    if (t.view.n_dims == 2 && target.base != DType::F32 && !target.k_m) {
      EXPECT_EQ(t.view.type, target.base) << t.name;  // widths are multiples of 256
    }
  }

  const auto ref = logits_of(f32_model());
  const auto got = logits_of(out);
  ASSERT_EQ(ref.size(), got.size());
  double num = 0, den = 0;
  for (size_t i = 0; i < ref.size(); ++i) {
    num += (got[i] - ref[i]) * (got[i] - ref[i]);
    den += ref[i] * ref[i];
  }
  const double rel = std::sqrt(num / den);
  EXPECT_LE(rel, tc.max_rel_rms) << tc.type;
  EXPECT_GT(rel, tc.type == std::string("f32") ? -1.0 : 0.0) << "quantization changed nothing";
}

INSTANTIATE_TEST_SUITE_P(All, QuantTypes,
                         // Bounds are about 1.3x what was measured (rms error of the logits
                         // relative to their rms; errors compound over layers, so about 3.5x the
                         // weights' own normalised rounding error).
                         ::testing::Values(TypeCase{"f32", 1e-6}, TypeCase{"f16", 2e-3},
                                           TypeCase{"bf16", 1.5e-2}, TypeCase{"q8_0", 0.025},
                                           TypeCase{"q6_k", 0.075}, TypeCase{"q5_0", 0.17},
                                           TypeCase{"q5_1", 0.135}, TypeCase{"q5_k", 0.135},
                                           TypeCase{"q4_0", 0.32}, TypeCase{"q4_1", 0.28},
                                           TypeCase{"q4_k", 0.26}, TypeCase{"q4_k_m", 0.2},
                                           TypeCase{"q5_k_m", 0.115},
                                           TypeCase{"q3_k", 0.54}, TypeCase{"q2_k", 0.9}),
                         [](const auto& info) { return std::string(info.param.type); });

}  // namespace
}  // namespace muse
