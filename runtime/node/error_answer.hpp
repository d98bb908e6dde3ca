#pragma once

// The one place an error becomes an HTTP answer. The node speaks two
// shapes: its own, `{"error": {"code", "message"}}`, on its routes, and the
// Anthropic API's, `{"type": "error", "error": {"type", "message"}}`, on the
// routes Claude clients call. Both are built here from the error code (or,
// on the LLM routes, from one of the API's own error types), with the status
// that goes with it; nothing else writes an error body or pairs a status
// with a code by hand.

#include <string>
#include <string_view>

#include "runtime/error.hpp"

namespace troupe {

struct error_answer {
  int status = 500;
  std::string body;
};

/// troupe's shape; the status is http_status(code).
[[nodiscard]] error_answer troupe_error(errc code, std::string_view message);

/// Anthropic's shape; the type and the status follow from the code
/// (anthropic_type): bad input is `invalid_request_error` 400, an actor
/// restarting or a node shutting down `overloaded_error` 529 (clients retry
/// it), a failure of the node `api_error` 500.
[[nodiscard]] error_answer anthropic_error(errc code, std::string_view message);

/// The API's error type for `code`.
[[nodiscard]] std::string_view anthropic_type(errc code) noexcept;

/// Anthropic's shape for one of the API's own error types (an upstream's,
/// passed on, or the LLM router's choice). Always valid JSON: invalid UTF-8
/// in `message` is replaced by U+FFFD.
[[nodiscard]] std::string anthropic_error_body(std::string_view type, std::string_view message);

/// The status the API answers `type` with; 500 for a type it does not have.
[[nodiscard]] int anthropic_status(std::string_view type) noexcept;

/// An SSE `error` event with anthropic_error_body, for a stream that ends
/// early. It starts with a blank line, which ends whatever event was left
/// half-sent.
[[nodiscard]] std::string anthropic_error_event(std::string_view type, std::string_view message);

}  // namespace troupe
