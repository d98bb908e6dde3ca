#include "actors/gateway/server.hpp"

#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <charconv>
#include <deque>
#include <functional>
#include <future>
#include <map>
#include <mutex>
#include <optional>
#include <unordered_map>
#include <vector>

#include <spdlog/logger.h>
#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/websocket.hpp>
#include <caf/actor.hpp>
#include <caf/exit_reason.hpp>
#include <caf/send.hpp>
#include <nlohmann/json.hpp>

#include "actors/gateway/bridge.hpp"
#include "actors/gateway/exchange_actor.hpp"
#include "actors/gateway/http_framing.hpp"
#include "actors/gateway/routes.hpp"
#include "actors/gateway/viewer.hpp"
#include "runtime/log/log.hpp"
#include "runtime/metrics/metrics.hpp"
#include "runtime/node/error_answer.hpp"
#include "runtime/node/node_context.hpp"
#include "runtime/node/terminal.hpp"
#include "runtime/protocol/codec.hpp"

namespace troupe {

namespace beast = boost::beast;
namespace http = beast::http;
namespace websocket = beast::websocket;
namespace net = boost::asio;
using tcp = net::ip::tcp;

// Each connection runs on a strand of the gateway's io_context. Naming the
// executor's type, instead of Beast's default any_io_executor, spares an
// allocation in every asynchronous operation (any_io_executor cannot hold a
// strand inline).
using conn_executor = net::strand<net::io_context::executor_type>;
using conn_socket = tcp::socket::rebind_executor<conn_executor>::other;
using conn_stream = beast::basic_stream<tcp, conn_executor>;

struct gateway_server::impl : std::enable_shared_from_this<gateway_server::impl> {
  impl(std::shared_ptr<node_context> c, std::string token, gateway_io io)
      : ctx(std::move(c)),
        routes(ctx, std::move(token)),
        log(logger("gateway")),
        requests(ctx->metrics.counter("troupe_http_requests_total", "HTTP requests served")),
        rejected(ctx->metrics.counter("troupe_http_connections_rejected_total",
                                      "Connections closed at accept: over connections_max")),
        latency(ctx->metrics.histogram("troupe_http_request_duration_seconds",
                                       "Time from a request read to its reply written",
                                       latency_buckets_s())),
        ioc(io.http),
        terminals(io.terminals),
        acceptor(net::make_strand(ioc)) {}

  std::shared_ptr<node_context> ctx;
  router routes;
  std::shared_ptr<spdlog::logger> log;
  std::atomic<uint32_t> connections{0};
  std::atomic<uint32_t> in_flight{0};
  counter& requests;
  counter& rejected;
  histogram& latency;
  std::string bound;
  /// Spawns the actors of calls, exchanges and viewers; set by serve().
  caf::actor_system* system = nullptr;
  /// The node's HTTP io_context: it outlives every server (connections
  /// still held by actors post to it after their server stopped).
  net::io_context& ioc;
  /// Where WebSocket viewers run (see gateway_io); the same lifetime.
  net::io_context& terminals;
  tcp::acceptor acceptor;
  /// After an accept that failed for want of resources (no fds left), the
  /// loop waits on this before trying again instead of spinning.
  net::steady_timer accept_pause{acceptor.get_executor()};
  std::chrono::milliseconds accept_backoff{0};
  std::chrono::steady_clock::time_point accept_logged{};
  counter& accept_failures =
      ctx->metrics.counter("troupe_http_accept_failures_total",
                           "Accepts that failed for want of resources (file descriptors, memory)");

  void do_accept();
  void on_accept_failure(const beast::error_code& ec);

  // Open connections, so that stop() can close them: each registers how to
  // close it (a post to its strand) and forgets itself when it ends.
  std::mutex connections_mutex;
  std::unordered_map<uint64_t, std::function<void()>> closers;
  uint64_t next_connection = 0;
  /// Set by stop(): connections close, nothing new starts.
  std::atomic<bool> stopped{false};

  /// Registers a connection's closer; 0 (and nothing kept) once stopped.
  uint64_t track(std::function<void()> closer) {
    std::lock_guard lock(connections_mutex);
    if (stopped.load()) {
      return 0;
    }
    closers.emplace(++next_connection, std::move(closer));
    return next_connection;
  }
  /// Registers a connection whose close_now() runs on its own strand.
  template <class Connection>
  uint64_t track_closing(std::weak_ptr<Connection> connection, net::any_io_executor strand) {
    return track([connection = std::move(connection), strand = std::move(strand)] {
      net::post(strand, [connection] {
        if (auto open = connection.lock()) {
          open->close_now();
        }
      });
    });
  }
  void forget(uint64_t id) {
    if (id != 0) {
      std::lock_guard lock(connections_mutex);
      closers.erase(id);
    }
  }
  /// Closes every open connection (each on its own strand).
  void close_connections() {
    std::unordered_map<uint64_t, std::function<void()>> open;
    {
      std::lock_guard lock(connections_mutex);
      stopped.store(true);
      open.swap(closers);
    }
    for (auto& [id, close] : open) {
      close();
    }
  }

  // The WebSocket viewers' actors, held here for their connections (which
  // keep only addresses), so that a viewer lives as long as its connection
  // whoever else lets go, and stop() can end them while the actor system
  // runs.
  std::mutex viewers_mutex;
  std::map<caf::actor_addr, caf::actor> viewers;
  bool viewers_closed = false;

  /// A viewer actor for a new connection; null once the server stopped.
  caf::actor spawn_viewer(net::any_io_executor executor, const std::string& id, bool readonly,
                          std::shared_ptr<viewer_socket> socket) {
    std::lock_guard lock(viewers_mutex);
    if (viewers_closed || system == nullptr) {
      return {};
    }
    auto viewer =
        troupe::spawn_viewer(*system, std::move(executor), ctx, id, readonly, std::move(socket));
    viewers.emplace(viewer.address(), viewer);
    return viewer;
  }
  /// The connection is gone: so is its viewer actor.
  void forget_viewer(const caf::actor_addr& viewer) {
    std::lock_guard lock(viewers_mutex);
    if (auto it = viewers.find(viewer); it != viewers.end()) {
      caf::anon_send_exit(it->second, caf::exit_reason::user_shutdown);
      viewers.erase(it);
    }
  }
  void end_viewers() {
    std::lock_guard lock(viewers_mutex);
    viewers_closed = true;
    for (const auto& [address, viewer] : viewers) {
      caf::anon_send_exit(viewer, caf::exit_reason::user_shutdown);
    }
    viewers.clear();
  }
};

namespace {

/// Time a client gets to take a reply off the socket.
constexpr std::chrono::seconds write_timeout{30};

/// 529 is Anthropic's own status, which HTTP has no name for.
template <class Body>
void set_reason(http::response<Body>& res) {
  if (res.result_int() == 529) {
    res.reason("Overloaded");
  }
}

/// The head of a chunked answer, as Beast's serializer writes it (the
/// chunks follow as Beast frames them: http::make_chunk, make_chunk_last).
std::string serialized_head(http::response<http::empty_body>& head) {
  http::response_serializer<http::empty_body> serializer{head};
  serializer.split(true);
  std::string out;
  beast::error_code ec;
  while (!ec && !serializer.is_header_done()) {
    serializer.next(ec, [&](beast::error_code&, const auto& buffers) {
      out += beast::buffers_to_string(buffers);
      serializer.consume(beast::buffer_bytes(buffers));
    });
  }
  return out;
}

/// `stream`'s connection on a strand of `ioc` instead (nothing may be
/// pending on it). On failure the connection is closed and `ec` says why.
conn_stream move_connection(conn_stream&& stream, net::io_context& ioc, beast::error_code& ec) {
  if (&stream.get_executor().context() == &ioc) {
    return std::move(stream);
  }
  conn_stream moved(net::make_strand(ioc));
  auto& from = stream.socket();
  const auto protocol = from.local_endpoint(ec).protocol();
  if (ec) {
    from.close();
    return moved;
  }
  const auto fd = from.release(ec);
  if (ec) {
    from.close();
    return moved;
  }
  moved.socket().assign(protocol, fd, ec);
  if (ec) {
    ::close(fd);
  }
  return moved;
}

/// A terminal viewer on a WebSocket (GET /v1/sessions/{id}/attach): binary
/// frames carry terminal bytes both ways, text frames JSON control. Its
/// viewer actor speaks to the session; output waits here in a bounded
/// queue, and every frame written is acknowledged to the session, which
/// stops reading its PTY while this viewer is far behind. A viewer whose
/// queue overflows is closed, so the session never waits for it for long.
class ws_session : public std::enable_shared_from_this<ws_session> {
 public:
  ws_session(conn_stream&& stream, std::shared_ptr<gateway_server::impl> server)
      : ws_(std::move(stream)), server_(std::move(server)) {
    server_->connections.fetch_add(1, std::memory_order_relaxed);
  }
  ~ws_session() {
    server_->connections.fetch_sub(1, std::memory_order_relaxed);
    server_->forget(tracked_);
    server_->forget_viewer(viewer_);
  }

  void run(http::request<http::string_body> request, std::string id, bool readonly);

  // Called by the viewer actor (through socket_link), in its turns on this
  // strand.
  void on_attached(caf::actor_addr session) {
    attach_wait_.cancel();
    session_ = std::move(session);
    if (!accept_started_ && !gone_) {
      // Attached before upgrading, so an unknown session is a plain 404.
      accept_started_ = true;
      ws_.set_option(websocket::stream_base::timeout::suggested(beast::role_type::server));
      ws_.read_message_max(control_bytes_max + input_bytes_max);
      ws_.async_accept(request_,
                       beast::bind_front_handler(&ws_session::on_accept, shared_from_this()));
    }
  }
  void on_refused(const error& why) {
    attach_wait_.cancel();
    refuse(why.code, why.message);
  }
  void on_close(std::string why) {
    close_after_ = std::move(why);
    maybe_close();
  }
  /// False when the data was not queued (closed, empty, or over the bound).
  bool enqueue(bool binary, std::string data) {
    if (gone_ || data.empty()) {
      return false;
    }
    if (queued_ + data.size() > queue_bytes_max) {
      // Too slow for its session: drop this viewer, nobody else.
      server_->log->warn("closing a viewer of session {} that does not keep up", id_);
      gone_ = true;
      beast::get_lowest_layer(ws_).close();
      return false;
    }
    queued_ += data.size();
    queue_.emplace_back(binary, std::move(data));
    if (accepted_ && !writing_) {
      write_next();
    }
    return true;
  }

  net::any_io_executor executor() { return ws_.get_executor(); }

 private:
  static constexpr size_t queue_bytes_max = 8u << 20;
  static constexpr size_t input_bytes_max = 1u << 20;
  static constexpr size_t control_bytes_max = 4096;

  /// Sends `body` to the session as this viewer.
  template <class T>
  void tell_session(const char* type, const T& body) {
    auto viewer = caf::actor_cast<caf::actor>(viewer_);
    auto session = caf::actor_cast<caf::actor>(session_);
    if (session && viewer) {
      caf::send_as(viewer, session, std::string(type), encode(body), uint64_t{0});
    }
  }

  void on_accept(beast::error_code ec) {
    if (ec) {
      gone_ = true;
      return;
    }
    accepted_ = true;
    if (!queue_.empty() && !writing_) {
      write_next();
    }
    read();
  }

  /// Answers the upgrade request with a plain HTTP error (troupe's shape,
  /// built from the code) and ends the connection.
  void refuse(errc code, std::string_view message) {
    gone_ = true;
    const auto reply = error_reply(code, message);
    auto res = std::make_shared<http::response<http::string_body>>(
        static_cast<http::status>(reply.status), request_.version());
    res->set(http::field::content_type, reply.content_type);
    for (const auto& [name, value] : reply.headers) {
      res->set(name, value);
    }
    res->body() = reply.body;
    res->keep_alive(false);
    res->prepare_payload();
    http::async_write(
        ws_.next_layer(), *res, [self = shared_from_this(), res](beast::error_code, size_t) {
          beast::error_code ignored;
          self->ws_.next_layer().socket().shutdown(tcp::socket::shutdown_send, ignored);
        });
  }

  void read() {
    ws_.async_read(buffer_, beast::bind_front_handler(&ws_session::on_read, shared_from_this()));
  }

  void on_read(beast::error_code ec, size_t) {
    if (ec) {
      // The viewer left, broke the protocol or sent a frame over the limit
      // (Beast answers 1009 then): either way this connection is done.
      gone_ = true;
      beast::error_code ignored;
      beast::get_lowest_layer(ws_).socket().shutdown(tcp::socket::shutdown_both, ignored);
      return;
    }
    auto data = beast::buffers_to_string(buffer_.data());
    buffer_.consume(buffer_.size());
    if (ws_.got_binary()) {
      if (readonly_) {
        enqueue(false, R"({"type":"error","message":"read-only viewer: input ignored"})");
      } else if (!data.empty()) {
        tell_session(term::input_type, term::bytes_msg{std::move(data)});
      }
    } else {
      control(data);
    }
    read();
  }

  void control(const std::string& text) {
    auto parsed = parse_control_frame(text);
    if (auto* why = std::get_if<std::string>(&parsed)) {
      enqueue(false, nlohmann::json{{"type", "error"}, {"message", *why}}.dump());
      return;
    }
    const auto& size = std::get<terminal_resize>(parsed);
    tell_session(term::resize_type, term::resize_msg{size.cols, size.rows});
  }

  void write_next() {
    writing_ = true;
    ws_.binary(queue_.front().first);
    ws_.async_write(net::buffer(queue_.front().second),
                    beast::bind_front_handler(&ws_session::on_write, shared_from_this()));
  }

  void on_write(beast::error_code ec, size_t) {
    writing_ = false;
    const auto& [binary, data] = queue_.front();
    queued_ -= data.size();
    if (binary && !ec) {
      tell_session(term::ack_type, term::ack_msg{data.size()});
    }
    queue_.pop_front();
    if (ec) {
      gone_ = true;
      return;
    }
    if (!queue_.empty()) {
      return write_next();
    }
    maybe_close();
  }

  void maybe_close() {
    if (!close_after_ || gone_) {
      return;
    }
    if (!accept_started_) {
      // Closed before it was ever attached.
      return refuse(errc::not_found, *close_after_);
    }
    if (!accepted_ || writing_ || !queue_.empty()) {
      return;
    }
    gone_ = true;
    ws_.async_close(websocket::close_reason(websocket::close_code::normal, *close_after_),
                    [self = shared_from_this()](beast::error_code) {});
  }

  websocket::stream<conn_stream> ws_;
  std::shared_ptr<gateway_server::impl> server_;
  http::request<http::string_body> request_;
  std::string id_;
  bool readonly_ = false;
  beast::flat_buffer buffer_;
  std::deque<std::pair<bool, std::string>> queue_;
  size_t queued_ = 0;
  bool writing_ = false;
  bool accept_started_ = false;
  bool accepted_ = false;
  bool gone_ = false;
  std::optional<std::string> close_after_;
  /// This connection's viewer actor, and the session incarnation it is
  /// attached to. Weak: the connection may outlive the actor system (the
  /// server's io_context is destroyed after it), and the viewer actor ends
  /// with the connection or with the server, not with a handle.
  caf::actor_addr viewer_;
  caf::actor_addr session_;
  /// Holds the connection while its viewer actor attaches (nothing else
  /// does before the handshake), and bounds that wait.
  net::steady_timer attach_wait_{ws_.get_executor()};
  /// This connection in its server's list (0: not listed).
  uint64_t tracked_ = 0;

 public:
  /// The server stopped: the connection ends now.
  void close_now() {
    gone_ = true;
    attach_wait_.cancel();
    beast::get_lowest_layer(ws_).close();
  }
};

/// The viewer actor's way to its connection. The actor's turns run on the
/// connection's strand, so each call goes straight to the connection (if it
/// is still there).
class socket_link : public viewer_socket {
 public:
  explicit socket_link(std::weak_ptr<ws_session> ws) : ws_(std::move(ws)) {}
  void attached(caf::actor session, uint16_t, uint16_t) override {
    // Weak, as everything this connection keeps of the actors.
    with([&](ws_session& ws) { ws.on_attached(session.address()); });
  }
  void refused(error why) override {
    with([&](ws_session& ws) { ws.on_refused(why); });
  }
  void output(std::string bytes) override {
    with([&](ws_session& ws) { ws.enqueue(true, std::move(bytes)); });
  }
  void control(std::string json) override {
    with([&](ws_session& ws) { ws.enqueue(false, std::move(json)); });
  }
  void close(std::string why) override {
    with([&](ws_session& ws) { ws.on_close(std::move(why)); });
  }

 private:
  template <class F>
  void with(F&& f) {
    if (auto s = ws_.lock()) {
      f(*s);
    }
  }
  std::weak_ptr<ws_session> ws_;
};

void ws_session::run(http::request<http::string_body> request, std::string id, bool readonly) {
  request_ = std::move(request);
  id_ = std::move(id);
  readonly_ = readonly;
  tracked_ = server_->track_closing(weak_from_this(), executor());
  if (tracked_ == 0) {
    return refuse(errc::shutting_down, "the gateway is stopping");
  }
  auto viewer = server_->spawn_viewer(executor(), id_, readonly_,
                                      std::make_shared<socket_link>(weak_from_this()));
  if (!viewer) {
    return refuse(errc::shutting_down, "the node is shutting down");
  }
  viewer_ = viewer.address();
  attach_wait_.expires_after(std::chrono::seconds(40));
  attach_wait_.async_wait([self = shared_from_this()](beast::error_code ec) {
    if (!ec && !self->accept_started_ && !self->gone_) {
      self->refuse(errc::timeout, "session '" + self->id_ + "' did not answer the attach");
    }
  });
}

class session_sink;

/// The bytes of a (small) buffer sequence, such as Beast's chunk framing.
template <class ConstBufferSequence>
std::string bytes_of(const ConstBufferSequence& buffers) {
  std::string out;
  out.reserve(beast::buffer_bytes(buffers));
  for (const auto piece : beast::buffers_range_ref(buffers)) {
    out.append(static_cast<const char*>(piece.data()), piece.size());
  }
  return out;
}

/// A piece of a streamed answer waiting to be written: its framing (the
/// head, a chunk's size line), then the bytes it frames, held where they
/// came (see body_slice), then what follows them (a chunk's closing CRLF,
/// and small chunks after it copied whole, so that a run of them does not
/// take a buffer each of the few a write system call carries).
struct out_piece {
  std::string framing;
  body_slice data;
  std::string tail;

  /// What the piece holds: the whole message around its bytes counts.
  [[nodiscard]] size_t bytes() const { return framing.size() + data.storage.size() + tail.size(); }
  void buffers(std::vector<net::const_buffer>& out) const {
    if (!framing.empty()) {
      out.emplace_back(framing.data(), framing.size());
    }
    if (data.size > 0) {
      out.emplace_back(data.storage.data() + data.offset, data.size);
    }
    if (!tail.empty()) {
      out.emplace_back(tail.data(), tail.size());
    }
  }
};

class session : public std::enable_shared_from_this<session> {
 public:
  session(conn_socket&& socket, std::shared_ptr<gateway_server::impl> server)
      : stream_(std::move(socket)), server_(std::move(server)) {
    server_->connections.fetch_add(1, std::memory_order_relaxed);
  }
  ~session() {
    end_request();  // a connection that ends in the middle of one
    server_->connections.fetch_sub(1, std::memory_order_relaxed);
    server_->forget(tracked_);
  }

  net::any_io_executor executor() { return stream_.get_executor(); }

  void run() {
    tracked_ = server_->track_closing(weak_from_this(), executor());
    if (tracked_ == 0) {
      return;  // the server stopped: the socket closes with this session
    }
    net::dispatch(stream_.get_executor(), [self = shared_from_this()] { self->do_read(); });
  }

  /// The server stopped: the connection ends now (a reply being written is
  /// cut; an exchange's late answers find the socket closed).
  void close_now() {
    client_left();
    // Ended here, while the actor system runs (the node stops it before
    // its I/O threads, whose queued handlers may hold this connection).
    exchange_actor_.reset();
    beast::error_code ignored;
    stream_.socket().shutdown(tcp::socket::shutdown_both, ignored);
    stream_.socket().close(ignored);
  }

 private:
  /// A request counts as in flight (what a drain waits for) from its head
  /// until its answer is written, or its connection ends, or it becomes a
  /// viewer: counted down once, whichever comes first.
  void begin_request() {
    server_->in_flight.fetch_add(1, std::memory_order_relaxed);
    counted_ = true;
  }
  void end_request() {
    if (std::exchange(counted_, false)) {
      server_->in_flight.fetch_sub(1, std::memory_order_relaxed);
    }
  }

  void do_read() {
    const auto& cfg = server_->ctx->config.gateway;
    parser_.emplace();
    parser_->body_limit(cfg.body_bytes_max);
    parser_->header_limit(cfg.header_bytes_max);
    stream_.expires_after(std::chrono::milliseconds(cfg.idle_timeout_ms));
    http::async_read_header(stream_, buffer_, *parser_,
                            beast::bind_front_handler(&session::on_head, shared_from_this()));
  }

  /// The head is in (or failed): a client that asked `Expect: 100-continue`
  /// hears `100 Continue` before it sends the body (curl otherwise waits a
  /// second); then the body is read. A head refused already (too large, a
  /// body over the limit by its Content-Length) is answered without it.
  void on_head(beast::error_code ec, size_t n) {
    if (ec || parser_->is_done()) {
      return on_read(ec, n);
    }
    const auto expect = parser_->get()[http::field::expect];
    if (beast::iequals(expect, "100-continue")) {
      continue_.emplace(http::status::continue_, parser_->get().version());
      return http::async_write(stream_, *continue_,
                               [self = shared_from_this()](beast::error_code wec, size_t) {
                                 self->continue_.reset();
                                 if (wec) {
                                   return self->do_close();
                                 }
                                 self->read_body();
                               });
    }
    read_body();
  }

  void read_body() {
    http::async_read(stream_, buffer_, *parser_,
                     beast::bind_front_handler(&session::on_read, shared_from_this()));
  }

  void on_read(beast::error_code ec, size_t) {
    if (ec == http::error::end_of_stream || ec == beast::error::timeout ||
        ec == net::error::operation_aborted || ec == net::error::connection_reset) {
      return do_close();
    }
    if (ec == http::error::body_limit && anthropic_target()) {
      return reply_and_close(anthropic_error_reply(
          errc::too_large, "request body exceeds the gateway's limit (gateway.body_bytes_max)"));
    }
    if (ec == http::error::body_limit) {
      return reply_and_close(error_reply(
          errc::too_large, "request body exceeds gateway.body_bytes_max (" +
                               std::to_string(server_->ctx->config.gateway.body_bytes_max) +
                               " bytes)"));
    }
    if (ec == http::error::header_limit) {
      return reply_and_close(error_reply(
          errc::too_large, "request head exceeds gateway.header_bytes_max (" +
                               std::to_string(server_->ctx->config.gateway.header_bytes_max) +
                               " bytes)"));
    }
    if (ec) {
      return reply_and_close(
          error_reply(errc::bad_request, "malformed HTTP request: " + ec.message()));
    }
    const auto& head = parser_->get();
    const auto codings = head.count(http::field::transfer_encoding);
    const auto te = head[http::field::transfer_encoding];
    if (auto why = framing_error(codings > 0,
                                 codings > 1 ? std::string_view("(several headers)")
                                             : std::string_view(te.data(), te.size()),
                                 head.count(http::field::content_length) > 0);
        !why.empty()) {
      return reply_and_close(anthropic_target() ? anthropic_error_reply(errc::bad_request, why)
                                                : error_reply(errc::bad_request, why));
    }
    // The idle timer covered the read; the reply may take as long as the call
    // does (up to request_timeout_max_ms), so it must not close the socket.
    stream_.expires_never();
    started_ = std::chrono::steady_clock::now();
    begin_request();
    request_ = parser_->release();
    const auto target = std::string_view(request_.target().data(), request_.target().size());
    if (auto origin = origin_form(target); origin != target) {
      request_.target(std::move(origin));
    }
    handle();
  }

  /// The request being read goes to an Anthropic route (its errors take
  /// the Anthropic shape).
  bool anthropic_target() const {
    const auto target = parser_->get().target();
    const auto path = origin_form(std::string_view(target.data(), target.size()));
    return is_anthropic_route(std::string_view(path).substr(0, path.find('?')));
  }

  void handle() {
    http_request_view view{
        std::string_view(request_.method_string().data(), request_.method_string().size()),
        std::string_view(request_.target().data(), request_.target().size()),
        header(http::field::content_type),
        header(http::field::authorization),
        header("x-api-key"),
        header(http::field::accept),
        request_.body(),
    };
    routed result;
    try {
      result = server_->routes.route(view);
    } catch (const std::exception& e) {
      // An exception escaping into Asio would end the node: answer instead.
      server_->log->error("routing {} {} threw: {}", view.method, view.target, e.what());
      return send(error_reply(errc::internal, std::string("the request failed: ") + e.what()));
    }
    if (auto* reply = std::get_if<http_reply>(&result)) {
      return send(std::move(*reply));
    }
    if (auto* kill = std::get_if<actor_kill>(&result)) {
      auto target = chaos_target(*server_->ctx, kill->path);
      if (!target) {
        return send(error_reply(target.err().code, target.err().message));
      }
      // Crashed once the answer is written: the actor may be this
      // connection's own listener.
      crash_after_write_ = std::move(*target);
      return send(
          http_reply{200, "application/json", nlohmann::json{{"killed", kill->path}}.dump(), {}});
    }
    if (auto* attach = std::get_if<session_attach>(&result)) {
      if (!websocket::is_upgrade(request_)) {
        return send(error_reply(errc::bad_request,
                                "GET /v1/sessions/{id}/attach is a WebSocket: send an upgrade"));
      }
      return start_attach(std::move(attach->id), attach->readonly);
    }
    if (auto* exchange = std::get_if<family_exchange>(&result)) {
      return start_exchange(std::move(*exchange));
    }
    auto& call = std::get<actor_call>(result);
    const auto shape = call.shape;
    if (server_->system == nullptr) {
      return send(error_reply(errc::unavailable, "not served by this node"));
    }
    submit_call(*server_->system, server_->ctx, std::move(call),
                [self = shared_from_this(), shape](envelope reply) {
                  // Runs on an actor thread: hop back to this connection's strand.
                  net::post(self->stream_.get_executor(), [self, shape, reply = std::move(reply)] {
                    self->send_reply(reply, shape);
                  });
                });
  }

  /// Hands the request to the LLM family through an exchange actor, whose
  /// sink hops back onto this connection's strand.
  void start_exchange(family_exchange target);

  /// The connection becomes a WebSocket viewer; this HTTP session ends.
  void start_attach(std::string id, bool readonly) {
    // A viewer may stay for hours: it does not hold a drain open.
    end_request();
    server_->requests.inc();
    stream_.expires_never();
    // Terminal traffic runs on the terminal threads (see gateway_io).
    beast::error_code ec;
    auto moved = move_connection(std::move(stream_), server_->terminals, ec);
    if (ec) {
      server_->log->warn(
          "a viewer of session {} lost its connection on the way to the terminal "
          "threads: {}",
          id, ec.message());
      return;
    }
    // run() on the viewer's own strand: its actor answers there, and must
    // not find the connection half set up by this (HTTP) thread.
    auto viewer = std::make_shared<ws_session>(std::move(moved), server_);
    net::post(viewer->executor(),
              [viewer, request = std::move(request_), id = std::move(id), readonly]() mutable {
                viewer->run(std::move(request), std::move(id), readonly);
              });
  }

  /// Who is calling, for the ledger: a stable digest of the credential
  /// (FNV-1a), never the credential itself.
  std::string client_label() const {
    auto credential = header("x-api-key");
    if (credential.empty()) {
      credential = header(http::field::authorization);
    }
    uint64_t h = 0xcbf29ce484222325ULL;
    for (char c : credential) {
      h ^= static_cast<uint8_t>(c);
      h *= 0x100000001b3ULL;
    }
    char out[24];
    std::snprintf(out, sizeof out, "token-%08x", static_cast<uint32_t>(h >> 32));
    return out;
  }

 public:
  // The sink's side, on this connection's strand.
  /// Which exchange of this connection the sink calls are about: a late
  /// call for an earlier request must not touch the current one.
  uint64_t exchange_id() const { return exchange_; }

  void stream_head(uint64_t id, int status, const http_headers& headers) {
    if (id != exchange_ || !exchange_open_) {
      return;
    }
    exchange_open_ = false;
    // Header values come partly from upstreams and clients: no line breaks.
    auto clean = [](std::string v) {
      std::replace_if(
          v.begin(), v.end(), [](char c) { return c == '\r' || c == '\n'; }, ' ');
      return v;
    };
    http::response<http::empty_body> head{static_cast<http::status>(status), 11};
    set_reason(head);
    head.set(http::field::server, "troupe");
    for (const auto& [name, value] : headers) {
      head.insert(clean(name), clean(value));
    }
    head.keep_alive(request_.keep_alive());
    head.chunked(true);
    streaming_ = true;
    enqueue(out_piece{serialized_head(head), {}, {}});
  }

  /// The chunk is written from where it came (its message's body): the
  /// bytes are not copied on this thread, unless there are few of them.
  void stream_chunk(uint64_t id, body_slice data) {
    if (id != exchange_ || data.size == 0 || !streaming_ || stream_ended_) {
      return;  // a zero-length chunk would end the body
    }
    // Beast frames the chunk: its size line, then its data, then the CRLF
    // that ends it.
    std::string size_line = bytes_of(http::chunk_header{data.size});
    if (data.size <= small_chunk_bytes) {
      size_line.append(data.view()).append(bytes_of(http::chunk_crlf{}));
      return enqueue_small(size_line);
    }
    enqueue(out_piece{std::move(size_line), std::move(data), bytes_of(http::chunk_crlf{})});
  }

  void stream_end(uint64_t id) {
    if (id != exchange_ || !streaming_ || stream_ended_) {
      return;
    }
    stream_ended_ = true;
    enqueue_small(bytes_of(http::make_chunk_last()));  // no trailers
  }

  void exchange_reply(uint64_t id, int status, http_headers headers, std::string body) {
    if (id != exchange_ || !exchange_open_) {
      return;
    }
    exchange_open_ = false;
    http_reply reply{status, "application/json", std::move(body), {}};
    for (auto& [name, value] : headers) {
      if (name == "content-type") {
        reply.content_type = std::move(value);
      } else {
        reply.headers.emplace_back(std::move(name), std::move(value));
      }
    }
    try {
      send(std::move(reply));
    } catch (const std::exception& e) {
      // A header Beast refuses (say, too long): answer, never end the node.
      server_->log->error("an LLM answer could not be sent: {}", e.what());
      send(error_reply(errc::bad_gateway, "the answer could not be sent"));
    }
  }

  /// While an exchange runs nobody reads the socket: wait for it to turn
  /// readable, and if that is the client closing, say so (producers stop,
  /// queued requests are dropped). Bytes of a pipelined request are left
  /// for the next read.
  void watch_client(uint64_t id) {
    stream_.socket().async_wait(
        tcp::socket::wait_read, [self = shared_from_this(), id](beast::error_code ec) {
          if (id != self->exchange_ || (!self->exchange_open_ && !self->streaming_)) {
            return;  // that exchange is over
          }
          if (!ec) {
            char byte = 0;
            const auto n =
                ::recv(self->stream_.socket().native_handle(), &byte, 1, MSG_PEEK | MSG_DONTWAIT);
            if (n > 0) {
              return;
            }
            if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) {
              return self->watch_client(id);
            }
          }
          if (ec == net::error::operation_aborted) {
            return;
          }
          self->client_left();
        });
  }

  /// The client went away: whoever produces its answer stops.
  void client_left() {
    if (client_gone.exchange(true)) {
      return;
    }
    if (exchange_actor_) {
      exchange_actor_->client_left();
    }
  }

  /// The exchange's family let go of it (`http.dropped`), or its actor
  /// ended with it open: a request never answered gets a 500 (in the error
  /// shape of its route), a stream never ended gets an error event and its
  /// end. The one place that guarantees an answer: producers need no guard
  /// of their own.
  void abandon(uint64_t id) {
    if (id != exchange_) {
      return;
    }
    if (exchange_open_) {
      const auto target = std::string_view(request_.target().data(), request_.target().size());
      const bool anthropic = is_anthropic_route(target.substr(0, target.find('?')));
      auto answer =
          anthropic
              ? anthropic_error(errc::internal,
                                "the gateway lost this request before answering it; it is safe "
                                "to retry")
              : troupe_error(errc::internal,
                             "the node lost this request before answering it; it is safe to "
                             "retry");
      return exchange_reply(id, answer.status, {{"content-type", "application/json"}},
                            std::move(answer.body));
    }
    if (streaming_ && !stream_ended_) {
      auto event = anthropic_error_event("api_error", "the gateway lost this stream");
      const auto size = event.size();
      stream_chunk(id, body_slice{std::move(event), 0, size});
      stream_end(id);
    }
  }

  std::atomic<bool> client_gone{false};

 private:
  /// A client that reads slower than its answer arrives is dropped past this.
  static constexpr size_t stream_backlog_max = 8u << 20;

  /// Chunks this small are copied into what waits to be written.
  static constexpr size_t small_chunk_bytes = 4u << 10;
  /// Up to this much is gathered behind one piece.
  static constexpr size_t tail_bytes_max = 64u << 10;

  /// Appends `piece` to what waits to be written, and writes.
  void enqueue(out_piece piece) {
    if (client_gone.load()) {
      // Nothing more is written: an exchange whose stream waits for no
      // write ends here.
      if (!writing_) {
        finish_stream(true);
      }
      return;
    }
    pending_bytes_ += piece.bytes();
    pending_.push_back(std::move(piece));
    // Only what waits behind a write in flight counts: one large piece with
    // nothing in flight goes out at once.
    if (writing_ && pending_bytes_ > stream_backlog_max) {
      client_left();
      server_->log->warn("dropping a client that does not read its stream");
      pending_.clear();
      pending_bytes_ = 0;
      beast::error_code ignored;
      stream_.socket().shutdown(tcp::socket::shutdown_both, ignored);  // the write in flight fails
      return;
    }
    write_pending();
  }

  /// A few bytes, copied behind the last piece waiting when there is room.
  void enqueue_small(std::string_view bytes) {
    if (!client_gone.load() && !pending_.empty() &&
        pending_.back().tail.size() + bytes.size() <= tail_bytes_max) {
      pending_.back().tail.append(bytes);
      pending_bytes_ += bytes.size();
      return;  // a write is in flight (pieces wait only behind one)
    }
    enqueue(out_piece{std::string(bytes), {}, {}});
  }

  /// Everything that waits goes in one gathered write.
  void write_pending() {
    if (writing_ || pending_.empty()) {
      return;
    }
    writing_ = true;
    in_write_.swap(pending_);
    pending_bytes_ = 0;
    write_buffers_.clear();
    for (const auto& piece : in_write_) {
      piece.buffers(write_buffers_);
    }
    stream_.expires_after(write_timeout);
    net::async_write(stream_, write_buffers_,
                     beast::bind_front_handler(&session::on_stream_write, shared_from_this()));
  }

  void on_stream_write(beast::error_code ec, size_t) {
    writing_ = false;
    in_write_.clear();
    write_buffers_.clear();
    if (ec || client_gone.load()) {
      client_left();
      finish_stream(true);
      return;
    }
    if (!pending_.empty()) {
      return write_pending();
    }
    if (stream_ended_) {
      finish_stream(!request_.keep_alive());
    }
  }

  void finish_stream(bool close) {
    if (!streaming_) {
      return;
    }
    streaming_ = false;
    stream_ended_ = false;
    on_write(close, {}, 0);
  }

  void send_reply(const envelope& reply, reply_shape shape) {
    try {
      send(server_->routes.reply_for(reply, shape));
    } catch (const std::exception& e) {
      server_->log->error("converting a reply of type '{}' threw: {}", reply.type, e.what());
      send(error_reply(errc::internal,
                       std::string("the reply could not be converted: ") + e.what()));
    }
  }

  std::string_view header(http::field f) const {
    auto it = request_.find(f);
    return it == request_.end() ? std::string_view{}
                                : std::string_view(it->value().data(), it->value().size());
  }
  std::string_view header(std::string_view name) const {
    auto it = request_.find(beast::string_view(name.data(), name.size()));
    return it == request_.end() ? std::string_view{}
                                : std::string_view(it->value().data(), it->value().size());
  }

  void send(http_reply reply) {
    auto res = std::make_shared<http::response<http::string_body>>(
        static_cast<http::status>(reply.status), request_.version());
    set_reason(*res);
    res->set(http::field::server, "troupe");
    res->set(http::field::content_type, reply.content_type);
    for (const auto& [name, value] : reply.headers) {
      res->set(beast::string_view(name.data(), name.size()),
               beast::string_view(value.data(), value.size()));
    }
    res->keep_alive(request_.keep_alive());
    res->body() = std::move(reply.body);
    res->prepare_payload();
    response_ = res;
    // A client that does not read its reply within this bound is dropped.
    stream_.expires_after(write_timeout);
    http::async_write(
        stream_, *res,
        beast::bind_front_handler(&session::on_write, shared_from_this(), res->need_eof()));
  }

  void on_write(bool close, beast::error_code ec, size_t) {
    if (crash_after_write_) {
      crash(std::exchange(crash_after_write_, caf::actor{}));
    }
    end_request();
    server_->requests.inc();
    server_->latency.observe(
        std::chrono::duration<double>(std::chrono::steady_clock::now() - started_).count());
    response_.reset();
    if (ec || close) {
      return do_close();
    }
    do_read();
  }

  void reply_and_close(http_reply reply) {
    // The request may be half read: answer, then close the connection.
    request_ = {};
    request_.version(11);
    request_.keep_alive(false);
    started_ = std::chrono::steady_clock::now();
    begin_request();
    send(std::move(reply));
  }

  void do_close() {
    beast::error_code ec;
    stream_.socket().shutdown(tcp::socket::shutdown_send, ec);
  }

  conn_stream stream_;
  std::shared_ptr<gateway_server::impl> server_;
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::string_body>> parser_;
  /// The interim `100 Continue` while it is being written.
  std::optional<http::response<http::empty_body>> continue_;
  http::request<http::string_body> request_;
  std::shared_ptr<void> response_;
  std::chrono::steady_clock::time_point started_;
  // A streamed answer: bytes waiting, bytes being written.
  bool streaming_ = false;
  bool stream_ended_ = false;
  /// This connection's actor for its exchanges (made at the first), on its
  /// strand; it holds the connection only weakly, and ends with it.
  std::unique_ptr<exchange_actor> exchange_actor_;
  bool writing_ = false;
  /// The exchange in progress (counts up per exchange) and whether it still
  /// waits for its answer.
  uint64_t exchange_ = 0;
  bool exchange_open_ = false;
  /// A streamed answer's pieces waiting to be written (and their bytes),
  /// and those being written with the buffers that point into them.
  std::vector<out_piece> pending_;
  size_t pending_bytes_ = 0;
  /// The current request is counted in the server's in_flight.
  bool counted_ = false;
  std::vector<out_piece> in_write_;
  std::vector<net::const_buffer> write_buffers_;
  /// Chaos: the actor to crash once the current answer is written.
  caf::actor crash_after_write_;
  /// This connection in its server's list (0: not listed).
  uint64_t tracked_ = 0;
};

/// The connection as its exchange actor sees it. The actor runs on the
/// connection's strand, so each call reaches the connection directly; it
/// holds the connection weakly (the connection holds the actor).
class session_sink : public exchange_sink {
 public:
  explicit session_sink(const std::shared_ptr<session>& s) : session_(s) {}

  void reply(uint64_t id, int status, http_headers headers, std::string body) override {
    if (auto s = session_.lock()) {
      s->exchange_reply(id, status, std::move(headers), std::move(body));
    }
  }
  void begin_stream(uint64_t id, int status, http_headers headers) override {
    if (auto s = session_.lock()) {
      s->stream_head(id, status, headers);
    }
  }
  void stream(uint64_t id, body_slice chunk) override {
    if (auto s = session_.lock()) {
      s->stream_chunk(id, std::move(chunk));
    }
  }
  void end_stream(uint64_t id) override {
    if (auto s = session_.lock()) {
      s->stream_end(id);
    }
  }
  void abandon(uint64_t id) override {
    if (auto s = session_.lock()) {
      s->abandon(id);
    }
  }

 private:
  std::weak_ptr<session> session_;
};

void session::start_exchange(family_exchange target) {
  exchange_request req;
  req.method = std::string(request_.method_string());
  req.target = std::string(request_.target());
  req.headers = lowered_headers(request_);
  req.client = client_label();
  req.body = std::move(request_.body());
  ++exchange_;
  exchange_open_ = true;
  watch_client(exchange_);
  if (server_->system == nullptr) {
    auto answer = troupe_error(errc::unavailable, "not served by this node");
    return exchange_reply(exchange_, answer.status, {{"content-type", "application/json"}},
                          std::move(answer.body));
  }
  if (!exchange_actor_ || !exchange_actor_->usable()) {
    exchange_actor_ = std::make_unique<exchange_actor>(
        *server_->system, executor(), std::make_shared<session_sink>(shared_from_this()));
  }
  exchange_actor_->start(*server_->ctx, std::move(target), std::move(req), exchange_);
}

expected<tcp::endpoint> parse_listen(const std::string& listen) {
  auto colon = listen.rfind(':');
  if (colon == std::string::npos) {
    return make_error(errc::config_invalid,
                      "gateway.listen: expected HOST:PORT, got '" + listen + "'");
  }
  auto host = listen.substr(0, colon);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  beast::error_code ec;
  auto address = net::ip::make_address(host == "localhost" ? "127.0.0.1" : host, ec);
  if (ec) {
    return make_error(errc::config_invalid,
                      "gateway.listen: '" + host + "' is not an IP address: " + ec.message());
  }
  const auto port_text = std::string_view(listen).substr(colon + 1);
  unsigned port = 0;
  const auto [end, perr] =
      std::from_chars(port_text.data(), port_text.data() + port_text.size(), port);
  if (port_text.empty() || perr != std::errc{} || end != port_text.data() + port_text.size() ||
      port > 65535) {
    return make_error(errc::config_invalid, "gateway.listen: the port must be 0 to 65535, got '" +
                                                std::string(port_text) + "'");
  }
  return tcp::endpoint(address, static_cast<uint16_t>(port));
}

}  // namespace

void gateway_server::impl::do_accept() {
  acceptor.async_accept(net::make_strand(ioc), [this, self = shared_from_this()](
                                                   beast::error_code ec, conn_socket socket) {
    if (ec == net::error::operation_aborted || !acceptor.is_open() || stopped.load()) {
      return;
    }
    if (ec) {
      return on_accept_failure(ec);
    }
    accept_backoff = std::chrono::milliseconds(0);
    {
      if (connections.load(std::memory_order_relaxed) >= ctx->config.gateway.connections_max) {
        rejected.inc();
        beast::error_code ignored;
        socket.close(ignored);
      } else {
        // Streamed answers go out in small writes; Nagle would hold them.
        beast::error_code ignored;
        socket.set_option(tcp::no_delay(true), ignored);
        std::make_shared<session>(std::move(socket), shared_from_this())->run();
      }
    }
    do_accept();
  });
}

void gateway_server::impl::on_accept_failure(const beast::error_code& ec) {
  // Out of fds (EMFILE/ENFILE) or buffers: the pending connection stays in
  // the backlog and every retry fails at once, so back off (doubling, at
  // most a second), count it, and log it once a second at most.
  constexpr std::chrono::milliseconds backoff_min{10};
  constexpr std::chrono::milliseconds backoff_max{1000};
  accept_failures.inc();
  accept_backoff = std::clamp(accept_backoff * 2, backoff_min, backoff_max);
  const auto now = std::chrono::steady_clock::now();
  if (now - accept_logged >= std::chrono::seconds(1)) {
    accept_logged = now;
    log->error("accepting a connection failed: {} ({} connections open); retrying in {} ms",
               ec.message(), connections.load(std::memory_order_relaxed), accept_backoff.count());
  }
  accept_pause.expires_after(accept_backoff);
  accept_pause.async_wait([this, self = shared_from_this()](beast::error_code waited) {
    if (!waited && acceptor.is_open() && !stopped.load()) {
      do_accept();
    }
  });
}

gateway_server::gateway_server(std::shared_ptr<impl> p) : impl_(std::move(p)) {}

gateway_server::~gateway_server() {
  stop();
}

expected<std::unique_ptr<gateway_server>> gateway_server::start(std::shared_ptr<node_context> ctx,
                                                                std::string token,
                                                                const std::string& listen,
                                                                gateway_io io) {
  auto endpoint = parse_listen(listen);
  if (!endpoint) {
    return std::move(endpoint).err();
  }
  auto p = std::make_shared<impl>(ctx, std::move(token), io);
  beast::error_code ec;
  p->acceptor.open(endpoint->protocol(), ec);
  if (!ec) {
    p->acceptor.set_option(net::socket_base::reuse_address(true), ec);
  }
  if (!ec) {
    p->acceptor.bind(*endpoint, ec);
  }
  if (!ec) {
    p->acceptor.listen(net::socket_base::max_listen_connections, ec);
  }
  if (ec) {
    return make_error(errc::unavailable, "cannot listen on " + listen + ": " + ec.message());
  }
  auto local = p->acceptor.local_endpoint();
  p->bound = (local.address().is_v6() ? "[" + local.address().to_string() + "]"
                                      : local.address().to_string()) +
             ":" + std::to_string(local.port());
  return std::unique_ptr<gateway_server>(new gateway_server(std::move(p)));
}

void gateway_server::serve(caf::actor_system& system) {
  if (impl_->system != nullptr) {
    return;
  }
  impl_->system = &system;
  net::dispatch(impl_->acceptor.get_executor(), [p = impl_] { p->do_accept(); });
}

std::string gateway_server::address() const {
  return impl_->bound;
}

uint32_t gateway_server::in_flight() const {
  return impl_->in_flight.load();
}

void gateway_server::stop_accepting() {
  impl_->routes.draining.store(true);
  net::post(impl_->acceptor.get_executor(), [p = impl_] {
    beast::error_code ec;
    p->acceptor.close(ec);
    p->accept_pause.cancel();
  });
}

void gateway_server::stop() {
  if (!impl_ || impl_->stopped.load()) {
    return;
  }
  impl_->routes.draining.store(true);
  // The listening socket is closed on its strand, and waited for: the next
  // listener binds the same address as soon as this one is gone. (Nothing
  // on an I/O thread waits for an actor, so this wait is short; if the
  // threads no longer run, nothing else touches the socket.)
  auto closed = std::make_shared<std::promise<void>>();
  auto done = closed->get_future();
  net::post(impl_->acceptor.get_executor(), [p = impl_, closed] {
    beast::error_code ec;
    p->acceptor.close(ec);
    p->accept_pause.cancel();
    closed->set_value();
  });
  if (done.wait_for(std::chrono::seconds(5)) != std::future_status::ready) {
    impl_->log->error("the HTTP threads did not close the listening socket within 5 s");
  }
  impl_->close_connections();
  impl_->end_viewers();
}

}  // namespace troupe
