// ServeConfig: reading TOML config files and validating the result.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "muse/error.h"
#include "server/serve_config.h"

namespace muse::server {
namespace {

std::string write_config(const std::string& name, const std::string& content) {
  std::filesystem::create_directories(MUSE_TEST_TMP);
  std::string path = std::string(MUSE_TEST_TMP) + "/serve_config_" + name + ".toml";
  std::ofstream(path, std::ios::binary) << content;
  return path;
}

// The message of the muse::Error that loading `content` throws ("" when none is thrown).
std::string load_error(const std::string& name, const std::string& content) {
  ServeConfig config;
  try {
    load_serve_config_file(write_config(name, content), config);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

std::string validate_error(const ServeConfig& config) {
  try {
    validate_serve_config(config);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

bool contains(const std::string& haystack, const std::string& needle) {
  return haystack.find(needle) != std::string::npos;
}

TEST(ServeConfig, LoadsFullFile) {
  const std::string path = write_config("full", R"(
# every key
host = "0.0.0.0"
port = 9090
api_keys_file = "keys.txt"
parallel = 8
ctx_size = 8192
batch_size = 256
max_queue = 32
threads = 6
kv_type = "f16"
max_body_bytes = 1048576
max_tokens_limit = 4096
max_messages = 200
max_n = 4
max_json_depth = 32

[[model]]
path = "models/qwen2.5-0.5b-q8_0.gguf"
aliases = ["qwen2.5-0.5b", "default"]
tool_format = "hermes"
chat_template = "file.jinja"

[[model]]
path = "models/smollm"
)");
  ServeConfig c;
  c.models.push_back({"old.gguf", {"old"}, "", "", ""});  // replaced by the file's models
  load_serve_config_file(path, c);
  EXPECT_EQ(c.host, "0.0.0.0");
  EXPECT_EQ(c.port, 9090);
  EXPECT_EQ(c.api_keys_file, "keys.txt");
  EXPECT_EQ(c.parallel, 8);
  EXPECT_EQ(c.ctx_size, 8192);
  EXPECT_EQ(c.batch_size, 256);
  EXPECT_EQ(c.max_queue, 32);
  EXPECT_EQ(c.threads, 6);
  EXPECT_EQ(c.kv_type, "f16");
  EXPECT_EQ(c.max_body_bytes, 1048576u);
  EXPECT_EQ(c.max_tokens_limit, 4096);
  EXPECT_EQ(c.max_messages, 200);
  EXPECT_EQ(c.max_n, 4);
  EXPECT_EQ(c.max_json_depth, 32);
  ASSERT_EQ(c.models.size(), 2u);
  EXPECT_EQ(c.models[0].path, "models/qwen2.5-0.5b-q8_0.gguf");
  EXPECT_EQ(c.models[0].aliases, (std::vector<std::string>{"qwen2.5-0.5b", "default"}));
  EXPECT_EQ(c.models[0].tool_format, "hermes");
  EXPECT_EQ(c.models[0].chat_template_file, "file.jinja");
  EXPECT_EQ(c.models[1].path, "models/smollm");
  EXPECT_TRUE(c.models[1].aliases.empty());
  EXPECT_EQ(c.models[1].tool_format, "");
  EXPECT_EQ(c.models[1].chat_template_file, "");
  EXPECT_NO_THROW(validate_serve_config(c));
}

TEST(ServeConfig, KeysAbsentFromFileKeepTheirValues) {
  ServeConfig c;
  c.port = 1234;  // e.g. set before from somewhere else
  c.models.push_back({"keep.gguf", {}, "", "", ""});
  load_serve_config_file(write_config("partial", "ctx_size = 2048\n"), c);
  EXPECT_EQ(c.ctx_size, 2048);
  EXPECT_EQ(c.port, 1234);
  EXPECT_EQ(c.host, "127.0.0.1");
  EXPECT_EQ(c.parallel, 4);
  ASSERT_EQ(c.models.size(), 1u);
  EXPECT_EQ(c.models[0].path, "keep.gguf");
}

TEST(ServeConfig, MissingFileAndSyntaxError) {
  ServeConfig c;
  const std::string missing = std::string(MUSE_TEST_TMP) + "/serve_config_missing.toml";
  try {
    load_serve_config_file(missing, c);
    ADD_FAILURE() << "expected an error";
  } catch (const Error& e) {
    EXPECT_TRUE(contains(e.what(), "serve_config_missing.toml: ")) << e.what();
  }
  std::string msg = load_error("syntax", "port = 8080\nhost = \"unterminated\n");
  EXPECT_TRUE(contains(msg, "serve_config_syntax.toml:2:")) << msg;
  msg = load_error("dup", "port = 1\nport = 2\n");
  EXPECT_TRUE(contains(msg, "serve_config_dup.toml")) << msg;
}

TEST(ServeConfig, UnknownKeysAreErrors) {
  std::string msg = load_error("unknown", "prot = 8080\n");
  EXPECT_TRUE(contains(msg, "serve_config_unknown.toml")) << msg;
  EXPECT_TRUE(contains(msg, "'prot'")) << msg;
  EXPECT_TRUE(contains(msg, "unknown key")) << msg;
  msg = load_error("unknown_model", "[[model]]\npath = \"m.gguf\"\nalias = [\"x\"]\n");
  EXPECT_TRUE(contains(msg, "'model[0].alias'")) << msg;
  EXPECT_TRUE(contains(msg, "unknown key")) << msg;
  msg = load_error("unknown_table", "[server]\nport = 1\n");
  EXPECT_TRUE(contains(msg, "'server'")) << msg;
}

TEST(ServeConfig, WrongTypesNameTheKey) {
  struct Case {
    const char* content;
    const char* key;
  };
  const Case cases[] = {
      {"port = \"8080\"\n", "'port'"},
      {"port = 8080.0\n", "'port'"},
      {"host = 127\n", "'host'"},
      {"parallel = true\n", "'parallel'"},
      {"ctx_size = \"big\"\n", "'ctx_size'"},
      {"batch_size = 1.5\n", "'batch_size'"},
      {"max_queue = [1]\n", "'max_queue'"},
      {"threads = \"all\"\n", "'threads'"},
      {"kv_type = 16\n", "'kv_type'"},
      {"api_keys_file = false\n", "'api_keys_file'"},
      {"max_body_bytes = \"8M\"\n", "'max_body_bytes'"},
      {"max_tokens_limit = 1e3\n", "'max_tokens_limit'"},
      {"max_messages = \"x\"\n", "'max_messages'"},
      {"max_n = 2.0\n", "'max_n'"},
      {"max_json_depth = {}\n", "'max_json_depth'"},
      {"model = \"m.gguf\"\n", "'model'"},
      {"model = [1, 2]\n", "'model'"},
      {"[model]\npath = \"m.gguf\"\n", "'model'"},
      {"[[model]]\npath = 5\n", "'model[0].path'"},
      {"[[model]]\npath = \"m\"\naliases = \"one\"\n", "'model[0].aliases'"},
      {"[[model]]\npath = \"m\"\naliases = [\"a\", 2]\n", "'model[0].aliases[1]'"},
      {"[[model]]\npath = \"m\"\ntool_format = 1\n", "'model[0].tool_format'"},
      {"[[model]]\npath = \"m\"\n[[model]]\npath = \"n\"\nchat_template = []\n",
       "'model[1].chat_template'"},
  };
  int i = 0;
  for (const Case& c : cases) {
    std::string msg = load_error("type" + std::to_string(i++), c.content);
    EXPECT_TRUE(contains(msg, c.key)) << c.content << " -> " << msg;
  }
  EXPECT_TRUE(contains(load_error("type_name", "port = \"8080\"\n"), "expected an integer"));
}

TEST(ServeConfig, LoadRangeAndModelPathErrors) {
  EXPECT_TRUE(contains(load_error("port_big", "port = 65536\n"), "'port'"));
  EXPECT_TRUE(contains(load_error("port_neg", "port = -1\n"), "'port'"));
  EXPECT_EQ(load_error("port_max", "port = 65535\n"), "");
  EXPECT_TRUE(contains(load_error("threads_big", "threads = 3000000000\n"), "'threads'"));
  EXPECT_TRUE(contains(load_error("body_neg", "max_body_bytes = -5\n"), "'max_body_bytes'"));
  EXPECT_TRUE(contains(load_error("parallel0", "parallel = 0\n"), "'parallel'"));
  std::string msg = load_error("no_path", "[[model]]\naliases = [\"x\"]\n");
  EXPECT_TRUE(contains(msg, "'model[0].path'")) << msg;
  msg = load_error("empty_path", "[[model]]\npath = \"\"\n");
  EXPECT_TRUE(contains(msg, "'model[0].path'")) << msg;
}

TEST(ServeConfig, FailedLoadLeavesConfigUnchanged) {
  ServeConfig c;
  EXPECT_THROW(load_serve_config_file(write_config("half", "port = 9000\nbogus = 1\n"), c), Error);
  EXPECT_EQ(c.port, 8080);
}

ServeConfig valid_config() {
  ServeConfig c;
  c.models.push_back({"a.gguf", {"a", "default"}, "", "", ""});
  c.models.push_back({"b.gguf", {"b"}, "hermes", "", ""});
  return c;
}

TEST(ServeConfig, ValidateAcceptsDefaultsWithAModel) {
  EXPECT_EQ(validate_error(valid_config()), "");
  ServeConfig c = valid_config();
  c.port = 0;  // any free port
  c.max_queue = 0;
  EXPECT_EQ(validate_error(c), "");
}

TEST(ServeConfig, ValidateErrors) {
  ServeConfig c;
  EXPECT_TRUE(contains(validate_error(c), "no model")) << validate_error(c);

  c = valid_config();
  c.models[1].aliases.push_back("default");
  EXPECT_TRUE(contains(validate_error(c), "'default'")) << validate_error(c);

  c = valid_config();
  c.models[0].aliases = {"x", "x"};
  EXPECT_TRUE(contains(validate_error(c), "'x'")) << validate_error(c);

  c = valid_config();
  c.models[1].path = "";
  EXPECT_TRUE(contains(validate_error(c), "no path")) << validate_error(c);

  c = valid_config();
  c.models[0].aliases = {""};
  EXPECT_TRUE(contains(validate_error(c), "empty alias")) << validate_error(c);

  struct Case {
    const char* key;
    void (*mutate)(ServeConfig&);
  };
  const Case cases[] = {
      {"host", [](ServeConfig& s) { s.host = ""; }},
      {"port", [](ServeConfig& s) { s.port = 70000; }},
      {"port", [](ServeConfig& s) { s.port = -1; }},
      {"parallel", [](ServeConfig& s) { s.parallel = 0; }},
      {"ctx_size", [](ServeConfig& s) { s.ctx_size = 0; }},
      {"ctx_size", [](ServeConfig& s) { s.ctx_size = int64_t{1} << 40; }},
      {"batch_size", [](ServeConfig& s) { s.batch_size = -4; }},
      {"max_queue", [](ServeConfig& s) { s.max_queue = -1; }},
      {"threads", [](ServeConfig& s) { s.threads = -2; }},
      {"kv_type", [](ServeConfig& s) { s.kv_type = "q4_0"; }},
      {"max_body_bytes", [](ServeConfig& s) { s.max_body_bytes = 0; }},
      {"max_tokens_limit", [](ServeConfig& s) { s.max_tokens_limit = 0; }},
      {"max_messages", [](ServeConfig& s) { s.max_messages = 0; }},
      {"max_n", [](ServeConfig& s) { s.max_n = 0; }},
      {"max_n", [](ServeConfig& s) { s.max_n = 100000; }},
      {"max_json_depth", [](ServeConfig& s) { s.max_json_depth = 0; }},
  };
  for (const Case& k : cases) {
    c = valid_config();
    k.mutate(c);
    std::string msg = validate_error(c);
    EXPECT_TRUE(contains(msg, k.key)) << k.key << " -> '" << msg << "'";
  }
}

}  // namespace
}  // namespace muse::server
