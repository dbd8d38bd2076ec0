#include "engine/schedule_policy.h"

#include <algorithm>

#include "muse/error.h"

namespace muse {

int64_t common_prefix(std::span<const int32_t> a, std::span<const int32_t> b) {
  const size_t n = std::min(a.size(), b.size());
  size_t i = 0;
  while (i < n && a[i] == b[i]) ++i;
  return static_cast<int64_t>(i);
}

SchedulePolicy::SchedulePolicy(int64_t token_budget) : token_budget_(token_budget) {
  MUSE_CHECK(token_budget > 0, "the token budget per step must be positive, not ", token_budget);
}

std::vector<int64_t> SchedulePolicy::plan_step(std::span<const SequenceLoad> running) const {
  std::vector<int64_t> tokens(running.size(), 0);
  int64_t left = token_budget_;
  for (size_t i = 0; i < running.size(); ++i) {
    if (running[i].prompt_remaining <= 0) {
      tokens[i] = 1;
      --left;
    }
  }
  std::vector<size_t> prefill;
  for (size_t i = 0; i < running.size(); ++i)
    if (running[i].prompt_remaining > 0) prefill.push_back(i);
  std::sort(prefill.begin(), prefill.end(), [&](size_t a, size_t b) {
    if (running[a].arrival != running[b].arrival) return running[a].arrival < running[b].arrival;
    return running[a].id < running[b].id;
  });
  for (size_t i : prefill) {
    if (left <= 0) break;
    tokens[i] = std::min(running[i].prompt_remaining, left);
    left -= tokens[i];
  }
  return tokens;
}

SlotChoice SchedulePolicy::choose_slot(std::span<const int32_t> prompt,
                                       std::span<const SlotView> slots) const {
  SlotChoice choice;
  const int64_t max_reuse = std::max<int64_t>(0, static_cast<int64_t>(prompt.size()) - 1);
  auto reuse_of = [&](const SlotView& s) {
    return std::min(common_prefix(prompt, s.cached), max_reuse);
  };
  // Longest shared prefix among free slots; ties and zero -> least recently used.
  const SlotView* best = nullptr;
  int64_t best_reuse = 0;
  for (const SlotView& s : slots) {
    if (s.busy) continue;
    const int64_t r = reuse_of(s);
    const bool better =
        best == nullptr || r > best_reuse ||
        (r == best_reuse && (s.last_used < best->last_used ||
                             (s.last_used == best->last_used && s.slot < best->slot)));
    if (better) {
      best = &s;
      best_reuse = r;
    }
  }
  if (best == nullptr) return choice;
  choice.slot = best->slot;
  choice.reuse = best_reuse;
  // A longer prefix elsewhere is copied (cheaper than recomputing it).
  for (const SlotView& s : slots) {
    if (s.slot == best->slot) continue;
    const int64_t r = reuse_of(s);
    if (r > choice.reuse) {
      choice.reuse = r;
      choice.copy_from = s.slot;
    }
  }
  return choice;
}

std::vector<size_t> SchedulePolicy::admission_order(std::span<const int> priorities,
                                                     size_t free_slots) {
  std::vector<size_t> order(priorities.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  // Stable: equal priorities keep their arrival order.
  std::stable_sort(order.begin(), order.end(),
                   [&](size_t a, size_t b) { return priorities[a] > priorities[b]; });
  if (order.size() > free_slots) order.resize(free_slots);
  return order;
}

std::vector<SlotChoice> SchedulePolicy::plan_admissions(
    std::span<const std::span<const int32_t>> waiting, std::span<const SlotView> slots) const {
  std::vector<SlotView> view(slots.begin(), slots.end());
  std::vector<SlotChoice> choices;
  for (const auto& prompt : waiting) {
    const SlotChoice c = choose_slot(prompt, view);
    if (c.slot < 0) break;
    for (SlotView& s : view) {
      if (s.slot != c.slot) continue;
      s.busy = true;
      s.cached = prompt.first(static_cast<size_t>(c.reuse));
    }
    choices.push_back(c);
  }
  return choices;
}

}  // namespace muse
