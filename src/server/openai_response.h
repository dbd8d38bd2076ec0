// OpenAI response shapes: chat.completion, chat.completion.chunk, text_completion and
// their streaming chunks, with usage and log-probabilities.
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "server/generation.h"

namespace muse::server {

// Accumulates a choice's deltas for the non-streaming responses.
struct ChoiceResult {
  std::string content;
  std::vector<text::ToolCallDelta> tool_calls;  // merged: one entry per call
  std::vector<LogprobEntry> logprobs;
  std::string finish_reason;
  std::string error;
  void add(const ChoiceDelta& delta);
};

nlohmann::ordered_json usage_json(const StartedRequest& request);

// Non-streaming responses. results are indexed by choice index.
nlohmann::ordered_json chat_completion_json(const StartedRequest& request,
                                            const std::vector<ChoiceResult>& results,
                                            bool logprobs);
nlohmann::ordered_json text_completion_json(const StartedRequest& request,
                                            const std::vector<ChoiceResult>& results,
                                            bool logprobs);

// Streaming chunks. A chat stream starts with role_chunk for every choice, then
// delta chunks; include_usage adds "usage": null to each chunk and a final usage chunk.
nlohmann::ordered_json chat_role_chunk(const StartedRequest& request, int index,
                                       bool include_usage);
nlohmann::ordered_json chat_delta_chunk(const StartedRequest& request, int index,
                                        const ChoiceDelta& delta, bool logprobs,
                                        bool include_usage);
nlohmann::ordered_json text_delta_chunk(const StartedRequest& request, int index,
                                        const ChoiceDelta& delta, bool logprobs,
                                        bool include_usage);
nlohmann::ordered_json usage_chunk(const StartedRequest& request, const char* object);

}  // namespace muse::server
