// A strand actor on CAF's test coordinator, with an io_context the test
// polls as its strand: its turns happen there and nowhere else.

#include "runtime/net/strand_actor.hpp"

#include <boost/asio/io_context.hpp>
#include <caf/actor_companion.hpp>
#include <catch2/catch.hpp>

#include <atomic>
#include <string>
#include <vector>

#include "runtime/net/io_threads.hpp"
#include "tests/support/deterministic.hpp"
#include "tests/support/wait.hpp"

using namespace troupe;
using troupe::test::deterministic_system;

namespace {

struct fixture {
  deterministic_system sys;
  boost::asio::io_context strand;
  std::vector<std::string> seen;

  /// A strand actor that records the type of each message it handles, and
  /// ends on "quit".
  std::unique_ptr<strand_actor> make() {
    auto out = std::make_unique<strand_actor>(sys.system(), strand.get_executor());
    auto* self = out->self();
    self->become([this, self](const std::string& type, const std::string&, uint64_t) {
      seen.push_back(type);
      if (type == "quit") {
        self->quit();
      }
    });
    return out;
  }

  /// Runs the actors and the strand until neither has anything left to do.
  void settle() {
    while (sys.run() + strand.poll() > 0) {
      strand.restart();
    }
    strand.restart();
  }
};

}  // namespace

TEST_CASE("strand actor: its messages are handled on its executor, in order, only there") {
  fixture f;
  auto a = f.make();
  for (const auto* type : {"one", "two", "three"}) {
    f.sys.send(a->handle(), envelope{type, "", 0});
  }
  CHECK(f.seen.empty());  // the scheduler ran, the strand did not
  CHECK(f.strand.poll() == 3);
  CHECK(f.seen == std::vector<std::string>{"one", "two", "three"});
}

TEST_CASE("strand actor: its requests get their answers, or an error when the one asked is gone") {
  fixture f;
  auto a = f.make();
  std::vector<std::string> replies;
  a->self()
      ->request(f.sys.self(), caf::infinite, std::string("ping"), std::string(), uint64_t{7})
      .then([&](std::string& type, std::string&,
                uint64_t id) { replies.push_back(type + " " + std::to_string(id)); },
            [&](caf::error&) { replies.push_back("error"); });
  f.settle();
  auto asked = f.sys.answer_next(envelope{"pong", "", 7});
  REQUIRE(asked);
  CHECK(asked->type == "ping");
  f.settle();
  CHECK(replies == std::vector<std::string>{"pong 7"});

  auto dead = f.sys.system().spawn([](caf::event_based_actor*) -> caf::behavior {
    return {[](const std::string&, const std::string&, uint64_t) {}};
  });
  caf::anon_send_exit(dead, caf::exit_reason::user_shutdown);
  f.settle();
  a->self()
      ->request(dead, caf::infinite, std::string("ping"), std::string(), uint64_t{8})
      .then([&](std::string&, std::string&, uint64_t) { replies.push_back("?"); },
            [&](caf::error&) { replies.push_back("error"); });
  f.settle();
  CHECK(replies == std::vector<std::string>{"pong 7", "error"});
}

TEST_CASE("strand actor: letting go ends it, its monitors hear it, a request to it gets an error") {
  fixture f;
  auto a = f.make();
  auto handle = a->handle();
  caf::scoped_actor watcher{f.sys.system()};
  watcher->monitor(handle);
  f.sys.send(handle, envelope{"before", "", 0});  // still on its way to the strand
  a.reset();
  f.settle();
  bool down = false;
  watcher->receive([&](caf::down_msg& d) { down = d.source == handle.address(); },
                   caf::after(std::chrono::seconds(0)) >> [] {});
  CHECK(down);
  CHECK(f.seen.empty());  // what was on its way is dropped
  // An error, not a request kept for ever (which sys.call reports as a timeout).
  auto answer = f.sys.call(handle, envelope{"after", "", 0});
  REQUIRE(answer.is_error());
  CHECK(read_error(answer).code == errc::internal);
}

TEST_CASE("strand actor: one that ends itself answers later requests with an error") {
  fixture f;
  auto a = f.make();
  f.sys.send(a->handle(), envelope{"quit", "", 0});
  f.settle();
  CHECK(f.seen == std::vector<std::string>{"quit"});
  // The request reaches the strand (the handler stays), and is answered there.
  caf::scoped_actor asker{f.sys.system()};
  auto pending =
      asker->request(a->handle(), caf::infinite, std::string("after"), std::string(), uint64_t{0});
  f.settle();
  REQUIRE_FALSE(asker->mailbox().empty());
  bool refused = false;
  pending.receive([](std::string&, std::string&, uint64_t) {},
                  [&](caf::error& e) { refused = e == caf::sec::request_receiver_down; });
  CHECK(refused);
  CHECK(f.seen.size() == 1);
}

namespace {

struct recorder_state {
  std::vector<std::string> seen;
  static inline const char* name = "test.recorder";
};
using recorder = caf::stateful_actor<recorder_state, strand_base>;

}  // namespace

TEST_CASE("strand actor spawned: it starts on the strand, and awaits with later messages kept") {
  fixture f;
  std::vector<std::string>* seen = nullptr;
  bool started = false;
  auto a = spawn_on_strand(f.sys.system(), f.strand.get_executor(), [&](recorder* self) {
    started = true;
    seen = &self->state.seen;
    // Nothing else is handled until the answer: later messages wait.
    self->request(f.sys.self(), caf::infinite, std::string("hello"), std::string(), uint64_t{1})
        .await([self](std::string& type, std::string&, uint64_t) {
          self->state.seen.push_back("answer " + type);
        });
    return caf::behavior{[self](const std::string& type, const std::string&, uint64_t) {
      self->state.seen.push_back(type);
      if (type == "quit") {
        self->quit();
      }
    }};
  });
  CHECK_FALSE(started);  // spawned, not yet run: its first turn is on the strand
  f.sys.send(a, envelope{"one", "", 0});
  f.sys.send(a, envelope{"two", "", 0});
  CHECK_FALSE(started);
  f.settle();
  REQUIRE(started);
  CHECK(seen->empty());  // both wait for the answer
  auto asked = f.sys.answer_next(envelope{"hi", "", 1});
  REQUIRE(asked);
  CHECK(asked->type == "hello");
  f.settle();
  CHECK(*seen == std::vector<std::string>{"answer hi", "one", "two"});

  caf::scoped_actor watcher{f.sys.system()};
  watcher->monitor(a);
  f.sys.send(a, envelope{"quit", "", 0});
  f.settle();
  bool down = false;
  watcher->receive([&](caf::down_msg& d) { down = d.source == a.address() && !d.reason; },
                   caf::after(std::chrono::seconds(0)) >> [] {});
  CHECK(down);
  // An error from the ended actor, not a request kept for ever (which
  // sys.call reports as a timeout).
  f.sys.also_run([&] {
    const auto n = f.strand.poll();
    f.strand.restart();
    return n;
  });
  auto answer = f.sys.call(a, envelope{"after", "", 0});
  REQUIRE(answer.is_error());
  CHECK(read_error(answer).code == errc::internal);
  f.sys.also_run(nullptr);
}

TEST_CASE("strand actor spawned: an exit message or an exception ends it, with its reason") {
  fixture f;
  auto make = [&] {
    return spawn_on_strand(f.sys.system(), f.strand.get_executor(), [](recorder* self) {
      return caf::behavior{[](const std::string& type, const std::string&, uint64_t) {
        if (type == "throw") {
          throw std::runtime_error("boom");
        }
      }};
    });
  };
  caf::scoped_actor watcher{f.sys.system()};
  auto reason_of_end = [&](const caf::actor& a) {
    caf::error reason;
    watcher->receive([&](caf::down_msg& d) { reason = d.reason; },
                     caf::after(std::chrono::seconds(0)) >> [&] { reason = caf::sec::none; });
    return reason;
  };
  auto stopped = make();
  watcher->monitor(stopped);
  f.settle();
  caf::anon_send_exit(stopped, caf::exit_reason::user_shutdown);
  f.settle();
  CHECK(reason_of_end(stopped) == caf::exit_reason::user_shutdown);

  auto thrown = make();
  watcher->monitor(thrown);
  f.sys.send(thrown, envelope{"throw", "", 0});
  f.settle();
  CHECK(reason_of_end(thrown) == caf::sec::runtime_error);
}

TEST_CASE("strand actor spawned on a running thread gets the answer to what its first turn asks") {
  // A real scheduler and a running I/O thread: the first turn may run, and
  // its request be answered, before spawn_on_strand has returned. Every
  // answer must arrive (none may fall between spawn and the handler).
  caf::actor_system_config cfg;
  cfg.set("logger.verbosity", caf::atom("quiet"));
  io_threads io("troupe-test-st", 1);
  io.start();
  caf::actor_system system{cfg};
  auto echo = system.spawn([]() -> caf::behavior {
    return {[](const std::string& type, const std::string& body, uint64_t id) {
      return caf::make_message(type, body, id);
    }};
  });
  const auto running_before = strand_base::running();
  constexpr int actors = 200;
  std::atomic<int> answered{0};
  std::vector<caf::actor> spawned;
  for (int i = 0; i < actors; ++i) {
    spawned.push_back(
        spawn_on_strand(system, io.context().get_executor(), [&, echo](recorder* self) {
          self->request(echo, caf::infinite, std::string("ping"), std::string(), uint64_t{0})
              .then([&, self](std::string&, std::string&, uint64_t) {
                ++answered;
                self->quit();
              });
          return caf::behavior{[](const std::string&, const std::string&, uint64_t) {}};
        }));
  }
  CHECK(test::wait_until([&] { return answered.load() == actors; }));
  CHECK(answered.load() == actors);
  for (auto& a : spawned) {
    caf::anon_send_exit(a, caf::exit_reason::user_shutdown);
  }
  // Each ends on its thread, while the system runs.
  CHECK(test::wait_until([&] { return strand_base::running() == running_before; }));
  spawned.clear();
  caf::anon_send_exit(echo, caf::exit_reason::user_shutdown);
}
