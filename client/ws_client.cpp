#include "client/ws_client.hpp"

#include "client/client_common.hpp"

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/beast/core/buffers_to_string.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/websocket.hpp>

#include <algorithm>
#include <array>
#include <cassert>
#include <chrono>
#include <cstdlib>
#include <map>

#include <fcntl.h>
#include <poll.h>
#include <unistd.h>

namespace troupe {

namespace beast = boost::beast;
namespace http = beast::http;
namespace websocket = beast::websocket;
namespace net = boost::asio;
using tcp = net::ip::tcp;
using steady_clock = std::chrono::steady_clock;

using client_detail::check_target;
using client_detail::to_response;

namespace {

constexpr std::string_view user_agent = "troupe-ws-client/0.1";
/// `wait` polls the caller's descriptors in one array on the stack; troupectl
/// watches two (a signal pipe and stdin).
constexpr size_t watched_fds_max = 8;

using ws_stream = websocket::stream<beast::tcp_stream>;

beast::string_view to_beast(std::string_view text) {
  return {text.data(), text.size()};
}

// The codes API.md answers with; anything else is the node being unreachable
// as far as this client can tell.
errc errc_from_status(int status) {
  switch (status) {
    case 400:
      return errc::bad_request;
    case 401:
      return errc::unauthorized;
    case 403:
      return errc::forbidden;
    case 404:
      return errc::not_found;
    case 409:
      return errc::conflict;
    case 413:
      return errc::too_large;
    default:
      return errc::unavailable;
  }
}

}  // namespace

struct ws_client::impl {
  /// A caller's descriptor, watched through a duplicate so that closing ours
  /// never closes theirs. The wait is only a wake-up: whether the fd is
  /// readable is asked of poll(), because Asio's epoll is edge-triggered and
  /// would not report bytes that were already waiting when the wait began.
  struct watched {
    std::unique_ptr<net::posix::stream_descriptor> descriptor;
    bool wait_pending = false;
    /// epoll refused it or the wait failed: report it ready and let the
    /// caller's own read say what it holds, rather than never waking.
    bool failed = false;
  };

  // First member: destroyed last, after everything that registered with it.
  net::io_context ioc{1};
  std::optional<ws_stream> ws;
  std::string url_text;
  std::optional<http_response> refusal;
  /// False once the peer closed or the connection failed.
  bool open = false;
  /// Bumped by `drop`, so that a handler of a dropped connection, should it
  /// still run, cannot touch the state of the next one.
  uint64_t generation = 0;

  // The one read kept pending across calls, and what it gave once it landed.
  beast::flat_buffer read_buffer;
  bool read_pending = false;
  std::optional<expected<ws_event>> read_result;

  std::map<int, watched> watched_fds;

  ~impl() { drop(); }

  // Each public call is synchronous; its asynchronous operation is
  // outstanding until `done`, so the io_context always has work meanwhile.
  void run_until(const bool& done) {
    while (!done) {
      run_one();
    }
  }

  // Sleeps until one handler has run.
  void run_one() {
    if (ioc.stopped()) {
      ioc.restart();
    }
    if (ioc.run_one() == 0) {
      assert(false && "an outstanding operation keeps the io_context busy");
      std::abort();
    }
  }

  error transport_error(const beast::error_code& ec) const {
    if (ec == beast::error::timeout) {
      return make_error(errc::timeout, "no data from " + url_text + " within " +
                                           std::to_string(idle_timeout_ms) + " ms");
    }
    if (ec == websocket::error::message_too_big) {
      return make_error(errc::too_large, "a message from " + url_text + " exceeds " +
                                             std::to_string(message_bytes_max >> 20) + " MiB");
    }
    if (ec == net::error::eof || ec == net::error::connection_reset) {
      return make_error(errc::unavailable, "connection to " + url_text +
                                               " lost: the node closed it without a close frame");
    }
    return make_error(errc::unavailable, "connection to " + url_text + " lost: " + ec.message());
  }

  std::optional<error> open_tcp(const base_url& url, steady_clock::time_point deadline,
                                std::chrono::milliseconds timeout);
  std::optional<error> handshake(const base_url& url, std::string_view target,
                                 std::string_view token, steady_clock::time_point deadline);
  void start_read();
  void on_read(const beast::error_code& ec);
  std::optional<int> ready_fd(std::span<const int> fds);
  void arm_wait(int fd);
  std::optional<error> write(std::string_view data, bool binary);
  void drop();
};

std::optional<error> ws_client::impl::open_tcp(const base_url& url,
                                               steady_clock::time_point deadline,
                                               std::chrono::milliseconds timeout) {
  ws.emplace(ioc);
  auto& stream = ws->next_layer();
  if (auto failed = client_detail::connect_tcp(ioc, stream, url, url_text, deadline, timeout,
                                               [this](const bool& done) { run_until(done); })) {
    return failed;
  }
  // Beast: once the WebSocket layer runs, its own timeouts replace the stream's.
  stream.expires_never();
  return std::nullopt;
}

std::optional<error> ws_client::impl::handshake(const base_url& url, std::string_view target,
                                                std::string_view token,
                                                steady_clock::time_point deadline) {
  websocket::stream_base::timeout timeouts{};
  timeouts.handshake_timeout = std::max(
      std::chrono::duration_cast<std::chrono::milliseconds>(deadline - steady_clock::now()),
      std::chrono::milliseconds(1));
  timeouts.idle_timeout = std::chrono::milliseconds(idle_timeout_ms);
  timeouts.keep_alive_pings = true;
  ws->set_option(timeouts);
  ws->set_option(websocket::stream_base::decorator(
      [bearer = token.empty() ? std::string()
                              : "Bearer " + std::string(token)](websocket::request_type& request) {
        request.set(http::field::user_agent, to_beast(user_agent));
        if (!bearer.empty()) {
          request.set(http::field::authorization, bearer);
        }
      }));
  ws->read_message_max(message_bytes_max);
  websocket::response_type response;
  beast::error_code ec;
  bool done = false;
  const auto host = host_header(url);
  const auto full_target = url.base_path + std::string(target);
  ws->async_handshake(response, host, full_target, [&](beast::error_code e) {
    ec = e;
    done = true;
  });
  run_until(done);
  if (ec == websocket::error::upgrade_declined) {
    refusal = to_response(response);
    return make_error(errc_from_status(refusal->status),
                      url_text + " refused the WebSocket upgrade of " + std::string(target) +
                          " with HTTP " + std::to_string(refusal->status));
  }
  if (ec == beast::error::timeout) {
    return make_error(errc::timeout, "no WebSocket handshake with " + url_text + " in time");
  }
  if (ec) {
    return make_error(errc::unavailable,
                      "WebSocket handshake with " + url_text + " failed: " + ec.message());
  }
  return std::nullopt;
}

void ws_client::impl::start_read() {
  assert(ws && open && !read_pending && !read_result);
  read_pending = true;
  ws->async_read(read_buffer, [this, started = generation](beast::error_code ec, std::size_t) {
    if (started == generation) {
      on_read(ec);
    }
  });
}

void ws_client::impl::on_read(const beast::error_code& ec) {
  read_pending = false;
  if (ec == websocket::error::closed) {
    open = false;
    ws_event event;
    event.what = ws_event::kind::closed;
    event.close_code = static_cast<uint16_t>(ws->reason().code);
    event.close_reason.assign(ws->reason().reason.data(), ws->reason().reason.size());
    read_result = std::move(event);
    return;
  }
  if (ec) {
    open = false;
    read_result = transport_error(ec);
    return;
  }
  ws_event event;
  event.message.binary = ws->got_binary();
  event.message.data = beast::buffers_to_string(read_buffer.data());
  read_buffer.consume(read_buffer.size());
  read_result = std::move(event);
}

std::optional<int> ws_client::impl::ready_fd(std::span<const int> fds) {
  assert(fds.size() <= watched_fds_max);
  std::array<pollfd, watched_fds_max> polled{};
  for (size_t i = 0; i < fds.size(); ++i) {
    if (const auto it = watched_fds.find(fds[i]); it != watched_fds.end() && it->second.failed) {
      return fds[i];
    }
    polled[i] = pollfd{fds[i], POLLIN, 0};
  }
  // Zero timeout: only asks. EINTR counts as "nothing yet"; the caller's
  // self-pipe, not EINTR, is how a signal gets noticed.
  if (::poll(polled.data(), static_cast<nfds_t>(fds.size()), 0) <= 0) {
    return std::nullopt;
  }
  for (size_t i = 0; i < fds.size(); ++i) {
    if ((polled[i].revents & (POLLIN | POLLHUP | POLLERR | POLLNVAL)) != 0) {
      return fds[i];
    }
  }
  return std::nullopt;
}

void ws_client::impl::arm_wait(int fd) {
  auto& entry = watched_fds[fd];
  if (!entry.descriptor && !entry.failed) {
    const int copy = ::fcntl(fd, F_DUPFD_CLOEXEC, 0);
    beast::error_code ec;
    if (copy >= 0) {
      entry.descriptor = std::make_unique<net::posix::stream_descriptor>(ioc);
      entry.descriptor->assign(copy, ec);
    }
    if (copy < 0 || ec) {
      if (copy >= 0) {
        ::close(copy);
      }
      entry.descriptor.reset();
      entry.failed = true;
    }
  }
  if (entry.failed || entry.wait_pending) {
    return;
  }
  entry.wait_pending = true;
  entry.descriptor->async_wait(net::posix::stream_descriptor::wait_read,
                               [&entry](beast::error_code ec) {
                                 entry.wait_pending = false;
                                 if (ec && ec != net::error::operation_aborted) {
                                   entry.failed = true;
                                 }
                               });
}

std::optional<error> ws_client::impl::write(std::string_view data, bool binary) {
  if (!ws || !open) {
    return make_error(errc::unavailable, "not connected to " + url_text);
  }
  ws->binary(binary);
  beast::error_code ec;
  bool done = false;
  ws->async_write(net::buffer(data.data(), data.size()), [&](beast::error_code e, std::size_t) {
    ec = e;
    done = true;
  });
  run_until(done);
  if (ec && read_result) {
    // The peer closed or the connection broke while writing; the pending read
    // saw why, and the next `wait` reports that instead of a bare write error.
    return std::nullopt;
  }
  if (ec) {
    open = false;
    return transport_error(ec);
  }
  return std::nullopt;
}

void ws_client::impl::drop() {
  if (ws) {
    beast::error_code ignored;
    ws->next_layer().socket().shutdown(tcp::socket::shutdown_both, ignored);
    ws->next_layer().socket().close(ignored);
    // Let the aborted operations finish now, while the stream they use lives.
    ioc.restart();
    ioc.poll();
    ws.reset();
  }
  ++generation;
  open = false;
  read_pending = false;
  read_result.reset();
  read_buffer.consume(read_buffer.size());
}

ws_client::ws_client() : impl_(std::make_unique<impl>()) {}
ws_client::~ws_client() = default;
ws_client::ws_client(ws_client&&) noexcept = default;
ws_client& ws_client::operator=(ws_client&&) noexcept = default;

std::optional<error> ws_client::connect(const base_url& url, std::string_view target,
                                        std::string_view token, uint32_t timeout_ms) {
  impl_->drop();
  impl_->refusal.reset();
  impl_->url_text = to_string(url);
  if (auto bad = check_target(target)) {
    return bad;
  }
  const auto deadline = steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  auto failed = impl_->open_tcp(url, deadline, std::chrono::milliseconds(timeout_ms));
  if (!failed) {
    failed = impl_->handshake(url, target, token, deadline);
  }
  if (failed) {
    impl_->drop();
    return failed;
  }
  impl_->open = true;
  return std::nullopt;
}

const std::optional<http_response>& ws_client::refusal() const noexcept {
  return impl_->refusal;
}

expected<ws_event> ws_client::read() {
  return wait({});
}

expected<ws_event> ws_client::wait(std::span<const int> fds) {
  auto& self = *impl_;
  for (;;) {
    if (self.read_result) {
      auto result = std::move(*self.read_result);
      self.read_result.reset();
      return result;
    }
    if (const auto fd = self.ready_fd(fds)) {
      ws_event event;
      event.what = ws_event::kind::fd_ready;
      event.fd = *fd;
      return event;
    }
    if (!self.ws || !self.open) {
      return make_error(errc::unavailable, "not connected to " + self.url_text);
    }
    if (!self.read_pending) {
      self.start_read();
    }
    for (const int fd : fds) {
      self.arm_wait(fd);
    }
    // Sleeps until some operation completes: the read, a watched fd's
    // wake-up, or one of Beast's own timers; then looks again.
    self.run_one();
  }
}

std::optional<error> ws_client::write_binary(std::string_view data) {
  return impl_->write(data, true);
}

std::optional<error> ws_client::write_text(std::string_view data) {
  return impl_->write(data, false);
}

void ws_client::close() {
  auto& self = *impl_;
  if (self.ws && self.open) {
    // Beast bounds the close handshake by the handshake timeout.
    websocket::stream_base::timeout timeouts{};
    self.ws->get_option(timeouts);
    timeouts.handshake_timeout = std::chrono::milliseconds(close_timeout_ms);
    self.ws->set_option(timeouts);
    bool done = false;
    self.ws->async_close(websocket::close_code::normal,
                         [&done](beast::error_code) { done = true; });
    self.run_until(done);
  }
  self.drop();
}

}  // namespace troupe
