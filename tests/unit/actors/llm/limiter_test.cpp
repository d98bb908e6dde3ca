#include "actors/llm/limiter.hpp"

#include <catch2/catch.hpp>

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <random>
#include <string>
#include <vector>

using namespace std::chrono_literals;
using troupe::errc;
using troupe::llm::limiter;
using troupe::llm::limiter_config;
using troupe::llm::ticket;
using troupe::llm::ticket_id;

namespace {

using time_point = limiter::time_point;
using ids = std::vector<ticket_id>;

// An arbitrary instant far from the clock's epoch; tests advance it by hand.
const time_point t0{std::chrono::hours(1000)};

limiter_config make_config(std::int64_t rpm, std::int64_t itpm = 0, std::int64_t otpm = 0,
                           std::size_t queue_max = 1000) {
  limiter_config config;
  config.requests_per_minute = rpm;
  config.input_tokens_per_minute = itpm;
  config.output_tokens_per_minute = otpm;
  config.queue_max = queue_max;
  config.priorities = 3;
  return config;
}

ticket make_ticket(std::string client, int priority = 1, std::int64_t input_tokens = 0,
                   std::int64_t output_tokens = 0) {
  return ticket{std::move(client), priority, input_tokens, output_tokens};
}

// Submits a request that must be admitted at once; returns its id.
ticket_id admit(limiter& lim, const ticket& request, time_point now) {
  auto result = lim.submit(request, now);
  REQUIRE(result.has_value());
  REQUIRE(result->admitted);
  return result->id;
}

// Submits a request that must be queued; returns its id.
ticket_id enqueue(limiter& lim, const ticket& request, time_point now) {
  auto result = lim.submit(request, now);
  REQUIRE(result.has_value());
  REQUIRE_FALSE(result->admitted);
  return result->id;
}

bool contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

}  // namespace

TEST_CASE("validate accepts the defaults and names the bad key", "[llm][limiter]") {
  CHECK_FALSE(validate(limiter_config{}).has_value());

  auto config = limiter_config{};
  config.requests_per_minute = -1;
  auto err = validate(config);
  REQUIRE(err.has_value());
  CHECK(err->code == errc::config_invalid);
  CHECK(contains(err->message, "llm.requests_per_minute"));
  CHECK(contains(err->message, "-1"));

  config = limiter_config{};
  config.input_tokens_per_minute = troupe::llm::limiter_per_minute_max + 1;
  err = validate(config);
  REQUIRE(err.has_value());
  CHECK(contains(err->message, "llm.input_tokens_per_minute"));

  config = limiter_config{};
  config.output_tokens_per_minute = troupe::llm::limiter_per_minute_max;
  CHECK_FALSE(validate(config).has_value());
  config.output_tokens_per_minute = -5;
  err = validate(config);
  REQUIRE(err.has_value());
  CHECK(contains(err->message, "llm.output_tokens_per_minute"));

  config = limiter_config{};
  config.queue_max = 0;
  err = validate(config);
  REQUIRE(err.has_value());
  CHECK(contains(err->message, "llm.queue_max"));
  config.queue_max = troupe::llm::limiter_queue_max_ceiling + 1;
  CHECK(validate(config).has_value());

  config = limiter_config{};
  config.priorities = 0;
  err = validate(config);
  REQUIRE(err.has_value());
  CHECK(contains(err->message, "llm.priorities"));
  config.priorities = troupe::llm::limiter_priorities_max + 1;
  CHECK(validate(config).has_value());
}

TEST_CASE("an unlimited limiter admits everything at once", "[llm][limiter]") {
  limiter lim(make_config(0, 0, 0, 1), t0);
  for (int i = 0; i < 5000; ++i) {
    admit(lim, make_ticket("c" + std::to_string(i % 7), i % 3, 40'000'000'000, 1'000'000'000), t0);
  }
  CHECK(lim.waiting() == 0);
  CHECK(lim.poll(t0).empty());
  CHECK_FALSE(lim.next_ready(t0).has_value());
}

TEST_CASE("ids are unique and increase", "[llm][limiter]") {
  limiter lim(make_config(1), t0);
  const ticket_id first = admit(lim, make_ticket("a"), t0);
  const ticket_id second = enqueue(lim, make_ticket("a"), t0);
  const ticket_id third = enqueue(lim, make_ticket("b"), t0);
  CHECK(first < second);
  CHECK(second < third);
}

TEST_CASE("requests per minute: N admitted at once, then one per refill", "[llm][limiter]") {
  limiter lim(make_config(60), t0);
  for (int i = 0; i < 60; ++i) {
    admit(lim, make_ticket("a"), t0);
  }
  const ticket_id next = enqueue(lim, make_ticket("a"), t0);
  const ticket_id after = enqueue(lim, make_ticket("a"), t0);
  CHECK(lim.waiting() == 2);

  // 60 per minute refills one request per second, exactly.
  REQUIRE(lim.next_ready(t0) == t0 + 1s);
  CHECK(lim.poll(t0 + 1s - 1ns).empty());
  CHECK(lim.poll(t0 + 1s) == ids{next});
  REQUIRE(lim.next_ready(t0 + 1s) == t0 + 2s);
  CHECK(lim.poll(t0 + 2s - 1ns).empty());
  CHECK(lim.poll(t0 + 2s) == ids{after});
  CHECK(lim.waiting() == 0);
  CHECK_FALSE(lim.next_ready(t0 + 2s).has_value());
}

TEST_CASE("refill is exact for rates that do not divide a minute", "[llm][limiter]") {
  // 7 per minute: one request every 60e9 / 7 = 8'571'428'571.43 ns.
  limiter lim(make_config(7), t0);
  for (int i = 0; i < 7; ++i) {
    admit(lim, make_ticket("a"), t0);
  }
  const ticket_id id = enqueue(lim, make_ticket("a"), t0);
  REQUIRE(lim.next_ready(t0) == t0 + 8'571'428'572ns);
  CHECK(lim.poll(t0 + 8'571'428'571ns).empty());
  CHECK(lim.poll(t0 + 8'571'428'572ns) == ids{id});
}

TEST_CASE("refill accumulates over many polls without drift", "[llm][limiter]") {
  limiter lim(make_config(7), t0);
  for (int i = 0; i < 7; ++i) {
    admit(lim, make_ticket("a"), t0);
  }
  const ticket_id id = enqueue(lim, make_ticket("a"), t0);
  // Polling every nanosecond-odd step must not lose fractions of a request.
  time_point now = t0;
  for (int i = 0; i < 1000; ++i) {
    now += 8'571'428ns;
    CHECK(lim.poll(now).empty());
  }
  CHECK(lim.poll(t0 + 8'571'428'571ns).empty());
  CHECK(lim.poll(t0 + 8'571'428'572ns) == ids{id});
}

TEST_CASE("a bucket refills to its capacity and no further", "[llm][limiter]") {
  limiter lim(make_config(2), t0);
  admit(lim, make_ticket("a"), t0);
  admit(lim, make_ticket("a"), t0);
  const time_point later = t0 + 10min;
  admit(lim, make_ticket("a"), later);
  admit(lim, make_ticket("a"), later);
  enqueue(lim, make_ticket("a"), later);
  CHECK(lim.next_ready(later) == later + 30s);
}

TEST_CASE("input token bucket admits by estimate", "[llm][limiter]") {
  limiter lim(make_config(0, 1000), t0);
  admit(lim, make_ticket("a", 1, 600), t0);
  const ticket_id id = enqueue(lim, make_ticket("a", 1, 600), t0);
  // 400 left, 200 missing at 1000 per minute: 12 s.
  REQUIRE(lim.next_ready(t0) == t0 + 12s);
  CHECK(lim.poll(t0 + 12s - 1ns).empty());
  CHECK(lim.poll(t0 + 12s) == ids{id});
}

TEST_CASE("output token bucket admits by estimate", "[llm][limiter]") {
  limiter lim(make_config(0, 0, 600), t0);
  admit(lim, make_ticket("a", 1, 1'000'000, 600), t0);
  const ticket_id id = enqueue(lim, make_ticket("a", 1, 0, 1), t0);
  // One output token at 10 per second: 100 ms.
  REQUIRE(lim.next_ready(t0) == t0 + 100ms);
  CHECK(lim.poll(t0 + 100ms - 1ns).empty());
  CHECK(lim.poll(t0 + 100ms) == ids{id});
}

TEST_CASE("a request waits for the slowest of the buckets", "[llm][limiter]") {
  limiter lim(make_config(60, 600, 6000), t0);
  admit(lim, make_ticket("a", 1, 600, 10), t0);
  // Requests refill in 1 s, output tokens are plenty, 100 input tokens take 10 s.
  const ticket_id id = enqueue(lim, make_ticket("a", 1, 100, 10), t0);
  REQUIRE(lim.next_ready(t0) == t0 + 10s);
  CHECK(lim.poll(t0 + 5s).empty());
  CHECK(lim.poll(t0 + 10s) == ids{id});
}

TEST_CASE("settle with actual above estimate puts the bucket in debt", "[llm][limiter]") {
  limiter lim(make_config(0, 600), t0);  // 10 input tokens per second
  const ticket first = make_ticket("a", 1, 100);
  admit(lim, first, t0);          // 500 left
  lim.settle(first, 700, 0, t0);  // 600 more than estimated: -100
  // Even a request estimated at zero waits until the debt is repaid.
  const ticket_id id = enqueue(lim, make_ticket("a", 1, 0), t0);
  REQUIRE(lim.next_ready(t0) == t0 + 10s);
  CHECK(lim.poll(t0 + 10s - 1ns).empty());
  CHECK(lim.poll(t0 + 10s) == ids{id});
}

TEST_CASE("settle with actual equal to estimate changes nothing", "[llm][limiter]") {
  limiter lim(make_config(0, 600), t0);
  const ticket first = make_ticket("a", 1, 100);
  admit(lim, first, t0);
  lim.settle(first, 100, 0, t0);
  admit(lim, make_ticket("a", 1, 500), t0);
  enqueue(lim, make_ticket("a", 1, 1), t0);
}

TEST_CASE("settle with actual below estimate gives tokens back", "[llm][limiter]") {
  limiter lim(make_config(0, 600, 600), t0);
  const ticket first = make_ticket("a", 1, 600, 600);
  admit(lim, first, t0);
  const ticket_id id = enqueue(lim, make_ticket("a", 1, 600, 600), t0);
  REQUIRE(lim.next_ready(t0) == t0 + 60s);
  lim.settle(first, 100, 300, t0 + 1s);
  // At 1 s: input holds 10 + 500 back = 510, the missing 90 are in at 10 s;
  // output holds 10 + 300 back = 310, the missing 290 are in at 30 s.
  REQUIRE(lim.next_ready(t0 + 1s) == t0 + 30s);
  CHECK(lim.poll(t0 + 30s - 1ns).empty());
  CHECK(lim.poll(t0 + 30s) == ids{id});
}

TEST_CASE("settle later in time counts the refill up to then", "[llm][limiter]") {
  limiter lim(make_config(0, 600), t0);
  const ticket first = make_ticket("a", 1, 600);
  admit(lim, first, t0);                 // empty
  lim.settle(first, 1200, 0, t0 + 30s);  // 300 refilled, then 600 more: -300
  const ticket_id id = enqueue(lim, make_ticket("a", 1, 0), t0 + 30s);
  CHECK(lim.next_ready(t0 + 30s) == t0 + 60s);
  CHECK(lim.poll(t0 + 60s) == ids{id});
}

TEST_CASE("settle never refunds the request bucket", "[llm][limiter]") {
  limiter lim(make_config(1, 1000), t0);
  const ticket first = make_ticket("a", 1, 10);
  admit(lim, first, t0);
  lim.settle(first, 0, 0, t0);
  enqueue(lim, make_ticket("a", 1, 10), t0);
  CHECK(lim.next_ready(t0) == t0 + 60s);
}

TEST_CASE("debt is capped at one minute of capacity", "[llm][limiter]") {
  limiter lim(make_config(0, 600, 600), t0);
  const ticket first = make_ticket("a", 1, 600, 600);
  admit(lim, first, t0);
  lim.settle(first, INT64_MAX, 1'000'000'000'000, t0);
  // -600 in both buckets: a full-size request needs two minutes, not more.
  const ticket_id id = enqueue(lim, make_ticket("a", 1, 600, 600), t0);
  REQUIRE(lim.next_ready(t0) == t0 + 120s);
  CHECK(lim.poll(t0 + 120s - 1ns).empty());
  CHECK(lim.poll(t0 + 120s) == ids{id});
}

TEST_CASE("settle counts a negative actual as zero", "[llm][limiter]") {
  limiter lim(make_config(0, 600, 600), t0);
  const ticket first = make_ticket("a", 1, 300, 300);
  admit(lim, first, t0);
  admit(lim, make_ticket("a", 1, 300, 300), t0);  // both buckets empty
  lim.settle(first, -1000, -1, t0);               // as if nothing was used: 300 back each
  const ticket_id input_probe = enqueue(lim, make_ticket("a", 1, 301, 0), t0);
  CHECK(lim.next_ready(t0) == t0 + 100ms);
  REQUIRE(lim.cancel(input_probe));
  enqueue(lim, make_ticket("a", 1, 0, 301), t0);
  CHECK(lim.next_ready(t0) == t0 + 100ms);
}

TEST_CASE("settle on unlimited buckets changes nothing", "[llm][limiter]") {
  limiter lim(make_config(0), t0);
  const ticket first = make_ticket("a", 1, 10, 10);
  admit(lim, first, t0);
  lim.settle(first, INT64_MAX, INT64_MAX, t0);
  admit(lim, make_ticket("a", 1, 10, 10), t0);
}

TEST_CASE("the highest priority is admitted first", "[llm][limiter]") {
  limiter lim(make_config(1), t0);
  admit(lim, make_ticket("x", 1), t0);
  const ticket_id low = enqueue(lim, make_ticket("a", 2), t0);
  const ticket_id mid = enqueue(lim, make_ticket("b", 1), t0);
  const ticket_id high = enqueue(lim, make_ticket("c", 0), t0);
  const ticket_id high2 = enqueue(lim, make_ticket("a", 0), t0);
  CHECK(lim.poll(t0 + 60s) == ids{high});
  CHECK(lim.poll(t0 + 120s) == ids{high2});
  CHECK(lim.poll(t0 + 180s) == ids{mid});
  CHECK(lim.poll(t0 + 240s) == ids{low});
}

TEST_CASE("one poll admits across priorities in order", "[llm][limiter]") {
  limiter lim(make_config(3), t0);
  for (int i = 0; i < 3; ++i) {
    admit(lim, make_ticket("x"), t0);
  }
  const ticket_id low = enqueue(lim, make_ticket("a", 2), t0);
  const ticket_id mid = enqueue(lim, make_ticket("a", 1), t0);
  const ticket_id high = enqueue(lim, make_ticket("a", 0), t0);
  CHECK(lim.poll(t0 + 60s) == ids{high, mid, low});
}

TEST_CASE("a request never overtakes a waiting one of the same or higher priority",
          "[llm][limiter]") {
  limiter lim(make_config(0, 1000), t0);
  admit(lim, make_ticket("x", 1, 1000), t0);
  enqueue(lim, make_ticket("a", 1, 500), t0);
  const time_point later = t0 + 6s;  // 100 tokens back
  // Would fit, but a priority-1 request is ahead of it.
  enqueue(lim, make_ticket("b", 1, 50), later);
  enqueue(lim, make_ticket("b", 2, 50), later);
  // A higher priority goes before the waiting ones, at once.
  admit(lim, make_ticket("b", 0, 50), later);
  CHECK(lim.waiting() == 3);
}

TEST_CASE("the next request in order blocks smaller ones behind it", "[llm][limiter]") {
  limiter lim(make_config(0, 1000), t0);
  admit(lim, make_ticket("x", 1, 1000), t0);
  const ticket_id big = enqueue(lim, make_ticket("a", 1, 900), t0);
  const ticket_id small = enqueue(lim, make_ticket("b", 1, 10), t0);
  // At 30 s 500 tokens are back: enough for `small`, not for `big`.
  CHECK(lim.poll(t0 + 30s).empty());
  CHECK(lim.next_ready(t0 + 30s) == t0 + 54s);
  CHECK(lim.poll(t0 + 54s) == ids{big});
  CHECK(lim.poll(t0 + 55s) == ids{small});
}

TEST_CASE("clients take turns: one with 100 waiting cannot starve one with 1", "[llm][limiter]") {
  limiter lim(make_config(1), t0);
  std::vector<ticket_id> a_ids;
  a_ids.push_back(admit(lim, make_ticket("a"), t0));
  for (int i = 1; i < 100; ++i) {
    a_ids.push_back(enqueue(lim, make_ticket("a"), t0));
  }
  const ticket_id b = enqueue(lim, make_ticket("b"), t0 + 1s);
  CHECK(lim.waiting("a") == 99);
  CHECK(lim.waiting("b") == 1);

  CHECK(lim.poll(t0 + 60s) == ids{a_ids[1]});
  CHECK(lim.poll(t0 + 120s) == ids{b});
  CHECK(lim.poll(t0 + 180s) == ids{a_ids[2]});
  CHECK(lim.waiting("b") == 0);
}

TEST_CASE("round-robin across clients, each client FIFO", "[llm][limiter]") {
  limiter lim(make_config(5), t0);
  for (int i = 0; i < 5; ++i) {
    admit(lim, make_ticket("a"), t0);
  }
  std::vector<ticket_id> a, c;
  for (int i = 0; i < 10; ++i) {
    a.push_back(enqueue(lim, make_ticket("a"), t0));
  }
  const ticket_id b = enqueue(lim, make_ticket("b"), t0);
  for (int i = 0; i < 3; ++i) {
    c.push_back(enqueue(lim, make_ticket("c"), t0));
  }
  CHECK(lim.poll(t0 + 60s) == ids{a[0], b, c[0], a[1], c[1]});
  CHECK(lim.poll(t0 + 120s) == ids{a[2], c[2], a[3], a[4], a[5]});
  // A client arriving now joins the turn behind those already waiting.
  const ticket_id d = enqueue(lim, make_ticket("d"), t0 + 120s);
  CHECK(lim.poll(t0 + 180s) == ids{a[6], d, a[7], a[8], a[9]});
  CHECK(lim.waiting() == 0);
}

TEST_CASE("a full queue refuses with how many wait and the limit", "[llm][limiter]") {
  limiter lim(make_config(1, 0, 0, 3), t0);
  admit(lim, make_ticket("a"), t0);
  const ticket_id first = enqueue(lim, make_ticket("a"), t0);
  enqueue(lim, make_ticket("b"), t0);
  enqueue(lim, make_ticket("c", 0), t0);
  auto refused = lim.submit(make_ticket("d", 0), t0);
  REQUIRE_FALSE(refused.has_value());
  CHECK(refused.err().code == errc::too_large);
  CHECK(contains(refused.err().message, "3 requests wait"));
  CHECK(contains(refused.err().message, "queue_max 3"));
  CHECK(lim.waiting() == 3);
  CHECK(lim.waiting("d") == 0);

  REQUIRE(lim.cancel(first));
  enqueue(lim, make_ticket("d", 0), t0);
  CHECK(lim.waiting() == 3);
}

TEST_CASE("requests admitted at once do not count against the queue", "[llm][limiter]") {
  limiter lim(make_config(100, 0, 0, 1), t0);
  for (int i = 0; i < 100; ++i) {
    admit(lim, make_ticket("a"), t0);
  }
  enqueue(lim, make_ticket("a"), t0);
  CHECK(lim.submit(make_ticket("a"), t0).err().code == errc::too_large);
}

TEST_CASE("cancel removes a waiting request and only a waiting one", "[llm][limiter]") {
  limiter lim(make_config(1), t0);
  const ticket_id admitted = admit(lim, make_ticket("a"), t0);
  const ticket_id a1 = enqueue(lim, make_ticket("a"), t0);
  const ticket_id a2 = enqueue(lim, make_ticket("a"), t0);
  const ticket_id b1 = enqueue(lim, make_ticket("b"), t0);
  const ticket_id c1 = enqueue(lim, make_ticket("c"), t0);

  CHECK_FALSE(lim.cancel(admitted));
  CHECK_FALSE(lim.cancel(9999));
  CHECK(lim.cancel(a2));  // from the middle of a's queue
  CHECK_FALSE(lim.cancel(a2));
  CHECK(lim.cancel(b1));  // b's only request: b leaves the turn
  CHECK(lim.waiting() == 2);
  CHECK(lim.waiting("a") == 1);
  CHECK(lim.waiting("b") == 0);

  CHECK(lim.poll(t0 + 60s) == ids{a1});
  CHECK(lim.poll(t0 + 120s) == ids{c1});
  CHECK_FALSE(lim.cancel(c1));
  CHECK_FALSE(lim.next_ready(t0 + 120s).has_value());
}

TEST_CASE("cancelling the head lets the next request through", "[llm][limiter]") {
  limiter lim(make_config(0, 1000), t0);
  admit(lim, make_ticket("x", 1, 1000), t0);
  const ticket_id big = enqueue(lim, make_ticket("a", 1, 900), t0);
  const ticket_id small = enqueue(lim, make_ticket("b", 1, 10), t0);
  CHECK(lim.next_ready(t0) == t0 + 54s);
  REQUIRE(lim.cancel(big));
  CHECK(lim.next_ready(t0) == t0 + 600ms);
  CHECK(lim.poll(t0 + 600ms) == ids{small});
}

TEST_CASE("next_ready is nullopt when empty and now when overdue", "[llm][limiter]") {
  limiter lim(make_config(1), t0);
  CHECK_FALSE(lim.next_ready(t0).has_value());
  admit(lim, make_ticket("a"), t0);
  CHECK_FALSE(lim.next_ready(t0).has_value());
  enqueue(lim, make_ticket("a"), t0);
  CHECK(lim.next_ready(t0) == t0 + 60s);
  CHECK(lim.next_ready(t0 + 59s) == t0 + 60s);
  CHECK(lim.next_ready(t0 + 1h) == t0 + 1h);
  // next_ready reads, it does not admit.
  CHECK(lim.waiting() == 1);
}

TEST_CASE("next_ready follows the next request in order", "[llm][limiter]") {
  limiter lim(make_config(0, 600), t0);
  admit(lim, make_ticket("x", 1, 600), t0);
  enqueue(lim, make_ticket("a", 2, 10), t0);
  CHECK(lim.next_ready(t0) == t0 + 1s);
  enqueue(lim, make_ticket("b", 0, 300), t0);
  CHECK(lim.next_ready(t0) == t0 + 30s);
}

TEST_CASE("an estimate larger than a bucket can hold is refused", "[llm][limiter]") {
  limiter lim(make_config(10, 1000, 500), t0);
  auto too_big_in = lim.submit(make_ticket("a", 1, 1001, 0), t0);
  REQUIRE_FALSE(too_big_in.has_value());
  CHECK(too_big_in.err().code == errc::bad_request);
  CHECK(contains(too_big_in.err().message, "input_tokens estimate 1001"));
  CHECK(contains(too_big_in.err().message, "1000"));
  CHECK(contains(too_big_in.err().message, "never"));

  auto too_big_out = lim.submit(make_ticket("a", 1, 0, 501), t0);
  REQUIRE_FALSE(too_big_out.has_value());
  CHECK(too_big_out.err().code == errc::bad_request);
  CHECK(contains(too_big_out.err().message, "output_tokens estimate 501"));

  // Exactly the capacity is fine; refused requests took nothing.
  admit(lim, make_ticket("a", 1, 1000, 500), t0);
  CHECK(lim.waiting() == 0);
}

TEST_CASE("negative estimates and bad priorities are refused", "[llm][limiter]") {
  limiter lim(make_config(0), t0);
  auto negative = lim.submit(make_ticket("a", 1, -1, 0), t0);
  REQUIRE_FALSE(negative.has_value());
  CHECK(negative.err().code == errc::bad_request);
  CHECK(contains(negative.err().message, "input_tokens"));
  CHECK(lim.submit(make_ticket("a", 1, 0, -1), t0).err().code == errc::bad_request);

  for (int priority : {-1, 3, 100}) {
    auto bad = lim.submit(make_ticket("a", priority), t0);
    REQUIRE_FALSE(bad.has_value());
    CHECK(bad.err().code == errc::bad_request);
    CHECK(contains(bad.err().message, "priority " + std::to_string(priority)));
    CHECK(contains(bad.err().message, "0..2"));
  }
}

TEST_CASE("waiting counts per client across priorities", "[llm][limiter]") {
  limiter lim(make_config(1), t0);
  admit(lim, make_ticket("a"), t0);
  enqueue(lim, make_ticket("a", 0), t0);
  enqueue(lim, make_ticket("a", 2), t0);
  enqueue(lim, make_ticket("b", 1), t0);
  CHECK(lim.waiting() == 3);
  CHECK(lim.waiting("a") == 2);
  CHECK(lim.waiting("b") == 1);
  CHECK(lim.waiting("nobody") == 0);
  (void)lim.poll(t0 + 60s);
  CHECK(lim.waiting("a") == 1);
}

TEST_CASE("random traffic never exceeds the rate and keeps each client FIFO", "[llm][limiter]") {
  constexpr std::int64_t rpm = 30;
  constexpr std::int64_t itpm = 3000;
  limiter lim(make_config(rpm, itpm, 0, 50), t0);
  std::mt19937 rng(7);
  std::map<ticket_id, std::string> client_of;
  std::map<ticket_id, std::int64_t> input_of;
  std::map<std::string, ticket_id> last_admitted;
  std::int64_t admitted = 0;
  std::int64_t admitted_tokens = 0;

  auto record = [&](ticket_id id, time_point now) {
    const std::string& client = client_of.at(id);
    CHECK(last_admitted[client] < id);  // FIFO per client (all one priority)
    last_admitted[client] = id;
    ++admitted;
    admitted_tokens += input_of.at(id);
    // Capacity plus refill so far bounds every prefix of the run.
    const std::int64_t elapsed_ns = (now - t0).count();
    CHECK(admitted <= rpm + rpm * elapsed_ns / 60'000'000'000);
    CHECK(admitted_tokens <= itpm + itpm * elapsed_ns / 60'000'000'000);
  };

  time_point now = t0;
  for (int step = 0; step < 2000; ++step) {
    now += std::chrono::milliseconds(rng() % 2000);
    if (rng() % 3 != 0) {
      const std::string client = "c" + std::to_string(rng() % 5);
      const auto input = static_cast<std::int64_t>(rng() % 300);
      auto result = lim.submit(make_ticket(client, 1, input), now);
      if (!result) {
        CHECK(result.err().code == errc::too_large);
        continue;
      }
      client_of[result->id] = client;
      input_of[result->id] = input;
      if (result->admitted) {
        record(result->id, now);
      }
    }
    for (ticket_id id : lim.poll(now)) {
      record(id, now);
    }
  }
  CHECK(admitted > 100);
}
