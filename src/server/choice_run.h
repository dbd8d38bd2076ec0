// One choice of a request while the engine generates it: turns engine token events into
// what the API returns — text (detokenized, cut at stop strings), tool-call deltas
// (parsed from the text in the model's format), log-probabilities and the finish reason.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "engine/engine.h"
#include "server/stop_matcher.h"
#include "text/message_channels.h"
#include "text/tokenizer.h"
#include "text/tool_calls.h"

namespace muse::server {

struct LogprobEntry {
  int32_t token = 0;
  float logprob = 0;
  std::vector<std::pair<int32_t, float>> top;
};

struct ChoiceDelta {
  std::string content;
  std::vector<text::ToolCallDelta> tool_calls;
  std::vector<LogprobEntry> logprobs;
  int64_t new_tokens = 0;
  std::string finish_reason;  // "stop" | "length" | "tool_calls" on the last delta, else ""
  std::string error;          // the engine failed this choice (finish_reason is "error")
  bool empty() const {
    return content.empty() && tool_calls.empty() && logprobs.empty() && finish_reason.empty();
  }
};

class ChoiceRun {
 public:
  // tool_parser: run over the text (tool_choice other than none). message_channels: the
  // model writes Muse Glimmer's channel markup (text/message_channels.h), which is removed
  // before stop strings and tool calls are looked for.
  ChoiceRun(int index, std::shared_ptr<GenerationStream> stream, const text::Tokenizer& tokenizer,
            std::vector<std::string> stops, std::optional<text::ToolCallParser> tool_parser,
            bool want_logprobs, bool message_channels = false);

  // Waits up to `timeout` for progress; nullopt when there is nothing new. The delta with
  // a finish_reason is the last one.
  std::optional<ChoiceDelta> poll(std::chrono::milliseconds timeout);
  void cancel() { stream_->cancel(); }

  int index() const { return index_; }
  bool finished() const { return finished_; }
  int64_t completion_tokens() const { return completion_tokens_; }
  int64_t prompt_tokens() const { return prompt_tokens_; }
  int64_t cached_prompt_tokens() const { return cached_prompt_tokens_; }
  // Seconds from construction to the first token (negative before it arrives).
  double time_to_first_token() const { return ttft_; }
  // Gaps between successive token arrivals, per token, since the last call.
  std::vector<double> take_inter_token_gaps();

 private:
  void add_text(const std::string& text, ChoiceDelta& delta);

  int index_;
  std::shared_ptr<GenerationStream> stream_;
  text::StreamDecoder decoder_;
  StopMatcher stop_;
  std::optional<text::ToolCallParser> tool_parser_;
  std::optional<text::ChannelDemux> channels_;
  bool want_logprobs_;
  bool finished_ = false;
  int64_t completion_tokens_ = 0;
  int64_t prompt_tokens_ = 0;
  int64_t cached_prompt_tokens_ = 0;
  std::chrono::steady_clock::time_point start_, last_token_;
  double ttft_ = -1;
  std::vector<double> gaps_;
};

}  // namespace muse::server
