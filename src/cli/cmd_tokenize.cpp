// `muse tokenize`: tokenizes llama.cpp's vocabulary test strings (.inp) and prints the
// .out format (one line per string, " id id ...", no BOS), or one string given with
// --text; --decode turns ids back into text.
#include <cstdio>
#include <fstream>
#include <iostream>
#include <sstream>

#include "cli/commands.h"
#include "core/read_file.h"
#include "muse/error.h"
#include "text/tokenizer.h"
#include "text/tokenizer_vocab_test.h"

namespace muse::cli {

Runner add_tokenize(CLI::App& app) {
  struct Opts {
    std::string model, inp, text, decode;
    bool add_special = false, parse_special = false;
  };
  auto o = std::make_shared<Opts>();
  app.add_option("-m,--model", o->model, "GGUF file (vocab-only works) or Hugging Face directory")
      ->required();
  auto* inp =
      app.add_option("--inp", o->inp, "Test strings separated by __ggml_vocab_test__ lines");
  auto* text = app.add_option("--text", o->text, "Tokenize this one string");
  auto* dec = app.add_option("--decode", o->decode, "Decode these ids (space or comma separated)");
  inp->excludes(text)->excludes(dec);
  text->excludes(dec);
  app.add_flag("--add-special", o->add_special, "Add BOS/EOS as the model's metadata asks");
  app.add_flag("--parse-special", o->parse_special, "Recognise special tokens written in the text");
  return [o, inp, text, dec] {
    MUSE_CHECK(inp->count() + text->count() + dec->count() > 0,
               "muse tokenize: give --inp FILE, --text STRING or --decode IDS");
    const auto tokenizer = text::load_tokenizer(o->model);
    if (dec->count() > 0) {
      std::string ids_text = o->decode;
      for (char& c : ids_text)
        if (c == ',') c = ' ';
      const auto ids = text::parse_vocab_test_line(ids_text);
      std::cout << tokenizer->decode(ids) << '\n';
      return 0;
    }
    std::vector<std::string> inputs;
    if (inp->count() > 0) {
      inputs = text::parse_vocab_test_inputs(read_file(o->inp));
    } else {
      inputs.push_back(o->text);
    }
    std::string out;
    for (const std::string& s : inputs) {
      out += text::format_vocab_test_line(tokenizer->encode(s, o->add_special, o->parse_special));
      out += '\n';
    }
    std::fwrite(out.data(), 1, out.size(), stdout);
    return 0;
  };
}

}  // namespace muse::cli
