// Token sampling: turns one step's logits into the next token id.
//
// A Sampler applies, in this order:
//   1. logit_bias          logit[t] += bias[t]
//   2. repetition_penalty  for every distinct t in prompt + generated (HF/CTRL semantics):
//                          logit[t] = logit[t] > 0 ? logit[t] / r : logit[t] * r
//   3. presence/frequency  for every distinct t in the *generated* tokens only (OpenAI semantics):
//                          logit[t] -= presence * (count[t] > 0) + frequency * count[t]
//   4. temperature         greedy argmax when temperature == 0, else p ~ softmax(logit / T)
//   5. top_k               keep the k most likely tokens
//   6. top_p               keep the smallest most-likely-first prefix whose probability
//                          (renormalised over the survivors of step 5) reaches top_p
//   7. min_p               drop tokens with p < min_p * p_max
//   8. renormalise what is left and draw one token with the Sampler's seeded RNG.
// Whenever tokens rank equal (same logit), the lower id ranks first, so greedy and top_k = 1
// pick the lowest id among tied maxima.
//
// Logits equal to -inf (from the model or from a -inf logit_bias) mark banned tokens: they are
// never returned. Logits that are NaN or +inf are rejected with muse::Error, as is a step where
// every token is banned.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <random>
#include <span>
#include <utility>
#include <vector>

namespace muse {

struct SamplingParams {
  // Softmax temperature. 0 means greedy decoding (argmax, ties -> lowest id) and disables
  // top_k/top_p/min_p and the RNG. Must be finite and >= 0.
  float temperature = 1.0f;
  // Keep only the top_k most likely tokens. 0 disables; must be >= 0.
  int top_k = 0;
  // Nucleus sampling: keep the smallest set of most likely tokens whose cumulative probability
  // is >= top_p (always at least one token). Must be in (0, 1]; 1 disables.
  float top_p = 1.0f;
  // Drop tokens whose probability is below min_p times the most likely token's probability.
  // Must be in [0, 1]; 0 disables.
  float min_p = 0.0f;
  // Multiplicative penalty on every token that appears anywhere in prompt + generated tokens:
  // positive logits are divided by it, negative ones multiplied. Must be finite and > 0;
  // 1 disables, > 1 discourages repeats.
  float repetition_penalty = 1.0f;
  // Subtracted once from the logit of every token that occurs in the generated tokens.
  // Any finite value (OpenAI accepts [-2, 2]); 0 disables.
  float presence_penalty = 0.0f;
  // Subtracted count times from the logit of a token generated count times. Any finite value;
  // 0 disables.
  float frequency_penalty = 0.0f;
  // Added to the logit of the given token ids before anything else. Ids must be in
  // [0, vocab_size); values must be finite or -inf (-inf bans the token).
  std::map<int32_t, float> logit_bias;
  // RNG seed. The same seed, params and inputs give the same sequence of tokens; without a seed
  // the RNG is seeded from std::random_device.
  std::optional<uint64_t> seed;
};

// Throws muse::Error naming the first invalid field of params (see the field comments).
void validate_sampling_params(const SamplingParams& params, int32_t vocab_size);

// Samples tokens for one sequence. Holds the RNG state and scratch buffers sized to the
// vocabulary (allocated once in the constructor), so it is cheap to call per token but must
// not be shared between threads.
class Sampler {
 public:
  // Throws muse::Error if params are invalid or vocab_size <= 0.
  Sampler(SamplingParams params, int32_t vocab_size);

  // Returns the next token id. logits has vocab_size entries. prompt_tokens and
  // generated_tokens are the sequence so far (repetition_penalty looks at both, presence and
  // frequency penalties only at generated_tokens); for one contiguous history vector use
  // std::span(history).first(n_prompt) and .subspan(n_prompt). Throws muse::Error on a size
  // mismatch, an out-of-range history id, a NaN/+inf logit or when every token is banned.
  int32_t sample(std::span<const float> logits, std::span<const int32_t> prompt_tokens = {},
                 std::span<const int32_t> generated_tokens = {});

  // Applies steps 1-3 (logit_bias, repetition, presence and frequency penalties) to logits in
  // place; exposed so callers and tests can see exactly what sample() draws from (before
  // temperature). Same argument checks as sample().
  void apply_logit_transforms(std::span<float> logits, std::span<const int32_t> prompt_tokens,
                              std::span<const int32_t> generated_tokens);

  const SamplingParams& params() const { return params_; }
  int32_t vocab_size() const { return vocab_size_; }

 private:
  struct Candidate {
    int32_t id;
    float logit;
    float weight;  // exp((logit - max_logit) / T): the unnormalised probability, in [0, 1]
  };

  // Draws from work_logits_ (whose maximum, not -inf, is max_logit) with temperature and filters.
  int32_t sample_stochastic(float max_logit);
  // Reorders candidates_[0, n) so that the top-p nucleus comes first; returns its size.
  size_t select_nucleus(size_t n);
  void check_history(std::span<const int32_t> tokens, const char* what) const;
  double uniform01();

  SamplingParams params_;
  int32_t vocab_size_;
  std::mt19937_64 rng_;
  std::vector<float> work_logits_;        // transformed copy of the current logits
  std::vector<Candidate> candidates_;     // tokens still in play
  std::vector<uint8_t> seen_;             // repetition-penalty marks, all zero between calls
  std::vector<int32_t> generated_count_;  // frequency counts, all zero between calls
};

// log softmax(logits)[id], computed stably (log-sum-exp around the max). Throws muse::Error
// if id is out of range, a logit is NaN or +inf, or every logit is -inf.
float token_logprob(std::span<const float> logits, int32_t id);

// The n most likely tokens with their log-probabilities, most likely first (ties -> lower id);
// n is clamped to logits.size(). Same errors as token_logprob, plus n < 0.
std::vector<std::pair<int32_t, float>> top_logprobs(std::span<const float> logits, int n);

}  // namespace muse
