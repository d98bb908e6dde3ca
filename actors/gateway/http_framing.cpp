#include "actors/gateway/http_framing.hpp"

#include <algorithm>

#include <nlohmann/json.hpp>

#include "runtime/node/terminal.hpp"

namespace troupe {

std::string framing_error(bool has_transfer_encoding, std::string_view transfer_encoding,
                          bool has_content_length) {
  if (!has_transfer_encoding) {
    return {};
  }
  auto coding = transfer_encoding;
  while (!coding.empty() && (coding.front() == ' ' || coding.front() == '\t')) {
    coding.remove_prefix(1);
  }
  while (!coding.empty() && (coding.back() == ' ' || coding.back() == '\t')) {
    coding.remove_suffix(1);
  }
  std::string lowered(coding);
  for (auto& c : lowered) {
    c = static_cast<char>(c >= 'A' && c <= 'Z' ? c + ('a' - 'A') : c);
  }
  if (lowered != "chunked") {
    return "Transfer-Encoding '" + std::string(transfer_encoding.substr(0, 64)) +
           "' is not supported: the only transfer coding accepted is chunked, alone";
  }
  if (has_content_length) {
    return "Transfer-Encoding and Content-Length together make the body's length ambiguous";
  }
  return {};
}

std::string origin_form(std::string_view target) {
  for (std::string_view scheme : {"http://", "https://"}) {
    const bool matches =
        target.size() > scheme.size() &&
        std::equal(scheme.begin(), scheme.end(), target.begin(), [](char want, char got) {
          return want == (got >= 'A' && got <= 'Z' ? got + ('a' - 'A') : got);
        });
    if (matches) {
      const auto rest = target.substr(scheme.size());
      const auto path = rest.find_first_of("/?");
      if (path == std::string_view::npos) {
        return "/";
      }
      if (rest[path] == '/') {
        return std::string(rest.substr(path));
      }
      // "http://host?q" has an empty path: origin form is "/?q". (Built by
      // append: GCC 12 warns falsely, -Wrestrict, on "/" + std::string.)
      std::string origin = "/";
      origin.append(rest.substr(path));
      return origin;
    }
  }
  return std::string(target);
}

std::variant<terminal_resize, std::string> parse_control_frame(std::string_view text) {
  const auto j = nlohmann::json::parse(text, nullptr, false);
  // Each member's type is checked before it is read: value() and get()
  // throw on a mistyped member, and a throw here would end an I/O thread.
  const bool resize = j.is_object() && j.contains("type") && j["type"].is_string() &&
                      j["type"].get_ref<const std::string&>() == "resize" && j.contains("cols") &&
                      j["cols"].is_number_integer() && j.contains("rows") &&
                      j["rows"].is_number_integer();
  if (!resize) {
    return std::string(R"(unknown control message: expected {"type":"resize","cols":N,"rows":N})");
  }
  // An unsigned value past int64 reads as negative: out of range either way.
  const auto cols = j["cols"].get<int64_t>();
  const auto rows = j["rows"].get<int64_t>();
  if (auto bad = check_terminal_size(cols, rows)) {
    return bad->message;
  }
  return terminal_resize{static_cast<uint16_t>(cols), static_cast<uint16_t>(rows)};
}

}  // namespace troupe
