#pragma once

// Bash in the agent's own terminal session. Each agent has one session of
// the sessions family, named "agent:<name>", started in its workspace the
// first time it runs Bash (and again if it has ended). A person can
// `troupectl session attach` to it to watch the agent's commands run, or
// type into it.
//
// A call attaches to the session as a viewer (the terminal protocol,
// runtime/node/terminal.hpp), writes the command to a file and types one
// line that sources a wrapper. The wrapper prints the command for whoever
// watches, a start marker, runs the command in a subshell (its own job, so
// its own process group; stdin /dev/null; the shell's directory follows the
// command's `cd`), then an end marker with the exit status. The markers are
// OSC sequences no terminal acts on (a watcher sees nothing of them), carry
// a fresh nonce and are printed by printf from escapes, so neither the
// echoed line nor old output can match them. What lies between them is the
// tool's result. At the timeout the session is asked to SIGKILL its
// foreground process group (the command's job), and the end marker follows.
//
// A call first kills whatever job still runs in the foreground: a command
// left running by an agent that crashed (its call is answered
// "interrupted"), or a program a person started there; and erases what a
// person left typed (Ctrl-U). The files it writes
// (<data_dir>/shell/<agent>.<nonce>.*) are named by its nonce and removed
// by the wrapper. Commands see the session's environment (PATH, HOME,
// USER, SHELL, LANG and the variables set here), not the node's: the
// node's API key and token stay out of the agent's reach.

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace caf {
class actor_system;
}

namespace troupe {
struct node_context;
}

namespace troupe::agents {

/// The name of an agent's terminal session.
[[nodiscard]] std::string shell_session_name(const std::string& agent);

/// Cuts one command's output out of its terminal's output: what follows the
/// start marker up to the end marker, bounded to `bytes_max`.
class shell_capture {
 public:
  shell_capture(std::string nonce, size_t bytes_max);

  /// Feeds terminal output, in order; true once the end marker has come.
  bool feed(std::string_view bytes);

  [[nodiscard]] bool started() const noexcept { return started_; }
  [[nodiscard]] bool finished() const noexcept { return status_.has_value(); }
  /// The command's exit status, from the end marker.
  [[nodiscard]] std::optional<int> status() const noexcept { return status_; }

  /// The output as text: line ends as LF, carriage-return overwrites
  /// applied, escape sequences and other control characters removed, and a
  /// note of how much was cut.
  [[nodiscard]] std::string text() const;

 private:
  void keep(std::string_view bytes);

  std::string start_;
  std::string end_;
  size_t bytes_max_;
  bool started_ = false;
  std::optional<int> status_;
  /// Output not yet known to hold no (part of a) marker.
  std::string scan_;
  std::string body_;
  uint64_t cut_ = 0;
};

/// Terminal output as text (see shell_capture::text).
[[nodiscard]] std::string terminal_text(std::string_view raw);

struct shell_result {
  std::string output;
  std::optional<int> status;
  bool timed_out = false;
  /// The session ended (or its shell restarted) before the command did.
  bool shell_ended = false;
  /// Why the command could not run at all (no session could be had).
  std::string problem;
};

/// Runs `command` in the agent's session (started in `workspace` if it has
/// none), waiting up to `timeout`. Blocks: call it on a worker thread.
[[nodiscard]] shell_result run_in_session(caf::actor_system& system, const node_context& ctx,
                                          const std::string& agent, const std::string& workspace,
                                          const std::string& command,
                                          std::chrono::milliseconds timeout);

}  // namespace troupe::agents
