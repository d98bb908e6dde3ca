#include "runtime/error.hpp"

#include <array>

namespace troupe {

namespace {

struct errc_info {
  errc code;
  std::string_view name;
  int status;
};

// One row per code, in enum order; statuses follow API.md.
constexpr std::array<errc_info, 19> errc_table{{
    {errc::bad_request, "bad_request", 400},
    {errc::bad_body, "bad_body", 400},
    {errc::unknown_type, "unknown_type", 400},
    {errc::unknown_actor, "unknown_actor", 404},
    {errc::too_large, "too_large", 413},
    {errc::timeout, "timeout", 504},
    {errc::restarting, "restarting", 503},
    {errc::unavailable, "unavailable", 503},
    {errc::breaker_open, "breaker_open", 503},
    {errc::unauthorized, "unauthorized", 401},
    {errc::forbidden, "forbidden", 403},
    {errc::not_found, "not_found", 404},
    {errc::conflict, "conflict", 409},
    {errc::shutting_down, "shutting_down", 503},
    {errc::config_invalid, "config_invalid", 400},
    {errc::corrupt, "corrupt", 500},
    {errc::method_not_allowed, "method_not_allowed", 405},
    {errc::bad_gateway, "bad_gateway", 502},
    {errc::internal, "internal", 500},
}};

static_assert(static_cast<size_t>(errc::internal) + 1 == errc_table.size(),
              "errc_table needs one row per errc");

constexpr bool table_in_enum_order() {
  for (size_t i = 0; i < errc_table.size(); ++i) {
    if (static_cast<size_t>(errc_table[i].code) != i) {
      return false;
    }
  }
  return true;
}
static_assert(table_in_enum_order(), "errc_table rows must follow the enum order");

}  // namespace

std::string_view to_string(errc code) noexcept {
  return errc_table[static_cast<size_t>(code)].name;
}

errc errc_from_string(std::string_view name) noexcept {
  for (const auto& row : errc_table) {
    if (row.name == name) {
      return row.code;
    }
  }
  return errc::internal;
}

int http_status(errc code) noexcept {
  return errc_table[static_cast<size_t>(code)].status;
}

}  // namespace troupe
