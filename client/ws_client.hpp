#pragma once

// A small synchronous WebSocket client for the node's own API (session attach),
// used by troupectl and the integration tests. Like http_client it speaks
// plain ws:// only and blocks the calling thread; never call it from an actor
// or an Asio thread of the node.
//
// Single-threaded by design. Beast's synchronous reads may write on their own
// (a pong, the reply to a close), and its state is unguarded, so a reader
// thread beside a writer thread would race even with a mutex around writes.
// And poll() on the socket is not enough either: Beast reads ahead into its
// own buffer, so a second frame can wait there while the socket looks idle.
// So every operation runs on one Asio io_context driven by the calling thread:
// `wait` keeps one read pending and also wakes for the caller's own file
// descriptors (stdin, a self-pipe for signals), and each write lets that
// pending read progress meanwhile, which is the one-read-plus-one-write
// overlap Beast allows.

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "client/http_client.hpp"
#include "runtime/error.hpp"

namespace troupe {

/// One WebSocket message as received.
struct ws_message {
  /// Binary frames carry terminal bytes; text frames carry JSON control.
  bool binary = false;
  std::string data;
};

/// What `ws_client::wait` saw first.
struct ws_event {
  enum class kind : uint8_t {
    /// A whole message arrived: see `message`.
    message,
    /// The peer closed the connection with a close frame: see `close_code`
    /// and `close_reason`. Not an error: the normal end of a conversation.
    closed,
    /// One of the watched descriptors is readable (or at EOF or in error): see `fd`.
    fd_ready,
  };

  kind what = kind::message;
  ws_message message;
  uint16_t close_code = 0;
  std::string close_reason;
  int fd = -1;
};

/// One WebSocket connection to one node. Not thread-safe: one thread calls
/// everything (see the note at the top of this file for why).
class ws_client {
 public:
  /// A message bigger than this fails the read with errc::too_large; the
  /// node sends scrollback in chunks far below it.
  static constexpr uint64_t message_bytes_max = uint64_t{64} << 20;
  /// With no byte from the node for half this long the client pings; with
  /// none for all of it, the connection counts as dead (errc::timeout), so a
  /// vanished node cannot leave an attached terminal hanging for ever.
  static constexpr uint32_t idle_timeout_ms = 60'000;
  /// How long `close` waits for the node's answering close frame.
  static constexpr uint32_t close_timeout_ms = 2'000;

  ws_client();
  ~ws_client();
  ws_client(ws_client&&) noexcept;
  ws_client& operator=(ws_client&&) noexcept;
  ws_client(const ws_client&) = delete;
  ws_client& operator=(const ws_client&) = delete;

  /// Connects and upgrades `GET <base path><target>`; `target` starts with '/'
  /// and may carry a query. `token` empty: no Authorization header.
  /// `timeout_ms` bounds connect and handshake together. Errors: unavailable
  /// (cannot connect), timeout, bad_request (a malformed target), and, when
  /// the node answered with a plain HTTP reply instead of upgrading (401, 404),
  /// a code from that status; the reply itself is then kept in `refusal()`.
  [[nodiscard]] std::optional<error> connect(const base_url& url, std::string_view target,
                                             std::string_view token, uint32_t timeout_ms);

  /// The node's HTTP reply when the last `connect` was refused, so the caller
  /// can show the node's own error body.
  [[nodiscard]] const std::optional<http_response>& refusal() const noexcept;

  /// Blocks until a message or the peer's close arrives. Errors: unavailable
  /// (connection lost), timeout (idle too long), too_large.
  [[nodiscard]] expected<ws_event> read();

  /// Like `read`, but also returns `fd_ready` when one of `fds` is readable,
  /// at EOF or in error; the caller then reads that fd itself. Readiness is
  /// level-triggered: an fd the caller has not drained is reported again.
  /// A message already received is returned before any fd is looked at.
  [[nodiscard]] expected<ws_event> wait(std::span<const int> fds);

  /// Sends one message and waits until it is written. A message arriving
  /// meanwhile is kept for the next `read`/`wait`.
  [[nodiscard]] std::optional<error> write_binary(std::string_view data);
  [[nodiscard]] std::optional<error> write_text(std::string_view data);

  /// Sends a normal close frame and waits up to close_timeout_ms for the
  /// node's answer, then drops the connection. Safe to call when closed.
  void close();

 private:
  struct impl;
  std::unique_ptr<impl> impl_;
};

}  // namespace troupe
