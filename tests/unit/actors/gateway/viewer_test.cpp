// A WebSocket viewer's actor alone, on CAF's test coordinator: the test
// plays the sessions manager (and the session it forwards to), a recording
// socket plays the connection.

#include "actors/gateway/viewer.hpp"

#include <catch2/catch.hpp>

#include <string>
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

}  // namespace

TEST_CASE("viewer: attaches through the manager, relays output, closes when told") {
  deterministic_system sys;
  sys.register_running("sessions/manager", sys.self());
  auto socket = std::make_shared<recording_socket>();
  auto viewer = spawn_viewer(sys.system(), sys.ctx(), "s-1", true, socket);
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
  deterministic_system sys;
  auto none = std::make_shared<recording_socket>();
  (void)spawn_viewer(sys.system(), sys.ctx(), "s-1", false, none);
  sys.run();
  CHECK(none->events == std::vector<std::string>{"refused restarting"});

  sys.register_running("sessions/manager", sys.self());
  auto unknown = std::make_shared<recording_socket>();
  (void)spawn_viewer(sys.system(), sys.ctx(), "s-nope", false, unknown);
  sys.run();
  REQUIRE(sys.answer_next(make_error_envelope(make_error(errc::not_found, "no session s-nope"))));
  CHECK(unknown->events == std::vector<std::string>{"refused not_found"});
}
