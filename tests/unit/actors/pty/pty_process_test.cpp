// A child on a real PTY: real /bin/sh, real terminal sizes and signals. Every
// wait is a poll with a deadline (on the master fd or a pidfd), never a sleep.

#include "actors/pty/pty_process.hpp"

#include <catch2/catch.hpp>

#include <fcntl.h>
#include <poll.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdlib>
#include <memory>
#include <optional>
#include <string>

using namespace troupe;
using namespace troupe::pty;
using namespace std::chrono_literals;

namespace {

/// Only reached when a test fails; a passing test returns long before.
constexpr std::chrono::milliseconds wait_budget = 5000ms;

struct read_result {
  std::string output;
  /// The master reported EIO: every slave holder has closed the terminal.
  bool eof = false;
};

int ms_left(std::chrono::steady_clock::time_point deadline) {
  const auto left = deadline - std::chrono::steady_clock::now();
  return static_cast<int>(
      std::max<int64_t>(0, std::chrono::duration_cast<std::chrono::milliseconds>(left).count()));
}

/// Reads output until it contains `needle` (empty: until EOF), EOF, or the
/// deadline.
read_result read_until(pty_process& p, std::string_view needle = {}) {
  read_result r;
  const auto deadline = std::chrono::steady_clock::now() + wait_budget;
  while (needle.empty() || r.output.find(needle) == std::string::npos) {
    pollfd pfd{p.fd(), POLLIN, 0};
    const int ready = ::poll(&pfd, 1, ms_left(deadline));
    if (ready < 0 && errno == EINTR) {
      continue;
    }
    if (ready <= 0) {
      break;  // Deadline: the caller's CHECK on the output reports it.
    }
    std::array<char, 4096> buf{};
    const ssize_t n = ::read(p.fd(), buf.data(), buf.size());
    if (n > 0) {
      r.output.append(buf.data(), static_cast<size_t>(n));
    } else if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
      continue;
    } else {
      r.eof = true;
      break;
    }
  }
  return r;
}

/// Waits on a pidfd until the child has ended (without reaping it).
bool wait_ended(pid_t pid) {
  const int pidfd = static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
  REQUIRE(pidfd >= 0);
  pollfd pfd{pidfd, POLLIN, 0};
  const auto deadline = std::chrono::steady_clock::now() + wait_budget;
  int ready = 0;
  do {
    ready = ::poll(&pfd, 1, ms_left(deadline));
  } while (ready < 0 && errno == EINTR);
  ::close(pidfd);
  return ready == 1;
}

/// The exit code once the child has ended.
std::optional<int> exit_code(pty_process& p) {
  if (auto code = p.reap()) {
    return code;  // Already reaped: its pid may not be ours any more.
  }
  if (!wait_ended(p.pid())) {
    return std::nullopt;
  }
  return p.reap();
}

std::unique_ptr<pty_process> spawn_ok(const spawn_options& o) {
  auto p = pty_process::spawn(o);
  INFO((p ? std::string() : p.err().message));
  REQUIRE(p.has_value());
  return std::move(p).value();
}

std::unique_ptr<pty_process> spawn_sh(const std::string& script, spawn_options o = {}) {
  o.command = {"/bin/sh", "-c", script};
  return spawn_ok(o);
}

/// Kills a child left running so a failed test does not leak it.
void finish(pty_process& p) {
  p.signal_group(SIGKILL);
  (void)exit_code(p);
}

}  // namespace

TEST_CASE("a command's output reaches the master and reap gives its exit code") {
  auto p = spawn_sh("echo hello");
  const auto r = read_until(*p, "hello");
  CHECK(r.output.find("hello") != std::string::npos);
  CHECK(exit_code(*p) == 0);
  CHECK(p->reap() == 0);  // Kept: asking again gives the same answer.

  auto q = spawn_sh("exit 3");
  CHECK(exit_code(*q) == 3);
}

TEST_CASE("reap reports nothing while the child runs, and 128 + signal once a signal ends it") {
  auto p = spawn_sh("echo ready; read x");
  REQUIRE(read_until(*p, "ready").output.find("ready") != std::string::npos);
  CHECK_FALSE(p->reap().has_value());
  p->signal_group(SIGTERM);
  CHECK(exit_code(*p) == 128 + SIGTERM);
}

TEST_CASE("the child starts with default signal dispositions and an empty mask") {
  // A server commonly ignores or blocks signals; its children must not inherit that.
  struct sigaction ignore {};
  struct sigaction saved_action {};
  ignore.sa_handler = SIG_IGN;
  REQUIRE(::sigaction(SIGINT, &ignore, &saved_action) == 0);
  sigset_t term;
  sigset_t saved_mask;
  ::sigemptyset(&term);
  ::sigaddset(&term, SIGTERM);
  REQUIRE(::pthread_sigmask(SIG_BLOCK, &term, &saved_mask) == 0);
  auto interrupted = spawn_sh("echo ready; read x");
  auto terminated = spawn_sh("echo ready; read x");
  REQUIRE(::pthread_sigmask(SIG_SETMASK, &saved_mask, nullptr) == 0);
  REQUIRE(::sigaction(SIGINT, &saved_action, nullptr) == 0);

  REQUIRE(read_until(*interrupted, "ready").output.find("ready") != std::string::npos);
  REQUIRE(read_until(*terminated, "ready").output.find("ready") != std::string::npos);
  interrupted->signal_group(SIGINT);
  terminated->signal_group(SIGTERM);
  CHECK(exit_code(*interrupted) == 128 + SIGINT);
  CHECK(exit_code(*terminated) == 128 + SIGTERM);
  finish(*interrupted);
  finish(*terminated);
}

TEST_CASE("the child leads its own session and process group, on the pty") {
  auto p = spawn_sh("echo ready; read x");
  REQUIRE(read_until(*p, "ready").output.find("ready") != std::string::npos);
  CHECK(::getsid(p->pid()) == p->pid());
  CHECK(::getpgid(p->pid()) == p->pid());
  // Linux answers TIOCGPGRP on the master for the slave side.
  CHECK(::tcgetpgrp(p->fd()) == p->pid());
  finish(*p);
}

TEST_CASE("the child sees the spawn size, and a resize") {
  spawn_options o;
  o.cols = 100;
  o.rows = 30;
  auto p = spawn_sh("stty size; read x; stty size", o);
  CHECK(read_until(*p, "30 100").output.find("30 100") != std::string::npos);

  const auto changed = p->resize(120, 40);
  REQUIRE(changed.has_value());
  CHECK(*changed);
  const auto again = p->resize(120, 40);
  REQUIRE(again.has_value());
  CHECK_FALSE(*again);

  REQUIRE(p->write("\n").has_value());
  CHECK(read_until(*p, "40 120").output.find("40 120") != std::string::npos);
  CHECK(exit_code(*p) == 0);
}

TEST_CASE("an interactive shell (the default command) runs what is typed") {
  spawn_options o;
  o.env["SHELL"] = "/bin/sh";
  auto p = spawn_ok(o);
  // The terminal echoes "echo $((6*7))"; only the shell's answer holds "42".
  const auto n = p->write("echo $((6*7))\n");
  REQUIRE(n.has_value());
  CHECK(*n == 14);
  CHECK(read_until(*p, "42").output.find("42") != std::string::npos);
  REQUIRE(p->write("exit 5\n").has_value());
  CHECK(exit_code(*p) == 5);
}

TEST_CASE("SIGKILL to the group ends a child and its children that ignore SIGHUP") {
  // The background sleep stays in the group and holds the terminal, so EOF on
  // the master proves it died too.
  auto p = spawn_sh("trap '' HUP; sleep 100 & echo ready; read x; echo still-here; wait");
  REQUIRE(read_until(*p, "ready").output.find("ready") != std::string::npos);

  p->signal_group(SIGHUP);
  REQUIRE(p->write("\n").has_value());
  CHECK(read_until(*p, "still-here").output.find("still-here") != std::string::npos);

  p->signal_group(SIGKILL);
  CHECK(read_until(*p).eof);
  CHECK(exit_code(*p) == 128 + SIGKILL);
}

TEST_CASE("a signal to the foreground job reaches the job, never the shell itself") {
  spawn_options o;
  o.command = {"/bin/bash", "--noprofile", "--norc", "--noediting", "-i"};
  o.env["PS1"] = "ready$ ";
  auto p = spawn_ok(o);
  REQUIRE(read_until(*p, "ready$ ").output.find("ready$ ") != std::string::npos);
  // The shell itself is in the foreground: nothing is signalled.
  CHECK_FALSE(p->signal_foreground(SIGKILL));
  // A job of its own (job control) is; the shell goes on.
  REQUIRE(p->write("sleep 100; echo status=$?\n").has_value());
  bool signalled = false;
  const auto deadline = std::chrono::steady_clock::now() + wait_budget;
  while (!signalled && std::chrono::steady_clock::now() < deadline) {
    signalled = p->signal_foreground(SIGKILL);  // once the job has its group
  }
  CHECK(signalled);
  CHECK(read_until(*p, "status=137").output.find("status=137") != std::string::npos);
  REQUIRE(p->write("exit 4\n").has_value());
  CHECK(exit_code(*p) == 4);
}

TEST_CASE("a cwd that is not a searchable directory is refused before fork") {
  spawn_options o;
  o.command = {"/bin/true"};
  o.cwd = "/nonexistent/troupe-pty-test";
  auto missing = pty_process::spawn(o);
  REQUIRE_FALSE(missing.has_value());
  CHECK(missing.err().code == errc::bad_request);
  CHECK(missing.err().message.find("/nonexistent/troupe-pty-test") != std::string::npos);

  o.cwd = "/bin/sh";
  auto file = pty_process::spawn(o);
  REQUIRE_FALSE(file.has_value());
  CHECK(file.err().code == errc::bad_request);
  CHECK(file.err().message.find("not a directory") != std::string::npos);
}

TEST_CASE("the child runs in the given cwd") {
  std::string dir_template = "/tmp/troupe-pty-XXXXXX";
  const char* dir = ::mkdtemp(dir_template.data());
  REQUIRE(dir != nullptr);
  spawn_options o;
  o.cwd = dir;
  auto p = spawn_sh("echo \"[$(pwd)]\"", o);
  const std::string expected_line = "[" + std::string(dir) + "]";
  CHECK(read_until(*p, expected_line).output.find(expected_line) != std::string::npos);
  CHECK(exit_code(*p) == 0);
  ::rmdir(dir);
}

TEST_CASE("a command that cannot run exits 127 with a message on the terminal") {
  spawn_options o;
  o.command = {"troupe-no-such-command"};
  auto p = spawn_ok(o);
  const std::string message =
      "troupe: cannot run 'troupe-no-such-command': No such file or directory";
  const auto r = read_until(*p, message);
  CHECK(r.output.find(message) != std::string::npos);
  CHECK(exit_code(*p) == 127);

  o.command = {"/etc/passwd"};  // Exists, not executable.
  auto q = spawn_ok(o);
  const std::string denied = "troupe: cannot run '/etc/passwd': Permission denied";
  CHECK(read_until(*q, denied).output.find(denied) != std::string::npos);
  CHECK(exit_code(*q) == 127);
}

TEST_CASE("the environment is a clean base plus the given variables") {
  // NOLINTNEXTLINE(concurrency-mt-unsafe): the test runner has one thread.
  REQUIRE(::setenv("TROUPE_PTY_LEAK", "1", 1) == 0);
  spawn_options o;
  o.env = {{"TROUPE_PTY_VAR", "v1"}, {"LANG", "C.UTF-8"}};
  auto p = spawn_sh("echo \"[$TROUPE_PTY_VAR][$TERM][${TROUPE_PTY_LEAK-unset}][$LANG]\"", o);
  const std::string line = "[v1][xterm-256color][unset][C.UTF-8]";
  CHECK(read_until(*p, line).output.find(line) != std::string::npos);
  CHECK(exit_code(*p) == 0);
  ::unsetenv("TROUPE_PTY_LEAK");  // NOLINT(concurrency-mt-unsafe): as above.
}

TEST_CASE("a bare command name is searched in the child's PATH, not the parent's") {
  spawn_options o;
  o.command = {"sh", "-c", "exit 0"};
  o.env["PATH"] = "/nonexistent";
  auto p = spawn_ok(o);
  CHECK(read_until(*p, "cannot run 'sh'").output.find("cannot run 'sh'") != std::string::npos);
  CHECK(exit_code(*p) == 127);
}

TEST_CASE("the master fd is non-blocking and close-on-exec") {
  auto p = spawn_sh("read x");
  CHECK((::fcntl(p->fd(), F_GETFL) & O_NONBLOCK) != 0);
  CHECK((::fcntl(p->fd(), F_GETFD) & FD_CLOEXEC) != 0);
  std::array<char, 16> buf{};
  // The child writes nothing, so a read must fail at once rather than block.
  CHECK(::read(p->fd(), buf.data(), buf.size()) == -1);
  CHECK(errno == EAGAIN);
  finish(*p);
}

TEST_CASE("write returns 0 once the terminal's input queue is full") {
  auto p = spawn_sh("stty -echo; echo ready; sleep 100");
  REQUIRE(read_until(*p, "ready").output.find("ready") != std::string::npos);
  const std::string chunk(4096, 'x');
  // Why 4 MiB: the kernel buffers ~64 KiB of pty input; far more is a bug.
  constexpr size_t budget_bytes = size_t{4} << 20;
  size_t written = 0;
  bool full = false;
  while (written < budget_bytes && !full) {
    const auto n = p->write(chunk);
    REQUIRE(n.has_value());
    full = *n == 0;
    written += *n;
  }
  CHECK(full);
  finish(*p);
}

TEST_CASE("invalid options are refused with bad_request") {
  spawn_options o;
  o.command = {"/bin/true"};
  o.cols = 0;
  auto zero = pty_process::spawn(o);
  REQUIRE_FALSE(zero.has_value());
  CHECK(zero.err().code == errc::bad_request);

  o.cols = 80;
  o.env = {{"A=B", "x"}};
  auto bad_name = pty_process::spawn(o);
  REQUIRE_FALSE(bad_name.has_value());
  CHECK(bad_name.err().code == errc::bad_request);

  o.env = {};
  o.command = {"/bin/echo", std::string("a\0b", 3)};
  auto nul = pty_process::spawn(o);
  REQUIRE_FALSE(nul.has_value());
  CHECK(nul.err().code == errc::bad_request);

  auto p = spawn_sh("read x");
  const auto resized = p->resize(0, 10);
  REQUIRE_FALSE(resized.has_value());
  CHECK(resized.err().code == errc::bad_request);
  finish(*p);
}

TEST_CASE("destroying the process reaps a child that has already ended") {
  auto p = spawn_sh("exit 0");
  const pid_t pid = p->pid();
  REQUIRE(wait_ended(pid));
  p.reset();
  int status = 0;
  CHECK(::waitpid(pid, &status, WNOHANG) == -1);
  CHECK(errno == ECHILD);
}
