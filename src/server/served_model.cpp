#include "server/served_model.h"

#include <algorithm>
#include <chrono>
#include <filesystem>

#include "core/read_file.h"
#include "muse/error.h"
#include "text/message_channels.h"

namespace muse::server {

namespace {

// Used when a model carries no chat template: ChatML, the most widely trained format.
constexpr const char* kChatMlTemplate =
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + "
    "message['content'] + '<|im_end|>' + '\\n' }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";

DType parse_kv_type(const std::string& name) {
  if (auto t = kv_type_from_name(name)) return *t;
  throw Error("kv_type must be " + std::string(kKvTypeNames) + ", got '" + name + "'");
}

}  // namespace

std::unique_ptr<ServedModel> load_served_model(const ModelEntry& entry, const ServeConfig& config) {
  auto served = std::make_unique<ServedModel>();
  served->aliases = entry.aliases;
  if (served->aliases.empty())
    served->aliases.push_back(std::filesystem::path(entry.path).filename().string());
  served->id = served->aliases.front();
  served->created = std::chrono::duration_cast<std::chrono::seconds>(
                        std::chrono::system_clock::now().time_since_epoch())
                        .count();
  served->model = Model::load(entry.path);
  served->tokenizer = text::load_tokenizer(*served->model);
  std::string source = entry.chat_template_file.empty() ? served->tokenizer->chat_template()
                                                        : read_file(entry.chat_template_file);
  if (source.empty()) source = kChatMlTemplate;
  served->chat_template = std::make_unique<text::ChatTemplate>(source);
  served->tool_format = entry.tool_format.empty() ? text::detect_tool_call_format(source)
                                                  : text::parse_tool_call_format(entry.tool_format);
  served->message_channels = text::uses_message_channels(source);
  for (size_t id = 0; id < served->tokenizer->vocab_size(); ++id)
    served->max_piece_bytes = std::max(served->max_piece_bytes,
                                       served->tokenizer->token_to_piece(text::TokenId(id)).size());
  served->constraint_vocab = std::make_shared<text::ConstraintVocab>(*served->tokenizer);
  EngineOptions eo;
  eo.n_parallel = config.parallel;
  eo.n_ctx = config.ctx_size;
  eo.n_batch = config.batch_size;
  eo.max_queue = config.max_queue;
  eo.n_threads = config.threads;
  eo.kv_type = parse_kv_type(config.kv_type);
  eo.eog_ids = served->tokenizer->eog_ids();
  if (served->message_channels) {
    // <|eom|> ends one message of a turn, not the turn: generation goes on after it.
    if (auto eom = served->tokenizer->find_token(text::kEndOfMessageToken))
      std::erase(eo.eog_ids, *eom);
  }
  served->engine = std::make_unique<Engine>(served->model, eo);

  // Encoders: the mmproj file named in the entry, else the model's own (a Hugging
  // Face directory's, or the projections inside a `muse` GGUF).
  {
    const std::string& encoders_path = entry.mmproj.empty() ? entry.path : entry.mmproj;
    MediaEncoders enc = entry.mmproj.empty() ? load_model_media_encoders(entry.path)
                                             : load_media_encoders(entry.mmproj);
    for (int64_t width :
         {enc.vision ? enc.vision->n_embd_out() : 0, enc.audio ? enc.audio->n_embd_out() : 0})
      MUSE_CHECK(width == 0 || width == served->model->config().n_embd, encoders_path,
                 ": the encoders give rows of width ", width, ", the model needs ",
                 served->model->config().n_embd);
    MUSE_CHECK(entry.mmproj.empty() || enc.vision || enc.audio, encoders_path,
               ": no image or audio encoder found");
    if (enc.vision || enc.audio) {
      const MediaConfig& mc = config.media;
      MediaServiceOptions mo;
      mo.image.max_pixels = mc.max_image_pixels;
      mo.image.max_bytes = mc.max_media_bytes;
      mo.audio.max_seconds = mc.max_audio_seconds;
      mo.audio.max_bytes = mc.max_media_bytes;
      mo.n_threads = config.threads;
      served->media = std::make_unique<MediaService>(std::move(enc), mo);
      served->media_limits = {mc.max_images, mc.max_audio, mc.max_media_bytes};
      served->fetch_policy.allow_private = mc.allow_private_urls;
      served->fetch_policy.allowed_hosts = mc.allowed_hosts;
      served->fetch_policy.timeout_ms = static_cast<int>(mc.fetch_timeout_ms);
      served->fetch_policy.max_bytes = mc.max_media_bytes;
    }
  }
  return served;
}

void ModelRegistry::add(std::unique_ptr<ServedModel> model) {
  for (const auto& name : model->aliases)
    MUSE_CHECK(!by_name_.count(name), "model name '", name, "' is used twice");
  for (const auto& name : model->aliases) by_name_[name] = model.get();
  models_.push_back(std::move(model));
}

ServedModel* ModelRegistry::find(const std::string& name) const {
  auto it = by_name_.find(name);
  return it == by_name_.end() ? nullptr : it->second;
}

}  // namespace muse::server
