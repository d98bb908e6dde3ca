#pragma once

// An HTTP exchange handed from the gateway's connection to a family that
// answers it itself, possibly as a stream (the LLM gateway's /v1/messages).
// The gateway does not link that family: it only knows this interface, and
// the family installs its handler in node_context at boot.

#include <functional>
#include <iterator>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace troupe {

using http_headers = std::vector<std::pair<std::string, std::string>>;

/// A header name in lower case (names are ASCII; no locale lookups).
[[nodiscard]] inline std::string lower_name(std::string_view name) {
  std::string out(name);
  for (auto& c : out) {
    if (c >= 'A' && c <= 'Z') {
      c = static_cast<char>(c + ('a' - 'A'));
    }
  }
  return out;
}

/// The fields of a parsed HTTP head (a Beast message: fields with
/// name_string() and value()) as headers, names lower-cased.
template <class Fields>
[[nodiscard]] http_headers lowered_headers(const Fields& fields) {
  http_headers out;
  out.reserve(static_cast<size_t>(std::distance(fields.begin(), fields.end())));
  for (const auto& field : fields) {
    const auto name = field.name_string();
    const auto value = field.value();
    out.emplace_back(lower_name({name.data(), name.size()}),
                     std::string(value.data(), value.size()));
  }
  return out;
}

struct exchange_request {
  std::string method;
  std::string target;
  /// Every request header, names lower-cased.
  http_headers headers;
  std::string body;
  /// Who is asking, for the ledger and the limiter's fairness: a label
  /// derived from the credential, never the credential itself.
  std::string client;

  [[nodiscard]] std::string_view header(std::string_view name) const {
    for (const auto& [key, value] : headers) {
      if (key == name) {
        return value;
      }
    }
    return {};
  }
};

/// The connection's side of an exchange. Thread-safe: any thread may call
/// it; calls take effect in the order made. Exactly one of reply() or
/// begin_stream() ... end_stream() answers an exchange.
class exchange_sink {
 public:
  virtual ~exchange_sink() = default;
  /// A whole response.
  virtual void reply(int status, http_headers headers, std::string body) = 0;
  /// A streamed response (chunked): the head now, then chunks, then the end.
  virtual void begin_stream(int status, http_headers headers) = 0;
  virtual void stream(std::string chunk) = 0;
  virtual void end_stream() = 0;
  /// True once the client went away; producers should stop.
  [[nodiscard]] virtual bool gone() const = 0;
};

using exchange_handler =
    std::function<void(exchange_request request, std::shared_ptr<exchange_sink> sink)>;

}  // namespace troupe
