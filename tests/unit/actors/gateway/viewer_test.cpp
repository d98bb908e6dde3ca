// A WebSocket viewer's actor alone, on CAF's test coordinator: the test
// plays the sessions manager (and the session it forwards to), a recording
// socket plays the connection, and an io_context the test polls plays the
// connection's strand, where the viewer's turns run.

#include "actors/gateway/viewer.hpp"

#include <catch2/catch.hpp>

#include <boost/asio/io_context.hpp>

#include <string>
#include <thread>
#include <vector>

#include "runtime/node/terminal.hpp"
#include "tests/support/deterministic.hpp"

using namespace troupe;
using troupe::test::deterministic_system;

namespace {

/// What the connection was told, in order.
class recording_socket : public viewer_socket {
 public:
  void attached(caf::actor, uint16_t cols, uint16_t rows) override {
    events.push_back("attached " + std::to_string(cols) + "x" + std::to_string(rows));
  }
  void refused(error why) override {
    events.push_back("refused " + std::string(to_string(why.code)));
  }
  void output(std::string bytes) override { events.push_back("output " + bytes); }
  void control(std::string json) override { events.push_back("control " + json); }
  void close(std::string why) override { events.push_back("close " + why); }

  std::vector<std::string> events;
};

/// The connection's strand, run whenever the actors run (declared before
/// the system: what it still holds goes after the system, as in a node;
/// so each test ends its viewer while the system runs).
struct strand_and_system {
  strand_and_system() {
    sys.also_run([this] {
      const auto n = strand.poll();
      strand.restart();
      return n;
    });
  }
  /// A viewer of "s-1" attached (the test answers as the manager) to an
  /// 80x24 session.
  caf::actor attached_viewer(const std::shared_ptr<recording_socket>& socket) {
    sys.register_running("sessions/manager", sys.self());
    auto viewer =
        spawn_viewer(sys.system(), strand.get_executor(), sys.ctx(), "s-1", false, socket);
    sys.run();
    REQUIRE(sys.answer_next(make_envelope("term.attach.reply", term::attach_reply{0, 80, 24})));
    return viewer;
  }

  boost::asio::io_context strand;
  deterministic_system sys;
};

}  // namespace

TEST_CASE("viewer: attaches through the manager, relays output, closes when told") {
  strand_and_system f;
  auto& sys = f.sys;
  sys.register_running("sessions/manager", sys.self());
  auto socket = std::make_shared<recording_socket>();
  auto viewer = spawn_viewer(sys.system(), f.strand.get_executor(), sys.ctx(), "s-1", true, socket);
  sys.run();
  auto asked = sys.answer_next(make_envelope("term.attach.reply", term::attach_reply{0, 120, 40}));
  REQUIRE(asked);
  CHECK(asked->type == term::attach_type);
  auto req = decode<term::attach_request>(asked->body);
  REQUIRE(req);
  CHECK(req->id == "s-1");
  CHECK(req->readonly);
  CHECK_FALSE(req->resume);

  sys.send(viewer, make_envelope(term::output_type, term::bytes_msg{"$ ls\r\n"}));
  sys.send(viewer, make_envelope(term::control_type, term::control_msg{R"({"type":"exit"})"}));
  sys.send(viewer, make_envelope(term::close_type, term::close_msg{"the session ended"}));
  CHECK(socket->events == std::vector<std::string>{"attached 120x40", "output $ ls\r\n",
                                                   R"(control {"type":"exit"})",
                                                   "close the session ended"});
}

TEST_CASE("viewer: an unknown session, or no manager, is refused with its reason") {
  strand_and_system f;
  auto& sys = f.sys;
  auto none = std::make_shared<recording_socket>();
  (void)spawn_viewer(sys.system(), f.strand.get_executor(), sys.ctx(), "s-1", false, none);
  sys.run();
  CHECK(none->events == std::vector<std::string>{"refused restarting"});

  sys.register_running("sessions/manager", sys.self());
  auto unknown = std::make_shared<recording_socket>();
  (void)spawn_viewer(sys.system(), f.strand.get_executor(), sys.ctx(), "s-nope", false, unknown);
  sys.run();
  REQUIRE(sys.answer_next(make_error_envelope(make_error(errc::not_found, "no session s-nope"))));
  CHECK(unknown->events == std::vector<std::string>{"refused not_found"});
}

TEST_CASE("viewer: its turns run on the connection's strand, and only there") {
  strand_and_system f;
  auto& sys = f.sys;
  auto socket = std::make_shared<recording_socket>();
  auto viewer = f.attached_viewer(socket);
  REQUIRE(socket->events == std::vector<std::string>{"attached 80x24"});

  // From another thread, as a session's terminal thread sends it: nothing
  // happens until the strand runs, then the bytes go straight to the socket.
  std::thread([&] {
    caf::anon_send(viewer, std::string(term::output_type), encode(term::bytes_msg{"x"}),
                   uint64_t{0});
  }).join();
  CHECK(socket->events.size() == 1);
  CHECK(f.strand.poll() == 1);
  CHECK(socket->events == std::vector<std::string>{"attached 80x24", "output x"});
  caf::anon_send_exit(viewer, caf::exit_reason::user_shutdown);
  sys.run();
}

TEST_CASE("viewer: told to exit, it ends and a monitor hears it") {
  strand_and_system f;
  auto& sys = f.sys;
  auto socket = std::make_shared<recording_socket>();
  auto viewer = f.attached_viewer(socket);
  caf::scoped_actor watcher{sys.system()};
  watcher->monitor(viewer);
  caf::anon_send_exit(viewer, caf::exit_reason::user_shutdown);
  sys.run();
  bool down = false;
  watcher->receive([&](caf::down_msg& d) { down = d.source == viewer.address(); },
                   caf::after(std::chrono::seconds(0)) >> [] {});
  CHECK(down);
  // What comes after is dropped; the socket hears nothing more.
  sys.send(viewer, make_envelope(term::output_type, term::bytes_msg{"late"}));
  CHECK(socket->events == std::vector<std::string>{"attached 80x24"});
}

namespace {

/// A session that the manager's path leads to: it answers the attach
/// itself, keeps the viewer (as a session does) and, told "die", sends it
/// a notice and ends.
struct stand_in_state {
  caf::actor viewer;
  static inline const char* name = "test.session";
};

caf::behavior stand_in_session(caf::stateful_actor<stand_in_state>* self) {
  return {[self](const std::string& type, const std::string&, uint64_t) -> caf::message {
    if (type == term::attach_type) {
      self->state.viewer = caf::actor_cast<caf::actor>(self->current_sender());
      return caf::make_message(std::string("term.attach.reply"),
                               encode(term::attach_reply{0, 80, 24}), uint64_t{0});
    }
    if (type == "die") {
      self->send(self->state.viewer, std::string(term::control_type),
                 encode(term::control_msg{R"({"type":"notice"})"}), uint64_t{0});
      self->quit();
    }
    return {};
  }};
}

}  // namespace

TEST_CASE("viewer: held by nobody but its session, it still hears the session's last words") {
  strand_and_system f;
  auto& sys = f.sys;
  auto session = sys.system().spawn(stand_in_session);
  sys.register_running("sessions/manager", session);
  auto socket = std::make_shared<recording_socket>();
  // Nobody keeps the handle (the gateway keeps one; a session is enough).
  (void)spawn_viewer(sys.system(), f.strand.get_executor(), sys.ctx(), "s-1", false, socket);
  sys.run();
  REQUIRE(socket->events == std::vector<std::string>{"attached 80x24"});
  sys.advance(std::chrono::seconds(31));  // the attach's timeout is done with
  sys.send(session, make_envelope("die", empty_body{}));
  REQUIRE(socket->events.size() >= 2);
  CHECK(socket->events[1] == R"(control {"type":"notice"})");
  // It tries to attach again and, with nobody to answer, says so and ends.
  for (int i = 0; i < 8; ++i) {
    sys.advance(std::chrono::seconds(1));
  }
  CHECK(socket->events.back().starts_with("close "));
}
