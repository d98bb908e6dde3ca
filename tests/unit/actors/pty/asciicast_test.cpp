// asciicast v2 lines must always be valid JSON (checked by parsing them with
// nlohmann/json, which rejects invalid UTF-8) and carry the bytes faithfully.

#include "actors/pty/asciicast.hpp"

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <cmath>
#include <cstdint>
#include <string>

using namespace troupe::pty;
using nlohmann::json;

namespace {

const std::string replacement = "\xEF\xBF\xBD";

/// Parses one line, which must end in '\n' and hold no other newline.
json parse_line(const std::string& line) {
  REQUIRE(!line.empty());
  REQUIRE(line.back() == '\n');
  REQUIRE(line.find('\n') == line.size() - 1);
  return json::parse(line);
}

std::string event_data(std::string_view data) {
  const json j = parse_line(asciicast_event(0.5, 'o', data));
  return j.at(2).get<std::string>();
}

}  // namespace

TEST_CASE("the header is one JSON line with the v2 fields") {
  const json h = parse_line(asciicast_header(120, 40, 1700000000, "build \"x\"\nlog", "/bin/bash"));
  CHECK(h.at("version") == 2);
  CHECK(h.at("width") == 120);
  CHECK(h.at("height") == 40);
  CHECK(h.at("timestamp") == 1700000000);
  CHECK(h.at("env").at("TERM") == "xterm-256color");
  CHECK(h.at("env").at("SHELL") == "/bin/bash");
  CHECK(h.at("title") == "build \"x\"\nlog");
}

TEST_CASE("an event is [time, kind, data] with terminal bytes carried exactly") {
  const std::string data = "\x1b[31mred\x1b[0m\r\n\t\"q\" \\ \x07 caf\xC3\xA9 \xF0\x9F\x98\x80";
  const json e = parse_line(asciicast_event(1.25, 'o', data));
  REQUIRE(e.is_array());
  REQUIRE(e.size() == 3);
  CHECK(e.at(0).get<double>() == Approx(1.25));
  CHECK(e.at(1) == "o");
  CHECK(e.at(2).get<std::string>() == data);

  CHECK(asciicast_event(1.25, 'i', "ls\r").rfind("[1.250000,\"i\",", 0) == 0);
}

TEST_CASE("a resize event carries COLSxROWS") {
  const json e = parse_line(asciicast_resize_event(2.0, 120, 40));
  CHECK(e.at(1) == "r");
  CHECK(e.at(2) == "120x40");
}

TEST_CASE("a negative or NaN time is written as 0") {
  CHECK(parse_line(asciicast_event(-3.0, 'o', "x")).at(0).get<double>() == 0.0);
  CHECK(parse_line(asciicast_event(std::nan(""), 'o', "x")).at(0).get<double>() == 0.0);
}

TEST_CASE("invalid UTF-8 becomes U+FFFD, one per maximal invalid subpart") {
  CHECK(event_data("a\xFFz") == "a" + replacement + "z");
  CHECK(event_data("\xC3(x") == replacement + "(x");
  // Overlong '/', a UTF-16 surrogate, a code point past U+10FFFF.
  CHECK(event_data("\xC0\xAF") == replacement + replacement);
  CHECK(event_data("\xED\xA0\x80") == replacement + replacement + replacement);
  CHECK(event_data("\xF4\x90\x80\x80") == replacement + replacement + replacement + replacement);
  // A character cut short by the end of the data: one replacement.
  CHECK(event_data("ok\xE2\x82") == "ok" + replacement);
}

TEST_CASE("every byte value, and random bytes, give valid JSON") {
  std::string all;
  for (int b = 0; b < 256; ++b) {
    all += static_cast<char>(b);
  }
  CHECK_NOTHROW(event_data(all));

  uint32_t seed = 1;
  for (int round = 0; round < 200; ++round) {
    std::string bytes;
    for (int k = 0; k < 64; ++k) {
      seed = seed * 1103515245u + 12345u;
      bytes += static_cast<char>(seed >> 24);
    }
    INFO("round " << round);
    CHECK_NOTHROW(event_data(bytes));
  }
}

TEST_CASE("utf8_carry keeps a character split across two chunks whole") {
  const std::string euro = "\xE2\x82\xAC";
  utf8_carry carry;
  CHECK(carry.take("x" + euro.substr(0, 2)) == "x");
  CHECK(carry.held == euro.substr(0, 2));
  const std::string joined = carry.take(euro.substr(2) + "y");
  CHECK(joined == euro + "y");
  CHECK(event_data(joined) == euro + "y");
  CHECK(carry.held.empty());

  // U+1F600 fed one byte at a time.
  const std::string grin = "\xF0\x9F\x98\x80";
  CHECK(carry.take(grin.substr(0, 1)).empty());
  CHECK(carry.take(grin.substr(1, 1)).empty());
  CHECK(carry.take(grin.substr(2, 1)).empty());
  CHECK(carry.take(grin.substr(3, 1)) == grin);
}

TEST_CASE("utf8_carry holds back only a valid prefix, and flush hands it over") {
  utf8_carry carry;
  CHECK(carry.take("a\xC0") == "a\xC0");    // C0 never starts a character.
  CHECK(carry.take("a\xE2(") == "a\xE2(");  // Already broken: nothing to wait for.
  CHECK(carry.take("\x80\x80") == "\x80\x80");
  CHECK(carry.take("caf\xC3\xA9") == "caf\xC3\xA9");

  CHECK(carry.take("end\xE2") == "end");
  CHECK(carry.flush() == "\xE2");
  CHECK(carry.held.empty());
  // The stream ended mid-character: what is left is written as U+FFFD.
  CHECK(event_data("\xE2") == replacement);

  // A held prefix that the next chunk does not complete is passed on as is.
  CHECK(carry.take("\xE2").empty());
  CHECK(carry.take("Z") == "\xE2Z");
}
