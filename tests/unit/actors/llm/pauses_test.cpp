#include "actors/llm/pauses.hpp"

#include <catch2/catch.hpp>

using namespace std::chrono_literals;
using troupe::llm::upstream_pauses;

namespace {
const upstream_pauses::time_point t0{std::chrono::hours(1)};
}

TEST_CASE("pauses: a pause holds its own model only, and ends", "[llm][pauses]") {
  upstream_pauses pauses(20s, 100);
  CHECK(pauses.pause("anthropic/claude-a", 3s, t0) == 3s);
  CHECK(pauses.until("anthropic/claude-a", t0) == t0 + 3s);
  CHECK_FALSE(pauses.until("anthropic/claude-b", t0).has_value());
  CHECK(pauses.until("anthropic/claude-a", t0 + 3s - 1ns).has_value());
  CHECK_FALSE(pauses.until("anthropic/claude-a", t0 + 3s).has_value());
}

TEST_CASE("pauses: an upstream cannot pause a model for longer than the cap", "[llm][pauses]") {
  upstream_pauses pauses(20s, 100);
  CHECK(pauses.pause("anthropic/claude-a", 86400s, t0) == 20s);
  CHECK(pauses.until("anthropic/claude-a", t0) == t0 + 20s);
  // A shorter pause does not cut one in force short; a later one extends it.
  pauses.pause("anthropic/claude-a", 1s, t0 + 1s);
  CHECK(pauses.until("anthropic/claude-a", t0 + 1s) == t0 + 20s);
  pauses.pause("anthropic/claude-a", 20s, t0 + 10s);
  CHECK(pauses.until("anthropic/claude-a", t0 + 10s) == t0 + 30s);
  const auto listed = pauses.in_force(t0 + 10s);
  REQUIRE(listed.size() == 1);
  CHECK(listed[0].first == "anthropic/claude-a");
  CHECK(listed[0].second == 20000);
}

TEST_CASE("pauses: the table is bounded, the soonest ending pause goes first", "[llm][pauses]") {
  upstream_pauses pauses(20s, 2);
  pauses.pause("a", 5s, t0);
  pauses.pause("b", 1s, t0);
  pauses.pause("c", 9s, t0);
  CHECK(pauses.until("a", t0).has_value());
  CHECK_FALSE(pauses.until("b", t0).has_value());
  CHECK(pauses.until("c", t0).has_value());
  // Expired pauses make room first.
  pauses.pause("d", 1s, t0 + 6s);
  CHECK(pauses.until("c", t0 + 6s).has_value());
  CHECK(pauses.until("d", t0 + 6s).has_value());
}
