#include <cstdio>

#include "cli/commands.h"
#include "core/read_file.h"
#include "model/convert.h"
#include "model/mmproj_writer.h"
#include "model/random_model.h"

namespace muse::cli {

Runner add_convert(CLI::App& app) {
  struct Opts { std::string in, out, type = "f16", mmproj, mmproj_type = "f16"; };
  auto o = std::make_shared<Opts>();
  app.add_option("hf_dir", o->in, "Hugging Face model directory")->required();
  app.add_option("-o,--output", o->out, "Output GGUF file")->required();
  app.add_option("--type", o->type, "f32|f16|bf16|q8_0|q4_0|q4_1|q5_0|q5_1|q2_k|q3_k|q4_k|q5_k|q6_k|q4_k_m|q5_k_m");
  app.add_option("--mmproj", o->mmproj,
                 "Also write the image/audio encoders to this mmproj GGUF (multimodal models)");
  app.add_option("--mmproj-type", o->mmproj_type, "Encoder weight type: f32|f16|bf16|q8_0");
  return [o] {
    const QuantTarget target = parse_quant_target(o->type);
    auto model = Model::load(o->in);
    write_gguf(*model, o->out, target);
    std::fprintf(stderr, "wrote %s (%s, %s)\n", o->out.c_str(), model->config().arch.c_str(),
                 target.name.c_str());
    if (!o->mmproj.empty()) {
      const QuantTarget enc = parse_quant_target(o->mmproj_type);
      write_mmproj(o->in, o->mmproj, enc.base);
      std::fprintf(stderr, "wrote %s (encoders, %s)\n", o->mmproj.c_str(), enc.name.c_str());
    }
    return 0;
  };
}

Runner add_quantize(CLI::App& app) {
  struct Opts { std::string in, out, type; };
  auto o = std::make_shared<Opts>();
  app.add_option("input", o->in, "Input GGUF file")->required();
  app.add_option("output", o->out, "Output GGUF file")->required();
  app.add_option("type", o->type, "Target type, e.g. q8_0, q4_k_m")->required();
  return [o] {
    quantize_gguf(o->in, o->out, parse_quant_target(o->type));
    std::fprintf(stderr, "wrote %s (%s)\n", o->out.c_str(), o->type.c_str());
    return 0;
  };
}

Runner add_debug_make_model(CLI::App& app) {
  struct Opts { RandomModelSpec spec; std::string type = "f32", out, template_file; };
  auto o = std::make_shared<Opts>();
  app.add_option("--arch", o->spec.arch, "llama|qwen2|qwen2vl|qwen3|gemma3|muse-glimmer");
  app.add_option("--size", o->spec.size, "tiny|tiny-mm|qwen2.5-0.5b|gemma3-1b");
  app.add_option("--type", o->type, "Weight type (as for convert)");
  app.add_option("--seed", o->spec.seed, "Random seed");
  app.add_option("--vocab", o->spec.vocab_gguf, "GGUF file whose tokenizer to include");
  app.add_option("--add-special", o->spec.add_special,
                 "Append this control token to the vocabulary (repeatable; needs --vocab)")
      ->allow_extra_args(false);
  app.add_option("--bos", o->spec.bos_token, "Token text to use as BOS (needs --vocab)");
  app.add_option("--eos", o->spec.eos_token,
                 "Token text to use as EOS and end of turn (needs --vocab)");
  app.add_option("--chat-template", o->template_file, "Jinja chat template file to include")
      ->check(CLI::ExistingFile);
  app.add_option("-o,--output", o->out, "Output GGUF file")->required();
  return [o] {
    if (!o->template_file.empty()) o->spec.chat_template = read_file(o->template_file);
    write_random_model(o->spec, parse_quant_target(o->type), o->out);
    std::fprintf(stderr, "wrote %s\n", o->out.c_str());
    return 0;
  };
}

}  // namespace muse::cli
