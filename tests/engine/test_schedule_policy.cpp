// The engine's scheduling decisions: token budget per step and slot choice.
#include <gtest/gtest.h>

#include "engine/schedule_policy.h"
#include "muse/error.h"

namespace muse {
namespace {

using Tokens = std::vector<int32_t>;

TEST(CommonPrefix, Lengths) {
  EXPECT_EQ(common_prefix(Tokens{1, 2, 3}, Tokens{1, 2, 4}), 2);
  EXPECT_EQ(common_prefix(Tokens{1, 2}, Tokens{1, 2, 3}), 2);
  EXPECT_EQ(common_prefix(Tokens{}, Tokens{1}), 0);
  EXPECT_EQ(common_prefix(Tokens{5}, Tokens{1}), 0);
}

TEST(SchedulePolicy, RejectsNonPositiveBudget) {
  EXPECT_THROW(SchedulePolicy(0), Error);
  EXPECT_THROW(SchedulePolicy(-3), Error);
}

TEST(PlanStep, DecodersFirstThenPrefillOldestFirst) {
  SchedulePolicy policy(10);
  // id, arrival, prompt_remaining
  const std::vector<SequenceLoad> running = {
      {0, 7, 6},   // prefill, arrived after id 2
      {1, 3, 0},   // decoding
      {2, 5, 20},  // prefill, oldest of the prefills
      {3, 9, 0},   // decoding
      {4, 8, 4},   // prefill, youngest
  };
  // 2 decode tokens; 8 left: id 2 (oldest) takes all 8, nothing for ids 0 and 4.
  EXPECT_EQ(policy.plan_step(running), (std::vector<int64_t>{0, 1, 8, 1, 0}));
}

TEST(PlanStep, BudgetSpreadsOverSeveralPrefills) {
  SchedulePolicy policy(16);
  const std::vector<SequenceLoad> running = {{0, 2, 5}, {1, 1, 3}, {2, 3, 100}, {3, 4, 0}};
  // 1 decode; 15 left: id 1 (arrival 1) 3, id 0 (arrival 2) 5, id 2 the remaining 7.
  EXPECT_EQ(policy.plan_step(running), (std::vector<int64_t>{5, 3, 7, 1}));
}

TEST(PlanStep, EqualArrivalsGoByIdAndDecodersMayExceedBudget) {
  SchedulePolicy tie(4);
  EXPECT_EQ(tie.plan_step(std::vector<SequenceLoad>{{5, 1, 10}, {2, 1, 10}}),
            (std::vector<int64_t>{0, 4}));
  SchedulePolicy small(2);
  // Three decoders each still get their token; no prefill is possible.
  EXPECT_EQ(small.plan_step(std::vector<SequenceLoad>{{0, 1, 0}, {1, 2, 3}, {2, 3, 0}, {3, 4, 0}}),
            (std::vector<int64_t>{1, 0, 1, 1}));
  EXPECT_TRUE(small.plan_step({}).empty());
}

TEST(ChooseSlot, LongestPrefixAmongFreeSlots) {
  SchedulePolicy policy(8);
  const Tokens a = {1, 2, 3, 4, 5}, b = {1, 2, 9}, c = {7, 7};
  const std::vector<SlotView> slots = {{0, false, a, 1}, {1, false, b, 0}, {2, false, c, 2}};
  const Tokens prompt = {1, 2, 3, 8, 8, 8};
  const SlotChoice choice = policy.choose_slot(prompt, slots);
  EXPECT_EQ(choice.slot, 0);
  EXPECT_EQ(choice.reuse, 3);
  EXPECT_EQ(choice.copy_from, -1);
}

TEST(ChooseSlot, LeastRecentlyUsedWhenNothingShared) {
  SchedulePolicy policy(8);
  const Tokens a = {1, 2}, b = {3, 4}, c = {5};
  const std::vector<SlotView> slots = {
      {0, false, a, 4}, {1, true, {}, 0}, {2, false, b, 2}, {3, false, c, 3}};
  const SlotChoice choice = policy.choose_slot(Tokens{9, 9, 9}, slots);
  EXPECT_EQ(choice.slot, 2);  // slot 1 is older but busy
  EXPECT_EQ(choice.reuse, 0);
  EXPECT_EQ(choice.copy_from, -1);
  // Equal last_used: the lower slot.
  const std::vector<SlotView> fresh = {{3, false, {}, 0}, {1, false, {}, 0}};
  EXPECT_EQ(policy.choose_slot(Tokens{1}, fresh).slot, 1);
}

TEST(ChooseSlot, EqualPrefixesGoToTheLeastRecentlyUsed) {
  SchedulePolicy policy(8);
  const Tokens a = {1, 2, 3}, b = {1, 2, 4};
  const std::vector<SlotView> slots = {{0, false, a, 9}, {1, false, b, 5}};
  const SlotChoice choice = policy.choose_slot(Tokens{1, 2, 7, 7}, slots);
  EXPECT_EQ(choice.slot, 1);
  EXPECT_EQ(choice.reuse, 2);
}

TEST(ChooseSlot, AlwaysLeavesTheLastPromptTokenToCompute) {
  SchedulePolicy policy(8);
  const Tokens cached = {4, 5, 6, 7, 8};
  const std::vector<SlotView> slots = {{0, false, cached, 0}};
  // The prompt is a prefix of the cache, or equal to it: all but its last token reused.
  EXPECT_EQ(policy.choose_slot(Tokens{4, 5, 6}, slots).reuse, 2);
  EXPECT_EQ(policy.choose_slot(cached, slots).reuse, 4);
  EXPECT_EQ(policy.choose_slot(Tokens{4}, slots).reuse, 0);
}

TEST(ChooseSlot, CopiesALongerPrefixFromABusySlot) {
  SchedulePolicy policy(8);
  const Tokens busy = {1, 2, 3, 4, 5, 6}, free_a = {1, 2}, free_b = {9};
  const std::vector<SlotView> slots = {
      {0, true, busy, 0}, {1, false, free_a, 3}, {2, false, free_b, 1}};
  const SlotChoice choice = policy.choose_slot(Tokens{1, 2, 3, 4, 0}, slots);
  EXPECT_EQ(choice.slot, 1);  // the free slot with the longest prefix
  EXPECT_EQ(choice.reuse, 4);
  EXPECT_EQ(choice.copy_from, 0);
  // Not longer than the free slot's own prefix: no copy.
  const SlotChoice own = policy.choose_slot(Tokens{1, 2, 8}, slots);
  EXPECT_EQ(own.slot, 1);
  EXPECT_EQ(own.reuse, 2);
  EXPECT_EQ(own.copy_from, -1);
}

TEST(ChooseSlot, NoFreeSlot) {
  SchedulePolicy policy(8);
  const std::vector<SlotView> slots = {{0, true, {}, 0}, {1, true, {}, 0}};
  EXPECT_EQ(policy.choose_slot(Tokens{1, 2}, slots).slot, -1);
  EXPECT_EQ(policy.choose_slot(Tokens{1, 2}, {}).slot, -1);
}

TEST(PlanAdmissions, FifoWhileSlotsLastAndChoicesSeeEarlierOnes) {
  SchedulePolicy policy(8);
  const Tokens s0 = {1, 2, 3}, s2 = {5, 6};
  const std::vector<SlotView> slots = {{0, false, s0, 2}, {1, true, {}, 0}, {2, false, s2, 1}};
  const Tokens p0 = {1, 2, 3, 4}, p1 = {1, 2, 3, 4, 5}, p2 = {7};
  const std::vector<std::span<const int32_t>> waiting = {p0, p1, p2};
  const auto choices = policy.plan_admissions(waiting, slots);
  // Two free slots: the first two requests are admitted, in order.
  ASSERT_EQ(choices.size(), 2u);
  EXPECT_EQ(choices[0].slot, 0);
  EXPECT_EQ(choices[0].reuse, 3);
  EXPECT_EQ(choices[0].copy_from, -1);
  // p1 sees slot 0 taken (caching p0's first 3 tokens) and copies that prefix into slot 2.
  EXPECT_EQ(choices[1].slot, 2);
  EXPECT_EQ(choices[1].reuse, 3);
  EXPECT_EQ(choices[1].copy_from, 0);
  EXPECT_TRUE(policy.plan_admissions({}, slots).empty());
}

}  // namespace
}  // namespace muse
