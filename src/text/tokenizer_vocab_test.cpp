#include "text/tokenizer_vocab_test.h"

#include <charconv>

#include "muse/error.h"

namespace muse::text {

std::vector<std::string> parse_vocab_test_inputs(std::string_view content) {
  constexpr std::string_view kSeparator = "\n__ggml_vocab_test__\n";
  std::vector<std::string> out;
  size_t pos = 0;
  for (size_t hit; (hit = content.find(kSeparator, pos)) != std::string_view::npos;
       pos = hit + kSeparator.size())
    out.emplace_back(content.substr(pos, hit - pos));
  if (pos < content.size()) out.emplace_back(content.substr(pos));
  return out;
}

std::string format_vocab_test_line(const std::vector<TokenId>& ids) {
  std::string line;
  for (TokenId id : ids) {
    line += ' ';
    line += std::to_string(id);
  }
  return line;
}

std::vector<TokenId> parse_vocab_test_line(std::string_view line) {
  std::vector<TokenId> ids;
  size_t i = 0;
  while (i < line.size()) {
    if (line[i] == ' ' || line[i] == '\t' || line[i] == '\r') {
      ++i;
      continue;
    }
    TokenId v = 0;
    const auto [end, ec] = std::from_chars(line.data() + i, line.data() + line.size(), v);
    MUSE_CHECK(ec == std::errc() && v >= 0, "bad token id in line '", line, "'");
    ids.push_back(v);
    i = static_cast<size_t>(end - line.data());
  }
  return ids;
}

}  // namespace muse::text
