#include "text/message_channels.h"

#include <algorithm>
#include <array>

namespace muse::text {

namespace {

constexpr std::string_view kStart = "<|start|>";
constexpr std::string_view kMessage = "<|message|>";
constexpr std::array<std::string_view, 3> kEnds = {"<|eom|>", "<|eot|>", "<|end|>"};
// A header longer than this is not channel markup: pass it on as text.
constexpr size_t kMaxHeader = 256;

// Length of the longest suffix of `s` that is a proper prefix of `marker`.
size_t partial_suffix(std::string_view s, std::string_view marker) {
  for (size_t n = std::min(s.size(), marker.size() - 1); n > 0; --n)
    if (s.substr(s.size() - n) == marker.substr(0, n)) return n;
  return 0;
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\n')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\n')) s.remove_suffix(1);
  return s;
}

}  // namespace

bool uses_message_channels(std::string_view t) {
  return t.find("<|start|>") != std::string_view::npos &&
         t.find("<|message|>") != std::string_view::npos &&
         t.find("assistant to=") != std::string_view::npos;
}

std::string ChannelDemux::push(std::string_view text) {
  pending_.append(text);
  return drain(false);
}

std::string ChannelDemux::finish() {
  std::string out = drain(true);
  if (state_ == State::kBody) {
    (to_self_ ? reasoning_ : out) += pending_;
  } else if (state_ == State::kHeader) {
    out += pending_;  // never became markup
  }
  pending_.clear();
  state_ = State::kHeader;
  return out;
}

std::string ChannelDemux::drain(bool final) {
  std::string out;
  for (;;) {
    if (state_ == State::kHeader) {
      const size_t m = pending_.find(kMessage);
      if (m == std::string::npos) {
        if (pending_.size() > kMaxHeader) {  // not markup after all
          state_ = State::kBody;
          to_self_ = false;
          continue;
        }
        return out;
      }
      std::string_view header = trim(std::string_view(pending_).substr(0, m));
      if (header.substr(0, 9) == "assistant") header = trim(header.substr(9));
      to_self_ = header == "to=self";
      pending_.erase(0, m + kMessage.size());
      state_ = State::kBody;
    } else if (state_ == State::kBody) {
      size_t end = std::string::npos, end_len = 0;
      for (std::string_view e : kEnds) {
        const size_t p = pending_.find(e);
        if (p < end) end = p, end_len = e.size();
      }
      const size_t start = pending_.find(kStart);
      if (start < end) end = start, end_len = 0;  // a new message without an end marker
      if (end == std::string::npos) {
        size_t hold = 0;
        if (!final) {
          for (std::string_view e : kEnds) hold = std::max(hold, partial_suffix(pending_, e));
          hold = std::max(hold, partial_suffix(pending_, kStart));
        }
        const std::string body = pending_.substr(0, pending_.size() - hold);
        (to_self_ ? reasoning_ : out) += body;
        pending_.erase(0, pending_.size() - hold);
        return out;
      }
      (to_self_ ? reasoning_ : out) += pending_.substr(0, end);
      pending_.erase(0, end + end_len);
      state_ = State::kBetween;
    } else {  // kBetween: skip to the next <|start|>
      const size_t s = pending_.find(kStart);
      if (s == std::string::npos) {
        pending_.erase(0, pending_.size() - partial_suffix(pending_, kStart));
        return out;
      }
      pending_.erase(0, s + kStart.size());
      state_ = State::kHeader;
    }
  }
}

}  // namespace muse::text
