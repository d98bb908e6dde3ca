#include "runtime/node/error_answer.hpp"

#include <array>

#include <nlohmann/json.hpp>

namespace troupe {

namespace {

using json = nlohmann::json;

std::string dump(const json& value) {
  return value.dump(-1, ' ', false, json::error_handler_t::replace);
}

struct api_type {
  std::string_view type;
  int status;
};

// The API's error types and the statuses it answers them with.
constexpr std::array<api_type, 8> api_types{{
    {"invalid_request_error", 400},
    {"authentication_error", 401},
    {"permission_error", 403},
    {"not_found_error", 404},
    {"request_too_large", 413},
    {"rate_limit_error", 429},
    {"api_error", 500},
    {"overloaded_error", 529},
}};

}  // namespace

error_answer troupe_error(errc code, std::string_view message) {
  return {http_status(code),
          dump(json{{"error", json{{"code", to_string(code)}, {"message", message}}}})};
}

std::string_view anthropic_type(errc code) noexcept {
  switch (code) {
    case errc::bad_request:
    case errc::bad_body:
    case errc::unknown_type:
    case errc::config_invalid:
    case errc::conflict:
    case errc::method_not_allowed:
      return "invalid_request_error";
    case errc::unauthorized:
      return "authentication_error";
    case errc::forbidden:
      return "permission_error";
    case errc::unknown_actor:
    case errc::not_found:
      return "not_found_error";
    case errc::too_large:
      return "request_too_large";
    case errc::restarting:
    case errc::unavailable:
    case errc::breaker_open:
    case errc::shutting_down:
      return "overloaded_error";
    case errc::timeout:
    case errc::bad_gateway:
    case errc::corrupt:
    case errc::internal:
      return "api_error";
  }
  return "api_error";
}

error_answer anthropic_error(errc code, std::string_view message) {
  const auto type = anthropic_type(code);
  return {anthropic_status(type), anthropic_error_body(type, message)};
}

std::string anthropic_error_body(std::string_view type, std::string_view message) {
  return dump(json{{"type", "error"}, {"error", json{{"type", type}, {"message", message}}}});
}

int anthropic_status(std::string_view type) noexcept {
  for (const auto& row : api_types) {
    if (row.type == type) {
      return row.status;
    }
  }
  return 500;
}

std::string anthropic_error_event(std::string_view type, std::string_view message) {
  return "\n\nevent: error\ndata: " + anthropic_error_body(type, message) + "\n\n";
}

}  // namespace troupe
