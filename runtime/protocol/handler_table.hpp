#pragma once

// Maps message type names to typed handlers. The table decodes the body once,
// at the receiving actor's edge, calls the handler with a plain struct and
// encodes its reply; failures become `error` envelopes. It knows nothing of
// actors, so tests drive it directly.

#include <functional>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include "runtime/error.hpp"
#include "runtime/protocol/codec.hpp"
#include "runtime/protocol/envelope.hpp"

namespace troupe {

/// Suffix of a reply's type name: "sys.echo" is answered by "sys.echo.reply".
inline constexpr std::string_view reply_suffix = ".reply";

class handler_table {
 public:
  using raw_handler = std::function<envelope(const envelope_view&)>;

  explicit handler_table(decode_limits limits = {}) : limits_(limits) {}

  /// Registers `fn` for `type`. `Fn` takes `const Req&` and returns
  /// `expected<Rep>`; the table decodes `Req` and encodes `Rep`. Throws
  /// std::invalid_argument when `type` is empty or already registered.
  template <class Req, class Fn>
  void on(std::string type, Fn fn) {
    using result_type = std::invoke_result_t<Fn&, const Req&>;
    static_assert(is_expected<result_type>::value, "handlers return troupe::expected<Reply>");
    std::string reply_type = type + std::string(reply_suffix);
    add(std::move(type),
        [fn = std::move(fn), reply_type = std::move(reply_type),
         limits = limits_](const envelope_view& in) mutable -> envelope {
          auto request = decode<Req>(in.body, limits);
          if (!request) {
            return make_error_envelope(request.err(), in.correlation_id);
          }
          auto reply = fn(*request);
          if (!reply) {
            return make_error_envelope(reply.err(), in.correlation_id);
          }
          return make_envelope(reply_type, *reply, in.correlation_id);
        });
  }

  /// Answers `in`: the handler's reply, or an `error` envelope when the type
  /// is unknown or the body does not decode. Exceptions from handlers pass
  /// through: the actor decides whether to resume or fail (see decider).
  [[nodiscard]] envelope dispatch(const envelope_view& in) const;

  /// Registered type names, sorted (for error messages and introspection).
  [[nodiscard]] std::vector<std::string> types() const;

 private:
  template <class T>
  struct is_expected : std::false_type {};
  template <class T>
  struct is_expected<expected<T>> : std::true_type {};

  void add(std::string type, raw_handler fn);

  decode_limits limits_;
  /// Sorted by type (for types()); looked up by a scan (see find_handler).
  std::vector<std::pair<std::string, raw_handler>> handlers_;
};

}  // namespace troupe
