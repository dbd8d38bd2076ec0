#include "engine/sampler.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "muse/error.h"

namespace muse {
namespace {

constexpr float kNegInf = -std::numeric_limits<float>::infinity();

// A strict total order on candidates: more likely first, the lower id first among equal logits.
// It makes every filter's kept set well defined even with ties.
constexpr auto more_likely = [](const auto& a, const auto& b) {
  return a.logit > b.logit || (a.logit == b.logit && a.id < b.id);
};

// Returns the maximum logit (-inf if all are -inf) after checking that every logit is finite
// or -inf (a banned token); NaN or +inf means a broken model or transform. The common path is
// one branch-free pass; only a failure looks for the offending entry.
float checked_max_logit(std::span<const float> logits, const char* what) {
  constexpr float kInf = std::numeric_limits<float>::infinity();
  bool invalid = false;
  float max_logit = kNegInf;
  for (float logit : logits) {
    invalid |= !(logit < kInf);  // true for NaN and +inf
    max_logit = logit > max_logit ? logit : max_logit;
  }
  if (invalid) {
    for (size_t i = 0; i < logits.size(); ++i) {
      MUSE_CHECK(logits[i] < kInf, what, ": logit of token ", i, " is ", logits[i],
                 "; logits must be finite or -inf");
    }
  }
  return max_logit;
}

// 64 bits of OS entropy for an unseeded sampler (random_device yields 32 bits a call).
uint64_t random_seed() {
  std::random_device device;
  return (static_cast<uint64_t>(device()) << 32) | device();
}

// log(sum(exp(logits))), accumulated in double around the maximum so nothing overflows.
double log_sum_exp(std::span<const float> logits, float max_logit) {
  double sum = 0.0;
  for (float logit : logits) sum += std::exp(static_cast<double>(logit) - max_logit);
  return max_logit + std::log(sum);
}

}  // namespace

void validate_sampling_params(const SamplingParams& p, int32_t vocab_size) {
  MUSE_CHECK(vocab_size > 0, "sampler: vocab_size must be positive, got ", vocab_size);
  MUSE_CHECK(std::isfinite(p.temperature) && p.temperature >= 0.0f,
             "sampler: temperature must be finite and >= 0 (0 = greedy), got ", p.temperature);
  MUSE_CHECK(p.top_k >= 0, "sampler: top_k must be >= 0 (0 = off), got ", p.top_k);
  MUSE_CHECK(p.top_p > 0.0f && p.top_p <= 1.0f, "sampler: top_p must be in (0, 1], got ",
             p.top_p);  // also rejects NaN
  MUSE_CHECK(p.min_p >= 0.0f && p.min_p <= 1.0f, "sampler: min_p must be in [0, 1], got ", p.min_p);
  MUSE_CHECK(std::isfinite(p.repetition_penalty) && p.repetition_penalty > 0.0f,
             "sampler: repetition_penalty must be finite and > 0 (1 = off), got ",
             p.repetition_penalty);
  MUSE_CHECK(std::isfinite(p.presence_penalty), "sampler: presence_penalty must be finite, got ",
             p.presence_penalty);
  MUSE_CHECK(std::isfinite(p.frequency_penalty), "sampler: frequency_penalty must be finite, got ",
             p.frequency_penalty);
  for (const auto& [id, bias] : p.logit_bias) {
    MUSE_CHECK(id >= 0 && id < vocab_size, "sampler: logit_bias token id ", id,
               " is outside the vocabulary [0, ", vocab_size, ")");
    MUSE_CHECK(std::isfinite(bias) || bias == kNegInf, "sampler: logit_bias for token ", id,
               " must be finite or -inf, got ", bias);
  }
}

Sampler::Sampler(SamplingParams params, int32_t vocab_size)
    : params_(std::move(params)), vocab_size_(vocab_size) {
  validate_sampling_params(params_, vocab_size_);
  rng_.seed(params_.seed ? *params_.seed : random_seed());
  const size_t n = static_cast<size_t>(vocab_size_);
  work_logits_.resize(n);
  candidates_.resize(n);
  seen_.assign(n, 0);
  generated_count_.assign(n, 0);
}

void Sampler::check_history(std::span<const int32_t> tokens, const char* what) const {
  for (size_t i = 0; i < tokens.size(); ++i) {
    MUSE_CHECK(tokens[i] >= 0 && tokens[i] < vocab_size_, "sampler: ", what, " token ", i,
               " has id ", tokens[i], ", outside the vocabulary [0, ", vocab_size_, ")");
  }
}

void Sampler::apply_logit_transforms(std::span<float> logits,
                                     std::span<const int32_t> prompt_tokens,
                                     std::span<const int32_t> generated_tokens) {
  MUSE_CHECK(logits.size() == static_cast<size_t>(vocab_size_), "sampler: got ", logits.size(),
             " logits for a vocabulary of ", vocab_size_);
  check_history(prompt_tokens, "prompt");
  check_history(generated_tokens, "generated");

  for (const auto& [id, bias] : params_.logit_bias) logits[id] += bias;

  // Each distinct token is penalised once however often it occurs; seen_ marks the ones done
  // and is cleared again afterwards so the next call starts from all zeros.
  const float rep = params_.repetition_penalty;
  if (rep != 1.0f) {
    for (auto tokens : {prompt_tokens, generated_tokens}) {
      for (int32_t t : tokens) {
        if (seen_[t]) continue;
        seen_[t] = 1;
        logits[t] = logits[t] > 0.0f ? logits[t] / rep : logits[t] * rep;
      }
    }
    for (int32_t t : prompt_tokens) seen_[t] = 0;
    for (int32_t t : generated_tokens) seen_[t] = 0;
  }

  const float presence = params_.presence_penalty;
  const float frequency = params_.frequency_penalty;
  if (presence != 0.0f || frequency != 0.0f) {
    for (int32_t t : generated_tokens) ++generated_count_[t];
    // The first occurrence applies the penalty and zeroes the count, so later ones skip it.
    for (int32_t t : generated_tokens) {
      const int32_t count = generated_count_[t];
      if (count == 0) continue;
      logits[t] -= presence + frequency * static_cast<float>(count);
      generated_count_[t] = 0;
    }
  }
}

int32_t Sampler::sample(std::span<const float> logits, std::span<const int32_t> prompt_tokens,
                        std::span<const int32_t> generated_tokens) {
  MUSE_CHECK(logits.size() == static_cast<size_t>(vocab_size_), "sampler: got ", logits.size(),
             " logits for a vocabulary of ", vocab_size_);
  std::copy(logits.begin(), logits.end(), work_logits_.begin());
  apply_logit_transforms(work_logits_, prompt_tokens, generated_tokens);
  const float max_logit =
      checked_max_logit(work_logits_, "sampler (after logit_bias and penalties)");
  MUSE_CHECK(max_logit != kNegInf, "sampler: every token is banned (all logits are -inf)");
  if (params_.temperature == 0.0f) {
    // The first maximum is the lowest id among ties.
    return static_cast<int32_t>(std::find(work_logits_.begin(), work_logits_.end(), max_logit) -
                                work_logits_.begin());
  }
  return sample_stochastic(max_logit);
}

double Sampler::uniform01() {
  // The top 53 bits of one draw give a double in [0, 1) that is the same on every platform
  // (std::uniform_real_distribution's algorithm is implementation-defined).
  return static_cast<double>(rng_() >> 11) * 0x1.0p-53;
}

int32_t Sampler::sample_stochastic(float max_logit) {
  // Every token that is not banned; written branch-free since bans are rare.
  Candidate* const c = candidates_.data();
  size_t n = 0;
  for (int32_t i = 0; i < vocab_size_; ++i) {
    const float logit = work_logits_[i];
    c[n] = {i, logit, 0.0f};
    n += logit != kNegInf;
  }

  // Top-k needs only the set. For a small k a heap selection (partial_sort) rejects most
  // tokens with one comparison; for a large k, linear-time nth_element wins.
  const size_t top_k = static_cast<size_t>(params_.top_k);
  if (top_k > 0 && top_k < n) {
    if (top_k <= 256) {
      std::partial_sort(c, c + top_k, c + n, more_likely);
    } else {
      std::nth_element(c, c + top_k, c + n, more_likely);
    }
    n = top_k;
  }

  // Weights relative to the max logit lie in [0, 1] and cannot overflow; dividing (rather than
  // multiplying by 1/T) keeps the max at exactly 1 even for a tiny temperature.
  const float temperature = params_.temperature;
  for (size_t i = 0; i < n; ++i) c[i].weight = std::exp((c[i].logit - max_logit) / temperature);

  if (params_.top_p < 1.0f) n = select_nucleus(n);

  if (params_.min_p > 0.0f) {
    // weight = p / p_max, so the test needs no normalisation; the max (weight 1) always stays.
    const float min_weight = params_.min_p;
    size_t kept = 0;
    for (size_t i = 0; i < n; ++i) {
      if (c[i].weight >= min_weight) c[kept++] = c[i];
    }
    n = kept;
  }

  double total = 0.0;
  for (size_t i = 0; i < n; ++i) total += c[i].weight;
  const double u = uniform01() * total;
  double cumulative = 0.0;
  int32_t last_positive = c[0].id;
  for (size_t i = 0; i < n; ++i) {
    if (c[i].weight <= 0.0f) continue;
    cumulative += c[i].weight;
    last_positive = c[i].id;
    if (u < cumulative) return c[i].id;
  }
  return last_positive;  // only reached through rounding at the very top of the range
}

size_t Sampler::select_nucleus(size_t n) {
  Candidate* const c = candidates_.data();
  double total = 0.0;
  for (size_t i = 0; i < n; ++i) total += c[i].weight;
  const double target = static_cast<double>(params_.top_p) * total;

  // Cheap linear pre-filter. Weights grow with logits, so the tokens lighter than
  // (total - target) / n form a tail of the likelihood order whose sum is below total - target:
  // the nucleus already reaches target without any of them. For a peaked distribution this
  // leaves only a handful of tokens for the selection below.
  const float drop_below = static_cast<float>((total - target) / static_cast<double>(n));
  size_t kept = 0;
  for (size_t i = 0; i < n; ++i) {
    c[kept] = c[i];
    kept += c[i].weight >= drop_below;
  }
  n = kept;

  // Weighted quickselect, expected O(n) with no full sort. Invariant: c[0, lo) are the lo most
  // likely candidates with weight sum `before` < target, and the nucleus ends inside (lo, hi].
  // The first split is small because real distributions usually have a small nucleus.
  size_t lo = 0;
  size_t hi = n;
  double before = 0.0;
  size_t split = std::min<size_t>(n, 64);
  constexpr size_t kSortBelow = 64;
  while (hi - lo > kSortBelow) {
    std::nth_element(c + lo, c + split, c + hi, more_likely);
    double head = 0.0;
    for (size_t i = lo; i < split; ++i) head += c[i].weight;
    if (before + head >= target) {
      hi = split;
    } else {
      before += head;
      lo = split;
    }
    split = lo + (hi - lo) / 2;
  }
  std::sort(c + lo, c + hi, more_likely);
  double cumulative = before;
  for (size_t i = lo; i < hi; ++i) {
    cumulative += c[i].weight;
    if (cumulative >= target) return i + 1;
  }
  return hi;  // rounding kept the sum just under target: keep everything still in range
}

float token_logprob(std::span<const float> logits, int32_t id) {
  MUSE_CHECK(id >= 0 && static_cast<size_t>(id) < logits.size(), "token_logprob: token id ", id,
             " is outside [0, ", logits.size(), ")");
  const float max_logit = checked_max_logit(logits, "token_logprob");
  MUSE_CHECK(max_logit != kNegInf, "token_logprob: every logit is -inf");
  return static_cast<float>(logits[id] - log_sum_exp(logits, max_logit));
}

std::vector<std::pair<int32_t, float>> top_logprobs(std::span<const float> logits, int n) {
  MUSE_CHECK(n >= 0, "top_logprobs: n must be >= 0, got ", n);
  MUSE_CHECK(!logits.empty(), "top_logprobs: logits are empty");
  const float max_logit = checked_max_logit(logits, "top_logprobs");
  MUSE_CHECK(max_logit != kNegInf, "top_logprobs: every logit is -inf");
  const double lse = log_sum_exp(logits, max_logit);

  std::vector<int32_t> ids(logits.size());
  for (size_t i = 0; i < ids.size(); ++i) ids[i] = static_cast<int32_t>(i);
  const size_t count = std::min(static_cast<size_t>(n), logits.size());
  std::partial_sort(ids.begin(), ids.begin() + count, ids.end(), [&](int32_t a, int32_t b) {
    return logits[a] > logits[b] || (logits[a] == logits[b] && a < b);
  });

  std::vector<std::pair<int32_t, float>> result;
  result.reserve(count);
  for (size_t i = 0; i < count; ++i) {
    result.emplace_back(ids[i], static_cast<float>(logits[ids[i]] - lse));
  }
  return result;
}

}  // namespace muse
