#pragma once

// Logging: one named spdlog logger per subsystem ("supervisor", "gateway"),
// all writing through one shared, thread-safe sink (stderr by default) at one
// level. Every record is exactly one line:
//
//   text: 2026-11-24T13:00:00.123Z info  [gateway] listening on 127.0.0.1:7700
//   json: {"ts":"2026-11-24T13:00:00.123Z","level":"info","logger":"gateway","msg":"..."}
//
// Timestamps are UTC with milliseconds. Level names are trace, debug, info,
// warn, error, critical. Control characters in a message are escaped in both
// formats (JSON escapes; `\n`, `\r`, `\xNN` in text) so that untrusted text in
// a message can neither break a line nor forge a record; in JSON, invalid
// UTF-8 bytes become U+FFFD so every line parses.
//
// Callers include <spdlog/logger.h> where they log; this header stays light.

#include <iosfwd>
#include <memory>
#include <string>
#include <string_view>

#include "runtime/config/choices.hpp"
#include "runtime/error.hpp"

namespace spdlog {
class logger;
}  // namespace spdlog

namespace troupe {

struct log_options {
  log_level level = log_level::info;
  /// text (for people) or json (one object per line, for log collectors).
  log_format format = log_format::text;
};

/// Applies `opts` to the shared sink and to every logger, existing and future.
/// `out` redirects the sink away from stderr, for tests: the stream
/// must outlive every log call until the next `init_logging`, which a test
/// ends with `init_logging({}, nullptr)` to go back to stderr.
/// Safe to call at any time, from any thread; usually called once at start.
void init_logging(const log_options& opts, std::ostream* out = nullptr);

/// The logger of `subsystem`, created on first use with the shared sink and
/// the current level. Works before `init_logging` (text, info, stderr).
/// Cheap enough to call at construction; keep the pointer for hot paths.
[[nodiscard]] std::shared_ptr<spdlog::logger> logger(std::string_view subsystem);

}  // namespace troupe
