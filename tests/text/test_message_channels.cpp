// Muse Glimmer's channel markup: replies and tool calls pass, reasoning and markup do not,
// however the text is split into pieces.
#include <gtest/gtest.h>

#include <fstream>
#include <random>
#include <sstream>

#include "text/message_channels.h"

namespace muse::text {
namespace {

struct Demuxed {
  std::string visible, reasoning;
};

Demuxed run(const std::string& text, size_t piece) {
  ChannelDemux d;
  Demuxed r;
  for (size_t i = 0; i < text.size(); i += piece) r.visible += d.push(text.substr(i, piece));
  r.visible += d.finish();
  r.reasoning = d.reasoning();
  return r;
}

void expect_all_splits(const std::string& text, const std::string& visible,
                       const std::string& reasoning) {
  for (size_t piece : {size_t(1), size_t(2), size_t(3), size_t(7), text.size()}) {
    const Demuxed r = run(text, piece);
    EXPECT_EQ(r.visible, visible) << "pieces of " << piece;
    EXPECT_EQ(r.reasoning, reasoning) << "pieces of " << piece;
  }
}

TEST(MessageChannels, ReplyToUser) {
  expect_all_splits(" to=user<|message|>Hello there!<|eot|>", "Hello there!", "");
}

TEST(MessageChannels, ReasoningThenReply) {
  expect_all_splits(
      " to=self<|message|>The user greets me.<|eom|><|start|>assistant to=user<|message|>Hi!<|eot|>",
      "Hi!", "The user greets me.");
}

TEST(MessageChannels, ToolCallBodyPassesForTheParser) {
  const std::string call =
      "<atem:function_calls>\n<atem:invoke name=\"get_weather\">\n<atem:parameter "
      "name=\"city\">Paris</atem:parameter>\n</atem:invoke>\n</atem:function_calls>";
  expect_all_splits(" to=self<|message|>Need weather.<|eom|><|start|>assistant to=get_weather<|message|>" +
                        call + "<|eot|>",
                    call, "Need weather.");
}

TEST(MessageChannels, TextWithoutMarkupIsKept) {
  expect_all_splits("just text, no channels", "just text, no channels", "");
  // A "<|" that never becomes a marker is not swallowed.
  expect_all_splits(" to=user<|message|>a <| b", "a <| b", "");
  std::string long_text(400, 'x');
  expect_all_splits(long_text, long_text, "");
}

TEST(MessageChannels, RecognisesGlimmersTemplate) {
  std::ifstream in(std::string(MUSE_SHARED_DIR) + "/templates/muse-glimmer.jinja");
  std::stringstream ss;
  ss << in.rdbuf();
  EXPECT_TRUE(uses_message_channels(ss.str()));
  EXPECT_FALSE(uses_message_channels("{{ '<|im_start|>assistant\\n' }}"));
}

}  // namespace
}  // namespace muse::text
