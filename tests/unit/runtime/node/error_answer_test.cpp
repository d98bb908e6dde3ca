// Every error answer is built in one place, from its code: troupe's shape
// and the Anthropic API's, with the status that goes with each.

#include "runtime/node/error_answer.hpp"

#include <catch2/catch.hpp>

#include <nlohmann/json.hpp>

using namespace troupe;
using json = nlohmann::json;

TEST_CASE("error answers: troupe's shape carries the code's wire name and status") {
  for (auto code : {errc::bad_request, errc::unknown_actor, errc::too_large, errc::timeout,
                    errc::restarting, errc::unauthorized, errc::method_not_allowed,
                    errc::bad_gateway, errc::internal}) {
    const auto answer = troupe_error(code, "why \"it\" failed");
    CHECK(answer.status == http_status(code));
    const auto body = json::parse(answer.body);
    CHECK(body["error"]["code"] == std::string(to_string(code)));
    CHECK(body["error"]["message"] == "why \"it\" failed");
    CHECK(errc_from_string(to_string(code)) == code);
  }
  CHECK(troupe_error(errc::method_not_allowed, "x").status == 405);
  CHECK(troupe_error(errc::bad_gateway, "x").status == 502);
}

TEST_CASE("error answers: Anthropic's shape maps each code to the API's type and status") {
  const std::vector<std::tuple<errc, std::string, int>> table{
      {errc::bad_request, "invalid_request_error", 400},
      {errc::method_not_allowed, "invalid_request_error", 400},
      {errc::unauthorized, "authentication_error", 401},
      {errc::forbidden, "permission_error", 403},
      {errc::not_found, "not_found_error", 404},
      {errc::too_large, "request_too_large", 413},
      {errc::restarting, "overloaded_error", 529},
      {errc::shutting_down, "overloaded_error", 529},
      {errc::unavailable, "overloaded_error", 529},
      {errc::internal, "api_error", 500},
  };
  for (const auto& [code, type, status] : table) {
    const auto answer = anthropic_error(code, "m");
    CHECK(answer.status == status);
    CHECK(json::parse(answer.body) ==
          json{{"type", "error"}, {"error", {{"type", type}, {"message", "m"}}}});
  }
}

TEST_CASE("error answers: the API's own types, always valid JSON") {
  const std::string body =
      anthropic_error_body("invalid_request_error", "bad \"quote\"\nline \xff end");
  const json parsed = json::parse(body);
  CHECK(parsed["type"] == "error");
  CHECK(parsed["error"]["type"] == "invalid_request_error");
  CHECK(parsed["error"]["message"] == "bad \"quote\"\nline \xEF\xBF\xBD end");
  const std::vector<std::pair<std::string, int>> table{{"invalid_request_error", 400},
                                                       {"authentication_error", 401},
                                                       {"permission_error", 403},
                                                       {"not_found_error", 404},
                                                       {"request_too_large", 413},
                                                       {"rate_limit_error", 429},
                                                       {"api_error", 500},
                                                       {"overloaded_error", 529}};
  for (const auto& [type, status] : table) {
    CHECK(anthropic_status(type) == status);
  }
  CHECK(anthropic_status("brand_new_error") == 500);
}

TEST_CASE("error answers: a stream's error event ends a half-sent event first") {
  const auto event = anthropic_error_event("api_error", "cut");
  CHECK(event.starts_with("\n\nevent: error\ndata: "));
  CHECK(event.ends_with("\n\n"));
  const auto data = event.substr(std::string("\n\nevent: error\ndata: ").size());
  CHECK(json::parse(data.substr(0, data.size() - 2))["error"]["message"] == "cut");
}
