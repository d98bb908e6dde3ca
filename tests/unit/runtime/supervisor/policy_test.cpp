#include "runtime/supervisor/policy.hpp"

#include <catch2/catch.hpp>

#include "runtime/backoff.hpp"

using namespace troupe;
using namespace std::chrono_literals;

namespace {

const steady_time t0{std::chrono::hours(1000)};

restart_policy test_policy() {
  restart_policy p;
  p.backoff_min = 10ms;
  p.backoff_max = 1000ms;
  p.backoff_jitter = 0.2;
  p.backoff_reset = 30000ms;
  return p;
}

// A draw of 0.5 puts the jitter factor at exactly 1.
constexpr double no_jitter = 0.5;

}  // namespace

TEST_CASE("restart types decide whether an ended child comes back") {
  CHECK(restarts_after_exit(restart_type::permanent, false));
  CHECK(restarts_after_exit(restart_type::permanent, true));
  CHECK_FALSE(restarts_after_exit(restart_type::transient, false));
  CHECK(restarts_after_exit(restart_type::transient, true));
  CHECK_FALSE(restarts_after_exit(restart_type::temporary, false));
  CHECK_FALSE(restarts_after_exit(restart_type::temporary, true));
}

TEST_CASE("intensity allows restarts_max restarts within the period, not one more") {
  restart_intensity intensity(3, 1000ms);
  CHECK(intensity.record(t0));
  CHECK(intensity.record(t0 + 100ms));
  CHECK(intensity.record(t0 + 200ms));
  CHECK_FALSE(intensity.record(t0 + 300ms));
}

TEST_CASE("restarts older than the period no longer count") {
  restart_intensity intensity(2, 1000ms);
  CHECK(intensity.record(t0));
  CHECK(intensity.record(t0 + 500ms));
  CHECK(intensity.record(t0 + 1000ms));  // t0 has left the window
  CHECK(intensity.record(t0 + 1500ms));  // and so has t0 + 500ms
  CHECK_FALSE(intensity.record(t0 + 1600ms));
  CHECK(intensity.recent() <= 2);
}

TEST_CASE("the first restart is immediate, then the delay doubles up to the cap") {
  restart_backoff backoff(test_policy());
  CHECK(backoff.next_delay(t0, no_jitter) == 0ms);
  CHECK(backoff.next_delay(t0 + 1ms, no_jitter) == 10ms);
  CHECK(backoff.next_delay(t0 + 2ms, no_jitter) == 20ms);
  CHECK(backoff.next_delay(t0 + 3ms, no_jitter) == 40ms);
  for (int i = 0; i < 20; ++i) {
    (void)backoff.next_delay(t0 + 4ms + std::chrono::milliseconds(i), no_jitter);
  }
  CHECK(backoff.next_delay(t0 + 100ms, no_jitter) == 1000ms);
  CHECK(backoff.attempts() == 25);
}

TEST_CASE("exponential backoff: doubles from the minimum, jitter both ways, never past the cap") {
  CHECK(exponential_backoff(250ms, 8000ms, 1, 0.2, 0.5) == 250ms);
  CHECK(exponential_backoff(250ms, 8000ms, 2, 0.2, 0.5) == 500ms);
  CHECK(exponential_backoff(250ms, 8000ms, 6, 0.2, 0.5) == 8000ms);
  CHECK(exponential_backoff(250ms, 8000ms, 1000, 0.2, 0.5) == 8000ms);
  // +-20 %: the lowest draw takes 20 % off, the highest adds nearly 20 %...
  CHECK(exponential_backoff(250ms, 8000ms, 1, 0.2, 0.0) == 200ms);
  CHECK(exponential_backoff(250ms, 8000ms, 1, 0.2, 0.999) == 300ms);
  // ...except at the cap, which jitter does not cross.
  CHECK(exponential_backoff(250ms, 8000ms, 6, 0.2, 0.999) == 8000ms);
  CHECK(exponential_backoff(250ms, 8000ms, 6, 0.2, 0.0) == 6400ms);
}

TEST_CASE("backoff starts over after a quiet period") {
  restart_backoff backoff(test_policy());
  (void)backoff.next_delay(t0, no_jitter);
  CHECK(backoff.next_delay(t0 + 1ms, no_jitter) == 10ms);
  CHECK(backoff.next_delay(t0 + 1ms + 30000ms, no_jitter) == 0ms);
  CHECK(backoff.attempts() == 1);
}

TEST_CASE("jitter spreads the delay by at most the jitter fraction") {
  restart_backoff low(test_policy());
  restart_backoff high(test_policy());
  (void)low.next_delay(t0, 0.0);
  (void)high.next_delay(t0, 0.0);
  for (int i = 0; i < 3; ++i) {
    (void)low.next_delay(t0 + 1ms, 0.0);
    (void)high.next_delay(t0 + 1ms, 0.999999);
  }
  // Fourth consecutive restart: base 40 ms, +-20 %.
  CHECK(low.next_delay(t0 + 2ms, 0.0) == 64ms);        // 80 * 0.8
  CHECK(high.next_delay(t0 + 2ms, 0.999999) == 96ms);  // 80 * 1.2
}

TEST_CASE("the default decider restarts on every failure") {
  CHECK(default_decider(failure{failure_kind::exception, "x"}) == directive::restart);
  CHECK(default_decider(failure{failure_kind::exited, "x"}) == directive::restart);
}
