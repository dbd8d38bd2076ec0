#include "server/choice_run.h"

namespace muse::server {

ChoiceRun::ChoiceRun(int index, std::shared_ptr<GenerationStream> stream,
                     const text::Tokenizer& tokenizer, std::vector<std::string> stops,
                     std::optional<text::ToolCallParser> tool_parser, bool want_logprobs,
                     bool message_channels)
    : index_(index),
      stream_(std::move(stream)),
      // Control tokens are not user-visible text (OpenAI never shows them), except the
      // channel markers, which the demultiplexer needs to see and removes.
      decoder_(tokenizer, text::DecodeOptions{.render_special = message_channels}),
      stop_(std::move(stops)),
      tool_parser_(std::move(tool_parser)),
      want_logprobs_(want_logprobs),
      start_(std::chrono::steady_clock::now()) {
  if (message_channels) channels_.emplace();
}

void ChoiceRun::add_text(const std::string& text, ChoiceDelta& delta) {
  if (text.empty()) return;
  if (!tool_parser_) {
    delta.content += text;
    return;
  }
  text::ParsedDelta parsed = tool_parser_->push(text);
  delta.content += parsed.content;
  for (auto& call : parsed.tool_calls) delta.tool_calls.push_back(std::move(call));
}

std::optional<ChoiceDelta> ChoiceRun::poll(std::chrono::milliseconds timeout) {
  if (finished_) return std::nullopt;
  std::optional<StreamEvent> event = stream_->next(timeout);
  if (!event) return std::nullopt;
  ChoiceDelta delta;
  prompt_tokens_ = event->prompt_tokens;
  cached_prompt_tokens_ = event->cached_prompt_tokens;
  const auto now = std::chrono::steady_clock::now();
  if (!event->tokens.empty()) {
    if (ttft_ < 0) {
      ttft_ = std::chrono::duration<double>(now - start_).count();
      for (size_t i = 1; i < event->tokens.size(); ++i) gaps_.push_back(0);
    } else {
      const double gap = std::chrono::duration<double>(now - last_token_).count();
      for (size_t i = 0; i < event->tokens.size(); ++i)
        gaps_.push_back(gap / double(event->tokens.size()));
    }
    last_token_ = now;
  }
  for (const TokenOutput& t : event->tokens) {
    if (stop_.stopped()) break;  // tokens generated after a stop string are dropped
    ++completion_tokens_;
    ++delta.new_tokens;
    if (want_logprobs_) delta.logprobs.push_back({t.token, t.logprob, t.top_logprobs});
    std::string text = decoder_.push(t.token);
    if (channels_) text = channels_->push(text);
    add_text(stop_.push(text), delta);
  }
  const bool stopped_by_string = stop_.stopped();
  if (stopped_by_string && event->finish == FinishReason::kNone) stream_->cancel();
  if (event->finish == FinishReason::kNone && !stopped_by_string) return delta;

  // The end: flush what the decoder, the stop matcher and the tool parser held back.
  finished_ = true;
  if (!stopped_by_string) {
    std::string text = decoder_.flush();
    if (channels_) text = channels_->push(text) + channels_->finish();
    add_text(stop_.push(text), delta);
  }
  add_text(stop_.flush(), delta);
  if (tool_parser_) {
    text::ParsedDelta rest = tool_parser_->finish();
    delta.content += rest.content;
    for (auto& call : rest.tool_calls) delta.tool_calls.push_back(std::move(call));
  }
  if (event->finish == FinishReason::kError) {
    delta.finish_reason = "error";
    delta.error = event->error.empty() ? "generation failed" : event->error;
  } else if (event->finish == FinishReason::kLength && !stopped_by_string) {
    delta.finish_reason = "length";
  } else if (tool_parser_ && tool_parser_->tool_call_count() > 0) {
    delta.finish_reason = "tool_calls";
  } else {
    delta.finish_reason = "stop";
  }
  return delta;
}

std::vector<double> ChoiceRun::take_inter_token_gaps() {
  std::vector<double> out;
  out.swap(gaps_);
  return out;
}

}  // namespace muse::server
