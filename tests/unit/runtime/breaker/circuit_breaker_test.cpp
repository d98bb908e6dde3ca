#include "runtime/breaker/circuit_breaker.hpp"

#include <catch2/catch.hpp>

#include <chrono>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

using namespace std::chrono_literals;
using troupe::breaker_config;
using troupe::breaker_state;
using troupe::circuit_breaker;
using troupe::keyed_breakers;

namespace {

using time_point = circuit_breaker::time_point;
using transition = std::pair<breaker_state, breaker_state>;

// An arbitrary instant far from the clock's epoch; tests advance it by hand.
const time_point t0{std::chrono::hours(1000)};

constexpr auto fast = 1ms;

// Small numbers so each rule is reached in a few calls; jitter off so every
// period is exact. Tests that pin one rule move the others out of the way.
breaker_config test_config() {
  breaker_config config;
  config.failures_max = 3;
  config.window_calls = 10;
  config.calls_min = 5;
  config.failure_rate_max = 1.0;
  config.slow_call_ms = 100ms;
  config.slow_rate_max = 1.0;
  config.open_ms = 1000ms;
  config.open_ms_max = 5000ms;
  config.open_factor = 2.0;
  config.jitter = 0.0;
  config.half_open_probes = 2;
  config.seed = 42;
  return config;
}

// One call admitted and answered at `now`; the call must be allowed.
void call(circuit_breaker& breaker, time_point now, bool ok,
          std::chrono::nanoseconds duration = fast) {
  REQUIRE(breaker.try_acquire(now).allowed);
  if (ok) {
    breaker.on_success(now, duration);
  } else {
    breaker.on_failure(now, duration);
  }
}

void trip(circuit_breaker& breaker, time_point now) {
  for (uint32_t i = 0; i < breaker.config().failures_max; ++i) {
    call(breaker, now, false);
  }
  REQUIRE(breaker.state() == breaker_state::open);
}

// Moves an open breaker to half-open and fails one probe there.
void fail_probe(circuit_breaker& breaker, time_point& now) {
  now = breaker.opened_until();
  REQUIRE(breaker.try_acquire(now).state == breaker_state::half_open);
  breaker.on_failure(now, fast);
  REQUIRE(breaker.state() == breaker_state::open);
}

}  // namespace

TEST_CASE("breaker opens after failures_max consecutive failures", "[breaker]") {
  circuit_breaker breaker(test_config());
  call(breaker, t0, false);
  call(breaker, t0, false);
  CHECK(breaker.state() == breaker_state::closed);
  CHECK(breaker.consecutive_failures() == 2);
  call(breaker, t0, false);
  CHECK(breaker.state() == breaker_state::open);
  CHECK(breaker.opened_until() == t0 + 1000ms);
}

TEST_CASE("a success resets the consecutive failure count", "[breaker]") {
  circuit_breaker breaker(test_config());
  call(breaker, t0, false);
  call(breaker, t0, false);
  call(breaker, t0, true);
  CHECK(breaker.consecutive_failures() == 0);
  call(breaker, t0, false);
  call(breaker, t0, false);
  CHECK(breaker.consecutive_failures() == 2);
  CHECK(breaker.state() == breaker_state::closed);
}

TEST_CASE("failure rate is judged only once the window holds calls_min calls", "[breaker]") {
  auto config = test_config();
  config.failures_max = 100;
  config.failure_rate_max = 0.5;
  circuit_breaker breaker(config);
  for (int i = 0; i < 4; ++i) {
    call(breaker, t0, false);
  }
  CHECK(breaker.window_failures() == 4);
  CHECK(breaker.state() == breaker_state::closed);
  call(breaker, t0, true);  // 4 of 5 failed, and 5 is calls_min
  CHECK(breaker.state() == breaker_state::open);
}

TEST_CASE("failure rate at exactly failure_rate_max opens, below it does not", "[breaker]") {
  auto config = test_config();
  config.failures_max = 100;
  config.calls_min = 4;
  config.failure_rate_max = 0.5;
  circuit_breaker breaker(config);
  call(breaker, t0, true);
  call(breaker, t0, true);
  call(breaker, t0, true);
  call(breaker, t0, false);  // 1 of 4
  call(breaker, t0, true);
  call(breaker, t0, false);
  call(breaker, t0, true);  // 2 of 7
  CHECK(breaker.state() == breaker_state::closed);
  call(breaker, t0, false);
  call(breaker, t0, false);  // 4 of 9
  CHECK(breaker.state() == breaker_state::closed);
  call(breaker, t0, false);  // 5 of 10
  CHECK(breaker.state() == breaker_state::open);
}

TEST_CASE("the window forgets calls older than window_calls", "[breaker]") {
  auto config = test_config();
  config.failures_max = 100;
  config.window_calls = 4;
  config.calls_min = 4;
  config.failure_rate_max = 0.5;
  circuit_breaker breaker(config);
  call(breaker, t0, false);
  for (int i = 0; i < 4; ++i) {
    call(breaker, t0, true);
  }
  CHECK(breaker.window_calls() == 4);
  CHECK(breaker.window_failures() == 0);
  call(breaker, t0, false);
  CHECK(breaker.window_failures() == 1);  // the early failure would make it 2: open
  CHECK(breaker.state() == breaker_state::closed);
}

TEST_CASE("slow-call rate opens even when every call succeeds", "[breaker]") {
  auto config = test_config();
  config.calls_min = 4;
  config.slow_rate_max = 0.5;
  circuit_breaker breaker(config);
  call(breaker, t0, true, 100ms);  // exactly slow_call_ms is slow
  call(breaker, t0, true, 99ms);
  call(breaker, t0, true, 99ms);
  CHECK(breaker.window_slow_calls() == 1);
  call(breaker, t0, true, 5s);  // 2 of 4 slow
  CHECK(breaker.window_slow_calls() == 2);
  CHECK(breaker.state() == breaker_state::open);
}

TEST_CASE("a failed slow call counts as failed and as slow", "[breaker]") {
  circuit_breaker breaker(test_config());
  call(breaker, t0, false, 200ms);
  call(breaker, t0, true, 200ms);
  call(breaker, t0, false, fast);
  CHECK(breaker.window_calls() == 3);
  CHECK(breaker.window_failures() == 2);
  CHECK(breaker.window_slow_calls() == 2);
}

TEST_CASE("open breaker answers at once with the time left", "[breaker]") {
  circuit_breaker breaker(test_config());
  trip(breaker, t0);
  const auto answer = breaker.try_acquire(t0 + 300ms);
  CHECK_FALSE(answer.allowed);
  CHECK(answer.state == breaker_state::open);
  CHECK(answer.retry_after == 700ms);
  // Rounded up, so waiting retry_after always finds the period over.
  CHECK(breaker.try_acquire(t0 + 300ms + 500us).retry_after == 700ms);
  CHECK(breaker.try_acquire(t0 + 999ms).retry_after == 1ms);
}

TEST_CASE("open breaker turns half-open once the open period has passed", "[breaker]") {
  circuit_breaker breaker(test_config());
  trip(breaker, t0);
  CHECK_FALSE(breaker.try_acquire(t0 + 999ms).allowed);
  CHECK(breaker.state(t0 + 1000ms) == breaker_state::half_open);
  CHECK(breaker.state() == breaker_state::open);  // lazily: only try_acquire moves it
  const auto answer = breaker.try_acquire(t0 + 1000ms);
  CHECK(answer.allowed);
  CHECK(answer.state == breaker_state::half_open);
  CHECK(breaker.state() == breaker_state::half_open);
}

TEST_CASE("half-open lets exactly half_open_probes calls through", "[breaker]") {
  circuit_breaker breaker(test_config());
  trip(breaker, t0);
  const auto now = t0 + 1000ms;
  CHECK(breaker.try_acquire(now).allowed);
  CHECK(breaker.try_acquire(now).allowed);
  CHECK(breaker.probes_in_flight() == 2);
  const auto refused = breaker.try_acquire(now);
  CHECK_FALSE(refused.allowed);
  CHECK(refused.state == breaker_state::half_open);
  CHECK(refused.retry_after == 0ms);
  breaker.on_success(now, fast);
  // A finished probe does not free its slot: both probes must succeed.
  CHECK_FALSE(breaker.try_acquire(now).allowed);
  CHECK(breaker.state() == breaker_state::half_open);
}

TEST_CASE("a call that never reached the dependency gives its probe slot back", "[breaker]") {
  circuit_breaker breaker(test_config());
  trip(breaker, t0);
  const auto now = t0 + 1000ms;
  REQUIRE(breaker.try_acquire(now).allowed);
  REQUIRE(breaker.try_acquire(now).allowed);
  CHECK_FALSE(breaker.try_acquire(now).allowed);
  breaker.on_not_attempted();
  // No verdict: still half-open, and one more call may probe.
  CHECK(breaker.state() == breaker_state::half_open);
  CHECK(breaker.probes_in_flight() == 1);
  REQUIRE(breaker.try_acquire(now).allowed);
  breaker.on_success(now, fast);
  breaker.on_success(now, fast);
  CHECK(breaker.state() == breaker_state::closed);
  // While closed it changes nothing: no call is counted either way.
  const auto window = breaker.window_calls();
  breaker.on_not_attempted();
  CHECK(breaker.window_calls() == window);
  CHECK(breaker.state() == breaker_state::closed);
}

TEST_CASE("all probes succeeding closes the breaker and restores open_ms", "[breaker]") {
  circuit_breaker breaker(test_config());
  trip(breaker, t0);
  auto now = t0;
  fail_probe(breaker, now);
  CHECK(breaker.open_period() == 2000ms);
  now = breaker.opened_until();
  REQUIRE(breaker.try_acquire(now).allowed);
  REQUIRE(breaker.try_acquire(now).allowed);
  breaker.on_success(now, fast);
  CHECK(breaker.state() == breaker_state::half_open);
  breaker.on_success(now, 5s);  // slow, yet a success
  CHECK(breaker.state() == breaker_state::closed);
  CHECK(breaker.open_period() == 1000ms);
  CHECK(breaker.window_calls() == 0);
  CHECK(breaker.consecutive_failures() == 0);
  trip(breaker, now);
  CHECK(breaker.opened_until() == now + 1000ms);
}

TEST_CASE("a failed probe reopens for open period times open_factor, capped", "[breaker]") {
  circuit_breaker breaker(test_config());
  trip(breaker, t0);
  auto now = t0;
  std::vector<std::chrono::milliseconds> periods;
  for (int i = 0; i < 4; ++i) {
    fail_probe(breaker, now);
    periods.emplace_back(
        std::chrono::duration_cast<std::chrono::milliseconds>(breaker.opened_until() - now));
  }
  CHECK(periods == std::vector<std::chrono::milliseconds>{2000ms, 4000ms, 5000ms, 5000ms});
  CHECK(breaker.open_period() == 5000ms);
}

TEST_CASE("one failed probe reopens while other probes are in flight", "[breaker]") {
  circuit_breaker breaker(test_config());
  trip(breaker, t0);
  const auto now = t0 + 1000ms;
  REQUIRE(breaker.try_acquire(now).allowed);
  REQUIRE(breaker.try_acquire(now).allowed);
  breaker.on_success(now, fast);
  breaker.on_failure(now, fast);
  CHECK(breaker.state() == breaker_state::open);
  CHECK(breaker.opened_until() == now + 2000ms);
}

TEST_CASE("jitter keeps each open period within plus or minus jitter", "[breaker]") {
  auto config = test_config();
  config.jitter = 0.1;
  config.open_ms_max = 1'000'000ms;
  circuit_breaker breaker(config);
  std::set<int64_t> seen_ms;
  for (int round = 0; round < 50; ++round) {
    const auto now = t0 + std::chrono::seconds(round);
    trip(breaker, now);
    const auto used =
        std::chrono::duration_cast<std::chrono::milliseconds>(breaker.opened_until() - now);
    CHECK(used >= 900ms);
    CHECK(used <= 1100ms);
    seen_ms.insert(used.count());
    breaker.reset();
  }
  CHECK(seen_ms.size() > 10);  // it does spread
  // Jitter applies around the grown period, not the first one.
  trip(breaker, t0);
  auto now = t0;
  fail_probe(breaker, now);
  const auto grown = breaker.opened_until() - now;
  CHECK(breaker.open_period() == 2000ms);
  CHECK(grown >= 1800ms);
  CHECK(grown <= 2200ms);
}

TEST_CASE("the same seed gives the same jittered periods", "[breaker]") {
  auto config = test_config();
  config.jitter = 0.5;
  circuit_breaker first(config);
  circuit_breaker second(config);
  config.seed = 43;
  circuit_breaker other(config);
  std::vector<time_point> a;
  std::vector<time_point> b;
  std::vector<time_point> c;
  for (int round = 0; round < 5; ++round) {
    for (auto* breaker : {&first, &second, &other}) {
      trip(*breaker, t0);
    }
    a.push_back(first.opened_until());
    b.push_back(second.opened_until());
    c.push_back(other.opened_until());
    for (auto* breaker : {&first, &second, &other}) {
      breaker->reset();
    }
  }
  CHECK(a == b);
  CHECK(a != c);
}

TEST_CASE("zero jitter gives exact open periods", "[breaker]") {
  auto config = test_config();
  config.jitter = 0.0;
  config.open_ms = 1234ms;
  circuit_breaker breaker(config);
  for (int round = 0; round < 20; ++round) {
    trip(breaker, t0);
    CHECK(breaker.opened_until() == t0 + 1234ms);
    breaker.reset();
  }
}

TEST_CASE("the transition listener sees every change in order", "[breaker]") {
  circuit_breaker breaker(test_config());
  std::vector<transition> seen;
  breaker.on_transition([&](breaker_state from, breaker_state to) {
    CHECK(breaker.state() == to);  // called after the change
    seen.emplace_back(from, to);
  });
  trip(breaker, t0);
  auto now = t0;
  fail_probe(breaker, now);
  now = breaker.opened_until();
  call(breaker, now, true);
  call(breaker, now, true);
  trip(breaker, now);
  breaker.reset();
  breaker.reset();  // already closed: no event
  using enum breaker_state;
  const std::vector<transition> expected{
      {closed, open},      {open, half_open}, {half_open, open}, {open, half_open},
      {half_open, closed}, {closed, open},    {open, closed},
  };
  CHECK(seen == expected);
}

TEST_CASE("counters count allowed, refused, succeeded and failed calls", "[breaker]") {
  circuit_breaker breaker(test_config());
  call(breaker, t0, true);
  trip(breaker, t0);
  CHECK_FALSE(breaker.try_acquire(t0 + 1ms).allowed);
  CHECK_FALSE(breaker.try_acquire(t0 + 2ms).allowed);
  const auto now = t0 + 1000ms;
  call(breaker, now, true);
  call(breaker, now, false);
  const auto& counters = breaker.counters();
  CHECK(counters.calls_allowed == 6);
  CHECK(counters.calls_refused == 2);
  CHECK(counters.calls_succeeded == 2);
  CHECK(counters.calls_failed == 4);
  breaker.reset();
  CHECK(breaker.counters().calls_allowed == 6);  // lifetime counts survive reset
}

TEST_CASE("an outcome arriving while open changes nothing", "[breaker]") {
  circuit_breaker breaker(test_config());
  REQUIRE(breaker.try_acquire(t0).allowed);  // answered after the breaker opens
  trip(breaker, t0);
  breaker.on_success(t0 + 10ms, fast);
  CHECK(breaker.state() == breaker_state::open);
  CHECK(breaker.opened_until() == t0 + 1000ms);
  CHECK(breaker.counters().calls_succeeded == 1);
}

TEST_CASE("a late outcome in half-open with no probe in flight is ignored", "[breaker]") {
  const auto now = t0 + 1000ms;
  circuit_breaker breaker(test_config());
  REQUIRE(breaker.try_acquire(t0).allowed);  // let through while closed, answered late
  trip(breaker, t0);
  REQUIRE(breaker.try_acquire(now).state == breaker_state::half_open);
  breaker.on_success(now, fast);  // counts for the probe in flight
  breaker.on_failure(now, fast);  // no probe left in flight: the stale call
  CHECK(breaker.state() == breaker_state::half_open);
  CHECK(breaker.probes_in_flight() == 0);
}

TEST_CASE("reset forces the breaker closed and clears its window", "[breaker]") {
  circuit_breaker breaker(test_config());
  trip(breaker, t0);
  auto now = t0;
  fail_probe(breaker, now);
  breaker.reset();
  CHECK(breaker.state() == breaker_state::closed);
  CHECK(breaker.try_acquire(now).allowed);
  CHECK(breaker.window_calls() == 0);
  CHECK(breaker.consecutive_failures() == 0);
  CHECK(breaker.open_period() == 1000ms);
}

TEST_CASE("breaker config mirrors breaker_section", "[breaker]") {
  troupe::breaker_section section;
  section.failures_max = 7;
  section.window_calls = 30;
  section.calls_min = 12;
  section.failure_rate_max = 0.25;
  section.slow_call_ms = 1500;
  section.slow_rate_max = 0.75;
  section.open_ms = 250;
  section.open_ms_max = 9000;
  section.open_factor = 3.0;
  section.jitter = 0.2;
  section.half_open_probes = 4;
  const auto config = troupe::make_breaker_config(section);
  CHECK(config.failures_max == 7);
  CHECK(config.window_calls == 30);
  CHECK(config.calls_min == 12);
  CHECK(config.failure_rate_max == 0.25);
  CHECK(config.slow_call_ms == 1500ms);
  CHECK(config.slow_rate_max == 0.75);
  CHECK(config.open_ms == 250ms);
  CHECK(config.open_ms_max == 9000ms);
  CHECK(config.open_factor == 3.0);
  CHECK(config.jitter == 0.2);
  CHECK(config.half_open_probes == 4);
  CHECK_FALSE(troupe::validate(config).has_value());
  CHECK_FALSE(troupe::validate(troupe::make_breaker_config(troupe::breaker_section{})).has_value());
}

TEST_CASE("validate rejects configs that break the invariants", "[breaker]") {
  const auto rejects = [](auto mutate, std::string_view key) {
    auto config = test_config();
    mutate(config);
    const auto err = troupe::validate(config);
    REQUIRE(err.has_value());
    CHECK(err->code == troupe::errc::config_invalid);
    CHECK(err->message.find(key) != std::string::npos);
  };
  CHECK_FALSE(troupe::validate(test_config()).has_value());
  rejects([](breaker_config& c) { c.failures_max = 0; }, "failures_max");
  rejects([](breaker_config& c) { c.window_calls = 0; }, "window_calls");
  rejects([](breaker_config& c) { c.window_calls = 10001; }, "window_calls");
  rejects([](breaker_config& c) { c.calls_min = 0; }, "calls_min");
  rejects([](breaker_config& c) { c.calls_min = 11; }, "calls_min");
  rejects([](breaker_config& c) { c.failure_rate_max = 0.0; }, "failure_rate_max");
  rejects([](breaker_config& c) { c.failure_rate_max = 1.01; }, "failure_rate_max");
  rejects([](breaker_config& c) { c.slow_rate_max = 0.0; }, "slow_rate_max");
  rejects([](breaker_config& c) { c.slow_call_ms = 0ms; }, "slow_call_ms");
  rejects([](breaker_config& c) { c.open_ms = 0ms; }, "open_ms");
  rejects([](breaker_config& c) { c.open_ms_max = 999ms; }, "open_ms_max");
  rejects([](breaker_config& c) { c.open_factor = 0.5; }, "open_factor");
  rejects([](breaker_config& c) { c.jitter = 1.0; }, "jitter");
  rejects([](breaker_config& c) { c.jitter = -0.1; }, "jitter");
  rejects([](breaker_config& c) { c.half_open_probes = 0; }, "half_open_probes");
}

TEST_CASE("breaker states have stable names", "[breaker]") {
  CHECK(troupe::to_string(breaker_state::closed) == "closed");
  CHECK(troupe::to_string(breaker_state::open) == "open");
  CHECK(troupe::to_string(breaker_state::half_open) == "half_open");
}

TEST_CASE("keyed breakers: one per key, transitions named by key, closed ones dropped past max",
          "[breaker]") {
  std::vector<std::string> heard;
  keyed_breakers breakers(test_config(), 3,
                          [&](const std::string& key, breaker_state, breaker_state to) {
                            heard.push_back(key + ":" + std::string(to_string(to)));
                          });
  trip(breakers["a"], t0);
  CHECK(heard == std::vector<std::string>{"a:open"});
  CHECK(breakers["b"].state() == breaker_state::closed);  // keys do not share a breaker
  CHECK(&breakers["a"] == &breakers["a"]);
  call(breakers["c"], t0, true);
  REQUIRE(breakers.size() == 3);
  // A fourth key drops the closed ones (b, c), never the open one.
  (void)breakers["d"];
  CHECK(breakers.size() == 2);
  CHECK(breakers["a"].state() == breaker_state::open);
}

TEST_CASE("keyed breakers stay within their bound when every key keeps failing") {
  keyed_breakers breakers(test_config(), 3, {});
  for (const auto* key : {"a", "b", "c"}) {
    trip(breakers[key], t0);
  }
  REQUIRE(breakers.size() == 3);
  // Nothing is closed: the oldest (a) goes to make room for d.
  trip(breakers["d"], t0);
  CHECK(breakers.size() == 3);
  CHECK(breakers["b"].state() == breaker_state::open);
  CHECK(breakers["d"].state() == breaker_state::open);
  // a was forgotten: it comes back closed, in place of the oldest left (b).
  CHECK(breakers["a"].state() == breaker_state::closed);
  CHECK(breakers.size() == 3);
  for (int i = 0; i < 100; ++i) {
    trip(breakers["k" + std::to_string(i)], t0);
    REQUIRE(breakers.size() <= 3);
  }
}
