// Turns validated OpenAI requests into engine work and drives it: prompt construction
// (chat template, tokenization, context checks), constraints (JSON schema, forced tool
// calls), one engine request per choice, and the loop that collects every choice's
// deltas until all have finished.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "server/choice_run.h"
#include "server/openai_request.h"
#include "server/multimodal_prompt.h"
#include "server/served_model.h"

namespace muse::server {

// A request whose choices are running in the engine.
struct StartedRequest {
  ServedModel* model = nullptr;
  std::string model_name;  // as the client named it
  std::string id;          // chatcmpl-... / cmpl-...
  int64_t created = 0;
  std::vector<std::unique_ptr<ChoiceRun>> choices;
  std::vector<int64_t> prompt_tokens_per_prompt;  // completions may have several prompts
  std::vector<std::string> echo_text;             // completions with echo: per choice
  std::chrono::steady_clock::time_point start;

  ~StartedRequest();  // cancels choices still running
  int64_t prompt_tokens() const;
  int64_t cached_prompt_tokens() const;
  int64_t completion_tokens() const;
};

// The prompt text a chat request renders to with the model's template (for tests and
// /tokenize-style inspection). Throws ApiError(400) when the template rejects the input.
std::string render_chat_prompt(const ServedModel& model, const ChatRequest& request);
// The same with other messages (the request's media parts replaced by what the
// template should see).
std::string render_chat_messages(const ServedModel& model, const ChatRequest& request,
                                 const nlohmann::ordered_json& messages);

// The prompt of a chat request: text only, or with its images and audio fetched,
// decoded, encoded and placed at the template's media markers. Throws ApiError (400
// for bad messages or media, 413 for media over a limit).
MultimodalPrompt chat_prompt(ServedModel& model, const ChatRequest& request);

// Start the request's choices. Throws ApiError: 400 (context_length_exceeded, bad ids,
// unsupported schema), 503 when the engine queue is full.
std::unique_ptr<StartedRequest> start_chat(ServedModel& model, const std::string& model_name,
                                           const ChatRequest& request);
std::unique_ptr<StartedRequest> start_completion(ServedModel& model, const std::string& model_name,
                                                 const CompletionRequest& request);

// Polls every choice until all have finished, calling on_delta for each non-empty delta
// (in arrival order, choices interleaved). on_delta returns false to abandon the request
// (client gone): every choice is cancelled and drive returns false.
bool drive(StartedRequest& request, const std::function<bool(ChoiceRun&, ChoiceDelta&)>& on_delta);

}  // namespace muse::server
