#pragma once

// The mock upstream's request handling, apart from any socket: a parsed
// request goes in, the complete reply (status, headers, body or SSE events,
// how and when to send it) comes out. main.cpp puts it on the wire; a unit
// test can drive it directly.

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace troupe::mock {

/// Longest delay a flag or a fault may ask for: ten minutes is past any
/// client timeout under test.
inline constexpr std::uint64_t delay_ms_max = 600'000;
/// Largest text answer --answer-bytes may ask for.
inline constexpr std::uint64_t answer_bytes_max = 64u << 20;

/// How a reply goes onto the wire.
enum class delivery : std::uint8_t {
  plain,            ///< status, headers and a body
  stream,           ///< headers, the SSE events chunk by chunk, the last chunk
  stream_then_cut,  ///< headers and the SSE events, then the socket closes, no last chunk
  drop,             ///< the socket closes without any reply
};

/// What the mock sends back for one request, decided before any byte is sent.
struct reply {
  unsigned status = 200;
  delivery how = delivery::plain;
  std::string content_type = "application/json";
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;                       ///< for delivery::plain
  std::vector<std::string> events;        ///< formatted SSE events, for the stream deliveries
  std::chrono::milliseconds delay{0};     ///< before the first byte
  std::chrono::milliseconds interval{0};  ///< between SSE events
};

/// A request as the api sees it: views into the connection's parser, valid
/// for the duration of mock_api::handle().
struct request_view {
  std::string_view method;  ///< "GET", "POST", ...
  std::string_view path;    ///< the target without its query string
  std::string_view api_key;
  std::string_view anthropic_version;
  std::string_view body;
};

/// Routes requests to the mock endpoints and keeps what they share: the
/// request counter, the stats and the fault script. Thread-safe.
class mock_api {
 public:
  /// `delay` comes before every model call's reply (--delay-ms); a text
  /// answer to /v1/messages is padded to at least `answer_bytes` bytes
  /// (--answer-bytes; 0 leaves it as it is).
  explicit mock_api(std::chrono::milliseconds delay, std::uint64_t answer_bytes = 0);
  ~mock_api();
  mock_api(const mock_api&) = delete;
  mock_api& operator=(const mock_api&) = delete;

  /// The reply to one request. Never throws: a failure is a 500 reply.
  reply handle(const request_view& req);

  /// Client connections open: /mock/stats reports them and their peak
  /// ("connections": {"open", "peak"}), so tests can check a client's bound.
  void connection_opened();
  void connection_closed();

  /// The reply to a request the connection could not parse (413, 431, bad
  /// HTTP): an Anthropic error body, numbered and counted like any other.
  reply refuse_unparsed(unsigned status, std::string_view type, std::string_view message);

 private:
  struct impl;
  std::unique_ptr<impl> impl_;
};

}  // namespace troupe::mock
