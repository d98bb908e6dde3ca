#pragma once

// A small synchronous HTTP/1.1 client for the node's own API, used by
// troupectl and the integration tests. Not for upstream providers: it speaks
// plain http only and blocks the calling thread, so never call it from an
// actor or an Asio thread of the node.

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "runtime/error.hpp"
#include "runtime/net/base_url.hpp"

namespace troupe {

/// Parses where a node listens, `http://host:port[/prefix]` (see
/// runtime/net/base_url.hpp; an IPv6 host goes in brackets). https is
/// refused with a clear error until this client speaks TLS.
[[nodiscard]] expected<base_url> parse_node_url(std::string_view text);

using http_headers = std::vector<std::pair<std::string, std::string>>;

struct http_response {
  int status = 0;
  std::string content_type;
  std::string body;
  /// Every response header in arrival order, names as the server spelled them.
  http_headers headers;
};

/// The value of the first header called `name` (case-insensitive), or empty.
[[nodiscard]] std::string_view find_header(const http_response& response, std::string_view name);

/// One keep-alive connection to one node; requests go one at a time.
/// Not thread-safe: give each thread its own client.
class http_client {
 public:
  using headers = http_headers;

  /// Replies larger than this fail with errc::too_large; 64 MiB covers a full
  /// scrollback or metrics dump with room to spare.
  static constexpr uint64_t response_body_bytes_max = uint64_t{64} << 20;
  /// Status line plus headers; the node's replies carry a handful of headers.
  static constexpr uint32_t response_header_bytes_max = 64u << 10;

  /// `token` empty: no Authorization header. `timeout_ms` bounds each request
  /// as a whole: resolve aside, connect, write and read share one deadline.
  http_client(base_url url, std::string token, uint32_t timeout_ms);
  ~http_client();
  http_client(http_client&&) noexcept;
  http_client& operator=(http_client&&) noexcept;
  http_client(const http_client&) = delete;
  http_client& operator=(const http_client&) = delete;

  /// Sends one request and waits for the whole reply. `target` starts with '/'
  /// and is appended to the URL's base path; it may carry a query. Headers in
  /// `extra` replace the defaults of the same name (Authorization, Content-Type).
  /// Any HTTP status is a value; only transport failures are errors:
  /// unavailable (cannot connect, connection lost), timeout, too_large,
  /// bad_request (a malformed method, target or header).
  [[nodiscard]] expected<http_response> request(std::string_view method, std::string_view target,
                                                std::string body = {},
                                                std::string content_type = "application/json",
                                                headers extra = {});

  /// Called with each piece of a streamed (chunked) reply body as it arrives.
  using body_fn = std::function<void(std::string_view)>;

  /// Like request(), with a JSON body, but a chunked reply's body goes to
  /// `on_body` as it arrives (the response's own body stays empty) and the
  /// timeout bounds each wait for more rather than the whole reply. A reply
  /// that is not chunked (an error answer) is read whole, as by request().
  [[nodiscard]] expected<http_response> request_streamed(std::string_view method,
                                                         std::string_view target, std::string body,
                                                         const body_fn& on_body,
                                                         headers extra = {});

  [[nodiscard]] const base_url& url() const noexcept;

 private:
  [[nodiscard]] expected<http_response> send(std::string_view method, std::string_view target,
                                             std::string body, std::string content_type,
                                             headers extra, const body_fn* on_body);

  struct impl;
  std::unique_ptr<impl> impl_;
};

}  // namespace troupe
