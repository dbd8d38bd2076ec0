// `muse debug logits`: the command-line path the golden tests check.
#include <cstdio>
#include <cstring>

#include "cli/commands.h"
#include "engine/generate.h"
#include "model/safetensors.h"
#include "muse/error.h"

namespace muse::cli {

Runner add_debug_logits(CLI::App& app) {
  struct Opts {
    std::string model, inputs, out, ids_key = "input_ids";
    int64_t greedy = 0;
    int threads = 0;
  };
  auto o = std::make_shared<Opts>();
  app.add_option("-m,--model", o->model, "GGUF file or Hugging Face directory")->required();
  app.add_option("--inputs", o->inputs, "safetensors file with the input ids")->required();
  app.add_option("--out", o->out, "Output safetensors file")->required();
  app.add_option("--ids-key", o->ids_key, "Name of the int32 ids tensor");
  app.add_option("--greedy", o->greedy, "Also generate this many ids greedily");
  app.add_option("-t,--threads", o->threads, "Threads");
  return [o] {
    auto inputs = SafetensorsFile::open(o->inputs);
    const SafetensorsTensor* t = inputs->find(o->ids_key);
    MUSE_CHECK(t, o->inputs, ": no tensor named '", o->ids_key, "'");
    MUSE_CHECK(t->view.type == DType::I32, o->inputs, ": '", o->ids_key, "' must be int32");
    const auto* p = static_cast<const int32_t*>(t->view.data);
    std::vector<int32_t> ids(p, p + t->view.n_elements());
    MUSE_CHECK(!ids.empty(), o->inputs, ": '", o->ids_key, "' is empty");

    auto model = Model::load(o->model);
    const int64_t V = model->config().n_vocab;
    Decoder decoder(model, {static_cast<int64_t>(ids.size()) + o->greedy + 1, 1, 512, o->threads});
    const auto logits = all_logits(decoder, ids);
    SafetensorsWriter w;
    w.add("logits", DType::F32, {static_cast<int64_t>(ids.size()), V}, logits.data(),
          logits.size() * sizeof(float));
    if (o->greedy > 0) {
      SamplingParams sp;
      sp.temperature = 0;
      Sampler sampler(sp, static_cast<int32_t>(V));
      GenerateOptions go;
      go.max_tokens = o->greedy;
      const auto gen = generate(decoder, ids, sampler, go);
      w.add("greedy_ids", DType::I32, {static_cast<int64_t>(gen.size())}, gen.data(),
            gen.size() * sizeof(int32_t));
    }
    w.write(o->out);
    return 0;
  };
}

}  // namespace muse::cli
