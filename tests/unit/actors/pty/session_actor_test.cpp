// One session actor alone, on CAF's deterministic test coordinator, over a
// real PTY and a real child process: the test plays the sessions manager
// (it answers session.resume and receives session.handoff) and the viewer
// (it attaches and receives term.output), and runs the session's
// io_context itself: the PTY's reads and the session's own turns happen
// there, on the test's thread. The sessions tree,
// restarts by the supervisor and WebSockets are in
// tests/integration/sessions_test.cpp.

#include "actors/pty/session_actor.hpp"

#include <signal.h>
#include <unistd.h>

#include <catch2/catch.hpp>

#include <fstream>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>

#include "actors/pty/messages.hpp"
#include "actors/pty/pty_process.hpp"
#include "runtime/node/terminal.hpp"
#include "tests/support/deterministic.hpp"
#include "tests/support/wait.hpp"

using namespace troupe;
using namespace troupe::pty;
using namespace std::chrono_literals;
using troupe::test::deterministic_system;

namespace {

constexpr const char* session_name = "s-0000cafe";

/// A session actor on a child the test started, with the test as its
/// manager and (once attached) its viewer.
struct one_session {
  explicit one_session(std::vector<std::string> command, node_config config = {})
      : sys(std::move(config)) {
    // The session's turns run on `io` (its terminal thread in a node).
    sys.also_run([this] {
      const auto n = io.poll();
      io.restart();
      return n;
    });
    sys.register_running("sessions/manager", sys.self());
    spawn_options o;
    o.command = command;
    auto spawned = pty_process::spawn(o);
    REQUIRE(spawned);
    proc = std::move(*spawned);
    pid = proc->pid();
    session_spec spec;
    spec.command = std::move(command);
    spec.name = "unit";
    auto child = session_child(sys.ctx(), session_name, spec, proc, nullptr, io);
    session = child.start(sys.system(), std::string("sessions/live/") + session_name);
    caf::actor_cast<caf::abstract_actor*>(session)->attach_functor(
        [this](const caf::error& reason) {
          ended = true;
          exit_reason = reason;
        });
    sys.run();
  }

  ~one_session() {
    if (!ended) {
      caf::anon_send_exit(session, caf::exit_reason::user_shutdown);
      sys.run();
    }
  }

  /// Answers the incarnation's session.resume: with `snapshot`, or with
  /// nothing handed over.
  void answer_resume(std::optional<session_snapshot> snapshot = std::nullopt) {
    resume_reply reply;
    if (snapshot) {
      reply.found = true;
      reply.snapshot = std::move(*snapshot);
    }
    auto asked = sys.answer_next(make_envelope(std::string(resume_type) + ".reply", reply));
    REQUIRE(asked);
    REQUIRE(asked->type == resume_type);
    auto asked_for = decode<session_id>(asked->body);
    REQUIRE(asked_for);
    CHECK(asked_for->id == session_name);
  }

  term::attach_reply attach(bool readonly = false, bool resume = false, uint64_t from = 0) {
    auto reply = sys.call(
        session, make_envelope(term::attach_type,
                               term::attach_request{session_name, readonly, resume, from}));
    REQUIRE(reply.type == std::string(term::attach_type) + ".reply");
    auto body = decode<term::attach_reply>(reply.body);
    REQUIRE(body);
    collect();
    return *body;
  }

  envelope ask(const char* type) { return sys.call(session, make_envelope(type, empty_body{})); }

  session_info info() {
    auto reply = ask(info_type);
    REQUIRE(reply.type == std::string(info_type) + ".reply");
    auto body = decode<session_info>(reply.body);
    REQUIRE(body);
    return *body;
  }

  void type(const std::string& bytes) {
    sys.send(session, make_envelope(term::input_type, term::bytes_msg{bytes}));
  }

  /// Takes what waits in the test actor's mailbox: output is appended to
  /// `seen` (and counted in `unacked`), the rest is kept in `other`.
  void collect() {
    while (auto mail = sys.take_mail()) {
      if (mail->first.type == term::output_type) {
        auto bytes = decode<term::bytes_msg>(mail->first.body);
        REQUIRE(bytes);
        seen += bytes->bytes;
        unacked += bytes->bytes.size();
      } else {
        other.push_back(std::move(mail->first));
      }
    }
  }

  /// Runs the PTY's reads, the actors and (when `with_timers`) the
  /// session's timers, until `pred` holds: it waits on the PTY, not on a
  /// clock. False when it did not hold in time.
  bool pump_until(const std::function<bool()>& pred, bool with_timers = false) {
    const auto deadline = std::chrono::steady_clock::now() + 10s * test::slowdown();
    while (!pred()) {
      if (std::chrono::steady_clock::now() >= deadline) {
        return false;
      }
      io.run_one_for(10ms);
      sys.run();
      if (with_timers) {
        sys.advance(10ms);
      }
      collect();
    }
    return true;
  }

  /// Runs the PTY's handlers until none has run for 50 ms: a read already
  /// waiting when reading paused completes, then nothing more (bounded, so
  /// a reader that never pauses fails the test instead of looping).
  void quiet() {
    settle();
    for (int handlers = 0; io.run_one_for(50ms) > 0; ++handlers) {
      REQUIRE(handlers < 64);
      settle();
    }
  }

  /// Runs the PTY's handlers until none is ready.
  void settle() {
    do {
      sys.run();
      collect();
    } while (io.poll() > 0);
  }

  [[nodiscard]] size_t count(std::string_view needle) const {
    size_t n = 0;
    for (auto at = seen.find(needle); at != std::string::npos; at = seen.find(needle, at + 1)) {
      ++n;
    }
    return n;
  }

  [[nodiscard]] const envelope* first_other(const char* type) const {
    for (const auto& e : other) {
      if (e.type == type) {
        return &e;
      }
    }
    return nullptr;
  }

  /// The body of the first message of `type` the session sent elsewhere;
  /// the test fails if there is none or it does not decode.
  template <class T>
  [[nodiscard]] T other_body(const char* type) const {
    const auto* e = first_other(type);
    INFO("no " << type << " was sent");
    REQUIRE(e != nullptr);
    auto body = decode<T>(e->body);
    INFO(type << " does not decode");
    REQUIRE(body);
    return std::move(*body);
  }

  // Declared first: what the session's strand still holds goes after the
  // actor system, as in a node.
  boost::asio::io_context io;
  boost::asio::executor_work_guard<boost::asio::io_context::executor_type> busy =
      boost::asio::make_work_guard(io);
  deterministic_system sys;
  std::shared_ptr<pty_process> proc;
  pid_t pid = 0;
  caf::actor session;
  bool ended = false;
  caf::error exit_reason;
  std::string seen;
  uint64_t unacked = 0;
  std::vector<envelope> other;
};

/// The name of process `pid`'s program ("" once it is gone).
std::string command_of(pid_t pid) {
  std::ifstream comm("/proc/" + std::to_string(pid) + "/comm");
  std::string name;
  std::getline(comm, name);
  return name;
}

/// The process has ended: reaped, or a zombie waiting to be (the test holds
/// the pty_process, whose destructor would reap it).
bool process_ended(pid_t pid) {
  if (::kill(pid, 0) != 0 && errno == ESRCH) {
    return true;
  }
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  std::string line;
  std::getline(stat, line);
  const auto paren = line.rfind(')');
  return paren != std::string::npos && paren + 2 < line.size() && line[paren + 2] == 'Z';
}

}  // namespace

TEST_CASE("session actor: keystrokes reach the program and its output the viewer and scrollback") {
  one_session s({"cat"});
  s.answer_resume();
  const auto attached = s.attach();
  CHECK(attached.from == 0);
  CHECK(attached.cols == 80);
  CHECK(attached.rows == 24);

  s.type("hello\n");
  // The terminal echoes the line, then cat writes it back.
  REQUIRE(s.pump_until([&] { return s.count("hello\r\n") == 2; }));

  const auto info = s.info();
  CHECK(info.id == session_name);
  CHECK(info.name == "unit");
  CHECK(info.pid == s.pid);
  CHECK(info.bytes_in == 6);
  CHECK(info.bytes_out == s.seen.size());
  CHECK(info.restarts == 0);
  CHECK_FALSE(info.exit_status);
  CHECK((info.state == "running" || info.state == "idle" || info.state == "waiting"));

  auto scrollback = decode<raw_document>(s.ask(scrollback_type).body);
  REQUIRE(scrollback);
  CHECK(scrollback->bytes == s.seen);
  // Its recording comes as events (the manager renders them).
  auto recording = decode<recording_msg>(s.ask(recording_type).body);
  REQUIRE(recording);
  CHECK(recording->id == session_name);
  CHECK(recording->spec.name == "unit");
  REQUIRE_FALSE(recording->cast.empty());
  const auto cast = render_recording(recording->id, recording->spec, recording->cast);
  CHECK(cast.find("hello") != std::string::npos);

  // A second attach of the same viewer replays from where it asks, and it
  // stays one viewer: a new line comes to it once (echo and cat: twice).
  const auto again = s.attach(false, true, 6);
  CHECK(again.from == 6);
  CHECK(s.seen.substr(info.bytes_out) == scrollback->bytes.substr(6));
  s.type("once\n");
  REQUIRE(s.pump_until([&] { return s.count("once\r\n") >= 2; }));
  s.settle();
  CHECK(s.count("once\r\n") == 2);
}

TEST_CASE("session actor: a new incarnation continues the handed-over state") {
  one_session s({"cat"});
  session_snapshot before;
  before.id = session_name;
  before.spec.command = {"cat"};
  before.output = "before the crash\r\n";
  before.output_end = 5000;
  before.cast = {{0.25, "o", "before the crash\r\n"}};
  before.incarnations = 1;
  before.exit_status = 137;
  before.bytes_out = 5000;
  s.answer_resume(before);

  // Replay from the start of what is kept: the old output, then the notice.
  const auto attached = s.attach();
  const uint64_t end = attached.from + s.seen.size();
  CHECK(attached.from == 5000 - before.output.size());
  CHECK(s.seen.starts_with(before.output));
  CHECK(s.seen.find("restarted") != std::string::npos);

  const auto info = s.info();
  CHECK(info.restarts == 1);
  CHECK_FALSE(info.exit_status);  // this incarnation runs
  CHECK(info.bytes_out == 5000);  // the notice is troupe's, not the program's
  CHECK(info.pid == s.pid);

  // A viewer that has seen everything gets nothing replayed.
  s.seen.clear();
  const auto caught_up = s.attach(false, true, end);
  CHECK(s.seen.empty());
  CHECK(caught_up.from == end);
}

TEST_CASE("session actor: a read-only viewer's keystrokes are dropped") {
  one_session s({"cat"});
  s.answer_resume();
  s.attach(true);
  s.type("ignored\n");
  s.settle();
  CHECK(s.info().bytes_in == 0);
  CHECK(s.seen.find("ignored") == std::string::npos);
}

TEST_CASE("session actor: a failed shell is handed over for a restart, a finished one ends") {
  SECTION("a non-zero status: the state goes to the manager, the actor fails") {
    one_session s({"sh", "-c", "echo failing; exit 3"});
    s.answer_resume();
    s.attach();
    REQUIRE(s.pump_until([&] { return s.ended; }, true));
    CHECK(s.exit_reason);
    CHECK(to_string(s.exit_reason).find("status 3") != std::string::npos);
    const auto handed = s.other_body<handoff_msg>(handoff_type);
    CHECK(handed.snapshot.exit_status == 3);
    CHECK(handed.snapshot.output.find("failing") != std::string::npos);
    CHECK(handed.snapshot.incarnations == 1);
    CHECK(s.other_body<term::control_msg>(term::control_type).json.find("restarting") !=
          std::string::npos);
    CHECK(s.first_other(term::close_type) == nullptr);  // the viewer stays for the next one
  }
  SECTION("status 0: kept for GET, the viewer told and closed, the actor done") {
    one_session s({"sh", "-c", "exit 0"});
    s.answer_resume();
    s.attach();
    REQUIRE(s.pump_until([&] { return s.ended; }, true));
    CHECK_FALSE(s.exit_reason);
    CHECK(s.other_body<handoff_msg>(handoff_type).snapshot.exit_status == 0);
    CHECK(s.other_body<term::control_msg>(term::control_type).json.find("\"exit\"") !=
          std::string::npos);
    CHECK(s.first_other(term::close_type) != nullptr);
  }
}

TEST_CASE("session actor: ended, it hangs up the shell, keeps nothing and takes no viewer") {
  // The program ignores the hang-up: SIGKILL follows after the grace.
  node_config config;
  config.sessions.hangup_grace_ms = 50;
  one_session s({"sh", "-c", "trap '' HUP; exec cat"}, config);
  s.answer_resume();
  s.attach();
  // The trap is set once sh has become cat.
  REQUIRE(test::wait_until([&] { return command_of(s.pid) == "cat"; }));
  auto ended = s.ask(end_type);
  REQUIRE(ended.type == std::string(end_type) + ".reply");
  auto ended_body = decode<session_ended>(ended.body);
  REQUIRE(ended_body);
  CHECK(ended_body->ended == session_name);
  // Until the shell is gone, a new viewer is refused.
  auto refused =
      s.sys.call(s.session, make_envelope(term::attach_type, term::attach_request{session_name}));
  REQUIRE(refused.is_error());
  CHECK(read_error(refused).code == errc::not_found);

  REQUIRE(s.pump_until([&] { return s.ended; }, true));
  CHECK_FALSE(s.exit_reason);
  CHECK(process_ended(s.pid));
  CHECK(s.first_other(handoff_type) == nullptr);  // nothing is kept for an ended session
  CHECK(s.first_other(term::close_type) != nullptr);
  CHECK(s.proc->reap() == 128 + SIGKILL);  // the hang-up alone did not end it
}

TEST_CASE("session actor: stopped from outside, it kills its shell and hands its state over") {
  one_session s({"cat"});
  s.answer_resume();
  s.type("kept\n");
  REQUIRE(s.pump_until([&] { return s.info().bytes_out >= 12; }));
  caf::anon_send_exit(s.session, caf::exit_reason::user_shutdown);
  s.sys.run();
  s.collect();
  REQUIRE(s.ended);
  CHECK(test::wait_until([&] { return process_ended(s.pid); }));
  const auto handed = s.other_body<handoff_msg>(handoff_type);
  CHECK(handed.snapshot.output.find("kept") != std::string::npos);
  CHECK(handed.snapshot.bytes_in == 5);
}

TEST_CASE("session actor: reading waits for a viewer that does not acknowledge") {
  one_session s({"yes"});
  s.answer_resume();
  s.attach();
  // Far behind: reading stops a little past the window.
  REQUIRE(s.pump_until([&] { return s.unacked > term::window_high; }));
  s.quiet();
  const auto paused_at = s.info().bytes_out;
  CHECK(paused_at < term::window_high + (256u << 10));
  // Nothing is read while it waits (the program blocks on a full terminal).
  CHECK(s.io.run_one_for(50ms) == 0);
  s.settle();
  CHECK(s.info().bytes_out == paused_at);

  // Acknowledged: reading goes on.
  s.sys.send(s.session, make_envelope(term::ack_type, term::ack_msg{s.unacked}));
  s.unacked = 0;
  REQUIRE(s.pump_until([&] { return s.info().bytes_out > paused_at + (64u << 10); }));

  // Behind again, and it stays behind: after the session's patience,
  // reading no longer waits for it.
  REQUIRE(s.pump_until([&] { return s.unacked > term::window_high; }));
  s.quiet();
  const auto waiting_at = s.info().bytes_out;
  s.sys.advance(2000ms);
  REQUIRE(s.pump_until([&] { return s.info().bytes_out > waiting_at + term::window_high; }));
}

TEST_CASE("session actor: resizes are applied and recorded, sizes out of range are ignored") {
  one_session s({"cat"});
  s.answer_resume();
  s.attach();
  s.sys.send(s.session, make_envelope(term::resize_type, term::resize_msg{100, 40}));
  auto info = s.info();
  CHECK(info.cols == 100);
  CHECK(info.rows == 40);
  s.sys.send(s.session, make_envelope(term::resize_type, term::resize_msg{0, 40}));
  s.sys.send(s.session, make_envelope(term::resize_type, term::resize_msg{5000, 40}));
  info = s.info();
  CHECK(info.cols == 100);
  CHECK(info.rows == 40);
  auto recording = decode<recording_msg>(s.ask(recording_type).body);
  REQUIRE(recording);
  CHECK(render_recording(recording->id, recording->spec, recording->cast)
            .find(",\"r\",\"100x40\"]") != std::string::npos);
  // A later viewer is told the current size.
  CHECK(s.attach(false, true, 0).cols == 100);
}

TEST_CASE("session actor: a signal goes to the foreground job, never to the shell") {
  // Without line editing: bash reads plain lines, and its prompt is "bash-V# ".
  one_session s({"bash", "--noprofile", "--norc", "--noediting", "-i"});
  s.answer_resume();
  s.attach();
  s.type("sleep 300\n");
  // The job is in the foreground, and has become sleep (a signal before its
  // exec would meet the shell's own handlers in the forked child).
  REQUIRE(s.pump_until([&] {
    const pid_t job = ::tcgetpgrp(s.proc->fd());
    return job > 0 && job != s.pid && command_of(job) == "sleep";
  }));
  const auto prompts = s.count("bash-");
  s.sys.send(s.session, make_envelope(term::signal_type, term::signal_msg{"NOPE"}));
  s.sys.send(s.session, make_envelope(term::signal_type, term::signal_msg{"INT"}));
  // The shell has the terminal back and prompts again.
  REQUIRE(s.pump_until(
      [&] { return ::tcgetpgrp(s.proc->fd()) == s.pid && s.count("bash-") > prompts; }));
  s.type("echo after-$((20+22))\n");
  REQUIRE(s.pump_until([&] { return s.count("after-42") > 0; }));
  CHECK_FALSE(process_ended(s.pid));
  CHECK_FALSE(s.ended);
}

TEST_CASE("session actor: requests it does not answer get precise errors") {
  one_session s({"cat"});
  s.answer_resume();
  auto unknown = s.ask("session.nope");
  REQUIRE(unknown.is_error());
  CHECK(read_error(unknown).code == errc::unknown_type);
  auto bad = s.sys.call(s.session, envelope{term::attach_type, "\xc1", 0});
  REQUIRE(bad.is_error());
  CHECK(read_error(bad).code == errc::bad_body);
  // Neither changed the session.
  CHECK_FALSE(s.ended);
  CHECK(s.info().pid == s.pid);
}
