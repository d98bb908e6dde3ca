#include "runtime/net/base_url.hpp"

#include <algorithm>
#include <cctype>
#include <charconv>

namespace troupe {

namespace {

bool starts_with_icase(std::string_view text, std::string_view prefix) {
  return text.size() >= prefix.size() &&
         std::equal(prefix.begin(), prefix.end(), text.begin(), [](char a, char b) {
           return std::tolower(static_cast<unsigned char>(a)) ==
                  std::tolower(static_cast<unsigned char>(b));
         });
}

bool is_clean(std::string_view text) {
  return std::none_of(text.begin(), text.end(), [](char c) {
    return static_cast<unsigned char>(c) <= 0x20 || c == 0x7f || c == '?' || c == '#';
  });
}

error refused(std::string why) {
  return make_error(errc::bad_request, std::move(why));
}

}  // namespace

expected<base_url> parse_base_url(std::string_view text) {
  base_url out;
  if (starts_with_icase(text, "https://")) {
    out.tls = true;
    text.remove_prefix(8);
  } else if (starts_with_icase(text, "http://")) {
    text.remove_prefix(7);
  } else {
    return refused("must start with http:// or https://");
  }
  if (!is_clean(text)) {
    return refused("has a query, fragment, space or control character");
  }
  const auto slash = text.find('/');
  const auto authority = text.substr(0, slash);
  auto path = slash == std::string_view::npos ? std::string_view{} : text.substr(slash);
  while (path.ends_with('/')) {
    path.remove_suffix(1);
  }
  out.base_path = std::string(path);

  std::string_view host = authority;
  std::string_view port_text;
  bool port_given = false;
  if (authority.starts_with('[')) {
    const auto close = authority.find(']');
    if (close == std::string_view::npos) {
      return refused("has an unclosed '[' in its host");
    }
    host = authority.substr(1, close - 1);
    const auto rest = authority.substr(close + 1);
    if (!rest.empty() && !rest.starts_with(':')) {
      return refused("has something other than a port after ']'");
    }
    port_given = !rest.empty();
    port_text = port_given ? rest.substr(1) : rest;
  } else if (const auto colon = authority.rfind(':'); colon != std::string_view::npos) {
    host = authority.substr(0, colon);
    port_text = authority.substr(colon + 1);
    port_given = true;
  }
  if (host.empty()) {
    return refused("has no host");
  }
  if (host.find_first_of("[]") != std::string_view::npos) {
    // "http://[[x]" would read as host "[x", which prints back as a URL
    // that no longer parses.
    return refused("has a '[' or ']' inside its host");
  }
  if (host.find('@') != std::string_view::npos) {
    return refused(
        "holds credentials (user@): give the token or key on its own (troupectl --token, "
        "llm.anthropic.api_key), not in the URL");
  }
  out.host = std::string(host);
  out.port = out.tls ? 443 : 80;
  if (port_given) {
    uint16_t port = 0;
    const auto [end, ec] =
        std::from_chars(port_text.data(), port_text.data() + port_text.size(), port);
    if (port_text.empty() || ec != std::errc{} || end != port_text.data() + port_text.size() ||
        port == 0) {
      return refused("has a port that is not a number from 1 to 65535");
    }
    out.port = port;
  }
  return out;
}

namespace {

std::string bracketed_host(const base_url& url) {
  return url.host.find(':') != std::string::npos ? "[" + url.host + "]" : url.host;
}

}  // namespace

std::string authority_of(const base_url& url) {
  return bracketed_host(url) + ":" + std::to_string(url.port);
}

std::string host_header(const base_url& url) {
  return url.port == (url.tls ? 443 : 80) ? bracketed_host(url) : authority_of(url);
}

std::string to_string(const base_url& url) {
  return (url.tls ? "https://" : "http://") + authority_of(url) + url.base_path;
}

}  // namespace troupe
