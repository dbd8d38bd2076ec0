#include "server/openai_response.h"

namespace muse::server {

using nlohmann::ordered_json;

namespace {

ordered_json byte_list(const std::string& s) {
  ordered_json bytes = ordered_json::array();
  for (unsigned char c : s) bytes.push_back(int(c));
  return bytes;
}

ordered_json chat_logprob_entry(const text::Tokenizer& tok, const LogprobEntry& e) {
  auto one = [&](int32_t id, float lp) {
    const std::string& piece = tok.token_to_piece(id);
    ordered_json j;
    j["token"] = piece;
    j["logprob"] = lp;
    j["bytes"] = byte_list(piece);
    return j;
  };
  ordered_json j = one(e.token, e.logprob);
  j["top_logprobs"] = ordered_json::array();
  for (const auto& [id, lp] : e.top) j["top_logprobs"].push_back(one(id, lp));
  return j;
}

ordered_json chat_logprobs(const text::Tokenizer& tok, const std::vector<LogprobEntry>& entries) {
  ordered_json content = ordered_json::array();
  for (const auto& e : entries) content.push_back(chat_logprob_entry(tok, e));
  return {{"content", content}, {"refusal", nullptr}};
}

// The legacy completions logprobs object; text_offset counts from `offset`.
ordered_json text_logprobs(const text::Tokenizer& tok, const std::vector<LogprobEntry>& entries,
                           size_t offset) {
  ordered_json tokens = ordered_json::array(), lps = ordered_json::array(),
               tops = ordered_json::array(), offsets = ordered_json::array();
  for (const auto& e : entries) {
    const std::string& piece = tok.token_to_piece(e.token);
    tokens.push_back(piece);
    lps.push_back(e.logprob);
    ordered_json top = ordered_json::object();
    for (const auto& [id, lp] : e.top) top[tok.token_to_piece(id)] = lp;
    tops.push_back(top);
    offsets.push_back(offset);
    offset += piece.size();
  }
  return {{"tokens", tokens},
          {"token_logprobs", lps},
          {"top_logprobs", tops},
          {"text_offset", offsets}};
}

ordered_json tool_call_delta_json(const text::ToolCallDelta& d) {
  ordered_json j;
  j["index"] = d.index;
  if (!d.id.empty()) {
    j["id"] = d.id;
    j["type"] = "function";
    j["function"] = {{"name", d.name}, {"arguments", d.arguments}};
  } else {
    j["function"] = {{"arguments", d.arguments}};
  }
  return j;
}

ordered_json chunk_base(const StartedRequest& r, const char* object) {
  ordered_json j;
  j["id"] = r.id;
  j["object"] = object;
  j["created"] = r.created;
  j["model"] = r.model_name;
  j["system_fingerprint"] = nullptr;
  return j;
}

ordered_json finish_json(const std::string& reason) {
  return reason.empty() ? ordered_json() : ordered_json(reason);
}

}  // namespace

void ChoiceResult::add(const ChoiceDelta& delta) {
  content += delta.content;
  for (const auto& d : delta.tool_calls) {
    if (!d.id.empty() || tool_calls.empty() || tool_calls.back().index != d.index) {
      tool_calls.push_back(d);
    } else {
      tool_calls.back().arguments += d.arguments;
    }
  }
  logprobs.insert(logprobs.end(), delta.logprobs.begin(), delta.logprobs.end());
  if (!delta.finish_reason.empty()) finish_reason = delta.finish_reason;
  if (!delta.error.empty()) error = delta.error;
}

ordered_json usage_json(const StartedRequest& r) {
  const int64_t prompt = r.prompt_tokens(), completion = r.completion_tokens();
  ordered_json u;
  u["prompt_tokens"] = prompt;
  u["completion_tokens"] = completion;
  u["total_tokens"] = prompt + completion;
  u["prompt_tokens_details"] = {{"cached_tokens", r.cached_prompt_tokens()}};
  return u;
}

ordered_json chat_completion_json(const StartedRequest& r, const std::vector<ChoiceResult>& results,
                                  bool logprobs) {
  ordered_json j = chunk_base(r, "chat.completion");
  j["choices"] = ordered_json::array();
  for (size_t i = 0; i < results.size(); ++i) {
    const ChoiceResult& c = results[i];
    ordered_json msg;
    msg["role"] = "assistant";
    msg["content"] =
        c.content.empty() && !c.tool_calls.empty() ? ordered_json() : ordered_json(c.content);
    msg["refusal"] = nullptr;
    if (!c.tool_calls.empty()) {
      msg["tool_calls"] = ordered_json::array();
      for (const auto& t : c.tool_calls)
        msg["tool_calls"].push_back({{"id", t.id},
                                     {"type", "function"},
                                     {"function", {{"name", t.name}, {"arguments", t.arguments}}}});
    }
    ordered_json choice;
    choice["index"] = int(i);
    choice["message"] = msg;
    choice["logprobs"] = logprobs ? chat_logprobs(*r.model->tokenizer, c.logprobs) : ordered_json();
    choice["finish_reason"] = c.finish_reason;
    j["choices"].push_back(choice);
  }
  j["usage"] = usage_json(r);
  return j;
}

ordered_json text_completion_json(const StartedRequest& r, const std::vector<ChoiceResult>& results,
                                  bool logprobs) {
  ordered_json j = chunk_base(r, "text_completion");
  j["choices"] = ordered_json::array();
  for (size_t i = 0; i < results.size(); ++i) {
    const std::string& echo = r.echo_text[i];
    ordered_json choice;
    choice["index"] = int(i);
    choice["text"] = echo + results[i].content;
    choice["logprobs"] = logprobs
                             ? text_logprobs(*r.model->tokenizer, results[i].logprobs, echo.size())
                             : ordered_json();
    choice["finish_reason"] = results[i].finish_reason;
    j["choices"].push_back(choice);
  }
  j["usage"] = usage_json(r);
  return j;
}

ordered_json chat_role_chunk(const StartedRequest& r, int index, bool include_usage) {
  ordered_json j = chunk_base(r, "chat.completion.chunk");
  ordered_json choice;
  choice["index"] = index;
  choice["delta"] = {{"role", "assistant"}, {"content", ""}, {"refusal", nullptr}};
  choice["logprobs"] = nullptr;
  choice["finish_reason"] = nullptr;
  j["choices"] = ordered_json::array({choice});
  if (include_usage) j["usage"] = nullptr;
  return j;
}

ordered_json chat_delta_chunk(const StartedRequest& r, int index, const ChoiceDelta& d,
                              bool logprobs, bool include_usage) {
  ordered_json j = chunk_base(r, "chat.completion.chunk");
  ordered_json delta = ordered_json::object();
  if (!d.content.empty()) delta["content"] = d.content;
  if (!d.tool_calls.empty()) {
    delta["tool_calls"] = ordered_json::array();
    for (const auto& t : d.tool_calls) delta["tool_calls"].push_back(tool_call_delta_json(t));
  }
  ordered_json choice;
  choice["index"] = index;
  choice["delta"] = delta;
  choice["logprobs"] = logprobs && !d.logprobs.empty()
                           ? chat_logprobs(*r.model->tokenizer, d.logprobs)
                           : ordered_json();
  choice["finish_reason"] = finish_json(d.finish_reason);
  j["choices"] = ordered_json::array({choice});
  if (include_usage) j["usage"] = nullptr;
  return j;
}

ordered_json text_delta_chunk(const StartedRequest& r, int index, const ChoiceDelta& d,
                              bool logprobs, bool include_usage) {
  ordered_json j = chunk_base(r, "text_completion");
  ordered_json choice;
  choice["index"] = index;
  choice["text"] = d.content;
  choice["logprobs"] = logprobs && !d.logprobs.empty()
                           ? text_logprobs(*r.model->tokenizer, d.logprobs, 0)
                           : ordered_json();
  choice["finish_reason"] = finish_json(d.finish_reason);
  j["choices"] = ordered_json::array({choice});
  if (include_usage) j["usage"] = nullptr;
  return j;
}

ordered_json usage_chunk(const StartedRequest& r, const char* object) {
  ordered_json j = chunk_base(r, object);
  j["choices"] = ordered_json::array();
  j["usage"] = usage_json(r);
  return j;
}

}  // namespace muse::server
