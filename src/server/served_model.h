// A model being served: its weights, engine, tokenizer, chat template and tool-call
// format, and the names clients address it by. The ModelRegistry maps request `model`
// names to served models.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "engine/engine.h"
#include "server/media_parts.h"
#include "server/media_service.h"
#include "server/serve_config.h"
#include "text/chat_template.h"
#include "text/grammar.h"
#include "text/tokenizer.h"
#include "text/tool_calls.h"

namespace muse::server {

struct ServedModel {
  std::string id;                    // the first alias; what /v1/models lists
  std::vector<std::string> aliases;  // every name that addresses this model
  int64_t created = 0;               // unix time the model was loaded
  std::shared_ptr<const Model> model;
  std::unique_ptr<text::Tokenizer> tokenizer;
  std::unique_ptr<text::ChatTemplate> chat_template;
  text::ToolCallFormat tool_format = text::ToolCallFormat::kGeneric;
  bool message_channels = false;  // Muse Glimmer's channel markup (text/message_channels.h)
  std::shared_ptr<const text::ConstraintVocab> constraint_vocab;
  size_t max_piece_bytes = 1;  // longest token piece (bounds a text's token count)
  std::unique_ptr<Engine> engine;
  // Images / audio: null when the model has no encoders (text only).
  std::unique_ptr<MediaService> media;
  MediaLimits media_limits;
  FetchPolicy fetch_policy;
};

// Loads a model entry with the engine options from the config. Throws muse::Error.
std::unique_ptr<ServedModel> load_served_model(const ModelEntry& entry, const ServeConfig& config);

class ModelRegistry {
 public:
  void add(std::unique_ptr<ServedModel> model);  // throws on a duplicate alias
  // nullptr when no model has this name.
  ServedModel* find(const std::string& name) const;
  const std::vector<std::unique_ptr<ServedModel>>& models() const { return models_; }

 private:
  std::vector<std::unique_ptr<ServedModel>> models_;
  std::map<std::string, ServedModel*> by_name_;
};

}  // namespace muse::server
