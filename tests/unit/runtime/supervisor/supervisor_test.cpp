// The supervisor against a real CAF actor system: strategies, restart types,
// intensity, backoff, stash, deciders, ordered start and reverse shutdown.

#include "runtime/supervisor/supervisor.hpp"

#include <catch2/catch.hpp>

#include <mutex>
#include <stdexcept>
#include <vector>

#include "tests/support/actor_harness.hpp"

using namespace troupe;
using namespace std::chrono_literals;
using troupe::test::actor_harness;
using troupe::test::wait_until;

namespace {

struct ping_reply {
  uint32_t incarnation = 0;
  TROUPE_FIELDS(incarnation)
};

/// What the test workers record: how often each was started, and the order
/// in which incarnations ended.
struct journal {
  std::mutex mutex;
  std::map<std::string, uint32_t> starts;
  std::vector<std::string> stops;

  uint32_t started(const std::string& name) {
    std::lock_guard lock(mutex);
    return starts[name];
  }
  std::vector<std::string> stopped() {
    std::lock_guard lock(mutex);
    return stops;
  }
};

/// A worker answering t.ping with its incarnation number; t.throw throws;
/// t.quit ends it normally.
child_spec worker(const std::string& name, std::shared_ptr<journal> j,
                  restart_type restart = restart_type::permanent,
                  decider decide = default_decider) {
  child_spec spec;
  spec.name = name;
  spec.restart = restart;
  spec.decide = decide;
  spec.start = [name, j, decide](caf::actor_system& system, const std::string&) {
    uint32_t incarnation = 0;
    {
      std::lock_guard lock(j->mutex);
      incarnation = ++j->starts[name];
    }
    return system.spawn(
        [incarnation, decide, name, j](caf::event_based_actor* self) -> caf::behavior {
          self->attach_functor([name, j] {
            std::lock_guard lock(j->mutex);
            j->stops.push_back(name);
          });
          auto table = std::make_shared<handler_table>();
          table->on<empty_body>("t.ping", [incarnation](const empty_body&) {
            return expected<ping_reply>(ping_reply{incarnation});
          });
          table->on<empty_body>("t.throw", [](const empty_body&) -> expected<ping_reply> {
            throw std::runtime_error("handler bug");
          });
          table->on<empty_body>("t.quit", [self](const empty_body&) {
            self->quit();  // a normal exit
            return expected<empty_body>(empty_body{});
          });
          return serve(self, table, decide);
        });
  };
  return spec;
}

restart_policy fast_policy() {
  restart_policy p;
  p.restarts_max = 10;
  p.period = 10s;
  p.backoff_min = 1ms;
  p.backoff_max = 5ms;
  p.backoff_jitter = 0.0;
  p.shutdown_timeout = 2s;
  return p;
}

supervisor_spec spec_of(strategy s, std::vector<child_spec> children,
                        restart_policy policy = fast_policy()) {
  supervisor_spec spec;
  spec.strat = s;
  spec.policy = policy;
  spec.children = std::move(children);
  return spec;
}

uint32_t incarnation_of(actor_harness& h, const std::string& path) {
  auto reply = h.call(path, make_envelope("t.ping", empty_body{}));
  if (reply.is_error()) {
    FAIL("t.ping to " << path << " failed: " << read_error(reply).message);
  }
  return decode<ping_reply>(reply.body)->incarnation;
}

void quit_normally(actor_harness& h, const std::string& path) {
  auto reply = h.call(path, make_envelope("t.quit", empty_body{}));
  REQUIRE_FALSE(reply.is_error());
}

}  // namespace

TEST_CASE("children start in order under stable paths") {
  actor_harness h;
  auto j = std::make_shared<journal>();
  h.start_root(spec_of(strategy::one_for_one, {worker("a", j), worker("b", j), worker("c", j)}));
  REQUIRE(wait_until([&] { return h.state_of("c") == actor_state::running; }));
  auto children = h.registry().children("");
  REQUIRE(children.size() == 3);
  CHECK(children[0].path == "a");
  CHECK(children[1].path == "b");
  CHECK(children[2].path == "c");
  CHECK(incarnation_of(h, "b") == 1);
}

TEST_CASE("one_for_one restarts only the failed child") {
  actor_harness h;
  auto j = std::make_shared<journal>();
  h.start_root(spec_of(strategy::one_for_one, {worker("a", j), worker("b", j), worker("c", j)}));
  REQUIRE(wait_until([&] { return h.state_of("c") == actor_state::running; }));
  h.crash("b");
  REQUIRE(wait_until([&] { return j->started("b") == 2; }));
  REQUIRE(wait_until([&] { return h.state_of("b") == actor_state::running; }));
  CHECK(incarnation_of(h, "b") == 2);
  CHECK(j->started("a") == 1);
  CHECK(j->started("c") == 1);
  CHECK(h.restarts_of("b") == 1);
  CHECK(h.registry().info("b")->last_failure == "test crash");
}

TEST_CASE("one_for_all restarts every child") {
  actor_harness h;
  auto j = std::make_shared<journal>();
  h.start_root(spec_of(strategy::one_for_all, {worker("a", j), worker("b", j), worker("c", j)}));
  REQUIRE(wait_until([&] { return h.state_of("c") == actor_state::running; }));
  h.crash("b");
  REQUIRE(wait_until(
      [&] { return j->started("a") == 2 && j->started("b") == 2 && j->started("c") == 2; }));
  REQUIRE(wait_until([&] { return h.state_of("c") == actor_state::running; }));
  CHECK(incarnation_of(h, "a") == 2);
  CHECK(incarnation_of(h, "c") == 2);
}

TEST_CASE("rest_for_one restarts the failed child and those started after it") {
  actor_harness h;
  auto j = std::make_shared<journal>();
  h.start_root(spec_of(strategy::rest_for_one, {worker("a", j), worker("b", j), worker("c", j)}));
  REQUIRE(wait_until([&] { return h.state_of("c") == actor_state::running; }));
  h.crash("b");
  REQUIRE(wait_until([&] { return j->started("b") == 2 && j->started("c") == 2; }));
  REQUIRE(wait_until([&] { return h.state_of("c") == actor_state::running; }));
  CHECK(j->started("a") == 1);
  CHECK(incarnation_of(h, "c") == 2);
}

TEST_CASE("restart types: permanent always, transient after failures, temporary never") {
  actor_harness h;
  auto j = std::make_shared<journal>();
  h.start_root(spec_of(strategy::one_for_one, {worker("perm", j, restart_type::permanent),
                                               worker("trans", j, restart_type::transient),
                                               worker("temp", j, restart_type::temporary)}));
  REQUIRE(wait_until([&] { return h.state_of("temp") == actor_state::running; }));

  SECTION("normal exits") {
    quit_normally(h, "perm");
    quit_normally(h, "trans");
    quit_normally(h, "temp");
    REQUIRE(wait_until([&] { return j->started("perm") == 2; }));
    REQUIRE(wait_until([&] {
      return h.state_of("trans") == actor_state::stopped &&
             h.state_of("temp") == actor_state::stopped;
    }));
    CHECK(j->started("trans") == 1);
    CHECK(j->started("temp") == 1);
  }
  SECTION("abnormal exits") {
    h.crash("trans");
    h.crash("temp");
    REQUIRE(wait_until([&] { return j->started("trans") == 2; }));
    REQUIRE(wait_until([&] { return h.state_of("temp") == actor_state::stopped; }));
    CHECK(j->started("temp") == 1);
  }
}

TEST_CASE("a group restart does not revive a child that was stopped for good") {
  actor_harness h;
  auto j = std::make_shared<journal>();
  h.start_root(
      spec_of(strategy::one_for_all, {worker("temp", j, restart_type::temporary), worker("b", j)}));
  REQUIRE(wait_until([&] { return h.state_of("b") == actor_state::running; }));
  quit_normally(h, "temp");
  REQUIRE(wait_until([&] { return h.state_of("temp") == actor_state::stopped; }));
  h.crash("b");
  REQUIRE(
      wait_until([&] { return j->started("b") == 2 && h.state_of("b") == actor_state::running; }));
  CHECK(j->started("temp") == 1);
  CHECK(h.state_of("temp") == actor_state::stopped);
}

TEST_CASE("more restarts than the intensity allows: the supervisor gives up and fails") {
  actor_harness h;
  auto j = std::make_shared<journal>();
  auto policy = fast_policy();
  policy.restarts_max = 2;
  auto root =
      h.start_root(spec_of(strategy::one_for_one, {worker("a", j), worker("b", j)}, policy));
  caf::scoped_actor self{h.system()};
  self->monitor(root);
  for (uint32_t i = 1; i <= 3; ++i) {
    REQUIRE(wait_until(
        [&] { return j->started("a") == i && h.state_of("a") == actor_state::running; }));
    h.crash("a");
  }
  std::string reason;
  self->receive([&](caf::down_msg& down) { reason = error_text(h.system(), down.reason); },
                caf::after(5s) >> [] { FAIL("the supervisor did not give up"); });
  CHECK(reason.find("more than 2 restarts in 10000 ms") != std::string::npos);
  CHECK(reason.find("'a': test crash") != std::string::npos);
  // It stopped its other children on the way out.
  REQUIRE(wait_until([&] { return j->stopped().size() >= 4; }));
}

TEST_CASE("a nested supervisor that gives up is restarted by its parent") {
  actor_harness h;
  auto j = std::make_shared<journal>();
  auto inner_policy = fast_policy();
  inner_policy.restarts_max = 1;
  auto inner = spec_of(strategy::one_for_one, {worker("w", j)}, inner_policy);
  h.start_root(spec_of(strategy::one_for_one, {supervisor_child("inner", h.ctx(), inner)}));
  REQUIRE(wait_until([&] { return h.state_of("inner/w") == actor_state::running; }));
  h.crash("inner/w");
  REQUIRE(wait_until(
      [&] { return j->started("w") == 2 && h.state_of("inner/w") == actor_state::running; }));
  h.crash("inner/w");  // second restart within the period: inner gives up
  REQUIRE(wait_until([&] { return h.restarts_of("inner") == 1; }));
  REQUIRE(wait_until([&] { return h.state_of("inner/w") == actor_state::running; }));
  CHECK(j->started("w") == 3);
  CHECK(h.registry().info("inner")->last_failure.find("more than 1 restarts") != std::string::npos);
  CHECK(incarnation_of(h, "inner/w") == 3);
}

TEST_CASE(
    "a message sent while its target restarts is stashed and served by the next incarnation") {
  actor_harness h;
  auto j = std::make_shared<journal>();
  auto policy = fast_policy();
  policy.backoff_min = 300ms;
  policy.backoff_max = 300ms;
  h.start_root(spec_of(strategy::one_for_one, {worker("a", j)}, policy));
  REQUIRE(wait_until([&] { return h.state_of("a") == actor_state::running; }));
  h.crash("a");  // first restart: immediate
  REQUIRE(
      wait_until([&] { return j->started("a") == 2 && h.state_of("a") == actor_state::running; }));
  h.crash("a");  // second: waits 300 ms
  REQUIRE(wait_until([&] { return h.state_of("a") == actor_state::restarting; }));
  CHECK(incarnation_of(h, "a") == 3);
}

TEST_CASE("a full stash answers with an explicit restarting error") {
  actor_harness h;
  auto j = std::make_shared<journal>();
  auto policy = fast_policy();
  policy.backoff_min = 500ms;
  policy.backoff_max = 500ms;
  policy.stash_max = 1;
  h.start_root(spec_of(strategy::one_for_one, {worker("a", j)}, policy));
  REQUIRE(wait_until([&] { return h.state_of("a") == actor_state::running; }));
  h.crash("a");
  REQUIRE(
      wait_until([&] { return j->started("a") == 2 && h.state_of("a") == actor_state::running; }));
  h.crash("a");
  REQUIRE(wait_until([&] { return h.state_of("a") == actor_state::restarting; }));
  auto first = std::async(std::launch::async,
                          [&] { return h.call("a", make_envelope("t.ping", empty_body{})); });
  REQUIRE(wait_until([&] { return h.registry().info("a")->stashed == 1; }));
  auto second = h.call("a", make_envelope("t.ping", empty_body{}));
  REQUIRE(second.is_error());
  auto err = read_error(second);
  CHECK(err.code == errc::restarting);
  CHECK(err.message == "actor 'a' is restarting and 1 messages already wait for it");
  auto served = first.get();
  REQUIRE_FALSE(served.is_error());
  CHECK(decode<ping_reply>(served.body)->incarnation == 3);
}

TEST_CASE("deciders: stop leaves the child stopped, escalate fails the supervisor") {
  actor_harness h;
  auto j = std::make_shared<journal>();
  auto stop = [](const failure&) { return directive::stop; };
  auto escalate = [](const failure&) { return directive::escalate; };
  auto root = h.start_root(
      spec_of(strategy::one_for_one, {worker("s", j, restart_type::permanent, stop),
                                      worker("e", j, restart_type::permanent, escalate)}));
  REQUIRE(wait_until([&] { return h.state_of("e") == actor_state::running; }));
  h.crash("s");
  REQUIRE(wait_until([&] { return h.state_of("s") == actor_state::stopped; }));
  CHECK(j->started("s") == 1);
  auto reply = h.call("s", make_envelope("t.ping", empty_body{}));
  REQUIRE(reply.is_error());
  CHECK(read_error(reply).code == errc::unavailable);

  caf::scoped_actor self{h.system()};
  self->monitor(root);
  h.crash("e");
  std::string reason;
  self->receive([&](caf::down_msg& down) { reason = error_text(h.system(), down.reason); },
                caf::after(5s) >> [] { FAIL("escalation did not fail the supervisor"); });
  CHECK(reason == "child 'e' escalated: test crash");
}

TEST_CASE("a handler that throws: resume keeps the incarnation, restart replaces it") {
  actor_harness h;
  auto j = std::make_shared<journal>();
  auto resume = [](const failure& f) {
    return f.kind == failure_kind::exception ? directive::resume : directive::restart;
  };
  h.start_root(spec_of(strategy::one_for_one,
                       {worker("r", j, restart_type::permanent, resume), worker("x", j)}));
  REQUIRE(wait_until([&] { return h.state_of("x") == actor_state::running; }));

  auto resumed = h.call("r", make_envelope("t.throw", empty_body{}));
  REQUIRE(resumed.is_error());
  CHECK(read_error(resumed).message == "handler for 't.throw' threw: handler bug");
  CHECK(incarnation_of(h, "r") == 1);

  auto restarted = h.call("x", make_envelope("t.throw", empty_body{}));
  REQUIRE(restarted.is_error());
  CHECK(read_error(restarted).code == errc::internal);
  REQUIRE(
      wait_until([&] { return j->started("x") == 2 && h.state_of("x") == actor_state::running; }));
  CHECK(incarnation_of(h, "x") == 2);
}

TEST_CASE("shutdown stops children in reverse start order") {
  actor_harness h;
  auto j = std::make_shared<journal>();
  h.start_root(spec_of(strategy::one_for_one, {worker("a", j), worker("b", j), worker("c", j)}));
  REQUIRE(wait_until([&] { return h.state_of("c") == actor_state::running; }));
  REQUIRE(h.stop_root());
  CHECK(j->stopped() == std::vector<std::string>{"c", "b", "a"});
}

TEST_CASE("a dynamic supervisor adds children at run time") {
  actor_harness h;
  auto j = std::make_shared<journal>();
  h.start_root(spec_of(strategy::one_for_one,
                       {supervisor_child("pool", h.ctx(), spec_of(strategy::dynamic, {}))}));
  REQUIRE(wait_until([&] { return h.state_of("pool") == actor_state::running; }));
  auto pool = h.registry().find("pool")->current;
  caf::scoped_actor self{h.system()};
  auto start = [&](child_spec spec) {
    envelope out;
    self->request(pool, 2s, start_child_atom::value, std::move(spec))
        .receive([&](std::string& type, std::string& body,
                     uint64_t id) { out = from_fields(type, body, id); },
                 [&](caf::error& err) { FAIL(error_text(h.system(), err)); });
    return out;
  };
  auto started = start(worker("s1", j, restart_type::temporary));
  REQUIRE_FALSE(started.is_error());
  CHECK(started.type == sup_started_type);
  CHECK(incarnation_of(h, "pool/s1") == 1);

  auto duplicate = start(worker("s1", j, restart_type::temporary));
  REQUIRE(duplicate.is_error());
  CHECK(read_error(duplicate).code == errc::conflict);

  h.crash("pool/s1");  // temporary: removed, not restarted
  REQUIRE(wait_until([&] { return !h.registry().find("pool/s1"); }));
  CHECK(j->started("s1") == 1);
}

TEST_CASE("an unknown path is answered with unknown_actor") {
  actor_harness h;
  h.start_root(spec_of(strategy::one_for_one, {}));
  // While the root is still starting, a path below it may yet appear: the
  // answer is then `restarting`. Once it runs and has started its (no)
  // children, an unknown path is unknown.
  REQUIRE(wait_until([&] { return h.registry().tree_ready(0); }));
  auto reply = h.call("nobody/here", make_envelope("t.ping", empty_body{}));
  REQUIRE(reply.is_error());
  CHECK(read_error(reply).code == errc::unknown_actor);
}
