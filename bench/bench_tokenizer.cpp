// Tokenizer throughput on ~1 MiB of mixed text (English-like prose, code, numbers and the
// multilingual / emoji test strings of ../shared/tokenizers), one thread. The reported
// bytes_per_second is input bytes for encode and output bytes for decode.
//   bench_tokenizer --benchmark_filter='encode/gpt2'
#include <benchmark/benchmark.h>

#include <fstream>
#include <map>
#include <memory>
#include <random>
#include <sstream>
#include <string>

#include "text/tokenizer.h"
#include "text/tokenizer_vocab_test.h"

namespace muse::text {
namespace {

std::string vocab_path(const std::string& name) {
  return std::string(MUSE_SHARED_DIR) + "/tokenizers/ggml-vocab-" + name + ".gguf";
}

const std::string& mixed_text() {
  static const std::string text = [] {
    std::ifstream in(vocab_path("gpt-2") + ".inp", std::ios::binary);
    std::ostringstream ss;
    ss << in.rdbuf();
    const auto samples = parse_vocab_test_inputs(ss.str());
    const char* words[] = {"the",
                           "of",
                           "and",
                           "to",
                           "in",
                           "is",
                           "that",
                           "for",
                           "it",
                           "as",
                           "with",
                           "was",
                           "on",
                           "be",
                           "by",
                           "this",
                           "model",
                           "token",
                           "server",
                           "request",
                           "memory",
                           "between",
                           "however",
                           "performance",
                           "language",
                           "numbers",
                           "tokenizer",
                           "quickly",
                           "During",
                           "Muse",
                           "we'll",
                           "don't",
                           "it's",
                           "GPU",
                           "cache",
                           "international",
                           "representation",
                           "approximately",
                           "configuration"};
    const char* code[] = {"for (int i = 0; i < n; ++i) {\n",
                          "    x[i] = y[i] * 2.5f;\n",
                          "}\n",
                          "def main(argv):\n",
                          "    return {\"ok\": True, \"n\": 42}\n",
                          "if (err != nullptr) return -1;  // failed\n"};
    std::mt19937 rng(42);
    std::string out;
    out.reserve((1u << 20) + 4096);
    while (out.size() < (1u << 20)) {
      const unsigned kind = rng() % 10;
      if (kind < 6) {  // a sentence
        const unsigned n = 5 + rng() % 15;
        for (unsigned w = 0; w < n; ++w) {
          if (w) out += ' ';
          out += words[rng() % (sizeof(words) / sizeof(words[0]))];
          if (rng() % 12 == 0) out += std::to_string(rng() % 100000);
        }
        out += rng() % 4 ? ". " : ".\n\n";
      } else if (kind < 8) {
        out += code[rng() % (sizeof(code) / sizeof(code[0]))];
      } else {
        out += samples[rng() % samples.size()];
        out += '\n';
      }
    }
    return out;
  }();
  return text;
}

const Tokenizer& tokenizer(const std::string& name) {
  static std::map<std::string, std::unique_ptr<Tokenizer>> cache;
  auto& t = cache[name];
  if (!t) t = load_tokenizer(vocab_path(name));
  return *t;
}

void encode(benchmark::State& state, const std::string& name) {
  const Tokenizer& tok = tokenizer(name);
  const std::string& text = mixed_text();
  size_t n_tokens = 0;
  for (auto _ : state) {
    const auto ids = tok.encode(text, false, false);
    n_tokens = ids.size();
    benchmark::DoNotOptimize(ids.data());
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * text.size()));
  state.counters["tokens"] = static_cast<double>(n_tokens);
}

void decode(benchmark::State& state, const std::string& name) {
  const Tokenizer& tok = tokenizer(name);
  const auto ids = tok.encode(mixed_text(), false, false);
  size_t bytes = 0;
  for (auto _ : state) {
    const std::string s = tok.decode(ids);
    bytes = s.size();
    benchmark::DoNotOptimize(s.data());
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * bytes));
}

void stream_decode(benchmark::State& state, const std::string& name) {
  const Tokenizer& tok = tokenizer(name);
  const auto ids = tok.encode(mixed_text(), false, false);
  size_t bytes = 0;
  for (auto _ : state) {
    StreamDecoder stream(tok);
    bytes = 0;
    for (TokenId id : ids) bytes += stream.push(id).size();
    bytes += stream.flush().size();
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * bytes));
}

void load(benchmark::State& state, const std::string& name) {
  for (auto _ : state) benchmark::DoNotOptimize(load_tokenizer(vocab_path(name)).get());
}

BENCHMARK_CAPTURE(encode, gpt2, std::string("gpt-2"))->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(encode, qwen2, std::string("gpt2-as-qwen2"))->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(encode, llama_bpe, std::string("gpt2-as-llama-bpe"))
    ->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(encode, deepseek_coder, std::string("deepseek-coder"))
    ->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(encode, llama_spm, std::string("llama-spm"))->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(decode, gpt2, std::string("gpt-2"))->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(decode, llama_spm, std::string("llama-spm"))->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(stream_decode, gpt2, std::string("gpt-2"))->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(load, gpt2, std::string("gpt-2"))->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(load, llama_spm, std::string("llama-spm"))->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace muse::text

BENCHMARK_MAIN();
