// `muse bench --json` on a tiny model: the fields bench/compare reads, the
// baseline decoded in turn (--baseline-batch / --baseline-context), and a
// rejected count.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <nlohmann/json.hpp>
#include <string>

#include "common/test_tmp.h"

namespace {

const std::string kMuse = std::string(MUSE_BIN_DIR) + "/muse";

struct Result {
  int status;
  std::string out;
};

Result run(const std::string& command) {
  Result r{-1, {}};
  FILE* p = popen((command + " 2>&1").c_str(), "r");
  if (p == nullptr) return r;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, p)) > 0) r.out.append(buf, n);
  const int status = pclose(p);
  r.status = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return r;
}

class CliBench : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    // CTest runs each case as its own process, in parallel: a model per process.
    model_ = new std::string(
        muse::test::tmp_path("cli_bench_tiny-" + std::to_string(getpid()) + ".gguf"));
    const Result r =
        run(kMuse + " debug make-model --arch qwen2 --size tiny --type q8_0 -o " + *model_);
    ASSERT_EQ(r.status, 0) << r.out;
  }
  static void TearDownTestSuite() {
    std::remove(model_->c_str());
    delete model_;
  }
  static nlohmann::json bench(const std::string& options) {
    const Result r = run(kMuse + " bench -m " + *model_ + " -t 2 --json " + options);
    EXPECT_EQ(r.status, 0) << r.out;
    return nlohmann::json::parse(r.out.substr(r.out.find('{')));
  }
  static std::string* model_;
};
std::string* CliBench::model_ = nullptr;

TEST_F(CliBench, ReportsPrefillAndDecode) {
  const auto j = bench("--prompt-tokens 16 --gen-tokens 4 --kv q8_0");
  EXPECT_GT(j["prefill_tps"].get<double>(), 0);
  EXPECT_GT(j["decode_tps"].get<double>(), 0);
  EXPECT_EQ(j["prompt_tokens"], 16);
  EXPECT_EQ(j["gen_tokens"], 4);
  EXPECT_EQ(j["kv"], "q8_0");
  EXPECT_TRUE(j.contains("kv_cache_mb") && j.contains("peak_rss_mb"));
  EXPECT_FALSE(j.contains("baseline_decode_tps"));
}

TEST_F(CliBench, DecodesTheBaselineInTurn) {
  auto j = bench("--prompt-tokens 0 --gen-tokens 4 --context 40 --baseline-context 8");
  EXPECT_EQ(j["context"], 40);
  EXPECT_EQ(j["batch"], 1);
  EXPECT_EQ(j["baseline_context"], 8);
  EXPECT_EQ(j["baseline_batch"], 1);
  EXPECT_GT(j["decode_tps"].get<double>(), 0);
  EXPECT_GT(j["baseline_decode_tps"].get<double>(), 0);

  j = bench("--prompt-tokens 0 --gen-tokens 4 --batch 3 --baseline-batch 2");
  EXPECT_EQ(j["batch"], 3);
  EXPECT_EQ(j["baseline_batch"], 2);
  EXPECT_EQ(j["baseline_context"], 0);
  EXPECT_GT(j["baseline_decode_tps"].get<double>(), 0);
}

TEST_F(CliBench, RejectsNegativeCounts) {
  const Result r = run(kMuse + " bench -m " + *model_ + " --baseline-batch -1");
  EXPECT_NE(r.status, 0);
  EXPECT_NE(r.out.find("bench: counts must be non-negative"), std::string::npos) << r.out;
}

}  // namespace
