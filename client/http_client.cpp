#include "client/http_client.hpp"

#include "client/client_common.hpp"

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http.hpp>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <optional>

namespace troupe {

namespace beast = boost::beast;
namespace http = beast::http;
namespace net = boost::asio;
using tcp = net::ip::tcp;
using steady_clock = std::chrono::steady_clock;

using client_detail::check_target;
using client_detail::has_control_chars;
using client_detail::to_response;

namespace {

constexpr std::string_view user_agent = "troupe-http-client/0.1";
constexpr std::string_view url_shape = "expected http://host:port[/prefix]";

// Beast 1.74 speaks boost::string_view unless told otherwise; this works either way.
beast::string_view to_beast(std::string_view text) {
  return {text.data(), text.size()};
}

bool iequals(std::string_view a, std::string_view b) {
  return std::equal(a.begin(), a.end(), b.begin(), b.end(), [](char x, char y) {
    return std::tolower(static_cast<unsigned char>(x)) ==
           std::tolower(static_cast<unsigned char>(y));
  });
}

error url_error(std::string_view text, std::string_view why) {
  return make_error(errc::bad_request, "invalid URL '" + std::string(text) + "': " +
                                           std::string(why) + "; " + std::string(url_shape));
}

// A method is an HTTP token; refusing anything else keeps the request line well-formed.
bool is_method_token(std::string_view method) {
  return !method.empty() && std::all_of(method.begin(), method.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) != 0 || c == '-' || c == '_';
  });
}

std::optional<error> check_request(std::string_view method, std::string_view target,
                                   const http_headers& extra) {
  if (!is_method_token(method)) {
    return make_error(errc::bad_request, "invalid HTTP method '" + std::string(method) + "'");
  }
  if (auto bad = check_target(target)) {
    return bad;
  }
  for (const auto& [name, value] : extra) {
    if (name.empty() || has_control_chars(name) || has_control_chars(value)) {
      return make_error(errc::bad_request, "invalid header '" + name + "'");
    }
  }
  return std::nullopt;
}

// Errors that mean the peer closed a connection we thought was alive: the
// request never reached a handler, so sending it again is safe.
bool is_closed_by_peer(const beast::error_code& ec) {
  return ec == http::error::end_of_stream || ec == net::error::eof ||
         ec == net::error::connection_reset || ec == net::error::broken_pipe ||
         ec == net::error::connection_aborted;
}

}  // namespace

expected<base_url> parse_node_url(std::string_view text) {
  auto url = parse_base_url(text);
  if (!url) {
    return url_error(text, url.err().message);
  }
  if (url->tls) {
    return make_error(errc::bad_request,
                      "https not supported yet: '" + std::string(text) + "'; use http://host:port");
  }
  return url;
}

std::string_view find_header(const http_response& response, std::string_view name) {
  for (const auto& [key, value] : response.headers) {
    if (iequals(key, name)) {
      return value;
    }
  }
  return {};
}

struct http_client::impl {
  using request_type = http::request<http::string_body>;

  // What one write-and-read on the current connection gave.
  struct exchange_result {
    expected<http_response> response;
    // The connection was found closed before any reply byte: try a fresh one.
    bool retry_on_new_connection = false;
  };

  base_url url;
  std::string url_text;
  std::string token;
  std::chrono::milliseconds timeout;
  net::io_context ioc{1};
  std::optional<beast::tcp_stream> stream;
  // Outlives single requests: a keep-alive reply may leave bytes of the next one.
  beast::flat_buffer buffer;
  uint32_t requests_on_connection = 0;

  impl(base_url u, std::string t, uint32_t timeout_ms)
      : url(std::move(u)), url_text(to_string(url)), token(std::move(t)), timeout(timeout_ms) {}

  ~impl() { disconnect(); }

  // The public call is synchronous, but Beast honours tcp_stream deadlines only
  // on async operations; so each step is started async and driven to completion here.
  void run() {
    ioc.restart();
    ioc.run();
  }

  std::optional<error> connect(steady_clock::time_point deadline);
  exchange_result exchange(const request_type& request, bool head,
                           steady_clock::time_point deadline,
                           const http_client::body_fn* on_body = nullptr);
  error transport_error(const beast::error_code& ec) const;
  request_type build(std::string_view method, std::string_view target, std::string body,
                     std::string content_type, const http_headers& extra) const;

  void disconnect() {
    if (!stream) {
      return;
    }
    beast::error_code ignored;
    stream->socket().shutdown(tcp::socket::shutdown_both, ignored);
    stream->socket().close(ignored);
    stream.reset();
    buffer.consume(buffer.size());
    requests_on_connection = 0;
  }
};

std::optional<error> http_client::impl::connect(steady_clock::time_point deadline) {
  assert(!stream);
  stream.emplace(ioc);
  auto failed = client_detail::connect_tcp(ioc, *stream, url, url_text, deadline, timeout,
                                           [this](const bool&) { run(); });
  if (failed) {
    stream.reset();
  }
  return failed;
}

error http_client::impl::transport_error(const beast::error_code& ec) const {
  if (ec == beast::error::timeout) {
    return make_error(errc::timeout, "no reply from " + url_text + " within " +
                                         std::to_string(timeout.count()) + " ms");
  }
  if (ec == http::error::body_limit) {
    return make_error(errc::too_large, "reply from " + url_text + " exceeds " +
                                           std::to_string(response_body_bytes_max >> 20) + " MiB");
  }
  if (ec == http::error::header_limit) {
    return make_error(errc::too_large, "reply headers from " + url_text + " exceed " +
                                           std::to_string(response_header_bytes_max >> 10) +
                                           " KiB");
  }
  return make_error(errc::unavailable, "connection to " + url_text + " failed: " + ec.message());
}

http_client::impl::exchange_result http_client::impl::exchange(
    const request_type& request, bool head, steady_clock::time_point deadline,
    const http_client::body_fn* on_body) {
  assert(stream);
  const bool reused = requests_on_connection > 0;
  beast::error_code ec;
  stream->expires_at(deadline);
  http::async_write(*stream, request, [&ec](beast::error_code e, std::size_t) { ec = e; });
  run();
  if (ec) {
    return {transport_error(ec), reused && is_closed_by_peer(ec)};
  }
  http::response_parser<http::string_body> parser;
  parser.body_limit(response_body_bytes_max);
  parser.header_limit(response_header_bytes_max);
  // A reply to HEAD announces a length but carries no body.
  parser.skip(head);
  // Header first, then body: Beast 1.74 drops the body_limit error of a
  // response when body bytes arrive in the same read as the header (it parses
  // on eagerly), so the announced length is checked before the body is read.
  http::async_read_header(*stream, buffer, parser,
                          [&ec](beast::error_code e, std::size_t) { ec = e; });
  run();
  if (!ec && parser.content_length().value_or(0) > response_body_bytes_max) {
    ec = http::error::body_limit;
  }
  if (!ec && !parser.is_done() && on_body != nullptr && parser.chunked()) {
    // A chunked body goes to the caller as it arrives; each read has the
    // whole timeout (a stream may run far longer than one request).
    // The parser keeps a reference to the callback: it lives until the end.
    auto deliver = [on_body](std::uint64_t, beast::string_view piece, beast::error_code&) {
      (*on_body)(std::string_view(piece.data(), piece.size()));
      return piece.size();
    };
    parser.on_chunk_body(deliver);
    while (!ec && !parser.is_done()) {
      stream->expires_after(timeout);
      http::async_read_some(*stream, buffer, parser,
                            [&ec](beast::error_code e, std::size_t) { ec = e; });
      run();
    }
  } else if (!ec && !parser.is_done()) {
    http::async_read(*stream, buffer, parser, [&ec](beast::error_code e, std::size_t) { ec = e; });
    run();
  }
  if (ec) {
    return {transport_error(ec), reused && !parser.got_some() && is_closed_by_peer(ec)};
  }
  stream->expires_never();
  ++requests_on_connection;
  const bool keep_alive = parser.keep_alive();
  exchange_result result{to_response(parser.release()), false};
  if (!keep_alive) {
    disconnect();
  }
  return result;
}

http_client::impl::request_type http_client::impl::build(std::string_view method,
                                                         std::string_view target, std::string body,
                                                         std::string content_type,
                                                         const http_headers& extra) const {
  request_type request;
  request.version(11);
  if (const auto verb = http::string_to_verb(to_beast(method)); verb != http::verb::unknown) {
    request.method(verb);
  } else {
    request.method_string(to_beast(method));
  }
  request.target(url.base_path + std::string(target));
  request.set(http::field::host, host_header(url));
  request.set(http::field::user_agent, to_beast(user_agent));
  if (!token.empty()) {
    request.set(http::field::authorization, "Bearer " + token);
  }
  if (!body.empty() && !content_type.empty()) {
    request.set(http::field::content_type, content_type);
  }
  // Erase first, then insert: a name given twice in `extra` keeps both values.
  for (const auto& [name, value] : extra) {
    request.erase(name);
  }
  for (const auto& [name, value] : extra) {
    request.insert(name, value);
  }
  request.keep_alive(true);
  request.body() = std::move(body);
  request.prepare_payload();
  return request;
}

http_client::http_client(base_url url, std::string token, uint32_t timeout_ms)
    : impl_(std::make_unique<impl>(std::move(url), std::move(token), timeout_ms)) {}

http_client::~http_client() = default;
http_client::http_client(http_client&&) noexcept = default;
http_client& http_client::operator=(http_client&&) noexcept = default;

const base_url& http_client::url() const noexcept {
  return impl_->url;
}

expected<http_response> http_client::request(std::string_view method, std::string_view target,
                                             std::string body, std::string content_type,
                                             headers extra) {
  return send(method, target, std::move(body), std::move(content_type), std::move(extra), nullptr);
}

expected<http_response> http_client::request_streamed(std::string_view method,
                                                      std::string_view target, std::string body,
                                                      const body_fn& on_body, headers extra) {
  return send(method, target, std::move(body), "application/json", std::move(extra), &on_body);
}

expected<http_response> http_client::send(std::string_view method, std::string_view target,
                                          std::string body, std::string content_type, headers extra,
                                          const body_fn* on_body) {
  if (auto bad = check_request(method, target, extra)) {
    return std::move(*bad);
  }
  const auto request =
      impl_->build(method, target, std::move(body), std::move(content_type), extra);
  const bool head = method == "HEAD";
  const auto deadline = steady_clock::now() + impl_->timeout;
  // Two attempts at most: the kept-alive connection, then one fresh connection
  // if the server had closed the old one while it sat idle.
  constexpr int attempts_max = 2;
  for (int attempt = 1;; ++attempt) {
    if (!impl_->stream) {
      if (auto failed = impl_->connect(deadline)) {
        return std::move(*failed);
      }
    }
    auto result = impl_->exchange(request, head, deadline, on_body);
    if (result.response) {
      return std::move(result.response);
    }
    impl_->disconnect();
    if (!result.retry_on_new_connection || attempt == attempts_max) {
      return std::move(result.response);
    }
  }
}

}  // namespace troupe
