// The engine's scheduling decisions, kept free of threads and model state so that they
// can be tested exactly:
//   - how many tokens each running sequence contributes to the next forward step, and
//   - which free slot (KV cache) each admitted request gets.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

namespace muse {

// A running sequence as the policy sees it.
struct SequenceLoad {
  int32_t id = 0;                // the caller's name for it (the engine uses the slot)
  uint64_t arrival = 0;          // admission order: smaller = admitted earlier
  int64_t prompt_remaining = 0;  // prompt tokens still to compute; 0 = decoding
};

// A sequence slot as the policy sees it.
struct SlotView {
  int32_t slot = 0;
  bool busy = false;                // a request is running in it
  std::span<const int32_t> cached;  // the tokens its KV cache holds, in order
  uint64_t last_used = 0;           // when it was last taken or released: smaller = older
};

// Where an admitted request runs.
struct SlotChoice {
  int32_t slot = -1;       // a free slot
  int64_t reuse = 0;       // leading prompt tokens taken from the cache instead of computed
  int32_t copy_from = -1;  // >= 0: first copy `reuse` cached positions from this slot
};

// Length of the common prefix of two token sequences.
int64_t common_prefix(std::span<const int32_t> a, std::span<const int32_t> b);

class SchedulePolicy {
 public:
  // token_budget: the most tokens of one forward step (EngineOptions::n_batch), > 0.
  explicit SchedulePolicy(int64_t token_budget);

  // Tokens each sequence contributes to the next step (same order as `running`). Every
  // decoding sequence gets 1 token first, even past the budget (decode latency comes
  // first); what is left of the budget goes to prompt chunks, oldest arrival first
  // (ties: lower id), each chunk as long as the prompt's rest and the budget allow.
  // Sequences in prefill that the budget does not reach get 0.
  std::vector<int64_t> plan_step(std::span<const SequenceLoad> running) const;

  // The free slot for a new prompt: the one whose cache shares the longest prefix with
  // it (ties: least recently used, then lower slot), or the least recently used free
  // slot when no free cache shares anything. At most prompt.size() - 1 tokens are reused,
  // so that the last prompt token is always computed (its logits start generation).
  // When another slot (typically a busy one) shares a strictly longer prefix than the
  // chosen slot, that prefix is copied from it (copy_from). slot = -1 when none is free.
  SlotChoice choose_slot(std::span<const int32_t> prompt, std::span<const SlotView> slots) const;

  // Admits waiting prompts first come, first served while free slots last: one choice
  // per admitted prompt, in order (the first choices.size() prompts are admitted). Each
  // choice sees the slots as the earlier choices left them (taken, truncated).
  std::vector<SlotChoice> plan_admissions(std::span<const std::span<const int32_t>> waiting,
                                          std::span<const SlotView> slots) const;

  // Which waiting requests take the `free_slots` free slots, in admission order:
  // highest priority first, first come first served within a priority (`priorities`
  // is in arrival order; the result holds indexes into it, at most free_slots of them).
  static std::vector<size_t> admission_order(std::span<const int> priorities, size_t free_slots);

  int64_t token_budget() const { return token_budget_; }

 private:
  int64_t token_budget_;
};

}  // namespace muse
