// The one URL grammar behind config validation, the upstream pools and the
// node's clients: what it accepts, what it fills in, and the reason it
// gives for what it refuses.

#include "runtime/net/base_url.hpp"

#include <catch2/catch.hpp>

#include <string>

using namespace troupe;

namespace {

/// The reason `text` is refused ("" if it is accepted).
std::string refusal(std::string_view text) {
  auto url = parse_base_url(text);
  if (url) {
    return "";
  }
  CHECK(url.err().code == errc::bad_request);
  return url.err().message;
}

}  // namespace

TEST_CASE("base URLs: scheme, host, port and prefix", "[url]") {
  auto a = parse_base_url("https://api.anthropic.com");
  REQUIRE(a.has_value());
  CHECK(a->tls);
  CHECK(a->host == "api.anthropic.com");
  CHECK(a->port == 443);
  CHECK(a->base_path.empty());
  CHECK(host_header(*a) == "api.anthropic.com");
  CHECK(to_string(*a) == "https://api.anthropic.com:443");

  auto b = parse_base_url("HTTP://127.0.0.1:7700/proxy/v2//");
  REQUIRE(b.has_value());
  CHECK_FALSE(b->tls);
  CHECK(b->host == "127.0.0.1");
  CHECK(b->port == 7700);
  CHECK(b->base_path == "/proxy/v2");
  CHECK(host_header(*b) == "127.0.0.1:7700");

  auto c = parse_base_url("http://[::1]:8080/");
  REQUIRE(c.has_value());
  CHECK(c->host == "::1");
  CHECK(c->port == 8080);
  CHECK(c->base_path.empty());
  CHECK(authority_of(*c) == "[::1]:8080");

  auto d = parse_base_url("http://[fe80::1]");
  REQUIRE(d.has_value());
  CHECK(d->port == 80);
  CHECK(host_header(*d) == "[fe80::1]");
}

TEST_CASE("base URLs: each refusal says why", "[url]") {
  CHECK(refusal("ftp://host") == "must start with http:// or https://");
  CHECK(refusal("localhost:7700") == "must start with http:// or https://");
  CHECK(refusal("") == "must start with http:// or https://");
  CHECK(refusal("http://") == "has no host");
  CHECK(refusal("http://:8080") == "has no host");
  CHECK(refusal("http:///path") == "has no host");
  CHECK(refusal("http://[::1") == "has an unclosed '[' in its host");
  CHECK(refusal("http://[::1]x") == "has something other than a port after ']'");
  CHECK(refusal("http://user:pw@host:80") ==
        "holds credentials (user@): give the token or key on its own (troupectl --token, "
        "llm.anthropic.api_key), not in the URL");
  for (const char* bad_port : {"http://h:", "http://h:0", "http://h:65536", "http://h:80x",
                               "http://h:-1", "http://[::1]:"}) {
    CHECK(refusal(bad_port) == "has a port that is not a number from 1 to 65535");
  }
  for (const char* unclean : {"http://h/a?b=1", "http://h/a#top", "http://h/a b", "http://h/a\tb",
                              "http://h?x", "http://h :80", "http://h#"}) {
    CHECK(refusal(unclean) == "has a query, fragment, space or control character");
  }
  CHECK(refusal("http://h:65535/ok") == "");
}

TEST_CASE("base_url: brackets inside a host are refused") {
  CHECK_FALSE(troupe::parse_base_url("http://[[x]").has_value());
  CHECK_FALSE(troupe::parse_base_url("http://a]b:80").has_value());
}
