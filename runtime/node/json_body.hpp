#pragma once

// Parsing a JSON request body with a bound on its nesting, for every route
// that takes JSON (the gateway's own and the families'). Header-only: the
// runtime library itself does not link a JSON library.

#include <stdexcept>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "runtime/error.hpp"

namespace troupe {

/// The body as JSON. Errors: `bad_request` naming where and why the parse
/// failed; `too_large` when it nests deeper than `depth_max` levels (caught
/// while parsing, before anything that deep is built).
[[nodiscard]] inline expected<nlohmann::json> parse_json_body(std::string_view body,
                                                              int depth_max) {
  try {
    nlohmann::json::parser_callback_t limit_depth = [depth_max](int depth,
                                                                nlohmann::json::parse_event_t,
                                                                nlohmann::json&) {
      if (depth > depth_max) {
        throw std::out_of_range("JSON nests deeper than " + std::to_string(depth_max) + " levels");
      }
      return true;
    };
    return nlohmann::json::parse(body.begin(), body.end(), limit_depth);
  } catch (const nlohmann::json::parse_error& e) {
    return make_error(errc::bad_request, std::string("body is not valid JSON: ") + e.what());
  } catch (const nlohmann::json::exception& e) {
    // A number out of double's range (1e400) is valid JSON that no double
    // holds: the parser's out_of_range (not std::out_of_range) says so.
    return make_error(errc::bad_request, std::string("body holds an unusable value: ") + e.what());
  } catch (const std::out_of_range& e) {
    return make_error(errc::too_large, e.what());
  }
}

}  // namespace troupe
