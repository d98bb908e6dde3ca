#pragma once

// What the node's two synchronous clients (http_client, ws_client) share:
// request checks, the Host header, turning a Beast response into an
// http_response, and resolve-then-connect with a deadline. Internal to
// their two .cpp files: it pulls in Beast.

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http.hpp>

#include <algorithm>
#include <chrono>
#include <optional>
#include <string>
#include <string_view>

#include "client/http_client.hpp"
#include "runtime/error.hpp"

namespace troupe::client_detail {

inline bool has_control_chars(std::string_view text) {
  return std::any_of(text.begin(), text.end(),
                     [](char c) { return static_cast<unsigned char>(c) < 0x20 || c == 0x7f; });
}

/// A request target must start with '/' and hold no spaces or control
/// characters, or the request line would not be well-formed.
inline std::optional<error> check_target(std::string_view target) {
  if (!target.starts_with('/') || has_control_chars(target) ||
      target.find(' ') != std::string_view::npos) {
    return make_error(errc::bad_request,
                      "invalid request target '" + std::string(target) +
                          "': it must start with '/' and hold no spaces or control characters");
  }
  return std::nullopt;
}

/// Any Beast response with a string body (moved from when given an rvalue).
template <class Message>
http_response to_response(Message&& message) {
  http_response response;
  response.status = static_cast<int>(message.result_int());
  response.content_type = std::string(message[boost::beast::http::field::content_type]);
  for (const auto& field : message) {
    response.headers.emplace_back(std::string(field.name_string()), std::string(field.value()));
  }
  response.body = std::forward<Message>(message).body();
  return response;
}

/// Resolves `url` (synchronously: Asio cannot abandon a running getaddrinfo,
/// and the node is addressed by IP or localhost, which resolves at once) and
/// connects `stream` by `deadline`; `wait(done)` drives the caller's
/// io_context until `done`. Small messages follow, so Nagle is turned off.
/// Errors name `url_text` and, for a timeout, `timeout`.
template <class Wait>
std::optional<error> connect_tcp(boost::asio::io_context& ioc, boost::beast::tcp_stream& stream,
                                 const base_url& url, const std::string& url_text,
                                 std::chrono::steady_clock::time_point deadline,
                                 std::chrono::milliseconds timeout, Wait&& wait) {
  using tcp = boost::asio::ip::tcp;
  boost::beast::error_code ec;
  tcp::resolver resolver(ioc);
  const auto endpoints =
      resolver.resolve(url.host, std::to_string(url.port), tcp::resolver::numeric_service, ec);
  if (ec) {
    return make_error(errc::unavailable, "cannot reach " + url_text + ": cannot resolve host '" +
                                             url.host + "': " + ec.message());
  }
  stream.expires_at(deadline);
  bool done = false;
  stream.async_connect(endpoints, [&](boost::beast::error_code e, const tcp::endpoint&) {
    ec = e;
    done = true;
  });
  wait(done);
  if (ec == boost::beast::error::timeout) {
    return make_error(errc::timeout, "cannot reach " + url_text + ": no connection within " +
                                         std::to_string(timeout.count()) + " ms");
  }
  if (ec) {
    return make_error(errc::unavailable, "cannot reach " + url_text + ": " + ec.message());
  }
  stream.socket().set_option(tcp::no_delay(true), ec);
  return std::nullopt;
}

}  // namespace troupe::client_detail
