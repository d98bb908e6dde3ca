// troupe-mock-upstream: a stand-in for the Anthropic Messages API (and an
// OpenAI-compatible chat endpoint) on loopback. Integration tests, benchmarks
// and the README demo point the gateway at it, so it speaks the real wire
// format (JSON bodies, the SSE event sequence, error bodies, rate-limit
// headers), answers deterministically, and fails on demand in scripted ways.
// README.md beside this file describes flags, endpoints and fault scripts.
//
// This file is the connection code (listener, session) and the command line;
// what each request is answered is decided in mock_api.cpp.

#include <atomic>
#include <cassert>
#include <charconv>
#include <chrono>
#include <csignal>
#include <cstdint>
#include <iostream>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include "tests/support/mock_upstream/mock_api.hpp"

namespace troupe::mock {
namespace {

namespace beast = boost::beast;
namespace http = beast::http;
namespace net = boost::asio;
using tcp = net::ip::tcp;
using std::chrono::milliseconds;

// ---------------------------------------------------------------- limits

/// Largest request body read: the real Messages API's request size limit.
constexpr std::size_t body_bytes_max = std::size_t{32} << 20;
/// Largest request head: SDK requests carry about 1 KiB of headers.
constexpr std::uint32_t header_bytes_max = 64u << 10;
/// Connections held at once; past it a new one is closed at accept, so a
/// runaway client cannot exhaust the file descriptors.
constexpr std::size_t connections_max = 8192;
/// io threads: a bound keeps a typo from starting thousands of threads.
constexpr unsigned threads_max = 64;
/// An idle keep-alive connection is closed after this; longer than any
/// pause in a test or benchmark.
constexpr std::chrono::seconds idle_timeout{120};
/// A client that does not take a reply off the socket within this is dropped.
constexpr std::chrono::seconds write_timeout{30};
/// Pause before accepting again after an accept error (out of descriptors),
/// so the accept loop does not spin.
constexpr milliseconds accept_retry{50};
/// Connections taken off the accept queue in one turn of the event loop.
constexpr std::size_t accept_burst_max = 64;

// ---------------------------------------------------------------- connections

/// What sessions share; outlives the io_context (and so every session).
struct server_state {
  server_state(milliseconds delay, std::uint64_t answer_bytes) : api(delay, answer_bytes) {}
  mock_api api;
  std::atomic<std::size_t> connections{0};
};

std::string_view to_std(beast::string_view s) {
  return {s.data(), s.size()};
}

/// Appends one SSE event to `out`, framed as an HTTP/1.1 chunk when `chunked`.
void append_event(std::string& out, std::string_view event, bool chunked) {
  if (!chunked) {
    out.append(event);
    return;
  }
  char size[16];
  const auto [end, ec] = std::to_chars(size, size + sizeof size, event.size(), 16);
  assert(ec == std::errc());
  out.append(size, end).append("\r\n").append(event).append("\r\n");
}

template <class Body>
void apply_headers(http::response<Body>& res, const reply& r) {
  res.result(r.status);
  if (r.status == 529) {
    res.reason("Overloaded");  // no standard reason phrase; Beast would say <unknown-status>
  }
  res.set(http::field::content_type, r.content_type);
  for (const auto& [name, value] : r.headers) {
    res.set(name, value);
  }
}

/// One client connection: read a request, let the api decide the reply, write
/// it, repeat while keep-alive holds. Everything runs on the connection's strand.
class session : public std::enable_shared_from_this<session> {
 public:
  session(tcp::socket&& socket, server_state& state)
      : stream_(std::move(socket)), timer_(stream_.get_executor()), state_(state) {
    state_.connections.fetch_add(1, std::memory_order_relaxed);
    state_.api.connection_opened();
  }
  ~session() {
    state_.connections.fetch_sub(1, std::memory_order_relaxed);
    state_.api.connection_closed();
  }

  void run() {
    net::dispatch(stream_.get_executor(),
                  beast::bind_front_handler(&session::do_read, shared_from_this()));
  }

 private:
  void do_read() {
    parser_.emplace();
    parser_->body_limit(body_bytes_max);
    parser_->header_limit(header_bytes_max);
    stream_.expires_after(idle_timeout);
    http::async_read_header(stream_, buffer_, *parser_,
                            beast::bind_front_handler(&session::on_header, shared_from_this()));
  }

  void on_header(beast::error_code ec, std::size_t) {
    if (ec) {
      return on_read_error(ec);
    }
    // curl and libcurl wait a second for "100 Continue" before sending a body
    // over 1 KiB; answering at once keeps large requests fast.
    if (beast::iequals(parser_->get()[http::field::expect], "100-continue")) {
      continue_.emplace(http::status::continue_, parser_->get().version());
      return http::async_write(
          stream_, *continue_,
          beast::bind_front_handler(&session::on_continue, shared_from_this()));
    }
    do_read_body();
  }

  void on_continue(beast::error_code ec, std::size_t) {
    if (ec) {
      return do_close();
    }
    do_read_body();
  }

  void do_read_body() {
    http::async_read(stream_, buffer_, *parser_,
                     beast::bind_front_handler(&session::on_read, shared_from_this()));
  }

  void on_read(beast::error_code ec, std::size_t) {
    if (ec) {
      return on_read_error(ec);
    }
    handle();
  }

  void on_read_error(beast::error_code ec) {
    const auto& http_errors = http::make_error_code(http::error::end_of_stream).category();
    if (ec == http::error::end_of_stream || ec == http::error::partial_message ||
        ec.category() != http_errors) {
      return do_close();  // the client left, timed out, or the socket failed
    }
    keep_alive_ = false;  // the stream's framing is lost: answer, then close
    version_ = 11;
    auto& api = state_.api;
    if (ec == http::error::body_limit) {
      reply_ = api.refuse_unparsed(413, "request_too_large",
                                   "Request exceeds the maximum allowed number of bytes.");
    } else if (ec == http::error::header_limit) {
      reply_ =
          api.refuse_unparsed(431, "invalid_request_error", "Request header fields too large.");
    } else {
      reply_ = api.refuse_unparsed(400, "invalid_request_error",
                                   "Malformed HTTP request: " + ec.message());
    }
    send_plain();
  }

  void handle() {
    const auto& req = parser_->get();
    version_ = req.version();
    keep_alive_ = req.keep_alive();
    const std::string_view target = to_std(req.target());
    const request_view view{to_std(req.method_string()), target.substr(0, target.find('?')),
                            to_std(req["x-api-key"]), to_std(req["anthropic-version"]), req.body()};
    reply_ = state_.api.handle(view);
    if (reply_.delay.count() > 0) {
      stream_.expires_never();  // a scripted delay may outlast the idle timeout
      timer_.expires_after(reply_.delay);
      return timer_.async_wait(beast::bind_front_handler(&session::on_delay, shared_from_this()));
    }
    deliver();
  }

  void on_delay(beast::error_code ec) {
    if (ec) {
      return;  // cancelled: the server is stopping
    }
    deliver();
  }

  void deliver() {
    switch (reply_.how) {
      case delivery::plain:
        return send_plain();
      case delivery::stream:
      case delivery::stream_then_cut:
        return send_stream_head();
      case delivery::drop:
        return close_abruptly();
    }
  }

  void send_plain() {
    plain_.emplace(http::status::ok, version_);
    apply_headers(*plain_, reply_);
    plain_->keep_alive(keep_alive_);
    plain_->body() = std::move(reply_.body);
    plain_->prepare_payload();
    stream_.expires_after(write_timeout);
    http::async_write(stream_, *plain_,
                      beast::bind_front_handler(&session::on_written, shared_from_this()));
  }

  void send_stream_head() {
    // HTTP/1.0 has no chunks: the stream ends when the connection does.
    const bool chunked = version_ >= 11;
    keep_alive_ = keep_alive_ && chunked;
    head_.emplace(http::status::ok, version_);
    apply_headers(*head_, reply_);
    head_->chunked(chunked);
    head_->keep_alive(keep_alive_);
    head_writer_.emplace(*head_);
    stream_.expires_after(write_timeout);
    http::async_write_header(
        stream_, *head_writer_,
        beast::bind_front_handler(&session::on_stream_head, shared_from_this()));
  }

  void on_stream_head(beast::error_code ec, std::size_t) {
    if (ec) {
      return;  // the client is gone; dropping the last handler closes the socket
    }
    write_events();
  }

  /// Writes the next events: all that are left, or one when they are paced.
  void write_events() {
    const bool chunked = version_ >= 11;
    const bool paced = reply_.interval.count() > 0;
    out_.clear();
    while (next_event_ < reply_.events.size()) {
      append_event(out_, reply_.events[next_event_++], chunked);
      if (paced) {
        break;
      }
    }
    if (next_event_ == reply_.events.size() && chunked && reply_.how == delivery::stream) {
      out_ += "0\r\n\r\n";  // the last chunk: the stream ended properly
    }
    stream_.expires_after(write_timeout);
    net::async_write(stream_, net::buffer(out_),
                     beast::bind_front_handler(&session::on_events_written, shared_from_this()));
  }

  void on_events_written(beast::error_code ec, std::size_t) {
    if (ec) {
      return;
    }
    if (next_event_ < reply_.events.size()) {
      stream_.expires_never();
      timer_.expires_after(reply_.interval);
      return timer_.async_wait(
          beast::bind_front_handler(&session::on_interval, shared_from_this()));
    }
    if (reply_.how == delivery::stream_then_cut) {
      return close_abruptly();
    }
    on_written({}, 0);
  }

  void on_interval(beast::error_code ec) {
    if (ec) {
      return;
    }
    write_events();
  }

  /// The reply is out: read the next request, or close.
  void on_written(beast::error_code ec, std::size_t) {
    if (ec) {
      return;
    }
    head_writer_.reset();  // before head_, which it refers to
    head_.reset();
    plain_.reset();
    continue_.reset();
    reply_ = reply{};
    next_event_ = 0;
    if (!keep_alive_) {
      return do_close();
    }
    do_read();
  }

  void do_close() {
    beast::error_code ignored;  // the peer may have gone already; nothing is left to do
    stream_.socket().shutdown(tcp::socket::shutdown_send, ignored);
  }

  /// Closes without a last chunk or a reply: what a crashed upstream looks like.
  void close_abruptly() {
    beast::error_code ignored;  // closing a socket the peer reset is fine
    stream_.socket().shutdown(tcp::socket::shutdown_both, ignored);
    stream_.close();
  }

  beast::tcp_stream stream_;
  net::steady_timer timer_;  ///< scripted delays and pacing
  server_state& state_;
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::string_body>> parser_;
  std::optional<http::response<http::empty_body>> continue_;
  std::optional<http::response<http::string_body>> plain_;
  std::optional<http::response<http::empty_body>> head_;
  std::optional<http::response_serializer<http::empty_body>> head_writer_;
  reply reply_;
  std::string out_;  ///< the events being written
  std::size_t next_event_ = 0;
  unsigned version_ = 11;
  bool keep_alive_ = true;
};

/// Accepts connections, each onto its own strand.
class listener : public std::enable_shared_from_this<listener> {
 public:
  listener(net::io_context& ioc, tcp::acceptor&& acceptor, server_state& state)
      : ioc_(ioc), acceptor_(std::move(acceptor)), retry_(ioc), state_(state) {}

  void run() {
    beast::error_code ec;
    // Only the synchronous accepts of a burst use this: they must not block.
    acceptor_.non_blocking(true, ec);
    accept_burst_ = !ec;
    do_accept();
  }

 private:
  void do_accept() {
    acceptor_.async_accept(net::make_strand(ioc_),
                           beast::bind_front_handler(&listener::on_accept, shared_from_this()));
  }

  void on_accept(beast::error_code ec, tcp::socket socket) {
    if (ec == net::error::operation_aborted) {
      return;
    }
    if (ec) {
      std::cerr << "troupe-mock-upstream: accept failed: " << ec.message() << "\n";
      retry_.expires_after(accept_retry);
      return retry_.async_wait([self = shared_from_this()](beast::error_code wait_ec) {
        if (!wait_ec) {
          self->do_accept();
        }
      });
    }
    admit(std::move(socket));
    // One async accept per turn of the event loop, and every turn serves all
    // open connections first: a benchmark opening hundreds at once would wait
    // seconds for the last. Take what the kernel has queued now instead.
    for (std::size_t i = 0; accept_burst_ && i < accept_burst_max; ++i) {
      tcp::socket next(net::make_strand(ioc_));
      acceptor_.accept(next, ec);
      if (ec) {
        break;  // would_block: the queue is empty; anything else, the async accept reports
      }
      admit(std::move(next));
    }
    do_accept();
  }

  void admit(tcp::socket socket) {
    beast::error_code ec;
    if (state_.connections.load(std::memory_order_relaxed) >= connections_max) {
      socket.close(ec);  // over the bound: refuse; a close error changes nothing
      return;
    }
    // Stream events are small writes: without this, Nagle holds each until
    // the previous one is acknowledged.
    socket.set_option(tcp::no_delay(true), ec);
    std::make_shared<session>(std::move(socket), state_)->run();
  }

  net::io_context& ioc_;
  tcp::acceptor acceptor_;
  net::steady_timer retry_;
  server_state& state_;
  bool accept_burst_ = false;
};

// ---------------------------------------------------------------- command line

struct options {
  std::string host = "127.0.0.1";
  std::uint16_t port = 0;
  unsigned threads = 1;
  std::uint64_t delay_ms = 0;
  std::uint64_t answer_bytes = 0;
  bool help = false;
};

constexpr std::string_view usage =
    "usage: troupe-mock-upstream [--listen HOST:PORT] [--threads N] [--delay-ms N]\n"
    "                            [--answer-bytes N]\n"
    "  --listen HOST:PORT  address to bind (default 127.0.0.1:0, port from the kernel)\n"
    "  --threads N         io threads, 1..64 (default 1)\n"
    "  --delay-ms N        delay before every model call's reply (default 0)\n"
    "  --answer-bytes N    pad each /v1/messages text answer to N bytes (default 0: no padding)\n";

/// `text` as a whole number in [min, max], or nothing.
std::optional<std::uint64_t> parse_number(std::string_view text, std::uint64_t min,
                                          std::uint64_t max) {
  std::uint64_t value = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || end != text.data() + text.size() || value < min || value > max) {
    return std::nullopt;
  }
  return value;
}

[[nodiscard]] std::string parse_listen(std::string_view text, options& out) {
  const auto colon = text.rfind(':');
  if (colon == std::string_view::npos) {
    return "--listen: expected HOST:PORT, got '" + std::string(text) + "'";
  }
  std::string_view host = text.substr(0, colon);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  const auto port = parse_number(text.substr(colon + 1), 0, 65535);
  if (!port) {
    return "--listen: bad port in '" + std::string(text) + "'";
  }
  out.host = host == "localhost" ? "127.0.0.1" : std::string(host);
  out.port = static_cast<std::uint16_t>(*port);
  return {};
}

/// Reads argv into `out`; why the flags are refused, or "".
[[nodiscard]] std::string parse_options(int argc, char** argv, options& out) {
  for (int i = 1; i < argc; ++i) {
    std::string_view flag = argv[i];
    std::string_view value;
    if (flag == "--help" || flag == "-h") {
      out.help = true;
      continue;
    }
    if (const auto eq = flag.find('='); eq != std::string_view::npos) {
      value = flag.substr(eq + 1);
      flag = flag.substr(0, eq);
    } else if (i + 1 < argc) {
      value = argv[++i];
    } else {
      return std::string(flag) + ": missing value";
    }
    if (flag == "--listen") {
      if (auto why = parse_listen(value, out); !why.empty()) {
        return why;
      }
    } else if (flag == "--threads") {
      const auto n = parse_number(value, 1, threads_max);
      if (!n) {
        return "--threads: expected 1.." + std::to_string(threads_max);
      }
      out.threads = static_cast<unsigned>(*n);
    } else if (flag == "--delay-ms") {
      const auto n = parse_number(value, 0, delay_ms_max);
      if (!n) {
        return "--delay-ms: expected 0.." + std::to_string(delay_ms_max);
      }
      out.delay_ms = *n;
    } else if (flag == "--answer-bytes") {
      const auto n = parse_number(value, 0, answer_bytes_max);
      if (!n) {
        return "--answer-bytes: expected 0.." + std::to_string(answer_bytes_max);
      }
      out.answer_bytes = *n;
    } else {
      return "unknown flag '" + std::string(flag) + "'";
    }
  }
  return {};
}

/// A listening acceptor on `host:port`; why it could not be opened, or "".
[[nodiscard]] std::string open_acceptor(tcp::acceptor& acceptor, const options& opts) {
  beast::error_code ec;
  const auto address = net::ip::make_address(opts.host, ec);
  if (ec) {
    return "--listen: '" + opts.host + "' is not an IP address";
  }
  const tcp::endpoint endpoint(address, opts.port);
  acceptor.open(endpoint.protocol(), ec);
  if (!ec) {
    acceptor.set_option(net::socket_base::reuse_address(true), ec);
  }
  if (!ec) {
    acceptor.bind(endpoint, ec);
  }
  if (!ec) {
    acceptor.listen(net::socket_base::max_listen_connections, ec);
  }
  if (ec) {
    return "cannot listen on " + opts.host + ":" + std::to_string(opts.port) + ": " + ec.message();
  }
  return {};
}

std::string printable(const tcp::endpoint& endpoint) {
  const auto address = endpoint.address();
  const std::string host = address.is_v6() ? "[" + address.to_string() + "]" : address.to_string();
  return host + ":" + std::to_string(endpoint.port());
}

int run(const options& opts) {
  // Declared before the io_context: the sessions its handlers hold refer to it.
  server_state state(milliseconds(opts.delay_ms), opts.answer_bytes);
  net::io_context ioc(static_cast<int>(opts.threads));
  tcp::acceptor acceptor(net::make_strand(ioc));
  if (auto why = open_acceptor(acceptor, opts); !why.empty()) {
    std::cerr << "troupe-mock-upstream: " << why << "\n";
    return 1;
  }
  const std::string bound = printable(acceptor.local_endpoint());
  std::make_shared<listener>(ioc, std::move(acceptor), state)->run();

  net::signal_set signals(ioc, SIGINT, SIGTERM);
  signals.async_wait([&ioc](beast::error_code, int) { ioc.stop(); });

  std::cerr << "troupe-mock-upstream: threads=" << opts.threads << " delay_ms=" << opts.delay_ms
            << "\n";
  std::cout << "listening on http://" << bound << std::endl;  // endl: the parent waits on it

  std::vector<std::thread> threads;
  for (unsigned i = 1; i < opts.threads; ++i) {
    threads.emplace_back([&ioc] { ioc.run(); });
  }
  ioc.run();
  for (auto& t : threads) {
    t.join();
  }
  return 0;
}

}  // namespace
}  // namespace troupe::mock

int main(int argc, char** argv) {
  using namespace troupe::mock;
  options opts;
  if (auto why = parse_options(argc, argv, opts); !why.empty()) {
    std::cerr << "troupe-mock-upstream: " << why << "\n" << usage;
    return 2;
  }
  if (opts.help) {
    std::cout << usage;
    return 0;
  }
  // A parent that closed our stdout must not kill us with SIGPIPE.
  std::signal(SIGPIPE, SIG_IGN);
  return run(opts);
}
