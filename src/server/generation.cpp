#include "server/generation.h"

#include <algorithm>
#include <random>

#include "server/api_error.h"
#include "server/multimodal_prompt.h"

namespace muse::server {

using nlohmann::ordered_json;

namespace {

std::string random_id(const char* prefix) {
  static constexpr char kAlnum[] = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";
  thread_local std::mt19937_64 rng{std::random_device{}()};
  std::string id = prefix;
  for (int i = 0; i < 24; ++i) id += kAlnum[rng() % (sizeof(kAlnum) - 1)];
  return id;
}

int64_t unix_now() {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// A text of n bytes has at least n / max_piece_bytes tokens: a prompt that cannot fit is
// refused before spending seconds tokenizing megabytes.
void check_prompt_bytes(const ServedModel& model, size_t bytes, const char* param) {
  const int64_t n_ctx = model.engine->options().n_ctx;
  const auto at_least = int64_t(bytes / std::max<size_t>(model.max_piece_bytes, 1));
  if (at_least >= n_ctx)
    throw invalid_request("This model's maximum context length is " + std::to_string(n_ctx) +
                              " tokens. However, your prompt has at least " +
                              std::to_string(at_least) + " tokens.",
                          param, "context_length_exceeded");
}

std::vector<int32_t> tokenize_prompt(const ServedModel& model, const std::string& text) {
  check_prompt_bytes(model, text.size(), "messages");
  const text::Tokenizer& tok = *model.tokenizer;
  std::vector<int32_t> ids;
  try {
    ids = tok.encode(text, /*add_special=*/false, /*parse_special=*/true);
  } catch (const Error& e) {
    throw invalid_request(std::string("cannot tokenize the prompt: ") + e.what());
  }
  // Templates usually write BOS themselves; add it only when they did not.
  if (tok.add_bos() && tok.bos() != text::kNoToken && (ids.empty() || ids.front() != tok.bos()))
    ids.insert(ids.begin(), tok.bos());
  return ids;
}

// Checks the prompt against the context and picks max_tokens.
int64_t checked_max_tokens(const ServedModel& model, size_t prompt_len,
                           const GenerationParams& gen) {
  const int64_t n_ctx = model.engine->options().n_ctx;
  const auto n = int64_t(prompt_len);
  if (n == 0) throw invalid_request("the prompt is empty", "messages");
  if (n >= n_ctx)
    throw invalid_request("This model's maximum context length is " + std::to_string(n_ctx) +
                              " tokens. However, your prompt has " + std::to_string(n) + " tokens.",
                          "messages", "context_length_exceeded");
  if (gen.max_tokens && n + *gen.max_tokens > n_ctx)
    throw invalid_request(
        "This model's maximum context length is " + std::to_string(n_ctx) +
            " tokens. However, you requested " + std::to_string(n + *gen.max_tokens) + " tokens (" +
            std::to_string(n) + " in the messages, " + std::to_string(*gen.max_tokens) +
            " in the completion). Please reduce the length of the messages "
            "or completion.",
        "max_tokens", "context_length_exceeded");
  return gen.max_tokens ? *gen.max_tokens : n_ctx - n;
}

void check_prompt_ids(const ServedModel& model, const std::vector<int32_t>& ids) {
  const auto n_vocab = int64_t(model.tokenizer->vocab_size());
  for (int32_t id : ids)
    if (id < 0 || id >= n_vocab)
      throw invalid_request("token id " + std::to_string(id) + " is outside the vocabulary (" +
                                std::to_string(n_vocab) + " tokens)",
                            "prompt");
}

std::shared_ptr<const text::Grammar> parse_grammar(const std::string& grammar_text,
                                                   const char* param) {
  try {
    return text::Grammar::parse(grammar_text);
  } catch (const Error& e) {
    throw invalid_request(std::string("cannot build the output grammar: ") + e.what(), param);
  }
}

// The grammar for the request's constraints (nullptr when unconstrained).
std::shared_ptr<const text::Grammar> chat_grammar(const ServedModel& model,
                                                  const ChatRequest& req) {
  try {
    if (req.tool_choice.kind == ToolChoiceKind::kRequired ||
        req.tool_choice.kind == ToolChoiceKind::kFunction) {
      const std::string name =
          req.tool_choice.kind == ToolChoiceKind::kFunction ? req.tool_choice.function : "";
      return parse_grammar(text::forced_tool_call_grammar(model.tool_format, req.tools, name,
                                                          req.parallel_tool_calls),
                           "tools");
    }
    if (req.response_format.kind == ResponseFormatKind::kJsonObject)
      return parse_grammar(text::json_object_grammar(), "response_format");
    if (req.response_format.kind == ResponseFormatKind::kJsonSchema)
      return parse_grammar(text::json_schema_to_grammar(req.response_format.schema),
                           "response_format");
  } catch (const ApiError&) {
    throw;
  } catch (const Error& e) {
    throw invalid_request(e.what(), req.response_format.kind != ResponseFormatKind::kText
                                        ? "response_format"
                                        : "tools");
  }
  return nullptr;
}

GenerationRequest engine_request(const std::vector<int32_t>& prompt, const GenerationParams& gen,
                                 int64_t max_tokens, int choice) {
  GenerationRequest r;
  r.prompt = prompt;
  r.sampling = gen.sampling;
  // Each choice draws its own tokens; with a seed they stay reproducible.
  if (r.sampling.seed) *r.sampling.seed += uint64_t(choice);
  r.max_tokens = max_tokens;
  r.top_logprobs = gen.logprobs ? gen.top_logprobs : -1;
  r.ignore_eos = gen.ignore_eos;
  r.priority = gen.priority;
  return r;
}

std::shared_ptr<GenerationStream> submit(ServedModel& model, GenerationRequest r) {
  try {
    return model.engine->submit(std::move(r));
  } catch (const QueueFullError& e) {
    throw ApiError(503, "server_error", "the server is at capacity; retry later", "",
                   "server_overloaded");
  } catch (const ApiError&) {
    throw;
  } catch (const Error& e) {
    throw invalid_request(e.what());
  }
}

std::unique_ptr<StartedRequest> new_request(ServedModel& model, const std::string& model_name,
                                            const char* id_prefix) {
  auto started = std::make_unique<StartedRequest>();
  started->model = &model;
  started->model_name = model_name;
  started->id = random_id(id_prefix);
  started->created = unix_now();
  started->start = std::chrono::steady_clock::now();
  return started;
}

}  // namespace

StartedRequest::~StartedRequest() {
  for (auto& c : choices)
    if (!c->finished()) c->cancel();
}

int64_t StartedRequest::prompt_tokens() const {
  int64_t n = 0;
  for (int64_t p : prompt_tokens_per_prompt) n += p;
  return n;
}

int64_t StartedRequest::cached_prompt_tokens() const {
  // Choices come in groups of equal size, one group per prompt; each prompt counts the
  // largest reuse among its choices.
  const size_t prompts = std::max<size_t>(prompt_tokens_per_prompt.size(), 1);
  const size_t per_prompt = choices.size() / prompts;
  int64_t n = 0;
  for (size_t p = 0; p < prompts; ++p) {
    int64_t best = 0;
    for (size_t i = p * per_prompt; i < (p + 1) * per_prompt; ++i)
      best = std::max(best, choices[i]->cached_prompt_tokens());
    n += best;
  }
  return n;
}

int64_t StartedRequest::completion_tokens() const {
  int64_t n = 0;
  for (const auto& c : choices) n += c->completion_tokens();
  return n;
}

std::string render_chat_messages(const ServedModel& model, const ChatRequest& req,
                                 const ordered_json& messages) {
  const bool use_tools = !req.tools.is_null() && req.tool_choice.kind != ToolChoiceKind::kNone;
  const ordered_json tools = use_tools ? req.tools : ordered_json();
  text::ChatInputs in;
  try {
    in.messages = text::prepare_messages(messages, tools, model.tool_format);
  } catch (const Error& e) {
    throw invalid_request(e.what(), "messages");
  }
  if (model.tool_format != text::ToolCallFormat::kGeneric) in.tools = tools;
  in.add_generation_prompt = true;
  const text::Tokenizer& tok = *model.tokenizer;
  if (tok.bos() != text::kNoToken) in.bos_token = tok.token_text(tok.bos());
  if (tok.eos() != text::kNoToken) in.eos_token = tok.token_text(tok.eos());
  try {
    return model.chat_template->render(in);
  } catch (const Error& e) {
    throw invalid_request(std::string("the chat template rejected the messages: ") + e.what(),
                          "messages");
  }
}

std::string render_chat_prompt(const ServedModel& model, const ChatRequest& req) {
  return render_chat_messages(model, req, req.messages);
}

MultimodalPrompt chat_prompt(ServedModel& model, const ChatRequest& req) {
  if (count_media_parts(req.messages) == 0) {
    MultimodalPrompt p;
    p.tokens = tokenize_prompt(model, render_chat_prompt(model, req));
    return p;
  }
  if (!model.media)
    throw invalid_request("this model accepts text only; image and audio content is not supported",
                          "messages", "unsupported_content_type");
  const std::vector<MediaPart> parts =
      collect_media_parts(req.messages, model.media_limits, model.fetch_policy);
  std::vector<EncodedMedia> encoded;
  for (size_t i = 0; i < parts.size(); ++i)
    encoded.push_back(model.media->encode(parts[i], "messages"));
  MultimodalPrompt p = build_multimodal_prompt(
      req.messages, encoded, *model.tokenizer, model.model->config().media_tokens,
      [&](const ordered_json& messages) {
        const std::string text = render_chat_messages(model, req, messages);
        check_prompt_bytes(model, text.size(), "messages");
        return text;
      });
  return p;
}

std::unique_ptr<StartedRequest> start_chat(ServedModel& model, const std::string& model_name,
                                           const ChatRequest& req) {
  auto started = new_request(model, model_name, "chatcmpl-");
  MultimodalPrompt mm = chat_prompt(model, req);
  const std::vector<int32_t>& prompt = mm.tokens;
  const int64_t max_tokens = checked_max_tokens(model, prompt.size(), req.gen);
  started->prompt_tokens_per_prompt.push_back(int64_t(prompt.size()));
  const auto grammar = chat_grammar(model, req);
  const bool parse_tools = !req.tools.is_null() && req.tool_choice.kind != ToolChoiceKind::kNone;
  for (int i = 0; i < req.gen.n; ++i) {
    GenerationRequest r = engine_request(prompt, req.gen, max_tokens, i);
    r.media = mm.media;
    if (grammar)
      r.constraint = std::make_shared<text::GrammarMatcher>(grammar, model.constraint_vocab,
                                                            model.engine->options().eog_ids);
    std::optional<text::ToolCallParser> parser;
    if (parse_tools) parser.emplace(model.tool_format, req.tools);
    started->choices.push_back(
        std::make_unique<ChoiceRun>(i, submit(model, std::move(r)), *model.tokenizer, req.gen.stop,
                                    std::move(parser), req.gen.logprobs, model.message_channels));
  }
  return started;
}

std::unique_ptr<StartedRequest> start_completion(ServedModel& model, const std::string& model_name,
                                                 const CompletionRequest& req) {
  auto started = new_request(model, model_name, "cmpl-");
  int index = 0;
  for (const CompletionPrompt& p : req.prompts) {
    std::vector<int32_t> prompt;
    if (p.is_tokens) {
      prompt = p.tokens;
      check_prompt_ids(model, prompt);
    } else {
      try {
        check_prompt_bytes(model, p.text.size(), "prompt");
        prompt = model.tokenizer->encode(p.text, /*add_special=*/true, /*parse_special=*/true);
      } catch (const Error& e) {
        throw invalid_request(std::string("cannot tokenize the prompt: ") + e.what(), "prompt");
      }
    }
    const int64_t max_tokens = checked_max_tokens(model, prompt.size(), req.gen);
    started->prompt_tokens_per_prompt.push_back(int64_t(prompt.size()));
    const std::string echo = req.echo ? model.tokenizer->decode(prompt) : "";
    for (int i = 0; i < req.gen.n; ++i, ++index) {
      started->choices.push_back(std::make_unique<ChoiceRun>(
          index, submit(model, engine_request(prompt, req.gen, max_tokens, index)),
          *model.tokenizer, req.gen.stop, std::nullopt, req.gen.logprobs));
      started->echo_text.push_back(echo);
    }
  }
  return started;
}

bool drive(StartedRequest& request, const std::function<bool(ChoiceRun&, ChoiceDelta&)>& on_delta) {
  using std::chrono::milliseconds;
  auto abandon = [&] {
    for (auto& c : request.choices) c->cancel();
    return false;
  };
  for (;;) {
    bool progressed = false;
    ChoiceRun* first_running = nullptr;
    for (auto& choice : request.choices) {
      if (choice->finished()) continue;
      if (!first_running) first_running = choice.get();
      // With one choice, block on it; with several, look at each without waiting.
      const milliseconds wait(request.choices.size() == 1 ? 100 : 0);
      std::optional<ChoiceDelta> delta = choice->poll(wait);
      if (!delta) continue;
      progressed = true;
      if (!delta->empty() && !on_delta(*choice, *delta)) return abandon();
    }
    if (!first_running) return true;
    if (progressed) continue;
    // Nothing new anywhere: let the caller check the client (an empty delta), then wait
    // on the first running choice briefly instead of spinning.
    ChoiceDelta nothing;
    if (!on_delta(*first_running, nothing)) return abandon();
    if (std::optional<ChoiceDelta> d = first_running->poll(milliseconds(20)))
      if (!d->empty() && !on_delta(*first_running, *d)) return abandon();
  }
}

}  // namespace muse::server
