// The asker against a real actor system: replies reach their handler once,
// deadlines of several timeout values expire in deadline order and not
// before, answered requests are never timed out afterwards, and a request to
// an incarnation that just crashed is still served.

#include "runtime/actor/ask.hpp"

#include <catch2/catch.hpp>

#include <chrono>
#include <future>
#include <mutex>
#include <thread>
#include <vector>

#include "runtime/actor/envelope_message.hpp"
#include "runtime/actor/serve.hpp"
#include "tests/support/actor_harness.hpp"

using namespace troupe;
using namespace std::chrono_literals;
using troupe::test::actor_harness;
using troupe::test::caller_actor;
using troupe::test::wait_until;

namespace {

using clock_type = std::chrono::steady_clock;

struct count_body {
  uint32_t n = 0;
  TROUPE_FIELDS(n)
};

struct silent_state {
  std::vector<caf::response_promise> held;
};

/// Answers t.ping at once; holds every other request without answering.
child_spec half_silent(const std::string& name) {
  child_spec spec;
  spec.name = name;
  spec.start = [](caf::actor_system& system, const std::string&) {
    return system.spawn([](caf::stateful_actor<silent_state>* self) -> caf::behavior {
      return {[self](const std::string& type, const std::string&, uint64_t correlation_id) {
        auto promise = self->make_response_promise();
        if (type == "t.ping") {
          deliver(promise, make_envelope("t.ping.reply", empty_body{}, correlation_id));
        } else {
          self->state.held.push_back(promise);
        }
        return promise;
      }};
    });
  };
  return spec;
}

/// Answers t.count with its incarnation's number of requests so far.
child_spec counting(const std::string& name) {
  child_spec spec;
  spec.name = name;
  spec.start = [](caf::actor_system& system, const std::string&) {
    auto table = std::make_shared<handler_table>();
    auto seen = std::make_shared<uint32_t>(0);
    table->on<empty_body>(
        "t.count", [seen](const empty_body&) { return expected<count_body>(count_body{++*seen}); });
    return system.spawn(
        [table](caf::event_based_actor* self) -> caf::behavior { return serve(self, table); });
  };
  return spec;
}

supervisor_spec spec_of(std::vector<child_spec> children) {
  supervisor_spec spec;
  spec.children = std::move(children);
  return spec;
}

/// What reached the reply handlers, in arrival order.
struct replies {
  struct entry {
    std::string tag;
    envelope reply;
    clock_type::duration after;
  };
  std::mutex mutex;
  std::vector<entry> got;
  const clock_type::time_point start = clock_type::now();

  auto collector(std::string tag) {
    return [this, tag = std::move(tag)](envelope reply) {
      std::lock_guard lock(mutex);
      got.push_back(entry{tag, std::move(reply), clock_type::now() - start});
    };
  }
  size_t size() {
    std::lock_guard lock(mutex);
    return got.size();
  }
};

/// Runs `body` once inside a fresh actor that owns an asker.
template <class Body>
void run_asking(actor_harness& h, Body body) {
  auto ctx = h.ctx();
  h.system().spawn([ctx, body](caller_actor* self) {
    self->state.requests = asker{ctx->registry};
    body(self);
  });
}

}  // namespace

TEST_CASE("requests with several timeouts expire in deadline order, none early") {
  actor_harness h;
  h.start_root(spec_of({half_silent("quiet")}));
  REQUIRE(wait_until([&] { return h.state_of("quiet") == actor_state::running; }));
  replies r;
  run_asking(h, [&r](caller_actor* self) {
    for (auto ms : {300, 100, 200}) {
      self->state.requests.ask(self, "quiet", make_envelope("t.hold", empty_body{}),
                               std::chrono::milliseconds(ms), r.collector(std::to_string(ms)));
    }
  });
  REQUIRE(wait_until([&] { return r.size() == 3; }, 10s));
  std::lock_guard lock(r.mutex);
  REQUIRE(r.got[0].tag == "100");
  REQUIRE(r.got[1].tag == "200");
  REQUIRE(r.got[2].tag == "300");
  for (const auto& e : r.got) {
    REQUIRE(e.reply.is_error());
    auto err = read_error(e.reply);
    CHECK(err.code == errc::timeout);
    CHECK(err.message == "no reply from 'quiet' within " + e.tag + " ms");
    CHECK(e.after >= std::chrono::milliseconds(std::stoi(e.tag)));
  }
}

TEST_CASE("answered requests reach their handler once and never time out afterwards") {
  actor_harness h;
  h.start_root(spec_of({half_silent("quiet")}));
  REQUIRE(wait_until([&] { return h.state_of("quiet") == actor_state::running; }));
  replies r;
  constexpr int sent = 200;
  run_asking(h, [&r](caller_actor* self) {
    for (int i = 0; i < sent; ++i) {
      self->state.requests.ask(self, "quiet", make_envelope("t.ping", empty_body{}), 150ms,
                               r.collector("ping"));
    }
    // One that is never answered keeps a deadline due after the others'.
    self->state.requests.ask(self, "quiet", make_envelope("t.hold", empty_body{}), 400ms,
                             r.collector("hold"));
  });
  REQUIRE(wait_until([&] { return r.size() == sent + 1; }, 10s));
  std::this_thread::sleep_for(300ms);  // past every deadline
  std::lock_guard lock(r.mutex);
  REQUIRE(r.got.size() == sent + 1);
  for (int i = 0; i < sent; ++i) {
    REQUIRE(r.got[i].tag == "ping");
    REQUIRE_FALSE(r.got[i].reply.is_error());
  }
  CHECK(r.got.back().tag == "hold");
  CHECK(read_error(r.got.back().reply).code == errc::timeout);
}

TEST_CASE("an asker whose requests are all answered waits for none of them") {
  actor_harness h;
  h.start_root(spec_of({half_silent("quiet")}));
  REQUIRE(wait_until([&] { return h.state_of("quiet") == actor_state::running; }));
  std::promise<size_t> sent_promise;
  std::promise<size_t> left_promise;
  auto sent = sent_promise.get_future();
  auto left = left_promise.get_future();
  auto answered = std::make_shared<int>(0);
  run_asking(h, [&sent_promise, &left_promise, answered](caller_actor* self) {
    for (int i = 0; i < 10; ++i) {
      self->state.requests.ask(self, "quiet", make_envelope("t.ping", empty_body{}), 5s,
                               [self, &left_promise, answered](envelope) {
                                 if (++*answered == 10) {
                                   left_promise.set_value(self->state.requests.waiting());
                                   self->quit();
                                 }
                               });
    }
    // No reply can arrive before this handler returns.
    sent_promise.set_value(self->state.requests.waiting());
  });
  REQUIRE(sent.wait_for(10s) == std::future_status::ready);
  CHECK(sent.get() == 10);
  REQUIRE(left.wait_for(10s) == std::future_status::ready);
  CHECK(left.get() == 0);
}

TEST_CASE("a request right after its target crashed is served by the next incarnation") {
  actor_harness h;
  auto spec = spec_of({counting("c")});
  spec.policy.restarts_max = 100;
  spec.policy.backoff_min = 1ms;
  spec.policy.backoff_max = 1ms;
  h.start_root(spec);
  replies r;
  for (int round = 0; round < 20; ++round) {
    REQUIRE(wait_until([&] { return h.state_of("c") == actor_state::running; }));
    // The second request may find the handle the asker cached for the first
    // already dead (it is then retried through the supervisor), or the
    // registry already pointing at the next incarnation.
    auto ctx = h.ctx();
    run_asking(h, [&r, ctx](caller_actor* self) {
      self->state.requests.ask(
          self, "c", make_envelope("t.count", empty_body{}), 5s, [self, &r, ctx](envelope reply) {
            r.collector("first")(std::move(reply));
            caf::anon_send(
                ctx->registry.current("c"),
                caf::exit_msg{{},
                              caf::make_error(caf::sec::runtime_error, std::string("test crash"))});
            self->state.requests.ask(self, "c", make_envelope("t.count", empty_body{}), 5s,
                                     r.collector("second"));
          });
    });
    REQUIRE(wait_until([&] { return r.size() == size_t(2 * (round + 1)); }, 10s));
  }
  std::lock_guard lock(r.mutex);
  for (const auto& e : r.got) {
    INFO(e.tag);
    REQUIRE_FALSE(e.reply.is_error());
  }
  CHECK(h.restarts_of("c") == 20);
}
