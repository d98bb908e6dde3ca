// What the gateway decides from a request's head and a viewer's control
// frames, without a socket.

#include "actors/gateway/http_framing.hpp"

#include <catch2/catch.hpp>

using namespace troupe;

TEST_CASE("framing: only a lone chunked coding is read, never beside a length") {
  CHECK(framing_error(false, "", true).empty());
  CHECK(framing_error(true, "chunked", false).empty());
  CHECK(framing_error(true, " Chunked ", false).empty());
  for (const char* coding :
       {"gzip", "identity", "xchunked", "chunked, identity", "gzip, chunked", "", "chunked;x=1"}) {
    INFO(coding);
    CHECK_FALSE(framing_error(true, coding, false).empty());
  }
  CHECK(framing_error(true, "chunked", true).find("Content-Length") != std::string::npos);
}

TEST_CASE("an absolute-form target is routed by its path") {
  CHECK(origin_form("http://127.0.0.1:7700/v1/messages?x=1") == "/v1/messages?x=1");
  CHECK(origin_form("HTTPS://node/healthz") == "/healthz");
  CHECK(origin_form("http://node") == "/");
  CHECK(origin_form("http://node?x=1") == "/?x=1");
  CHECK(origin_form("/v1/actors") == "/v1/actors");
  CHECK(origin_form("*") == "*");
}

TEST_CASE("a viewer's control frame is a resize in range, or an error to send back") {
  auto ok = parse_control_frame(R"({"type":"resize","cols":120,"rows":40})");
  REQUIRE(std::holds_alternative<terminal_resize>(ok));
  CHECK(std::get<terminal_resize>(ok).cols == 120);
  for (const char* bad :
       {"", "{", R"({"type":1,"cols":80,"rows":24})", R"({"type":null,"cols":80,"rows":24})",
        R"({"type":"resize","cols":1e20,"rows":5})",
        R"({"type":"resize","cols":18446744073709551615,"rows":5})",
        R"({"type":"resize","cols":0,"rows":5})", R"({"type":"other"})", "[]"}) {
    INFO(bad);
    CHECK(std::holds_alternative<std::string>(parse_control_frame(bad)));
  }
}
