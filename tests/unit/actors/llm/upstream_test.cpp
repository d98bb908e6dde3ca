// The LLM family's HTTP client alone, against a scripted server on a real
// loopback socket: whole answers over one kept-alive connection, a streamed
// 200 in order, a silent upstream's timeout, a reader that stops, nobody
// listening, and calls that wait for a free connection.

#include "actors/llm/upstream.hpp"

#include <catch2/catch.hpp>

#include <atomic>
#include <condition_variable>
#include <functional>
#include <future>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <boost/asio.hpp>

#include "runtime/protocol/codec.hpp"
#include "tests/support/wait.hpp"

using namespace troupe;
using namespace troupe::llm;
using troupe::test::wait_until;
namespace net = boost::asio;
using tcp = net::ip::tcp;

namespace {

/// A one-thread HTTP/1.1 server whose answer to each request is written by
/// `script` on the connection's socket (blocking I/O). A connection serves
/// requests until the client closes it or the script returns false.
class scripted_server {
 public:
  using script = std::function<bool(tcp::socket&, const std::string& request)>;

  explicit scripted_server(script s) : script_(std::move(s)) {
    acceptor_.open(tcp::v4());
    acceptor_.set_option(net::socket_base::reuse_address(true));
    acceptor_.bind({net::ip::make_address("127.0.0.1"), 0});
    acceptor_.listen();
    port_ = acceptor_.local_endpoint().port();
    thread_ = std::thread([this] { run(); });
  }
  ~scripted_server() {
    stopping_ = true;
    boost::system::error_code ignored;
    // Wakes accept() (and a script blocked on its socket, whose connection
    // the client side has closed by now).
    tcp::socket poke(ioc_);
    poke.connect({net::ip::make_address("127.0.0.1"), port_}, ignored);
    thread_.join();
  }

  [[nodiscard]] std::string url() const { return "http://127.0.0.1:" + std::to_string(port_); }
  [[nodiscard]] int connections() const { return accepted_.load(); }
  [[nodiscard]] int requests() const { return requests_.load(); }

 private:
  void run() {
    while (!stopping_) {
      tcp::socket socket(ioc_);
      boost::system::error_code ec;
      acceptor_.accept(socket, ec);
      if (ec || stopping_) {
        return;
      }
      accepted_.fetch_add(1);
      serve(socket);
    }
  }

  /// Reads requests (head, then a Content-Length body) off one connection.
  void serve(tcp::socket& socket) {
    std::string in;
    char buf[4096];
    for (;;) {
      const auto head_end = in.find("\r\n\r\n");
      if (head_end != std::string::npos) {
        size_t length = 0;
        const auto at = in.find("Content-Length: ");
        if (at != std::string::npos && at < head_end) {
          length = std::stoul(in.substr(at + 16));
        }
        if (in.size() >= head_end + 4 + length) {
          const auto request = in.substr(0, head_end + 4 + length);
          in.erase(0, request.size());
          requests_.fetch_add(1);
          if (!script_(socket, request)) {
            return;
          }
          continue;
        }
      }
      boost::system::error_code ec;
      const auto n = socket.read_some(net::buffer(buf), ec);
      if (ec) {
        return;
      }
      in.append(buf, n);
    }
  }

  net::io_context ioc_;
  tcp::acceptor acceptor_{ioc_};
  unsigned short port_ = 0;
  script script_;
  std::atomic<bool> stopping_{false};
  std::atomic<int> accepted_{0};
  std::atomic<int> requests_{0};
  std::thread thread_;
};

void write_all(tcp::socket& socket, const std::string& bytes) {
  boost::system::error_code ignored;
  net::write(socket, net::buffer(bytes), ignored);
}

std::string whole(const std::string& body) {
  return "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: " +
         std::to_string(body.size()) + "\r\n\r\n" + body;
}

std::string chunk(const std::string& bytes) {
  char size[16];
  std::snprintf(size, sizeof size, "%zx", bytes.size());
  return std::string(size) + "\r\n" + bytes + "\r\n";
}

/// What one call delivered, filled on the upstream thread.
struct call_record {
  std::mutex m;
  std::vector<std::string> events;  // "head", then each on_data's bytes
  std::promise<upstream_response> done;
};

upstream_callbacks record(const std::shared_ptr<call_record>& r, bool keep_reading = true) {
  upstream_callbacks cb;
  cb.on_head = [r](const upstream_response&) {
    std::lock_guard lock(r->m);
    r->events.emplace_back("head");
  };
  cb.on_data = [r, keep_reading](http_msg::chunk_packer& bytes) {
    // Taken as a reader takes it: the message, which must decode whole.
    auto chunk = decode<http_msg::chunk>(bytes.take());
    std::lock_guard lock(r->m);
    r->events.emplace_back(chunk ? chunk->bytes : "not a chunk: " + chunk.err().message);
    return keep_reading;
  };
  cb.on_done = [r](upstream_response resp) { r->done.set_value(std::move(resp)); };
  return cb;
}

/// The bytes a streamed call delivered, in order (the events after "head").
std::string streamed_bytes(call_record& r) {
  std::lock_guard lock(r.m);
  std::string got;
  for (size_t i = 1; i < r.events.size(); ++i) {
    got += r.events[i];
  }
  return got;
}

upstream_response await(std::future<upstream_response>& f) {
  REQUIRE(f.wait_for(std::chrono::seconds(10) * test::slowdown()) == std::future_status::ready);
  return f.get();
}

upstream_request post(std::string body, bool stream = false) {
  upstream_request req;
  req.path = "/v1/messages";
  req.headers = {{"content-type", "application/json"}};
  req.body = std::move(body);
  req.stream = stream;
  req.timeout = std::chrono::milliseconds(5000);
  return req;
}

base_url url_of(const std::string& text) {
  auto url = parse_base_url(text);
  REQUIRE(url);
  return *url;
}

/// One call on `pool`, to its end.
upstream_response call_on(upstream_pool& pool, upstream_request request,
                          const std::shared_ptr<call_record>& r, bool keep_reading = true) {
  auto f = r->done.get_future();
  pool.send(std::move(request), record(r, keep_reading));
  return await(f);
}

/// One call on a pool of its own, to its end.
upstream_response call_once(const std::string& url, upstream_request request,
                            const std::shared_ptr<call_record>& r, bool keep_reading = true) {
  upstream_io io(1);
  auto pool = io.pool(url_of(url), 4);
  auto resp = call_on(*pool, std::move(request), r, keep_reading);
  io.stop();
  return resp;
}

}  // namespace

TEST_CASE("upstream: whole answers come back over one kept-alive connection") {
  scripted_server server([](tcp::socket& s, const std::string& request) {
    const auto body = request.substr(request.find("\r\n\r\n") + 4);
    write_all(s, whole(R"({"echo":)" + body + "}"));
    return true;
  });
  upstream_io io(1);
  auto pool = io.pool(url_of(server.url()), 4);
  for (int i = 0; i < 3; ++i) {
    auto resp = call_on(*pool, post(std::to_string(i)), std::make_shared<call_record>());
    CHECK(resp.status == 200);
    CHECK(resp.error.empty());
    CHECK(resp.body == R"({"echo":)" + std::to_string(i) + "}");
    CHECK(resp.header("content-type") == "application/json");
    CHECK_FALSE(resp.streamed);
    CHECK(resp.delivered);
  }
  CHECK(server.requests() == 3);
  CHECK(server.connections() == 1);
  CHECK(pool->connections() == 1);
  io.stop();
}

TEST_CASE("upstream: a streamed 200 arrives after its head, every byte in order") {
  const std::vector<std::string> pieces{"event: a\ndata: {}\n\n", "event: b\ndata: {\"x\":1}\n\n",
                                        std::string(100000, 'z')};
  scripted_server server([&](tcp::socket& s, const std::string&) {
    write_all(s,
              "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
              "Transfer-Encoding: chunked\r\n\r\n");
    for (const auto& p : pieces) {
      write_all(s, chunk(p));
    }
    write_all(s, "0\r\n\r\n");
    return true;
  });
  auto r = std::make_shared<call_record>();
  auto resp = call_once(server.url(), post("{}", true), r);
  CHECK(resp.status == 200);
  CHECK(resp.streamed);
  CHECK(resp.body.empty());
  const auto got = streamed_bytes(*r);
  std::lock_guard lock(r->m);
  REQUIRE_FALSE(r->events.empty());
  CHECK(r->events.front() == "head");
  CHECK(got == pieces[0] + pieces[1] + pieces[2]);
  CHECK(resp.body_bytes == got.size());
}

TEST_CASE("upstream: an error answer to a stream request comes whole, not streamed") {
  scripted_server server([](tcp::socket& s, const std::string&) {
    const std::string body = R"({"type":"error","error":{"type":"overloaded_error"}})";
    write_all(s, "HTTP/1.1 529 Overloaded\r\nContent-Length: " + std::to_string(body.size()) +
                     "\r\n\r\n" + body);
    return true;
  });
  auto r = std::make_shared<call_record>();
  auto resp = call_once(server.url(), post("{}", true), r);
  CHECK(resp.status == 529);
  CHECK_FALSE(resp.streamed);
  CHECK(resp.body.find("overloaded_error") != std::string::npos);
  std::lock_guard lock(r->m);
  CHECK(r->events.empty());
}

TEST_CASE("upstream: streams of known length follow one another on one connection") {
  // A streamed 200 may say its length instead of being chunked; each call
  // on the kept-alive connection gets its own bytes, whole and in order.
  scripted_server server([](tcp::socket& s, const std::string& request) {
    const auto body = "event: e\ndata: " + request.substr(request.find("\r\n\r\n") + 4) + "\n\n" +
                      std::string(70000, 'k');
    write_all(s, "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nContent-Length: " +
                     std::to_string(body.size()) + "\r\n\r\n" + body);
    return true;
  });
  upstream_io io(1);
  auto pool = io.pool(url_of(server.url()), 1);
  for (int i = 0; i < 2; ++i) {
    auto r = std::make_shared<call_record>();
    auto resp = call_on(*pool, post(std::to_string(i), true), r);
    CHECK(resp.error.empty());
    CHECK(resp.streamed);
    const auto got = streamed_bytes(*r);
    CHECK(got == "event: e\ndata: " + std::to_string(i) + "\n\n" + std::string(70000, 'k'));
    CHECK(resp.body_bytes == got.size());
  }
  CHECK(server.connections() == 1);
  io.stop();
}

TEST_CASE("upstream: an error answer longer than the limit is refused at its head") {
  // A stream request's error answer is read whole, up to 64 MiB: one that
  // announces more is refused before any of it is read.
  scripted_server server([](tcp::socket& s, const std::string&) {
    write_all(s, "HTTP/1.1 500 Internal Server Error\r\nContent-Length: 67108865\r\n\r\n{");
    return false;
  });
  auto r = std::make_shared<call_record>();
  auto resp = call_once(server.url(), post("{}", true), r);
  CHECK(resp.status == 500);
  CHECK_FALSE(resp.streamed);
  CHECK(resp.error.find("67108865-byte answer") != std::string::npos);
  CHECK(resp.body.empty());
}

TEST_CASE("upstream: a silent upstream ends the call with timed_out, after delivery") {
  std::promise<void> release;
  auto released = release.get_future().share();
  scripted_server server([released](tcp::socket&, const std::string&) {
    released.wait();  // never answers while the call is pending
    return false;
  });
  auto req = post("{}");
  req.timeout = std::chrono::milliseconds(200);
  auto resp = call_once(server.url(), std::move(req), std::make_shared<call_record>());
  release.set_value();
  CHECK(resp.status == 0);
  CHECK(resp.timed_out);
  CHECK(resp.delivered);
  CHECK_FALSE(resp.not_sent);
  CHECK_FALSE(resp.error.empty());
}

TEST_CASE("upstream: a reader that stops ends the stream as cancelled") {
  std::promise<void> release;
  auto released = release.get_future().share();
  scripted_server server([released](tcp::socket& s, const std::string&) {
    write_all(s, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + chunk("first"));
    released.wait();  // the rest would come later; the client leaves first
    return false;
  });
  auto r = std::make_shared<call_record>();
  auto resp = call_once(server.url(), post("{}", true), r, false);
  release.set_value();
  CHECK(resp.cancelled);
  CHECK(resp.status == 200);
  std::lock_guard lock(r->m);
  REQUIRE(r->events.size() == 2);
  CHECK(r->events[1] == "first");
}

TEST_CASE("upstream: with nobody listening the call fails in transport, undelivered") {
  unsigned short port = 0;
  {
    net::io_context ioc;
    tcp::acceptor a(ioc, {net::ip::make_address("127.0.0.1"), 0});
    port = a.local_endpoint().port();
  }  // closed: connecting to it is refused
  auto resp = call_once("http://127.0.0.1:" + std::to_string(port), post("{}"),
                        std::make_shared<call_record>());
  CHECK(resp.status == 0);
  CHECK_FALSE(resp.delivered);
  // A refused connect is the upstream's failure (its breaker counts it),
  // not a call this node never tried.
  CHECK_FALSE(resp.not_sent);
  CHECK(resp.error.find("cannot connect") != std::string::npos);
}

TEST_CASE("upstream: over connections_max a call waits for a free connection, in order") {
  std::mutex m;
  std::condition_variable cv;
  bool go = false;
  scripted_server server([&](tcp::socket& s, const std::string& request) {
    if (request.find("\r\n\r\nfirst") != std::string::npos) {
      std::unique_lock lock(m);
      cv.wait(lock, [&] { return go; });
    }
    write_all(s, whole(request.substr(request.find("\r\n\r\n") + 4)));
    return true;
  });
  upstream_io io(1);
  auto pool = io.pool(url_of(server.url()), 1);
  auto first = std::make_shared<call_record>();
  auto second = std::make_shared<call_record>();
  auto f1 = first->done.get_future();
  auto f2 = second->done.get_future();
  pool->send(post("first"), record(first));
  REQUIRE(wait_until([&] { return server.requests() == 1; }));
  pool->send(post("second"), record(second));
  REQUIRE(wait_until([&] { return pool->waiting() == 1; }));
  {
    std::lock_guard lock(m);
    go = true;
  }
  cv.notify_all();
  auto r1 = await(f1);
  auto r2 = await(f2);
  CHECK(r1.body == "first");
  CHECK(r2.body == "second");
  CHECK(r2.queued.count() >= 0);
  CHECK(pool->waiting() == 0);
  CHECK(server.connections() == 1);
  io.stop();
}
