// The node's WebSocket client against real sockets: a WebSocket peer on a
// thread of the test (Beast, synchronous) that plays the node's side of a
// script, a peer that answers the upgrade with a plain HTTP reply, a closed
// port and a socket that never answers.

#include "client/ws_client.hpp"

#include <unistd.h>

#include <catch2/catch.hpp>

#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/websocket.hpp>

#include <array>
#include <functional>
#include <future>
#include <thread>

#include "tests/support/silent_socket.hpp"

using namespace troupe;
namespace net = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace websocket = beast::websocket;
using tcp = net::ip::tcp;

namespace {

using server_socket = websocket::stream<tcp::socket>;

/// One connection's peer on a thread of its own: it accepts a connection,
/// reads the upgrade request (kept in `request`), and hands the socket to
/// `script`. Errors end the script: the client's side is what is tested.
class peer {
 public:
  using script_fn = std::function<void(tcp::socket&, const http::request<http::string_body>&)>;

  explicit peer(script_fn script)
      : acceptor_(io_, tcp::endpoint(net::ip::address_v4::loopback(), 0)) {
    port_ = acceptor_.local_endpoint().port();
    thread_ = std::thread([this, script = std::move(script)] {
      try {
        tcp::socket socket(io_);
        acceptor_.accept(socket);
        beast::flat_buffer buffer;
        // The client sends nothing more before the answer, so the parser
        // has read no further than the request.
        http::read(socket, buffer, request_);
        received_.set_value();
        received_set_ = true;
        script(socket, request_);
      } catch (const std::exception&) {
        // The client went away (or never came): what it saw is what the
        // test checks. A test waiting for the request is not left waiting.
        if (!received_set_) {
          received_.set_exception(std::current_exception());
        }
      }
    });
  }
  ~peer() {
    // A blocking accept() is not woken by close() alone; shutdown wakes it
    // when a test ended before it connected.
    ::shutdown(acceptor_.native_handle(), SHUT_RDWR);
    boost::system::error_code ignored;
    acceptor_.close(ignored);
    thread_.join();
  }
  peer(const peer&) = delete;
  peer& operator=(const peer&) = delete;

  [[nodiscard]] base_url url() const {
    auto url = parse_node_url("http://127.0.0.1:" + std::to_string(port_));
    REQUIRE(url);
    return *url;
  }
  /// The upgrade request, once it has been read.
  const http::request<http::string_body>& request() {
    received_future_.wait();
    return request_;
  }

 private:
  net::io_context io_;
  tcp::acceptor acceptor_;
  uint16_t port_ = 0;
  http::request<http::string_body> request_;
  std::promise<void> received_;
  bool received_set_ = false;
  std::shared_future<void> received_future_ = received_.get_future().share();
  std::thread thread_;
};

/// A script that upgrades, then runs `then` on the WebSocket.
peer::script_fn upgraded(std::function<void(server_socket&)> then) {
  return [then = std::move(then)](tcp::socket& socket,
                                  const http::request<http::string_body>& request) {
    server_socket ws(std::move(socket));
    ws.accept(request);
    then(ws);
  };
}

/// A one-shot signal from the test's thread to the peer's.
struct go {
  void give() {
    if (!given) {
      given = true;
      promise.set_value();
    }
  }
  void wait() { future.wait(); }
  std::promise<void> promise;
  std::shared_future<void> future = promise.get_future().share();
  bool given = false;
};

/// Gives `g` when it goes out of scope: declared after the peer, it lets a
/// test that failed early end instead of leaving the peer waiting for ever.
struct given_at_exit {
  go& g;
  ~given_at_exit() { g.give(); }
};

/// What the peer thread reports back, waited for with a deadline.
template <class T>
T within_seconds(std::future<T> f, int seconds = 10) {
  REQUIRE(f.wait_for(std::chrono::seconds(seconds)) == std::future_status::ready);
  return f.get();
}

ws_event read_event(ws_client& c) {
  auto event = c.read();
  REQUIRE(event);
  return std::move(*event);
}

struct pipe_fds {
  pipe_fds() { REQUIRE(::pipe(fds.data()) == 0); }
  ~pipe_fds() {
    ::close(fds[0]);
    ::close(fds[1]);
  }
  std::array<int, 2> fds{-1, -1};
};

}  // namespace

TEST_CASE("ws client: text and binary go both ways, and the peer's close is an event") {
  peer p(upgraded([](server_socket& ws) {
    for (int i = 0; i < 2; ++i) {  // echo two messages, in their own kind
      beast::flat_buffer buffer;
      ws.read(buffer);
      ws.binary(ws.got_binary());
      ws.write(buffer.data());
    }
    ws.close(websocket::close_reason(websocket::close_code::going_away, "bye"));
    beast::flat_buffer rest;
    boost::system::error_code ec;
    ws.read(rest, ec);  // the client's answering close
  }));
  ws_client c;
  REQUIRE_FALSE(c.connect(p.url(), "/v1/sessions/s-1/attach?readonly=1", "secret", 3000));
  // The upgrade carried the target, the bearer token and who is asking.
  CHECK(p.request().target() == "/v1/sessions/s-1/attach?readonly=1");
  CHECK(p.request()[http::field::authorization] == "Bearer secret");
  CHECK_FALSE(p.request()[http::field::user_agent].empty());

  REQUIRE_FALSE(c.write_text(R"({"type":"resize","cols":100,"rows":40})"));
  auto text = read_event(c);
  REQUIRE(text.what == ws_event::kind::message);
  CHECK_FALSE(text.message.binary);
  CHECK(text.message.data == R"({"type":"resize","cols":100,"rows":40})");

  const std::string bytes("\x1b[1mbold\x00\xff", 10);
  REQUIRE_FALSE(c.write_binary(bytes));
  auto binary = read_event(c);
  REQUIRE(binary.what == ws_event::kind::message);
  CHECK(binary.message.binary);
  CHECK(binary.message.data == bytes);

  auto closed = read_event(c);
  REQUIRE(closed.what == ws_event::kind::closed);
  CHECK(closed.close_code == 1001);
  CHECK(closed.close_reason == "bye");
  // Closed: nothing more goes out, and saying so twice is harmless.
  auto late = c.write_text("late");
  REQUIRE(late);
  CHECK(late->code == errc::unavailable);
  c.close();
  c.close();
}

TEST_CASE("ws client: wait reports a ready descriptor until drained, and wakes for messages") {
  go send_one;
  peer p(upgraded([&](server_socket& ws) {
    send_one.wait();
    ws.text(true);
    ws.write(net::buffer(std::string("first")));
    ws.write(net::buffer(std::string("second")));
    beast::flat_buffer rest;
    boost::system::error_code ec;
    ws.read(rest, ec);  // until the client closes
  }));
  const given_at_exit unblock{send_one};
  ws_client c;
  REQUIRE_FALSE(c.connect(p.url(), "/attach", "", 3000));
  CHECK(p.request()[http::field::authorization].empty());  // no token, no header
  pipe_fds pipe;
  const std::array<int, 1> watched{pipe.fds[0]};

  REQUIRE(::write(pipe.fds[1], "k", 1) == 1);
  // Level-triggered: reported again while it is not drained.
  for (int i = 0; i < 2; ++i) {
    auto ready = c.wait(watched);
    REQUIRE(ready);
    REQUIRE(ready->what == ws_event::kind::fd_ready);
    CHECK(ready->fd == pipe.fds[0]);
  }
  char drained = 0;
  REQUIRE(::read(pipe.fds[0], &drained, 1) == 1);

  // With the descriptor quiet, the next message wakes it.
  send_one.give();
  auto first = c.wait(watched);
  REQUIRE(first);
  REQUIRE(first->what == ws_event::kind::message);
  CHECK(first->message.data == "first");
  // read() looks at no descriptor.
  REQUIRE(::write(pipe.fds[1], "k", 1) == 1);
  auto second = c.read();
  REQUIRE(second);
  CHECK(second->message.data == "second");
  auto ready = c.wait(watched);
  REQUIRE(ready);
  CHECK(ready->what == ws_event::kind::fd_ready);
  c.close();
}

TEST_CASE("ws client: the client's close is answered and ends the conversation") {
  std::promise<uint16_t> seen_code;
  peer p(upgraded([&](server_socket& ws) {
    beast::flat_buffer buffer;
    boost::system::error_code ec;
    ws.read(buffer, ec);
    seen_code.set_value(ec == websocket::error::closed ? ws.reason().code : 0);
  }));
  ws_client c;
  REQUIRE_FALSE(c.connect(p.url(), "/attach", "t", 3000));
  c.close();
  CHECK(within_seconds(seen_code.get_future()) == websocket::close_code::normal);
  auto after = c.read();
  REQUIRE_FALSE(after);
  CHECK(after.err().code == errc::unavailable);
}

TEST_CASE("ws client: a peer that vanishes without a close frame is an error, not a hang") {
  peer p(upgraded([](server_socket& ws) {
    ws.next_layer().shutdown(tcp::socket::shutdown_both);
    ws.next_layer().close();
  }));
  ws_client c;
  REQUIRE_FALSE(c.connect(p.url(), "/attach", "t", 3000));
  auto lost = c.read();
  REQUIRE_FALSE(lost);
  CHECK(lost.err().code == errc::unavailable);
  CHECK(lost.err().message.find("without a close frame") != std::string::npos);
}

TEST_CASE("ws client: a message over the limit fails the read with too_large") {
  std::promise<uint16_t> seen_code;
  peer p(upgraded([&](server_socket& ws) {
    // Only the header of a frame that claims one byte over the limit: the
    // client refuses it from the header, before any payload. (Written raw:
    // Beast would cut a large message into fragments of its own.)
    std::string header{'\x82', '\x7f'};  // final binary frame, 64-bit length
    const uint64_t length = ws_client::message_bytes_max + 1;
    for (int shift = 56; shift >= 0; shift -= 8) {
      header.push_back(static_cast<char>((length >> shift) & 0xff));
    }
    boost::system::error_code ec;
    net::write(ws.next_layer(), net::buffer(header), ec);
    // The client answers with a close frame (1009, too big); a peer that
    // reads it closes cleanly, which is how the client's read learns why.
    beast::flat_buffer rest;
    ws.read(rest, ec);
    seen_code.set_value(ec == websocket::error::closed ? ws.reason().code : 0);
  }));
  ws_client c;
  REQUIRE_FALSE(c.connect(p.url(), "/attach", "t", 3000));
  auto refused = c.read();
  REQUIRE_FALSE(refused);
  INFO(refused.err().message);
  CHECK(refused.err().code == errc::too_large);
  CHECK(within_seconds(seen_code.get_future()) == websocket::close_code::too_big);
}

TEST_CASE("ws client: an upgrade answered with plain HTTP keeps the reply and maps its status") {
  const auto refuse_with = [](http::status status) {
    return [status](tcp::socket& socket, const http::request<http::string_body>&) {
      http::response<http::string_body> reply{status, 11};
      reply.set(http::field::content_type, "application/json");
      reply.body() = R"({"error":{"code":"refused","message":"not here"}})";
      reply.prepare_payload();
      http::write(socket, reply);
    };
  };
  // Each status the node refuses an upgrade with, and one it never does.
  const std::pair<http::status, errc> cases[] = {
      {http::status::bad_request, errc::bad_request},
      {http::status::unauthorized, errc::unauthorized},
      {http::status::forbidden, errc::forbidden},
      {http::status::not_found, errc::not_found},
      {http::status::conflict, errc::conflict},
      {http::status::payload_too_large, errc::too_large},
      {http::status::service_unavailable, errc::unavailable},
      {http::status::gone, errc::unavailable},
  };
  for (const auto& [status, code] : cases) {
    INFO("HTTP " << static_cast<int>(status));
    peer p(refuse_with(status));
    ws_client c;
    auto failed = c.connect(p.url(), "/attach", "t", 3000);
    REQUIRE(failed);
    CHECK(failed->code == code);
    CHECK(failed->message.find(std::to_string(static_cast<int>(status))) != std::string::npos);
    REQUIRE(c.refusal());
    CHECK(c.refusal()->status == static_cast<int>(status));
    CHECK(c.refusal()->content_type == "application/json");
    CHECK(c.refusal()->body.find("not here") != std::string::npos);
  }
}

TEST_CASE("ws client: nobody listening, nobody answering, and a bad target") {
  std::optional<base_url> closed;
  {
    peer p([](tcp::socket&, const http::request<http::string_body>&) {});
    closed = p.url();
    // The peer takes one connection; this one is it.
    ws_client c;
    (void)c.connect(p.url(), "/attach", "", 3000);
  }
  ws_client refused;
  auto nobody = refused.connect(*closed, "/attach", "", 3000);
  REQUIRE(nobody);
  CHECK(nobody->code == errc::unavailable);
  CHECK_FALSE(refused.refusal());

  test::silent_socket silent;
  auto quiet = parse_node_url("http://127.0.0.1:" + std::to_string(silent.port));
  REQUIRE(quiet);
  ws_client waiting;
  const auto started = std::chrono::steady_clock::now();
  auto waited = waiting.connect(*quiet, "/attach", "", 200);
  REQUIRE(waited);
  CHECK(waited->code == errc::timeout);
  CHECK(std::chrono::steady_clock::now() - started < std::chrono::seconds(10));

  ws_client bad;
  auto malformed = bad.connect(*quiet, "attach with spaces", "", 200);
  REQUIRE(malformed);
  CHECK(malformed->code == errc::bad_request);
}
