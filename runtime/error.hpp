#pragma once

// The runtime's error vocabulary. Every failure that leaves a component is an
// `error` value: a code from `errc` and a message saying what and why. On the
// wire (msgpack, JSON) an error is `{code: "<snake_case>", message: "..."}`.

#include <cassert>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <variant>

namespace troupe {

/// Error codes of the runtime; each has a stable snake_case wire name.
enum class errc : uint8_t {
  /// The request is malformed (bad path, missing field, wrong shape).
  bad_request,
  /// A message body does not decode into the message type it claims to be.
  bad_body,
  /// The receiving actor does not handle this message type.
  unknown_type,
  /// No actor is registered under the given path.
  unknown_actor,
  /// A body, header or message exceeds its configured limit.
  too_large,
  /// The callee did not answer within the request's timeout.
  timeout,
  /// The target is restarting and its stash of waiting messages is full.
  restarting,
  /// The target is stopped or gave up after too many restarts.
  unavailable,
  /// A circuit breaker is open: the call was not attempted.
  breaker_open,
  /// No or wrong credentials.
  unauthorized,
  /// The operation is switched off by configuration (e.g. chaos routes).
  forbidden,
  /// An unknown HTTP route or resource.
  not_found,
  /// The request conflicts with the current state.
  conflict,
  /// The node is shutting down and accepts no new work.
  shutting_down,
  /// A configuration value is invalid.
  config_invalid,
  /// Stored data is damaged or not in a format this build reads.
  corrupt,
  /// The route exists but not for this HTTP method.
  method_not_allowed,
  /// What an upstream answered could not be passed on.
  bad_gateway,
  /// An invariant of the callee broke while serving (a handler threw).
  internal,
};

/// The stable wire name of `code`, e.g. "unknown_actor".
[[nodiscard]] std::string_view to_string(errc code) noexcept;

/// Parses a wire name back into a code; `internal` for unknown names.
[[nodiscard]] errc errc_from_string(std::string_view name) noexcept;

/// The HTTP status an error of this code is answered with (API.md).
[[nodiscard]] int http_status(errc code) noexcept;

/// A failure: what went wrong (`code`) and a message for people.
struct error {
  errc code = errc::internal;
  std::string message;
};

/// A value or an error. Small on purpose: we need `has_value`, access and the
/// error, nothing of the monadic C++23 interface.
template <class T>
class [[nodiscard]] expected {
 public:
  expected(T value) : state_(std::move(value)) {}  // NOLINT: implicit by design
  expected(error err) : state_(std::move(err)) {}  // NOLINT: implicit by design

  [[nodiscard]] bool has_value() const noexcept { return state_.index() == 0; }
  explicit operator bool() const noexcept { return has_value(); }

  T& value() & {
    assert(has_value());
    return std::get<0>(state_);
  }
  const T& value() const& {
    assert(has_value());
    return std::get<0>(state_);
  }
  T&& value() && {
    assert(has_value());
    return std::get<0>(std::move(state_));
  }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }

  const error& err() const& {
    assert(!has_value());
    return std::get<1>(state_);
  }
  error&& err() && {
    assert(!has_value());
    return std::get<1>(std::move(state_));
  }

 private:
  std::variant<T, error> state_;
};

/// Shorthand for building an error in a return statement.
[[nodiscard]] inline error make_error(errc code, std::string message) {
  return error{code, std::move(message)};
}

}  // namespace troupe
