// A constraint on which tokens may come next (structured output, forced tool calls).
//
// The engine calls mask() on every step's logits before sampling, then accept() with the
// token it sampled. Implementations (text/grammar.h) keep the state of what has been
// generated so far. A constraint belongs to one sequence and is used from one thread at
// a time.
#pragma once

#include <cstdint>
#include <span>

namespace muse::text {

class TokenConstraint {
 public:
  virtual ~TokenConstraint() = default;
  // Sets logits[t] = -inf for every token t that may not come next. End-of-generation
  // tokens are allowed exactly when complete() is true. logits has one entry per
  // vocabulary token.
  virtual void mask(std::span<float> logits) const = 0;
  // Advances past `token`. Throws muse::Error if the token is not allowed now (the
  // state is unchanged then).
  virtual void accept(int32_t token) = 0;
  // True when the text so far is a complete match (an end-of-generation token may come).
  virtual bool complete() const = 0;
};

}  // namespace muse::text
