#include "runtime/node/json_body.hpp"

#include <catch2/catch.hpp>

#include <string>

using troupe::errc;
using troupe::parse_json_body;

TEST_CASE("json_body: a number no double holds is a bad request, not an exception") {
  for (const std::string body :
       {R"({"temperature": 1e400})", R"([-1e99999])", R"({"a": {"b": [1, 2, 1E+400]}})"}) {
    auto parsed = parse_json_body(body, 16);
    REQUIRE_FALSE(parsed);
    CHECK(parsed.err().code == errc::bad_request);
    CHECK(parsed.err().message.find("number overflow") != std::string::npos);
  }
}

TEST_CASE("json_body: malformed JSON and deep nesting are named") {
  auto bad = parse_json_body("{\"a\": ", 16);
  REQUIRE_FALSE(bad);
  CHECK(bad.err().code == errc::bad_request);
  auto deep = parse_json_body(std::string(100, '[') + std::string(100, ']'), 16);
  REQUIRE_FALSE(deep);
  CHECK(deep.err().code == errc::too_large);
  CHECK(deep.err().message.find("16 levels") != std::string::npos);
  auto fine = parse_json_body(R"({"temperature": 1e300})", 16);
  REQUIRE(fine);
  CHECK((*fine)["temperature"].get<double>() == 1e300);
}

TEST_CASE("json_body: brackets inside strings do not count toward the depth") {
  auto quoted = parse_json_body(R"({"a": "[[[[[[[[[[{{{{{{", "b": "\"[[[[[[[[[[[["})", 4);
  REQUIRE(quoted);
  CHECK((*quoted)["a"] == "[[[[[[[[[[{{{{{{");
  auto exact = parse_json_body("[[[[1]]]]", 4);
  CHECK(exact.has_value());
  auto over = parse_json_body("[[[[[1]]]]]", 4);
  REQUIRE_FALSE(over);
  CHECK(over.err().code == errc::too_large);
}
