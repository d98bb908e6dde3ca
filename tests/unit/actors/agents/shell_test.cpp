// Cutting a command's output out of its terminal's output, as an agent's
// Bash call does in its terminal session.

#include "actors/agents/shell.hpp"

#include <catch2/catch.hpp>

using namespace troupe::agents;

namespace {

const std::string start = "\x1b]7777;Sabc\x07";
std::string end_of(int status) {
  return "\x1b]7777;Eabc:" + std::to_string(status) + "\x07";
}

}  // namespace

TEST_CASE("shell capture: what lies between the markers, in pieces of any size") {
  const std::string stream =
      "$ . '/d/a.run'\r\necho hi\r\n" + start + "hi\r\nthere\r\n" + end_of(3) + "\r\nagent:a $ ";
  for (size_t piece : {1u, 2u, 3u, 7u, 1000u}) {
    shell_capture c("abc", 1000);
    bool done = false;
    for (size_t at = 0; at < stream.size() && !done; at += piece) {
      done = c.feed(std::string_view(stream).substr(at, piece));
    }
    INFO(piece);
    CHECK(done);
    CHECK(c.started());
    REQUIRE(c.status());
    CHECK(*c.status() == 3);
    CHECK(c.text() == "hi\nthere\n");
  }
}

TEST_CASE("shell capture: the echoed line and other nonces never match") {
  shell_capture c("abc", 1000);
  // The typed line as echoed holds the escapes, not the bytes.
  CHECK_FALSE(c.feed("printf '\\033]7777;S%s\\007' abc\r\n"));
  CHECK_FALSE(c.started());
  CHECK_FALSE(c.feed("\x1b]7777;Sold\x07old output\r\n\x1b]7777;Eold:0\x07"));
  CHECK_FALSE(c.started());
  CHECK_FALSE(c.feed(start + "new\r\n\x1b]7777;Eold:1\x07"));
  CHECK(c.started());
  CHECK_FALSE(c.finished());
  CHECK(c.feed(end_of(0)));
  CHECK(*c.status() == 0);
  CHECK(c.text() == "new\n");
}

TEST_CASE("shell capture: a long output is bounded and says how much was cut") {
  shell_capture c("abc", 100);
  c.feed(start);
  for (int i = 0; i < 50; ++i) {
    c.feed(std::string(99, 'x') + "\r\n");
  }
  CHECK(c.feed(end_of(0)));
  const auto text = c.text();
  CHECK(text.starts_with(std::string(99, 'x') + "\n[troupe: "));
  CHECK(text.find("more bytes cut]") != std::string::npos);
  CHECK(text.size() < 200);
}

TEST_CASE("terminal text: line ends, overwrites, escapes and controls") {
  CHECK(terminal_text("a\r\nb\r\n") == "a\nb\n");
  // A program's own CR LF reaches the terminal as CR CR LF.
  CHECK(terminal_text("HTTP/1.1 200 OK\r\r\nx: y\r\r\n") == "HTTP/1.1 200 OK\nx: y\n");
  CHECK(terminal_text("10%\r50%\r100%\r\ndone\n") == "100%\ndone\n");
  CHECK(terminal_text("\x1b[1;31mred\x1b[0m plain") == "red plain");
  CHECK(terminal_text("\x1b]0;title\x07text") == "text");
  CHECK(terminal_text("\x1b]0;title\x1b\\text") == "text");
  CHECK(terminal_text("\x1b(Bok\x07\tend") == "ok\tend");
  CHECK(terminal_text("café ✓\r\n") == "café ✓\n");
  CHECK(terminal_text("cut\x1b[") == "cut");
}
