#pragma once

// What the gateway decides from a request's head and a viewer's control
// frames before anything else sees them: pure functions, fuzzed on their
// own (fuzz/), apart from the sockets that feed them.

#include <cstdint>
#include <string>
#include <string_view>
#include <variant>

namespace troupe {

/// Why a request's framing is refused (RFC 9112 section 6): a
/// Transfer-Encoding other than exactly "chunked" (the only coding the
/// gateway reads; "gzip", "identity", "chunked, identity", ...) or one sent
/// with Content-Length. Read another way, the bytes after such a head
/// would be taken as the next request (smuggling), so the answer is 400
/// and the connection closes. Empty when the framing is sound.
[[nodiscard]] std::string framing_error(bool has_transfer_encoding,
                                        std::string_view transfer_encoding,
                                        bool has_content_length);

/// An absolute-form target ("http://host:port/path?q", RFC 9112 3.2.2) as
/// the origin form the routes read ("/path?q"); other targets unchanged.
[[nodiscard]] std::string origin_form(std::string_view target);

/// A WebSocket viewer's text frame: `{"type": "resize", "cols": N, "rows":
/// N}` is the one control message there is.
struct terminal_resize {
  uint16_t cols = 0;
  uint16_t rows = 0;
};

/// The frame as a resize, or the error message to send back (a frame that
/// is not that message, or a size out of range).
[[nodiscard]] std::variant<terminal_resize, std::string> parse_control_frame(std::string_view text);

}  // namespace troupe
