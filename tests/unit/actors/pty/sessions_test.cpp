// The sessions manager alone, on CAF's deterministic test coordinator: how
// a session's state goes from one incarnation to the next, how viewers'
// attaches wait for a restart, what an ended session may no longer do, and
// the errors callers get. (Real PTYs, shells and WebSockets are in
// tests/integration/sessions_test.cpp.)

#include "actors/pty/sessions.hpp"

#include <catch2/catch.hpp>

#include <boost/asio/io_context.hpp>

#include "actors/pty/messages.hpp"
#include "runtime/node/terminal.hpp"
#include "tests/support/deterministic.hpp"

using namespace troupe;
using namespace troupe::pty;
using troupe::test::deterministic_system;

namespace {

struct family {
  family() {
    supervisor_spec root;
    root.children.push_back(sessions_child(sys.ctx(), nullptr, io));
    sys.ctx()->top_level_children = 1;
    root_actor = spawn_supervisor(sys.system(), sys.ctx(), "", std::move(root));
    sys.run();
    manager = sys.ctx()->registry.current("sessions/manager");
    REQUIRE(manager);
  }
  ~family() {
    caf::anon_send_exit(root_actor, caf::exit_reason::user_shutdown);
    sys.run();
  }

  envelope ask(const char* type, const auto& body) {
    return sys.call(manager, make_envelope(type, body));
  }

  /// A session that is in the tree but not running (waiting to restart).
  void restarting(const std::string& id) {
    actor_info info;
    info.path = "sessions/live/" + id;
    info.name = id;
    info.parent = "sessions/live";
    info.state = actor_state::restarting;
    sys.ctx()->registry.put(info, caf::actor{}, sys.ctx()->registry.current("sessions/live"));
  }

  deterministic_system sys;
  boost::asio::io_context io;
  caf::actor root_actor;
  caf::actor manager;
};

session_snapshot a_snapshot(const std::string& id) {
  session_snapshot s;
  s.id = id;
  s.spec.command = {"/bin/sh"};
  s.spec.name = "build";
  s.output = "make: done\r\n";
  s.output_end = 5000;
  s.cast = {{0.5, "o", "make: done\r\n"}};
  s.incarnations = 3;
  s.exit_status = 0;
  s.cols = 90;
  s.rows = 30;
  return s;
}

errc code_of(const envelope& reply) {
  REQUIRE(reply.is_error());
  return read_error(reply).code;
}

}  // namespace

TEST_CASE("sessions manager: a handed-over state is kept for the next incarnation, once") {
  family f;
  const auto snap = a_snapshot("s-00000001");
  f.sys.send(f.manager, make_envelope(handoff_type, handoff_msg{snap}));

  // While no incarnation runs, the manager reports from what it holds.
  auto got = f.ask(get_type, session_id{snap.id});
  REQUIRE(got.type == std::string(get_type) + ".reply");
  auto info = decode<session_info>(got.body);
  REQUIRE(info);
  CHECK(info->state == "exited");
  CHECK(info->name == "build");
  CHECK(info->restarts == 2);
  CHECK(info->exit_status == 0);
  CHECK(info->cols == 90);

  auto list = decode<session_list>(f.ask(list_type, empty_body{}).body);
  REQUIRE(list);
  REQUIRE(list->sessions.size() == 1);
  CHECK(list->sessions[0].id == snap.id);

  auto scrollback = decode<raw_document>(f.ask(scrollback_type, session_id{snap.id}).body);
  REQUIRE(scrollback);
  CHECK(scrollback->bytes == snap.output);
  CHECK(scrollback->content_type == "application/octet-stream");
  auto cast = decode<raw_document>(f.ask(cast_type, session_id{snap.id}).body);
  REQUIRE(cast);
  CHECK(cast->bytes.find("make: done") != std::string::npos);

  // The next incarnation takes it, exactly as it was handed over.
  auto resumed = decode<resume_reply>(f.ask(resume_type, session_id{snap.id}).body);
  REQUIRE(resumed);
  CHECK(resumed->found);
  CHECK(encode(resumed->snapshot) == encode(snap));
  // Taken: nobody gets it twice, and the manager no longer knows the id.
  auto again = decode<resume_reply>(f.ask(resume_type, session_id{snap.id}).body);
  REQUIRE(again);
  CHECK_FALSE(again->found);
  CHECK(code_of(f.ask(get_type, session_id{snap.id})) == errc::not_found);
}

TEST_CASE("sessions manager: a running session's recording is rendered apart from it") {
  family f;
  // A stand-in for a running session: it sends its events, as the session
  // actor does, or for "s-0000bad0", a body that is not a recording.
  auto stand_in = [&](const std::string& id) {
    auto session = f.sys.system().spawn([id](caf::event_based_actor* self) -> caf::behavior {
      return {[self, id](const std::string& type, const std::string&, uint64_t) {
        auto rp = self->make_response_promise();
        if (type != recording_type) {
          return deliver(rp, make_error_envelope(make_error(errc::bad_request, type)));
        }
        if (id == "s-0000bad0") {
          return deliver(rp, envelope{std::string(recording_type) + ".reply", "\xc1", 0});
        }
        session_spec spec;
        spec.name = "build";
        deliver(rp, make_envelope(std::string(recording_type) + ".reply",
                                  recording_msg{id, spec, {{0.5, "o", "rendered apart\r\n"}}}));
      }};
    });
    actor_info info;
    info.path = "sessions/live/" + id;
    info.name = id;
    info.parent = "sessions/live";
    info.state = actor_state::running;
    f.sys.ctx()->registry.put(info, session, f.sys.ctx()->registry.current("sessions/live"));
  };
  stand_in("s-00000002");
  auto cast = decode<raw_document>(f.ask(cast_type, session_id{"s-00000002"}).body);
  REQUIRE(cast);
  CHECK(cast->content_type == "application/x-asciicast");
  CHECK(cast->bytes.find("\"title\":\"build\"") != std::string::npos);
  CHECK(cast->bytes.find("rendered apart\\r\\n") != std::string::npos);

  stand_in("s-0000bad0");
  const auto bad = f.ask(cast_type, session_id{"s-0000bad0"});
  CHECK(code_of(bad) == errc::internal);
  CHECK(read_error(bad).message.find("recording is unreadable") != std::string::npos);
}

TEST_CASE("sessions manager: an attach waits for the restart and goes to the next incarnation") {
  family f;
  f.restarting("s-0000000a");
  // A viewer attaches while the session restarts: no answer yet.
  f.sys.request_later(
      f.manager,
      make_envelope(term::attach_type, term::attach_request{"s-0000000a", false, true, 1234}));
  CHECK_FALSE(f.sys.has_mail());
  // The next incarnation (here the test's actor) asks for its state, and
  // then receives the waiting attach, its body and sender unchanged.
  auto resumed = f.ask(resume_type, session_id{"s-0000000a"});
  CHECK(resumed.type == std::string(resume_type) + ".reply");
  auto forwarded = f.sys.take_mail();
  REQUIRE(forwarded);
  CHECK(forwarded->second);  // still a request: the session answers the viewer
  REQUIRE(forwarded->first.type == term::attach_type);
  auto body = decode<term::attach_request>(forwarded->first.body);
  REQUIRE(body);
  CHECK(body->id == "s-0000000a");
  CHECK(body->resume);
  CHECK(body->from == 1234);
}

TEST_CASE("sessions manager: an ended session neither resumes nor takes viewers") {
  family f;
  f.restarting("s-0000000b");
  f.sys.send(f.manager, make_envelope(handoff_type, handoff_msg{a_snapshot("s-0000000b")}));
  auto ended = f.ask(end_type, session_id{"s-0000000b"});
  REQUIRE(ended.type == std::string(end_type) + ".reply");
  CHECK(decode<session_ended>(ended.body)->ended == "s-0000000b");
  // Still in the tree for a moment (its supervisor stops it), but gone for
  // everyone: an incarnation already on its way quits instead of starting.
  CHECK(code_of(f.ask(get_type, session_id{"s-0000000b"})) == errc::not_found);
  CHECK(code_of(f.ask(resume_type, session_id{"s-0000000b"})) == errc::not_found);
  CHECK(code_of(f.ask(term::attach_type, term::attach_request{"s-0000000b", false, false, 0})) ==
        errc::not_found);
  CHECK(code_of(f.ask(end_type, session_id{"s-0000000b"})) == errc::not_found);
}

TEST_CASE("sessions manager: bad requests get precise errors") {
  family f;
  session_spec relative;
  relative.cwd = "relative/dir";
  auto bad_cwd = f.ask(create_type, relative);
  CHECK(code_of(bad_cwd) == errc::bad_request);
  CHECK(read_error(bad_cwd).message.find("relative/dir") != std::string::npos);
  session_spec zero;
  zero.cols = 0;
  CHECK(code_of(f.ask(create_type, zero)) == errc::bad_request);
  session_spec bad_env;
  bad_env.env = {{"A=B", "1"}};
  CHECK(code_of(f.ask(create_type, bad_env)) == errc::bad_request);
  CHECK(code_of(f.sys.call(f.manager, envelope{create_type, "\x81\xa4\x63\x6f\x6c\x73\xa4wide",
                                               0})) == errc::bad_body);
  CHECK(code_of(f.ask(get_type, session_id{"s-nope"})) == errc::not_found);
  CHECK(code_of(f.ask(scrollback_type, session_id{"s-nope"})) == errc::not_found);
  CHECK(code_of(f.ask(end_type, session_id{"s-nope"})) == errc::not_found);
  CHECK(code_of(f.ask(term::attach_type, term::attach_request{"s-nope", false, false, 0})) ==
        errc::not_found);
  CHECK(code_of(f.ask("session.frobnicate", empty_body{})) == errc::unknown_type);
  // Nothing was created.
  auto list = decode<session_list>(f.ask(list_type, empty_body{}).body);
  REQUIRE(list);
  CHECK(list->sessions.empty());
}
