// Muse Glimmer's message channels. An assistant turn is a series of messages
//   <|start|>assistant to=RECIPIENT<|message|>BODY<|eom|>   (more messages follow)
//   <|start|>assistant to=RECIPIENT<|message|>BODY<|eot|>   (the turn ends)
// where RECIPIENT is `user` (the reply), `self` (reasoning) or a function name (the body is
// an ATEM tool call); see ../shared/templates/muse-glimmer.jinja. The generation prompt
// ends with "<|start|>assistant", so the generated text starts at the recipient.
//
// ChannelDemux reads the generated text (decoded with special tokens rendered) and passes
// on what the API shows: reply bodies and tool-call bodies (for the tool-call parser), in
// order, with the channel markup removed; reasoning is kept apart. Text that does not
// follow the markup is passed on unchanged rather than lost.
#pragma once

#include <string>
#include <string_view>

namespace muse::text {

// True for chat templates that use this channel markup (Muse Glimmer's).
bool uses_message_channels(std::string_view chat_template);

// The end-of-message token that does not end generation in this markup (the turn goes
// on after it); servers drop it from the end-of-generation set.
inline constexpr std::string_view kEndOfMessageToken = "<|eom|>";

class ChannelDemux {
 public:
  // Adds generated text; returns the visible text now complete.
  std::string push(std::string_view text);
  // End of generation: whatever was held back.
  std::string finish();
  const std::string& reasoning() const { return reasoning_; }

 private:
  enum class State { kHeader, kBody, kBetween };
  std::string drain(bool final);

  State state_ = State::kHeader;
  bool to_self_ = false;
  std::string pending_;
  std::string reasoning_;
};

}  // namespace muse::text
