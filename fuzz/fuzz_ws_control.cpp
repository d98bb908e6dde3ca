// A terminal viewer's WebSocket text frame (actors/gateway/http_framing:
// parse_control_frame), which the gateway reads on its I/O thread, where
// an escaping exception ends the whole io_context.
//
// Invariants: nothing throws; a frame is a resize within the terminal's
// bounds or an error message to send back.

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <variant>

#include "actors/gateway/http_framing.hpp"
#include "fuzz/support/fuzz_check.hpp"
#include "runtime/node/terminal.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  const auto parsed = troupe::parse_control_frame(text);
  if (const auto* why = std::get_if<std::string>(&parsed)) {
    FUZZ_CHECK(!why->empty(), "a refused frame is told why");
    return 0;
  }
  const auto& size_asked = std::get<troupe::terminal_resize>(parsed);
  FUZZ_CHECK(size_asked.cols >= 1 && size_asked.cols <= troupe::terminal_side_max,
             "a resize has 1..terminal_side_max columns");
  FUZZ_CHECK(size_asked.rows >= 1 && size_asked.rows <= troupe::terminal_side_max,
             "a resize has 1..terminal_side_max rows");
  return 0;
}
