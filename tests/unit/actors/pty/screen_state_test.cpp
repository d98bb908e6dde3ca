// running / idle / waiting from output and its timing. Time is injected, so
// every boundary is tested exactly and nothing sleeps.

#include "actors/pty/screen_state.hpp"

#include <catch2/catch.hpp>

#include <chrono>
#include <string>

using namespace troupe;
using namespace troupe::pty;
using namespace std::chrono_literals;

namespace {

const screen_state::time_point t0 = screen_state::time_point{} + 1h;

}  // namespace

TEST_CASE("output keeps a session running, silence for idle_after makes it idle") {
  screen_state s(1000ms);
  s.feed("compiling foo.cpp\n", t0);
  CHECK(s.state(t0) == activity::running);
  CHECK(s.state(t0 + 999ms) == activity::running);
  CHECK(s.state(t0 + 1000ms) == activity::idle);

  s.feed("linking\n", t0 + 1500ms);
  CHECK(s.state(t0 + 1600ms) == activity::running);
}

TEST_CASE("a prompt on the cursor line after 200 ms of silence is waiting") {
  screen_state s(5000ms);
  s.feed("done\r\nuser@host:~$ ", t0);
  CHECK(s.state(t0 + 199ms) == activity::running);
  CHECK(s.state(t0 + 200ms) == activity::waiting);
  // Waiting wins over idle: an operator is wanted, not just quiet.
  CHECK(s.state(t0 + 10s) == activity::waiting);

  // Typing a command and its output move the cursor line off the prompt.
  s.feed("ls\r\nfile.txt\r\n", t0 + 20s);
  CHECK(s.state(t0 + 21s) == activity::running);
  CHECK(s.state(t0 + 25s) == activity::idle);
}

TEST_CASE("before any output the state is running, an empty feed starts the clock") {
  screen_state s(1000ms);
  CHECK(s.state(t0 + 1h) == activity::running);
  CHECK_FALSE(s.last_output().has_value());
  s.feed("", t0);
  CHECK(s.last_output() == t0);
  CHECK(s.state(t0 + 1000ms) == activity::idle);
}

TEST_CASE("a clock that reads earlier than the last output counts as no silence") {
  screen_state s(1000ms);
  s.feed("$ ", t0);
  CHECK(s.state(t0 - 5s) == activity::running);
}

TEST_CASE("escape sequences are stripped, even when split across feeds") {
  screen_state s(1000ms);
  s.feed("\x1b[1;3", t0);
  s.feed("2muser@host\x1b[0m:~", t0);
  s.feed("\x1b]0;title\x07", t0);      // OSC ended by BEL.
  s.feed("\x1b]8;;http://x\x1b", t0);  // OSC ended by ST, cut inside it.
  s.feed("\\", t0);
  s.feed("\x1b(B", t0);                     // Charset designation: ESC, intermediate, final.
  s.feed(std::string("\x1b") + "7$ ", t0);  // ESC 7 (save cursor), then the prompt.
  CHECK(s.cursor_line() == "user@host:~$ ");
  CHECK(s.state(t0 + 200ms) == activity::waiting);
}

TEST_CASE("carriage return and newline start the line over, backspace erases") {
  screen_state s(1000ms);
  s.feed("progress 10%\rprogress 20%", t0);
  CHECK(s.cursor_line() == "progress 20%");
  s.feed("\r\nnext", t0);
  CHECK(s.cursor_line() == "next");
  s.feed("\n$ ab\b \b", t0);  // What a terminal gets when a typed 'b' is erased.
  CHECK(s.cursor_line() == "$ a");
  s.feed("\xC3\xA9\b", t0);  // Backspace takes the whole two-byte character.
  CHECK(s.cursor_line() == "$ a");
  s.feed("\x07\x0e", t0);  // BEL, SO: nothing to draw.
  CHECK(s.cursor_line() == "$ a");
}

TEST_CASE("CAN aborts an escape sequence, controls inside one still act") {
  screen_state s(1000ms);
  s.feed("\x1b[12\x18ok", t0);
  CHECK(s.cursor_line() == "ok");
  s.feed("\x1b[1\r;2mnew", t0);  // The CR acts mid-sequence.
  CHECK(s.cursor_line() == "new");
}

TEST_CASE("the cursor line is bounded to 4 KiB and starts on a whole character") {
  screen_state s(1000ms);
  s.feed(std::string(10'000, 'x') + "$ ", t0);
  const std::string line = s.cursor_line();
  CHECK(line.size() == screen_state::line_bytes_max);
  CHECK(line.substr(line.size() - 2) == "$ ");
  CHECK(s.state(t0 + 200ms) == activity::waiting);

  std::string wide;
  for (int i = 0; i < 3001; ++i) {
    wide += "\xC3\xA9";  // Two bytes each: 4 KiB ends mid-character somewhere.
  }
  screen_state u(1000ms);
  u.feed(wide + "x", t0);
  const std::string tail = u.cursor_line();
  CHECK(tail.size() <= screen_state::line_bytes_max);
  CHECK(tail.size() >= screen_state::line_bytes_max - 1);
  CHECK((static_cast<unsigned char>(tail.front()) & 0xC0) != 0x80);
}

TEST_CASE("a custom prompt pattern decides what waiting looks like") {
  screen_state s(5000ms, R"(\(y/n\) $)");
  s.feed("Overwrite config? (y/n) ", t0);
  CHECK(s.state(t0 + 200ms) == activity::waiting);
  s.feed("\r\n$ ", t0 + 1s);  // The default pattern would match; this one does not.
  CHECK(s.state(t0 + 1200ms) == activity::running);
}

TEST_CASE("create refuses a pattern that does not compile") {
  auto bad = screen_state::create(1000ms, "([");
  REQUIRE_FALSE(bad.has_value());
  CHECK(bad.err().code == errc::config_invalid);
  CHECK(bad.err().message.find("([") != std::string::npos);

  auto good = screen_state::create(1000ms);
  REQUIRE(good.has_value());
  good->feed("# ", t0);
  CHECK(good->state(t0 + 200ms) == activity::waiting);
}

TEST_CASE("activity names are stable") {
  CHECK(to_string(activity::running) == "running");
  CHECK(to_string(activity::idle) == "idle");
  CHECK(to_string(activity::waiting) == "waiting");
}
