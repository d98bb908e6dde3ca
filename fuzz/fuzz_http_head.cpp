// The gateway's HTTP request reading (actors/gateway/server.cpp do_read and
// on_read): Beast's request_parser with the gateway's head and body limits
// over the input as a connection's bytes (cut in two where the first byte
// says, as a socket may cut them; pipelined requests follow each other),
// then the gateway's own decisions on each complete head: framing_error on
// its Transfer-Encoding / Content-Length, origin_form on its target, and
// the percent codec on the target's path and query (runtime/net/percent).
//
// Invariants: nothing crashes or throws; the framing the gateway accepts
// with a Transfer-Encoding is one Beast reads as chunked (else the bytes
// after the head would be read as the next request: smuggling);
// origin_form gives the target itself, or a path of it, or "/"; a decoded
// path encodes back to a path that decodes to it again.

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include <boost/beast/core/error.hpp>
#include <boost/beast/http.hpp>

#include "actors/gateway/http_framing.hpp"
#include "fuzz/support/fuzz_check.hpp"
#include "runtime/net/percent.hpp"

namespace {

namespace beast = boost::beast;
namespace http = beast::http;
using troupe::framing_error;
using troupe::origin_form;

/// gateway.header_bytes_max's default, and a body limit far above what a
/// fuzz input holds (gateway.body_bytes_max is 8 MiB by default).
constexpr uint32_t header_bytes_max = 16u << 10;
constexpr uint64_t body_bytes_max = 1u << 20;
/// Requests read from one connection's bytes; bounds the loop.
constexpr int requests_max = 8;

/// The connection's bytes, handed out in the slices a socket delivered.
struct connection {
  std::string_view bytes;
  size_t cut = 0;
  size_t offered = 0;

  [[nodiscard]] bool drained() const { return offered == bytes.size(); }
  std::string_view next_slice() {
    const size_t end = offered < cut ? cut : bytes.size();
    const auto slice = bytes.substr(offered, end - offered);
    offered = end;
    return slice;
  }
};

bool ascii_iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) {
    return false;
  }
  for (size_t i = 0; i < a.size(); ++i) {
    const auto lower = [](char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c + 32) : c; };
    if (lower(a[i]) != lower(b[i])) {
      return false;
    }
  }
  return true;
}

void check_origin_form(std::string_view target) {
  const auto origin = origin_form(target);
  const bool absolute = (target.size() > 7 && ascii_iequals(target.substr(0, 7), "http://")) ||
                        (target.size() > 8 && ascii_iequals(target.substr(0, 8), "https://"));
  if (!absolute) {
    FUZZ_CHECK(origin == target, "a target in origin form is left alone");
    return;
  }
  FUZZ_CHECK(!origin.empty() && origin.front() == '/', "an absolute target becomes a path");
  // "http://h?q" has an empty path: "/?q", the query kept.
  const bool query_only = origin.starts_with("/?") && target.ends_with(origin.substr(1));
  FUZZ_CHECK(origin == "/" || target.ends_with(origin) || query_only,
             "the path is the target's own");
}

/// The routes decode a path's segments and its query values.
void check_percent(std::string_view target) {
  const auto path = target.substr(0, target.find('?'));
  if (auto decoded = troupe::percent_decode(path)) {
    const auto again = troupe::percent_decode(troupe::percent_encode(*decoded, "/"));
    FUZZ_CHECK(again && *again == *decoded, "a decoded path survives encode then decode");
  }
  for (const char* key : {"dep", "ttl", "timeout_ms", "readonly"}) {
    for (const auto& value : troupe::query_values(target, key)) {
      FUZZ_CHECK(value.size() <= target.size(), "a decoded value is no longer than its target");
    }
  }
}

/// What on_read decides once a request has been read.
void check_head(const http::request_parser<http::string_body>& parser) {
  const auto& head = parser.get();
  const auto codings = head.count(http::field::transfer_encoding);
  const auto te = head[http::field::transfer_encoding];
  const std::string why = framing_error(
      codings > 0,
      codings > 1 ? std::string_view("(several headers)") : std::string_view(te.data(), te.size()),
      head.count(http::field::content_length) > 0);
  if (codings > 0 && why.empty()) {
    FUZZ_CHECK(parser.chunked(), "a Transfer-Encoding the gateway accepts is one Beast unchunks");
  }
  if (codings == 0) {
    FUZZ_CHECK(why.empty(), "without Transfer-Encoding the framing is Content-Length's");
  }
  const std::string_view target(head.target().data(), head.target().size());
  check_origin_form(target);
  check_percent(origin_form(target));
}

/// Reads one request as http::async_read does; false when the connection
/// is done with (an error, or no bytes left).
bool read_request(connection& conn, std::string& buffer) {
  http::request_parser<http::string_body> parser;
  parser.header_limit(header_bytes_max);
  parser.body_limit(body_bytes_max);
  parser.eager(true);
  beast::error_code ec;
  while (!parser.is_done()) {
    if (buffer.empty() || ec == http::error::need_more) {
      if (conn.drained()) {
        // As http::read does: end of stream before any byte is no message
        // at all (and put_eof requires got_some()).
        if (parser.got_some()) {
          parser.put_eof(ec);
        }
        break;
      }
      buffer.append(conn.next_slice());
    }
    ec = {};
    const size_t used = parser.put(boost::asio::buffer(buffer.data(), buffer.size()), ec);
    FUZZ_CHECK(used <= buffer.size(), "the parser uses no more than it was given");
    buffer.erase(0, used);
    if (ec && ec != http::error::need_more) {
      return false;  // the gateway answers 400, 413 or 431 and closes
    }
    if (!ec && used == 0 && !parser.is_done()) {
      ec = http::error::need_more;
    }
  }
  if (ec || !parser.is_done()) {
    return false;
  }
  check_head(parser);
  return !buffer.empty() || !conn.drained();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  connection conn{std::string_view(reinterpret_cast<const char*>(data), size)};
  conn.cut = size == 0 ? 0 : data[0] % size;
  std::string buffer;
  for (int i = 0; i < requests_max && read_request(conn, buffer); ++i) {
  }
  return 0;
}
