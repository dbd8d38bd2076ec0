// llama.cpp's tokenizer test-file formats (`ggml-vocab-*.gguf.inp` / `.out`), shared by
// `muse tokenize` and the tests.
//
// .inp: every test string is followed by the line "__ggml_vocab_test__", i.e. the file is
// the strings each terminated by "\n__ggml_vocab_test__\n". The newline before the
// separator line belongs to the framing, not to the string (so "" and "\n" are distinct
// strings). Text after the last separator, if any, is one more string.
// .out: one line per string, each id preceded by a space (" 15496 995"), no BOS; an empty
// result is an empty line.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "text/tokenizer.h"

namespace muse::text {

std::vector<std::string> parse_vocab_test_inputs(std::string_view content);
std::string format_vocab_test_line(const std::vector<TokenId>& ids);  // without the newline
// Parses one .out line (whitespace-separated ids); throws muse::Error on anything else.
std::vector<TokenId> parse_vocab_test_line(std::string_view line);

}  // namespace muse::text
