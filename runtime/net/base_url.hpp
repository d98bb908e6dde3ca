#pragma once

// The one grammar for the URLs troupe is given: where a node listens (for
// troupectl and the tests' clients) and where an upstream API lives (config).
// A base URL is `http[s]://host[:port][/prefix]`; the prefix goes before
// every request path.

#include <cstdint>
#include <string>
#include <string_view>

#include "runtime/error.hpp"

namespace troupe {

struct base_url {
  bool tls = false;
  /// A name or address; an IPv6 address without its brackets.
  std::string host;
  /// As given, or 80 / 443 from the scheme.
  uint16_t port = 0;
  /// "" or a prefix like "/proxy", without a trailing '/'.
  std::string base_path;
};

/// Parses `text`. The scheme is http or https (any case). Refused, with a
/// `bad_request` error whose message is the reason alone (callers say which
/// URL and where it came from): another scheme, no host, credentials, an
/// unclosed '[' or junk after ']', a port that is not 1..65535, and a query,
/// fragment, space or control character anywhere.
[[nodiscard]] expected<base_url> parse_base_url(std::string_view text);

/// "host:port", "[v6]:port".
[[nodiscard]] std::string authority_of(const base_url& url);

/// The Host header: the authority, without the port when it is the
/// scheme's default ("api.anthropic.com", "127.0.0.1:8080").
[[nodiscard]] std::string host_header(const base_url& url);

/// The URL back as text, e.g. "http://127.0.0.1:7700/prefix".
[[nodiscard]] std::string to_string(const base_url& url);

}  // namespace troupe
