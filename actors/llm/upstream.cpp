#include "actors/llm/upstream.hpp"

#include <openssl/ssl.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <deque>
#include <mutex>
#include <optional>
#include <thread>
#include <vector>

#include <boost/asio.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>

#include "runtime/net/io_threads.hpp"

namespace troupe::llm {

namespace beast = boost::beast;
namespace http = beast::http;
namespace net = boost::asio;
namespace ssl = net::ssl;
using tcp = net::ip::tcp;

std::string_view upstream_response::header(std::string_view name) const {
  for (const auto& [key, value] : headers) {
    if (key == name) {
      return value;
    }
  }
  return {};
}

namespace {

/// Largest non-streamed upstream body we accept (an answer is far smaller).
constexpr uint64_t body_bytes_max = 64u << 20;
/// Room for what one read of a response body takes off the socket.
constexpr size_t body_read_bytes = 64u << 10;

/// A response body as Beast parses it: each piece (an HTTP chunk's data,
/// or part of a body of known length) is appended to a chunk packer, the
/// message that will carry it, straight out of the read buffer.
struct packed_body {
  struct value_type {
    http_msg::chunk_packer* out = nullptr;
  };

  class reader {
   public:
    // Made with the parser, before the packer is named: it is looked up
    // per piece.
    template <bool isRequest, class Fields>
    reader(http::header<isRequest, Fields>&, value_type& body) : body_(body) {}

    void init(const boost::optional<std::uint64_t>&, beast::error_code& ec) { ec = {}; }

    template <class ConstBufferSequence>
    std::size_t put(const ConstBufferSequence& buffers, beast::error_code& ec) {
      ec = {};
      std::size_t n = 0;
      for (const auto piece : beast::buffers_range_ref(buffers)) {
        body_.out->append({static_cast<const char*>(piece.data()), piece.size()});
        n += piece.size();
      }
      return n;
    }

    void finish(beast::error_code& ec) { ec = {}; }

   private:
    value_type& body_;
  };
};

class pool_impl;

/// One keep-alive connection; serves one call at a time.
class connection_base {
 public:
  virtual ~connection_base() = default;
  virtual void start(upstream_request request, upstream_callbacks callbacks) = 0;
};

class pool_impl : public upstream_pool, public std::enable_shared_from_this<pool_impl> {
 public:
  pool_impl(net::io_context& ioc, ssl::context& tls, base_url url, size_t connections_max)
      : ioc_(ioc), tls_(tls), url_(std::move(url)), max_(std::max<size_t>(1, connections_max)) {}

  void send(upstream_request request, upstream_callbacks callbacks) override;
  size_t connections() const override { return open_.load(std::memory_order_relaxed); }
  size_t waiting() const override {
    std::lock_guard lock(mutex_);
    return waiting_.size();
  }

  /// A connection whose call ended cleanly and may serve another.
  void give_back(std::shared_ptr<connection_base> conn) {
    std::lock_guard lock(mutex_);
    if (idle_.size() < max_) {
      idle_.push_back(std::move(conn));
    }
  }

  /// At shutdown: breaks the pool <-> idle connection cycle, and ends the
  /// calls still waiting for a connection (nothing will start them).
  void stop();

  /// A new, unconnected connection to this upstream.
  std::shared_ptr<connection_base> make_fresh();

  const base_url& url() const { return url_; }
  ssl::context& tls() { return tls_; }
  net::io_context& ioc() { return ioc_; }
  std::atomic<size_t> open_{0};

  /// Resolved once; a failed connect re-resolves.
  std::optional<tcp::resolver::results_type> endpoints;
  std::mutex resolve_mutex;

 private:
  /// A call that found every connection busy, until one is free or its
  /// timeout passes.
  struct waiting_call {
    waiting_call(net::io_context& ioc, upstream_request r, upstream_callbacks c)
        : request(std::move(r)), callbacks(std::move(c)), timer(ioc) {}
    upstream_request request;
    upstream_callbacks callbacks;
    net::steady_timer timer;
    std::chrono::steady_clock::time_point since = std::chrono::steady_clock::now();
    bool taken = false;  // started, or ended; guarded by the pool's mutex
  };

  /// Ends a call that never started: on_done with `response`, marked not sent.
  static void end_unstarted(upstream_callbacks& callbacks, upstream_response response) {
    response.not_sent = true;
    auto done = std::move(callbacks.on_done);
    callbacks = {};
    if (done) {
      done(std::move(response));
    }
  }

  /// Runs a call that has its slot: on an idle connection, or a fresh one.
  void begin(upstream_request request, upstream_callbacks callbacks,
             std::chrono::milliseconds queued = {});
  /// A call ended: its slot goes to the next waiting call, or is freed.
  void call_ended();
  void expire(const std::shared_ptr<waiting_call>& call);

  net::io_context& ioc_;
  ssl::context& tls_;
  base_url url_;
  /// Bound on calls in flight. A connection is made only when none is idle,
  /// so connections open (busy + idle) never exceed it either.
  size_t max_;
  mutable std::mutex mutex_;
  size_t in_flight_ = 0;
  std::deque<std::shared_ptr<waiting_call>> waiting_;
  std::vector<std::shared_ptr<connection_base>> idle_;

  std::shared_ptr<connection_base> take_idle() {
    std::lock_guard lock(mutex_);
    if (idle_.empty()) {
      return nullptr;
    }
    auto conn = std::move(idle_.back());
    idle_.pop_back();
    return conn;
  }
};

// A connection runs on a strand; its type is named so that asynchronous
// operations do not allocate a type-erased any_io_executor each.
using conn_executor = net::strand<net::io_context::executor_type>;
using plain_stream = beast::basic_stream<tcp, conn_executor>;
using tls_stream = beast::ssl_stream<plain_stream>;

plain_stream& lowest(plain_stream& s) {
  return s;
}
plain_stream& lowest(tls_stream& s) {
  return beast::get_lowest_layer(s);
}

template <class Stream>
class connection : public connection_base, public std::enable_shared_from_this<connection<Stream>> {
 public:
  template <class... Args>
  explicit connection(std::shared_ptr<pool_impl> pool, Args&&... args)
      : pool_(std::move(pool)), stream_(std::forward<Args>(args)...) {
    pool_->open_.fetch_add(1, std::memory_order_relaxed);
  }
  ~connection() override { pool_->open_.fetch_sub(1, std::memory_order_relaxed); }

  void start(upstream_request request, upstream_callbacks callbacks) override {
    request_ = std::move(request);
    callbacks_ = std::move(callbacks);
    response_ = {};
    // A reused connection may have been closed by the upstream while idle;
    // such a call is tried once more on a fresh connection.
    reused_ = connected_;
    net::dispatch(stream_.get_executor(), [self = this->shared_from_this()] {
      self->connected_ ? self->write() : self->connect();
    });
  }

 private:
  using self_ptr = std::shared_ptr<connection>;

  void connect() {
    lowest(stream_).expires_after(request_.timeout);
    std::optional<tcp::resolver::results_type> known;
    {
      std::lock_guard lock(pool_->resolve_mutex);
      known = pool_->endpoints;
    }
    if (known) {
      return on_resolved({}, *known);
    }
    resolver_.emplace(stream_.get_executor());
    resolver_->async_resolve(
        pool_->url().host, std::to_string(pool_->url().port),
        [self = this->shared_from_this()](beast::error_code ec, tcp::resolver::results_type r) {
          self->on_resolved(ec, std::move(r));
        });
  }

  void on_resolved(beast::error_code ec, tcp::resolver::results_type results) {
    if (ec) {
      return fail("cannot resolve " + pool_->url().host + ": " + ec.message(), false);
    }
    {
      std::lock_guard lock(pool_->resolve_mutex);
      pool_->endpoints = results;
    }
    lowest(stream_).async_connect(
        results, [self = this->shared_from_this()](beast::error_code e, const tcp::endpoint&) {
          self->on_connected(e);
        });
  }

  void on_connected(beast::error_code ec) {
    if (ec) {
      std::lock_guard lock(pool_->resolve_mutex);
      pool_->endpoints.reset();
    }
    if (ec) {
      return fail("cannot connect to " + authority_of(pool_->url()) + ": " + ec.message(),
                  ec == beast::error::timeout);
    }
    beast::error_code ignored;
    lowest(stream_).socket().set_option(tcp::no_delay(true), ignored);
    if constexpr (std::is_same_v<Stream, plain_stream>) {
      connected_ = true;
      write();
    } else {
      handshake();
    }
  }

  void handshake() {
    if constexpr (!std::is_same_v<Stream, plain_stream>) {
      const auto& host = pool_->url().host;
      // SNI, and the certificate must name the host we meant to reach.
      if (SSL_set_tlsext_host_name(stream_.native_handle(), host.c_str()) != 1) {
        return fail("TLS: cannot set the server name " + host, false);
      }
      stream_.set_verify_mode(ssl::verify_peer);
      stream_.set_verify_callback(ssl::host_name_verification(host));
      stream_.async_handshake(
          ssl::stream_base::client, [self = this->shared_from_this()](beast::error_code ec) {
            if (ec) {
              return self->fail(
                  "TLS handshake with " + self->pool_->url().host + " failed: " + ec.message(),
                  ec == beast::error::timeout);
            }
            self->connected_ = true;
            self->write();
          });
    }
  }

  void write() {
    const auto& url = pool_->url();
    message_ = {};
    message_.method_string(request_.method);
    message_.target(url.base_path + request_.path);
    message_.version(11);
    message_.set(http::field::host, host_header(url));
    for (const auto& [name, value] : request_.headers) {
      message_.set(name, value);
    }
    message_.keep_alive(true);
    message_.body() = request_.body;
    message_.prepare_payload();
    lowest(stream_).expires_after(request_.timeout);
    http::async_write(
        stream_, message_,
        [self = this->shared_from_this()](beast::error_code ec, size_t) { self->on_written(ec); });
  }

  void on_written(beast::error_code ec) {
    if (ec) {
      return transport_failed(ec, "sending the request");
    }
    response_.delivered = true;
    parser_.emplace();
    parser_->get().body().out = &body_;
    parser_->body_limit(request_.stream ? std::numeric_limits<uint64_t>::max() : body_bytes_max);
    http::async_read_header(
        stream_, buffer_, *parser_,
        [self = this->shared_from_this()](beast::error_code e, size_t) { self->on_head(e); });
  }

  void on_head(beast::error_code ec) {
    if (ec) {
      return transport_failed(ec, "reading the response head");
    }
    const auto& head = parser_->get();
    response_.status = static_cast<int>(head.result_int());
    response_.headers = lowered_headers(head);
    response_.streamed = request_.stream && response_.status == 200;
    if (!response_.streamed) {
      // An error body of a stream request is bounded too. Beast weighs a
      // Content-Length against the limit only while it reads the head, so
      // a declared length is checked here; the limit covers the others.
      if (const auto length = parser_->content_length(); length && *length > body_bytes_max) {
        return fail("upstream " + pool_->url().host + " announced a " + std::to_string(*length) +
                        "-byte answer; the limit is " + std::to_string(body_bytes_max),
                    false);
      }
      parser_->body_limit(body_bytes_max);
    }
    if (response_.streamed && callbacks_.on_head) {
      callbacks_.on_head(response_);
    }
    read_body();
  }

  void read_body() {
    if (parser_->is_done()) {
      return finish();
    }
    // Beast reads only as much as the buffer has room for (512 bytes at
    // least): with the room of a fresh buffer, an 8 MiB stream took 16,000
    // reads, each with its timer, callback and client write.
    if (buffer_.capacity() < body_read_bytes) {
      buffer_.reserve(body_read_bytes);
    }
    lowest(stream_).expires_after(request_.timeout);
    http::async_read_some(
        stream_, buffer_, *parser_,
        [self = this->shared_from_this()](beast::error_code ec, size_t) { self->on_body(ec); });
  }

  void on_body(beast::error_code ec) {
    if (!ec) {
      // What the read left unparsed lands in the same message: room for it
      // all at once (what the read parsed itself, one HTTP chunk's piece at
      // most, is in it already and moves once more).
      body_.reserve(buffer_.size());
      parse_buffered(ec);
    }
    const auto got = body_.size();
    if (got > 0) {
      response_.body_bytes += got;
      if (response_.streamed) {
        if (callbacks_.on_data && !callbacks_.on_data(body_)) {
          response_.cancelled = true;
          return fail("the client went away", false);
        }
      } else {
        response_.body.append(body_.bytes());
      }
      // Taken by on_data (or left), or copied: the next read starts over.
      body_.clear();
    }
    if (ec) {
      return transport_failed(ec, "reading the response body");
    }
    read_body();
  }

  /// Beast's read parses one HTTP chunk and completes; the rest of what the
  /// socket gave is parsed here, so a stream of small SSE events (an HTTP
  /// chunk each) costs one callback and one client write per read, not per
  /// event. It stops where the bytes end: what arrived is passed on at once,
  /// never held back waiting for more (that would delay a slow stream's
  /// events, and outlast the read timeout).
  void parse_buffered(beast::error_code& ec) {
    while (buffer_.size() > 0 && !parser_->is_done()) {
      const auto used = parser_->put(buffer_.data(), ec);
      buffer_.consume(used);
      if (ec == http::error::need_more || ec == http::error::need_buffer) {
        ec = {};
        return;
      }
      if (ec || used == 0) {
        return;
      }
    }
  }

  void finish() {
    const bool reusable = parser_->get().keep_alive();
    parser_.reset();
    auto done = std::move(callbacks_.on_done);
    auto response = std::move(response_);
    callbacks_ = {};
    if (reusable) {
      // An idle connection keeps no copy of the last request.
      request_ = {};
      message_ = {};
      lowest(stream_).expires_never();
      pool_->give_back(this->shared_from_this());
    } else {
      close();
    }
    if (done) {
      done(std::move(response));
    }
  }

  void transport_failed(beast::error_code ec, std::string_view during) {
    close();
    // Nothing came back on a reused connection: the upstream had closed it
    // while idle. The request is sent once more on a fresh connection.
    if (reused_ && response_.status == 0 && response_.body_bytes == 0 &&
        ec != beast::error::timeout) {
      reused_ = false;
      auto fresh = pool_->make_fresh();
      fresh->start(std::move(request_), std::move(callbacks_));
      return;
    }
    if (ec == beast::error::timeout) {
      return fail("upstream " + pool_->url().host + " timed out after " +
                      std::to_string(request_.timeout.count()) + " ms while " + std::string(during),
                  true);
    }
    fail("upstream " + pool_->url().host + ": " + ec.message() + " while " + std::string(during),
         false);
  }

  void fail(std::string what, bool timed_out) {
    close();
    auto done = std::move(callbacks_.on_done);
    callbacks_ = {};
    response_.error = std::move(what);
    response_.timed_out = timed_out;
    if (done) {
      done(std::move(response_));
    }
  }

  void close() {
    connected_ = false;
    beast::error_code ignored;
    lowest(stream_).socket().shutdown(tcp::socket::shutdown_both, ignored);
    lowest(stream_).close();
  }

 public:
  std::shared_ptr<pool_impl> pool_;

 private:
  Stream stream_;
  std::optional<tcp::resolver> resolver_;
  bool connected_ = false;
  bool reused_ = false;
  upstream_request request_;
  upstream_callbacks callbacks_;
  upstream_response response_;
  http::request<http::string_body> message_;
  beast::flat_buffer buffer_;
  std::optional<http::response_parser<packed_body>> parser_;
  /// The body bytes of the read in progress, as the message that passes
  /// them on.
  http_msg::chunk_packer body_;
};

std::shared_ptr<connection_base> pool_impl::make_fresh() {
  auto self = shared_from_this();
  if (url_.tls) {
    return std::make_shared<connection<tls_stream>>(self, net::make_strand(ioc_), tls_);
  }
  return std::make_shared<connection<plain_stream>>(self, net::make_strand(ioc_));
}

void pool_impl::send(upstream_request request, upstream_callbacks callbacks) {
  std::unique_lock lock(mutex_);
  if (in_flight_ < max_) {
    ++in_flight_;
    lock.unlock();
    return begin(std::move(request), std::move(callbacks));
  }
  const auto timeout = request.timeout;
  auto call = std::make_shared<waiting_call>(ioc_, std::move(request), std::move(callbacks));
  waiting_.push_back(call);
  lock.unlock();
  // Not cancelled when the call starts (the timer is not thread-safe): it
  // then finds the call taken and does nothing.
  call->timer.expires_after(timeout);
  call->timer.async_wait([weak = weak_from_this(), call](beast::error_code ec) {
    if (auto self = weak.lock(); self && !ec) {
      self->expire(call);
    }
  });
}

void pool_impl::begin(upstream_request request, upstream_callbacks callbacks,
                      std::chrono::milliseconds queued) {
  // The slot is handed on before the caller hears the answer, so that an
  // idle connection given back by this call serves the next waiting one.
  callbacks.on_done = [self = shared_from_this(), done = std::move(callbacks.on_done),
                       queued](upstream_response r) {
    self->call_ended();
    r.queued = queued;
    if (done) {
      done(std::move(r));
    }
  };
  std::shared_ptr<connection_base> conn;
  try {
    conn = take_idle();
    if (!conn) {
      conn = make_fresh();
    }
  } catch (const std::exception& e) {
    // No connection could be made (e.g. TLS state): the call ends, its slot
    // is freed.
    upstream_response failed;
    failed.error = std::string("cannot open a connection to ") + url_.host + ": " + e.what();
    return end_unstarted(callbacks, std::move(failed));
  }
  conn->start(std::move(request), std::move(callbacks));
}

void pool_impl::call_ended() {
  for (;;) {
    std::shared_ptr<waiting_call> next;
    {
      std::lock_guard lock(mutex_);
      while (!waiting_.empty() && !next) {
        next = std::move(waiting_.front());
        waiting_.pop_front();
        if (next->taken) {
          next.reset();  // ended meanwhile
        }
      }
      if (!next) {
        --in_flight_;
        return;
      }
      next->taken = true;
    }
    if (next->callbacks.abandoned && next->callbacks.abandoned()) {
      // Nobody wants this answer any more: do not send (and pay for) it.
      upstream_response gone;
      gone.cancelled = true;
      gone.error = "the caller went away while waiting for a connection";
      end_unstarted(next->callbacks, std::move(gone));
      continue;  // the slot goes to the next one
    }
    const auto queued = std::chrono::duration_cast<std::chrono::milliseconds>(
        std::chrono::steady_clock::now() - next->since);
    return begin(std::move(next->request), std::move(next->callbacks), queued);
  }
}

void pool_impl::stop() {
  std::deque<std::shared_ptr<waiting_call>> waiting;
  {
    std::lock_guard lock(mutex_);
    idle_.clear();
    waiting.swap(waiting_);
    for (auto& call : waiting) {
      call->taken = true;
    }
  }
  for (auto& call : waiting) {
    upstream_response stopped;
    stopped.error = "the node is stopping; the call was not sent";
    end_unstarted(call->callbacks, std::move(stopped));
  }
}

void pool_impl::expire(const std::shared_ptr<waiting_call>& call) {
  {
    std::lock_guard lock(mutex_);
    if (call->taken) {
      return;
    }
    call->taken = true;
    waiting_.erase(std::find(waiting_.begin(), waiting_.end(), call));
  }
  upstream_response response;
  response.timed_out = true;
  response.queued = call->request.timeout;
  response.error = "no connection to " + url_.host + " came free within " +
                   std::to_string(call->request.timeout.count()) + " ms (all " +
                   std::to_string(max_) + " of llm.connections_max busy)";
  end_unstarted(call->callbacks, std::move(response));
}

}  // namespace

struct upstream_io::impl {
  explicit impl(uint32_t threads)
      : io("troupe-upstream", threads), ioc(io.context()),
        tls(ssl::context::tls_client) {
    // Certificates are checked against the system's CA store.
    tls.set_default_verify_paths();
    tls.set_verify_mode(ssl::verify_peer);
  }
  io_threads io;
  net::io_context& ioc;
  ssl::context tls;
  std::mutex pools_mutex;
  std::vector<std::weak_ptr<pool_impl>> pools;
};

upstream_io::upstream_io(uint32_t threads) : impl_(std::make_unique<impl>(threads)) {
  impl_->io.start();
}

upstream_io::~upstream_io() {
  stop();
}

void upstream_io::stop() {
  impl_->io.stop();
  std::lock_guard lock(impl_->pools_mutex);
  for (auto& weak : impl_->pools) {
    if (auto pool = weak.lock()) {
      pool->stop();
    }
  }
}

std::shared_ptr<upstream_pool> upstream_io::pool(base_url url, size_t connections_max) {
  auto pool = std::make_shared<pool_impl>(impl_->ioc, impl_->tls, std::move(url), connections_max);
  std::lock_guard lock(impl_->pools_mutex);
  impl_->pools.push_back(pool);
  return pool;
}

}  // namespace troupe::llm
