#pragma once

// Tells from a session's output whether its program is busy, quiet, or
// waiting for an operator at a prompt. It watches only the timing of output
// and the line the cursor is on (the last line, escape sequences removed);
// it keeps no screen model. A plain class: time is passed in, so tests are
// exact; not thread-safe.

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <regex>
#include <string>
#include <string_view>

#include "runtime/error.hpp"

namespace troupe::pty {

enum class activity : uint8_t {
  /// Output arrived recently.
  running,
  /// No output for `idle_after`, and no prompt on the cursor line.
  idle,
  /// The cursor line looks like a prompt and output stopped: a shell (or a
  /// program asking a question) waits for input.
  waiting,
};

/// "running", "idle" or "waiting".
[[nodiscard]] std::string_view to_string(activity a) noexcept;

class screen_state {
 public:
  using clock = std::chrono::steady_clock;
  using time_point = clock::time_point;

  /// A shell prints its prompt in one go; this much silence after a line
  /// that looks like a prompt means it is not just mid-output.
  static constexpr std::chrono::milliseconds prompt_quiet{200};
  /// Why 4 KiB: prompts are short, and the prompt test runs a regex over the
  /// line; a program writing megabytes without a newline must not make that
  /// line (or the regex's work) grow with it.
  static constexpr size_t line_bytes_max = 4096;
  /// A prompt character at the end of the line, optionally followed by one
  /// space: "$ ", "# ", "> ", "% ".
  static constexpr std::string_view prompt_regex_default = R"([$#>%] ?$)";

  /// Validates `prompt_regex` (ECMAScript), for patterns from configuration:
  /// `config_invalid` if it does not compile.
  [[nodiscard]] static expected<screen_state> create(
      std::chrono::milliseconds idle_after, std::string_view prompt_regex = prompt_regex_default);

  /// `prompt_regex` must be a valid ECMAScript pattern (std::regex throws
  /// otherwise); use `create` for a pattern from outside.
  explicit screen_state(std::chrono::milliseconds idle_after,
                        std::string_view prompt_regex = prompt_regex_default);

  /// Records output that arrived at `now`; escape sequences may be split
  /// across calls. An empty `output` only sets the clock: call it at spawn so
  /// a program that never writes turns idle.
  void feed(std::string_view output, time_point now);

  /// waiting if the cursor line matches the prompt pattern and nothing was
  /// fed for `prompt_quiet`; else idle if nothing for `idle_after`; else
  /// running. Before the first `feed`: running (there is no clock yet).
  [[nodiscard]] activity state(time_point now) const;

  /// The line the cursor is on: escape sequences (CSI, OSC and other string
  /// controls, ESC + intermediates + final) removed, a carriage return or
  /// newline starting it over, backspace erasing a character; the last
  /// `line_bytes_max` bytes at most.
  [[nodiscard]] std::string cursor_line() const;

  /// When output was last fed, if ever.
  [[nodiscard]] std::optional<time_point> last_output() const noexcept { return last_output_; }

 private:
  /// Where the escape-sequence reader is; kept across `feed` calls.
  enum class parse : uint8_t { ground, escape, escape_intermediate, csi, string, string_escape };

  void on_byte(char c);
  void on_ground(char c);
  /// The tail of `line_` that `cursor_line` shows.
  [[nodiscard]] std::string_view visible_line() const;

  std::chrono::milliseconds idle_after_;
  std::regex prompt_;
  std::optional<time_point> last_output_;
  parse parse_ = parse::ground;
  /// Up to 2 * line_bytes_max; trimmed in bulk so a long line costs O(n).
  std::string line_;
  /// Whether `visible_line()` matches `prompt_`; reset on change, filled on
  /// demand so a flood of output does not run the regex per chunk.
  mutable std::optional<bool> prompt_match_;
};

}  // namespace troupe::pty
