#pragma once

// One child process on a real pseudo-terminal (Linux). A plain class: no
// threads, no I/O loop. The owner reads the master fd with its own event loop
// (it is non-blocking), decides when to signal the child, and reaps it.
//
// Lifecycle the owner is expected to follow:
//   spawn -> read fd() until EIO (the last slave holder is gone)
//         -> signal_group(SIGHUP), later SIGKILL if reap() still says running
//         -> reap() until it returns the exit code -> destroy.
// EIO on the master can arrive a moment before the child is reapable (the
// kernel closes a process's files before it becomes a zombie), so reap() may
// still say nullopt right after EOF; poll it again or wait on a pidfd.

#include <sys/types.h>

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "runtime/error.hpp"

namespace troupe::pty {

/// What to run and how the terminal starts.
struct spawn_options {
  /// argv; a name without '/' is searched in the child's PATH. Empty: the
  /// child's $SHELL (from `env`, else the parent's), or /bin/sh.
  std::vector<std::string> command;
  /// Working directory of the child; empty keeps the parent's.
  std::string cwd;
  /// Added to (and overriding) a clean base environment: PATH, HOME, USER,
  /// SHELL and LANG copied from the parent when set, TERM=xterm-256color.
  std::map<std::string, std::string> env;
  uint16_t cols = 80;
  uint16_t rows = 24;
  /// The child's file-mode creation mask. The node itself runs with 077 so
  /// that its own files stay private; a shell gets the usual default.
  mode_t umask = 022;
};

/// A child running on its own PTY, in its own session and process group.
class pty_process {
 public:
  /// Starts `o.command` on a new PTY. Errors: `bad_request` for invalid
  /// options (a cwd that is not a searchable directory, a zero size, a NUL
  /// byte in an argument, a bad env name); `unavailable` when the system
  /// refuses resources (no more fds or ptys, fork failure). A command that
  /// cannot be executed is not an error here: the child writes
  /// "troupe: cannot run 'X': <reason>" to the terminal and exits with 127,
  /// as a shell would.
  [[nodiscard]] static expected<std::unique_ptr<pty_process>> spawn(const spawn_options& o);

  /// The checks spawn() makes before it forks, alone: a caller that will
  /// spawn later (a session actor) refuses bad options up front instead of
  /// failing, and restarting, on every spawn.
  [[nodiscard]] static expected<bool> check(const spawn_options& o);

  /// Closes the master fd (the kernel then hangs up the terminal, which sends
  /// SIGHUP to the child's session). Does not kill: the owner decides. A
  /// child not reaped yet (e.g. just sent SIGKILL, which takes a moment) is
  /// reaped by a thread of its own once it ends, so destroying never blocks
  /// and never leaves a zombie.
  ~pty_process();

  pty_process(const pty_process&) = delete;
  pty_process& operator=(const pty_process&) = delete;
  pty_process(pty_process&&) = delete;
  pty_process& operator=(pty_process&&) = delete;

  /// The master side, O_NONBLOCK | O_CLOEXEC, owned by this object. Reads give
  /// the child's output; EIO means every slave holder has closed it.
  [[nodiscard]] int fd() const noexcept { return fd_; }

  /// The child: leader of its own session and process group, the PTY slave
  /// as its controlling terminal.
  [[nodiscard]] pid_t pid() const noexcept { return pid_; }

  /// Writes terminal input without blocking; may write only a prefix.
  /// Returns the bytes written, 0 when the terminal's input queue is full
  /// (EAGAIN: retry when the fd is writable). `unavailable` on any other
  /// failure, e.g. EIO once the child side is gone.
  [[nodiscard]] expected<size_t> write(std::string_view bytes);

  /// Sets the terminal size. True if it changed, in which case the kernel
  /// sends SIGWINCH to the terminal's foreground process group; false if it
  /// already had this size. `bad_request` for a zero dimension.
  [[nodiscard]] expected<bool> resize(uint16_t cols, uint16_t rows);

  /// Sends `sig` to the child's whole process group (e.g. SIGHUP, then
  /// SIGKILL). A no-op once the child has been reaped: its pid may then
  /// belong to someone else.
  void signal_group(int sig);

  /// Sends `sig` to the terminal's foreground process group if that is not
  /// the child's own (a job its shell runs); false if nothing was signalled
  /// (the child itself is in the foreground, or it has been reaped).
  bool signal_foreground(int sig);

  /// Non-blocking: the exit code once the child has ended (128 + signal number
  /// if a signal ended it), nullopt while it runs. The result is kept, so
  /// later calls return it again. -1 if the child was reaped elsewhere (the
  /// process ignores SIGCHLD or another waitpid(-1) took it): the code is lost.
  std::optional<int> reap();

 private:
  pty_process(int master_fd, pid_t pid) noexcept : fd_(master_fd), pid_(pid) {}

  int fd_;
  pid_t pid_;
  std::optional<int> exit_code_;
};

}  // namespace troupe::pty
