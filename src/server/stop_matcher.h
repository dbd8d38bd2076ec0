// Stop sequences over streamed text: text is passed on as soon as it cannot be the start
// of a stop string; when a stop string appears, the text before it is the last output
// (the stop string itself is not returned, as in OpenAI's API).
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace muse::server {

class StopMatcher {
 public:
  explicit StopMatcher(std::vector<std::string> stops) : stops_(std::move(stops)) {}
  // Adds generated text; returns the text that is now safe to emit. After a stop string
  // was found, stopped() is true and further input is ignored.
  std::string push(std::string_view text);
  // End of generation: the held-back text (a partial stop string that never completed).
  std::string flush();
  bool stopped() const { return stopped_; }

 private:
  std::vector<std::string> stops_;
  std::string pending_;
  bool stopped_ = false;
};

}  // namespace muse::server
