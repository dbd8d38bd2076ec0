// The tiny random-weight chat model the server's C++ tests serve: qwen2 shapes, the
// GPT-2 vocabulary with the qwen2 pre-tokenizer and the Qwen2.5 chat template.
// Written once per build into MUSE_TEST_TMP/server/<file> (atomically, so test
// processes running side by side never see a half-written file).
#pragma once

#include <unistd.h>

#include <filesystem>
#include <string>

#include "core/read_file.h"
#include "model/convert.h"
#include "model/random_model.h"

namespace muse::server {

inline std::string tiny_chat_model(const std::string& file = "tiny-chat.gguf") {
  const std::string shared = MUSE_SHARED_DIR;
  const std::string dir = std::string(MUSE_TEST_TMP) + "/server";
  std::filesystem::create_directories(dir);
  const std::string path = dir + "/" + file;
  if (!std::filesystem::exists(path)) {
    RandomModelSpec spec;
    spec.vocab_gguf = shared + "/tokenizers/ggml-vocab-gpt2-as-qwen2.gguf";
    spec.chat_template = read_file(shared + "/templates/Qwen-Qwen2.5-7B-Instruct.jinja");
    const std::string tmp = path + ".tmp" + std::to_string(::getpid());
    write_random_model(spec, parse_quant_target("q8_0"), tmp);
    std::filesystem::rename(tmp, path);
  }
  return path;
}

}  // namespace muse::server
