// `muse grade` and `muse eval` end to end: a `muse serve` on the tiny random-weight test
// model acts as judge, model under evaluation and rubric grader (its JSON-schema
// grammar makes even random weights answer in the required shape).
#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <httplib.h>
#include <netinet/in.h>
#include <png.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <thread>

namespace {

namespace fs = std::filesystem;
using nlohmann::json;

const std::string kMuse = std::string(MUSE_BIN_DIR) + "/muse";
const std::string kShared = MUSE_SHARED_DIR;
const std::string kData =
    (fs::path(MUSE_TESTS_DIR) / "data" / "eval").string();

std::string read_text(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

int free_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
  socklen_t len = sizeof addr;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  ::close(fd);
  return ntohs(addr.sin_port);
}

int run(const std::string& command) {
  const int status = std::system(command.c_str());
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

class GradeEvalE2E : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    // CTest runs each test of this suite as its own process, in parallel: a directory
    // per process, or one process's remove_all deletes the other's files.
    dir_ = std::string(MUSE_TEST_TMP) + "/grade_eval_e2e-" + std::to_string(getpid());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    const std::string model = dir_ + "/tiny.gguf";
    ASSERT_EQ(run(kMuse + " debug make-model --arch qwen2 --size tiny --type q8_0 --vocab " +
                  kShared + "/tokenizers/ggml-vocab-gpt2-as-qwen2.gguf --chat-template " + kShared +
                  "/templates/Qwen-Qwen2.5-7B-Instruct.jinja -o " + model + " > " + dir_ +
                  "/make-model.log 2>&1"),
              0)
        << read_text(dir_ + "/make-model.log");
    port_ = free_port();
    const std::string port = std::to_string(port_), log = dir_ + "/serve.log";
    std::vector<std::string> args = {
        kMuse,    "serve", "--model",    model, "--model-alias", "tiny", "--host", "127.0.0.1",
        "--port", port,    "--parallel", "4",   "--ctx-size",    "2048"};
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_addopen(&actions, 1, log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    posix_spawn_file_actions_adddup2(&actions, 1, 2);
    ASSERT_EQ(posix_spawn(&server_pid_, kMuse.c_str(), &actions, nullptr, argv.data(), environ), 0);
    posix_spawn_file_actions_destroy(&actions);
    httplib::Client client("127.0.0.1", port_);
    client.set_connection_timeout(1, 0);
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
    while (std::chrono::steady_clock::now() < deadline) {
      if (auto r = client.Get("/health"); r && r->status == 200) return;
      if (waitpid(server_pid_, nullptr, WNOHANG) == server_pid_) {
        server_pid_ = 0;
        break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    FAIL() << "muse serve did not become healthy:\n" << read_text(log);
  }

  static void TearDownTestSuite() {
    if (server_pid_ > 0) {
      ::kill(server_pid_, SIGTERM);
      waitpid(server_pid_, nullptr, 0);
      server_pid_ = 0;
    }
  }

  void SetUp() override {
    if (server_pid_ <= 0) GTEST_SKIP() << "no server (see the set-up failure)";
  }

  static std::string url() { return "http://127.0.0.1:" + std::to_string(port_) + "/v1"; }

  static inline std::string dir_;
  static inline int port_ = 0;
  static inline pid_t server_pid_ = 0;
};

TEST_F(GradeEvalE2E, GradeWritesConsistentReport) {
  const std::string records = dir_ + "/records.jsonl";
  {
    std::ofstream out(records);
    const int64_t day = 1714521600;  // 2024-05-01
    for (int i = 0; i < 4; ++i) {
      const std::string id = std::to_string(i);
      json r = {{"id", id},
                {"timestamp", day + (i / 2) * 86400 + i},
                {"request", {{"messages", {{{"role", "user"}, {"content", "Name a color."}}}}}},
                {"primary",
                 {{"model", "p"},
                  {"output", i % 2 ? "Blue." : "Red."},
                  {"latency_ms", 10},
                  {"prompt_tokens", 5},
                  {"completion_tokens", 2}}},
                {"candidate",
                 {{"model", "c"},
                  {"output", i % 2 ? "Green." : "I do not know."},
                  {"latency_ms", 12},
                  {"prompt_tokens", 5},
                  {"completion_tokens", 3}}},
                {"topic", i < 3 ? "colors" : "other"}};
      out << r.dump() << "\n";
    }
  }
  const std::string out = dir_ + "/grade";
  ASSERT_EQ(run(kMuse + " grade --records " + records + " --judge-url " + url() +
                " --judge-model tiny --concurrency 4 --seed 3 --out " + out + " > " + dir_ +
                "/grade.log 2>&1"),
            0)
      << read_text(dir_ + "/grade.log");
  EXPECT_NE(read_text(dir_ + "/grade.log").find('\r'), std::string::npos);  // progress bar
  const json r = json::parse(read_text(out + "/results.json"));
  EXPECT_EQ(r["errors"], 0);
  const json& o = r["overall"];
  EXPECT_EQ(o["n"], 4);
  EXPECT_EQ(o["wins"].get<int>() + o["ties"].get<int>() + o["losses"].get<int>(), 4);
  const double wr = r["win_rate"]["value"];
  EXPECT_DOUBLE_EQ(wr, (o["wins"].get<double>() + 0.5 * o["ties"].get<double>()) / 4);
  EXPECT_LE(r["win_rate"]["ci95"][0].get<double>(), wr);
  EXPECT_GE(r["win_rate"]["ci95"][1].get<double>(), wr);
  EXPECT_EQ(r["by_topic"]["colors"]["n"], 3);
  EXPECT_EQ(r["by_topic"]["other"]["n"], 1);
  EXPECT_EQ(r["buckets"], "day");
  EXPECT_EQ(r["over_time"].size(), 2u);
  for (const json& p : r["pairs"]) {
    EXPECT_TRUE(p.contains("outcome")) << p.dump();
  }
  EXPECT_NE(read_text(out + "/report.md").find("| all | 4 |"), std::string::npos);

  // The plot decodes as a 640x360 PNG.
  const std::string png = read_text(out + "/winrate.png");
  ASSERT_GT(png.size(), 8u);
  EXPECT_EQ(png.substr(0, 8), "\x89PNG\r\n\x1a\n");
  png_image image{};
  image.version = PNG_IMAGE_VERSION;
  ASSERT_TRUE(png_image_begin_read_from_memory(&image, png.data(), png.size()));
  EXPECT_EQ(image.width, 640u);
  EXPECT_EQ(image.height, 360u);
  image.format = PNG_FORMAT_RGB;
  std::vector<uint8_t> pixels(PNG_IMAGE_SIZE(image));
  EXPECT_TRUE(png_image_finish_read(&image, nullptr, pixels.data(), 0, nullptr));
}

TEST_F(GradeEvalE2E, EvalMultipleChoice) {
  const std::string out = dir_ + "/eval-mc";
  ASSERT_EQ(run(kMuse + " eval --suite " + kData + "/tiny_mc.jsonl --url " + url() +
                " --model tiny --concurrency 3 --out " + out + " > " + dir_ + "/mc.log 2>&1"),
            0)
      << read_text(dir_ + "/mc.log");
  const json r = json::parse(read_text(out + "/results.json"));
  EXPECT_EQ(r["examples"], 3);
  EXPECT_EQ(r["errors"], 0);
  EXPECT_EQ(r["accuracy"]["n"], 3);
  EXPECT_EQ(r["unparsed"], 0);  // the schema forces a letter
  int correct = 0;
  for (const json& row : r["results"]) correct += row["correct"].get<bool>() ? 1 : 0;
  EXPECT_EQ(r["correct"], correct);
  EXPECT_DOUBLE_EQ(r["accuracy"]["score"].get<double>(), correct / 3.0);
  EXPECT_NE(read_text(out + "/results.md").find("| accuracy |"), std::string::npos);
}

TEST_F(GradeEvalE2E, EvalHealthBench) {
  const std::string out = dir_ + "/eval-hb";
  ASSERT_EQ(run(kMuse + " eval --suite " + kData + "/tiny_healthbench.jsonl --url " + url() +
                " --model tiny --grader-url " + url() + " --grader-model tiny --max-tokens 16 " +
                "--concurrency 2 --out " + out + " > " + dir_ + "/hb.log 2>&1"),
            0)
      << read_text(dir_ + "/hb.log");
  const json r = json::parse(read_text(out + "/results.json"));
  EXPECT_EQ(r["examples"], 2);
  EXPECT_EQ(r["errors"], 0);
  EXPECT_EQ(r["score"]["n"], 2);
  const double score = r["score"]["score"];
  EXPECT_GE(score, 0.0);
  EXPECT_LE(score, 1.0);
  ASSERT_EQ(r["results"][0]["rubric_grades"].size(), 3u);
  ASSERT_EQ(r["results"][1]["rubric_grades"].size(), 2u);
  for (const auto& [tag, t] : r["by_tag"].items()) {
    EXPECT_GE(t["score"].get<double>(), 0.0) << tag;
    EXPECT_LE(t["score"].get<double>(), 1.0) << tag;
  }
  EXPECT_TRUE(r["by_tag"].contains("axis:accuracy"));
  EXPECT_NE(read_text(out + "/results.md").find("**overall**"), std::string::npos);
}

}  // namespace
