// serve() answers whoever sent the envelope, the way each kind of sender
// expects: a plain send gets a plain message back, a request gets its
// response (correlation id kept), a request delegated through another actor
// is answered straight to the original requester, and an anonymous send is
// handled without an answer and without harm to the actor.

#include "runtime/actor/serve.hpp"

#include <catch2/catch.hpp>

#include <chrono>
#include <future>
#include <string>

#include "runtime/actor/envelope_message.hpp"
#include "tests/support/actor_harness.hpp"

using namespace troupe;
using namespace std::chrono_literals;
using troupe::test::actor_harness;

namespace {

struct number {
  uint64_t n = 0;
  TROUPE_FIELDS(n)
};

/// An actor answering t.double with twice its number.
caf::actor spawn_doubler(caf::actor_system& system, std::shared_ptr<std::atomic<int>> handled) {
  auto table = std::make_shared<handler_table>();
  table->on<number>("t.double", [handled](const number& in) {
    ++*handled;
    return expected<number>(number{in.n * 2});
  });
  return system.spawn(
      [table](caf::event_based_actor* self) -> caf::behavior { return serve(self, table); });
}

uint64_t number_in(const envelope& e) {
  auto body = decode<number>(e.body);
  REQUIRE(body.has_value());
  return body->n;
}

/// Sends `e` as a request from `self` to `dest` and waits for the answer.
envelope request(caf::scoped_actor& self, const caf::actor& dest, const envelope& e) {
  envelope reply;
  self->request(dest, 3s, e.type, e.body, e.correlation_id)
      .receive([&](std::string& type, std::string& body,
                   uint64_t correlation_id) { reply = from_fields(type, body, correlation_id); },
               [&](caf::error& err) { FAIL("request failed: " << self->system().render(err)); });
  return reply;
}

}  // namespace

TEST_CASE("serve answers a plain send with a plain message to the sender", "[serve]") {
  actor_harness h;
  auto handled = std::make_shared<std::atomic<int>>(0);
  auto doubler = spawn_doubler(h.system(), handled);
  caf::scoped_actor self{h.system()};

  auto e = make_envelope("t.double", number{21}, 7);
  self->send(doubler, e.type, e.body, e.correlation_id);
  bool got = false;
  self->receive(
      [&](std::string& type, std::string& body, uint64_t correlation_id) {
        // A plain message, not a response: a request's handler would not see it.
        CHECK_FALSE(self->current_mailbox_element()->mid.is_response());
        CHECK(type == "t.double.reply");
        CHECK(correlation_id == 7);
        CHECK(number_in(envelope{type, body, correlation_id}) == 42);
        got = true;
      },
      caf::after(3s) >> [] {});
  CHECK(got);
  caf::anon_send_exit(doubler, caf::exit_reason::user_shutdown);
}

TEST_CASE("serve answers a request with its response, errors included", "[serve]") {
  actor_harness h;
  auto handled = std::make_shared<std::atomic<int>>(0);
  auto doubler = spawn_doubler(h.system(), handled);
  caf::scoped_actor self{h.system()};

  for (uint64_t i = 1; i <= 50; ++i) {
    auto reply = request(self, doubler, make_envelope("t.double", number{i}, 1000 + i));
    CHECK(reply.type == "t.double.reply");
    CHECK(reply.correlation_id == 1000 + i);
    CHECK(number_in(reply) == 2 * i);
  }
  // Errors take the same way back.
  auto unknown = request(self, doubler, make_envelope("t.triple", number{1}, 99));
  CHECK(unknown.is_error());
  CHECK(unknown.correlation_id == 99);
  CHECK(read_error(unknown).code == errc::unknown_type);
  caf::anon_send_exit(doubler, caf::exit_reason::user_shutdown);
}

TEST_CASE("serve answers a delegated request straight to the original requester", "[serve]") {
  actor_harness h;
  auto handled = std::make_shared<std::atomic<int>>(0);
  auto doubler = spawn_doubler(h.system(), handled);
  // Forwards every envelope to the doubler and never answers itself.
  auto front = h.system().spawn([doubler](caf::event_based_actor* self) -> caf::behavior {
    return {[self, doubler](std::string& type, std::string& body, uint64_t correlation_id) {
      auto promise = self->make_response_promise();
      delegate(promise, doubler, from_fields(type, body, correlation_id));
      return promise;
    }};
  });
  caf::scoped_actor self{h.system()};

  auto e = make_envelope("t.double", number{50}, 5);
  const uint64_t doubled = number_in(request(self, front, e));
  CHECK(doubled == 100);
  caf::anon_send_exit(front, caf::exit_reason::user_shutdown);
  caf::anon_send_exit(doubler, caf::exit_reason::user_shutdown);
}

TEST_CASE("serve handles an anonymous send and keeps serving", "[serve]") {
  actor_harness h;
  auto handled = std::make_shared<std::atomic<int>>(0);
  auto doubler = spawn_doubler(h.system(), handled);

  auto e = make_envelope("t.double", number{1});
  for (int i = 0; i < 10; ++i) {
    caf::anon_send(doubler, e.type, e.body, e.correlation_id);
  }
  REQUIRE(troupe::test::wait_until([&] { return handled->load() == 10; }, 3s));

  caf::scoped_actor self{h.system()};
  const uint64_t doubled = number_in(request(self, doubler, e));
  CHECK(doubled == 2);
  caf::anon_send_exit(doubler, caf::exit_reason::user_shutdown);
}

TEST_CASE("serve never answers a plain-sent reply or error with an error", "[serve]") {
  actor_harness h;
  auto handled = std::make_shared<std::atomic<int>>(0);
  auto doubler = spawn_doubler(h.system(), handled);
  caf::scoped_actor self{h.system()};

  // Two actors answering each other's stray answers with errors would never
  // stop; the doubler has no handler for these, and answers nothing.
  for (const auto& stray : {make_envelope("t.double.reply", number{1}, 1),
                            make_error_envelope(make_error(errc::internal, "x"), 2)}) {
    self->send(doubler, stray.type, stray.body, stray.correlation_id);
  }
  self->receive([&](caf::message& m) { FAIL("unexpected answer: " << to_string(m)); },
                caf::after(100ms) >> [] {});

  // A request is always answered, even one with such a type.
  auto reply = request(self, doubler, make_envelope("t.double.reply", number{1}, 3));
  CHECK(reply.is_error());
  CHECK(read_error(reply).code == errc::unknown_type);
  // A plain send of an unknown type that is not an answer still gets its error.
  auto e = make_envelope("t.halve", number{4}, 4);
  self->send(doubler, e.type, e.body, e.correlation_id);
  bool got_error = false;
  self->receive(
      [&](std::string& type, std::string& body, uint64_t correlation_id) {
        got_error = read_error(from_fields(type, body, correlation_id)).code == errc::unknown_type;
      },
      caf::after(3s) >> [] {});
  CHECK(got_error);
  caf::anon_send_exit(doubler, caf::exit_reason::user_shutdown);
}
