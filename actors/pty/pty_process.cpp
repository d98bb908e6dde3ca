#include "actors/pty/pty_process.hpp"

#include <fcntl.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#include <array>
#include <cassert>
#include <cerrno>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <thread>
#include <utility>

namespace troupe::pty {

namespace {

/// Why a bound at all: EINTR on these non-blocking calls is rare, but a loop
/// without a limit is a loop that can spin forever.
constexpr int eintr_retries_max = 8;

/// Used when the child's environment has no PATH (glibc's execvp default).
constexpr std::string_view path_default = "/bin:/usr/bin";

/// Variables the clean base environment copies from the parent.
constexpr std::array<std::string_view, 5> inherited_env = {"PATH", "HOME", "USER", "SHELL", "LANG"};

/// glibc's description of `err`: a static string, safe between fork and exec
/// (unlike strerror, which may consult the locale and allocate).
const char* describe(int err) noexcept {
  const char* text = ::strerrordesc_np(err);
  return text != nullptr ? text : "unknown error";
}

std::string describe_str(int err) {
  return describe(err);
}

/// Everything the child needs, built before fork: after fork in a threaded
/// process the child may only make async-signal-safe calls, so no allocation.
struct exec_plan {
  std::vector<std::string> args;
  std::vector<std::string> env_entries;
  /// Paths to try with execve, in order (the PATH search, done up front with
  /// the child's PATH rather than the parent's).
  std::vector<std::string> candidates;
  std::string cwd;
  mode_t umask = 022;
  /// Pointers into the strings above; filled by `seal` once the plan no
  /// longer moves (moving a short string moves its characters).
  std::vector<char*> argv;
  std::vector<char*> envp;
  /// Highest fd + 1 to close in the child when close_range is unavailable.
  int fd_limit = 1024;
};

void seal(exec_plan& plan) {
  plan.argv.clear();
  plan.envp.clear();
  for (auto& arg : plan.args) {
    plan.argv.push_back(arg.data());
  }
  plan.argv.push_back(nullptr);
  for (auto& entry : plan.env_entries) {
    plan.envp.push_back(entry.data());
  }
  plan.envp.push_back(nullptr);
}

bool has_nul(std::string_view s) {
  return s.find('\0') != std::string_view::npos;
}

expected<std::map<std::string, std::string>> make_env(const spawn_options& o) {
  std::map<std::string, std::string> env;
  for (auto name : inherited_env) {
    // NOLINTNEXTLINE(concurrency-mt-unsafe): troupe does not setenv once threads run.
    if (const char* value = std::getenv(std::string(name).c_str()); value != nullptr) {
      env[std::string(name)] = value;
    }
  }
  env["TERM"] = "xterm-256color";
  for (const auto& [name, value] : o.env) {
    if (name.empty() || name.find('=') != std::string::npos || has_nul(name)) {
      return make_error(errc::bad_request, "invalid environment variable name '" + name + "'");
    }
    if (has_nul(value)) {
      return make_error(errc::bad_request, "environment variable '" + name + "' holds a NUL byte");
    }
    env[name] = value;
  }
  return env;
}

std::vector<std::string> search_candidates(const std::string& program, std::string_view path) {
  if (program.find('/') != std::string::npos) {
    return {program};
  }
  std::vector<std::string> out;
  while (true) {
    const size_t colon = path.find(':');
    std::string_view dir = path.substr(0, colon);
    // An empty PATH entry means the current directory (the child's cwd).
    out.push_back((dir.empty() ? std::string(".") : std::string(dir)) + "/" + program);
    if (colon == std::string_view::npos) {
      break;
    }
    path.remove_prefix(colon + 1);
  }
  return out;
}

expected<exec_plan> make_plan(const spawn_options& o) {
  auto env = make_env(o);
  if (!env) {
    return std::move(env).err();
  }
  exec_plan plan;
  plan.args = o.command;
  if (plan.args.empty()) {
    const auto shell = env->find("SHELL");
    plan.args.push_back(shell != env->end() && !shell->second.empty() ? shell->second : "/bin/sh");
  }
  if (plan.args.front().empty()) {
    return make_error(errc::bad_request, "the command's program name is empty");
  }
  for (const auto& arg : plan.args) {
    if (has_nul(arg)) {
      return make_error(errc::bad_request, "a command argument holds a NUL byte");
    }
  }
  const auto path = env->find("PATH");
  plan.candidates =
      search_candidates(plan.args.front(), path != env->end() ? path->second : path_default);
  for (const auto& [name, value] : *env) {
    std::string& entry = plan.env_entries.emplace_back(name);
    entry += '=';
    entry += value;
  }
  plan.cwd = o.cwd;
  plan.umask = o.umask;
  const long open_max = ::sysconf(_SC_OPEN_MAX);
  plan.fd_limit = open_max > 0 && open_max < (1L << 20) ? static_cast<int>(open_max) : (1 << 20);
  return plan;
}

/// Checked before fork so the caller gets an error value rather than a child
/// that prints a message and exits.
expected<bool> check_cwd(const std::string& cwd) {
  if (cwd.empty()) {
    return true;
  }
  if (has_nul(cwd)) {
    return make_error(errc::bad_request, "cwd holds a NUL byte");
  }
  struct stat st {};
  if (::stat(cwd.c_str(), &st) != 0) {
    return make_error(errc::bad_request, "cannot use cwd '" + cwd + "': " + describe_str(errno));
  }
  if (!S_ISDIR(st.st_mode)) {
    return make_error(errc::bad_request, "cannot use cwd '" + cwd + "': not a directory");
  }
  if (::access(cwd.c_str(), X_OK) != 0) {
    return make_error(errc::bad_request, "cannot use cwd '" + cwd + "': " + describe_str(errno));
  }
  return true;
}

/// Closes the fd on every early return of spawn.
class fd_guard {
 public:
  explicit fd_guard(int fd) noexcept : fd_(fd) {}
  ~fd_guard() {
    if (fd_ >= 0) {
      ::close(fd_);
    }
  }
  fd_guard(const fd_guard&) = delete;
  fd_guard& operator=(const fd_guard&) = delete;
  [[nodiscard]] int get() const noexcept { return fd_; }
  int release() noexcept { return std::exchange(fd_, -1); }

 private:
  int fd_;
};

error unavailable(const char* what, int err) {
  return make_error(errc::unavailable, std::string(what) + ": " + describe_str(err));
}

expected<int> open_master(uint16_t cols, uint16_t rows) {
  // O_CLOEXEC at open, not later: another thread may fork+exec in between,
  // and a leaked master keeps the terminal from ever reporting EOF.
  fd_guard master(::posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC));
  if (master.get() < 0) {
    return unavailable("cannot open a pty", errno);
  }
  if (::grantpt(master.get()) != 0 || ::unlockpt(master.get()) != 0) {
    return unavailable("cannot unlock the pty", errno);
  }
  const int flags = ::fcntl(master.get(), F_GETFL);
  if (flags < 0 || ::fcntl(master.get(), F_SETFL, flags | O_NONBLOCK) != 0 ||
      ::fcntl(master.get(), F_SETFD, FD_CLOEXEC) != 0) {
    return unavailable("cannot set pty flags", errno);
  }
  winsize size{};
  size.ws_col = cols;
  size.ws_row = rows;
  if (::ioctl(master.get(), TIOCSWINSZ, &size) != 0) {
    return unavailable("cannot size the pty", errno);
  }
  return master.release();
}

expected<int> open_slave(int master) {
  std::array<char, 128> name{};
  if (::ptsname_r(master, name.data(), name.size()) != 0) {
    return unavailable("cannot name the pty", errno);
  }
  fd_guard slave(::open(name.data(), O_RDWR | O_NOCTTY | O_CLOEXEC));
  if (slave.get() < 0) {
    return unavailable("cannot open the pty slave", errno);
  }
  // IUTF8 makes the line discipline erase whole UTF-8 characters on
  // backspace in canonical mode, as a UTF-8 terminal user expects.
  termios tio{};
  if (::tcgetattr(slave.get(), &tio) != 0) {
    return unavailable("cannot read pty attributes", errno);
  }
  tio.c_iflag |= IUTF8;
  if (::tcsetattr(slave.get(), TCSANOW, &tio) != 0) {
    return unavailable("cannot set pty attributes", errno);
  }
  return slave.release();
}

// ---- Child side: only async-signal-safe calls from here to exec. ----

void child_put(const char* text) noexcept {
  size_t left = std::strlen(text);
  while (left > 0) {
    const ssize_t n = ::write(STDERR_FILENO, text, left);
    if (n <= 0) {
      return;  // Nothing better to do: the message is a courtesy.
    }
    text += n;
    left -= static_cast<size_t>(n);
  }
}

[[noreturn]] void child_fail(const char* what, const char* subject, int err) noexcept {
  child_put("troupe: ");
  child_put(what);
  child_put(" '");
  child_put(subject);
  child_put("': ");
  child_put(describe(err));
  child_put("\n");  // The terminal (ONLCR) turns it into CR LF.
  ::_exit(127);
}

void child_close_fds(int fd_limit) noexcept {
#ifdef SYS_close_range
  if (::syscall(SYS_close_range, 3U, ~0U, 0U) == 0) {
    return;
  }
#endif
  // Kernels before 5.9 lack close_range; fall back to closing one by one.
  for (int fd = 3; fd < fd_limit; ++fd) {
    ::close(fd);
  }
}

/// The child inherits handlers and the parent's mask; a shell expects the
/// defaults (a server commonly ignores SIGPIPE, and ignored stays ignored
/// across exec).
void child_reset_signals() noexcept {
  struct sigaction dfl {};
  dfl.sa_handler = SIG_DFL;
  ::sigemptyset(&dfl.sa_mask);
  for (int sig = 1; sig < NSIG; ++sig) {
    ::sigaction(sig, &dfl, nullptr);  // Fails harmlessly for SIGKILL, SIGSTOP.
  }
  sigset_t none;
  ::sigemptyset(&none);
  // NOLINTNEXTLINE(concurrency-mt-unsafe): after fork the child has one thread.
  ::sigprocmask(SIG_SETMASK, &none, nullptr);
}

/// Whether execvp would go on to the next PATH entry after this error.
bool try_next_candidate(int err) noexcept {
  return err == ENOENT || err == ENOTDIR || err == EACCES || err == ESTALE || err == ENODEV ||
         err == ETIMEDOUT;
}

[[noreturn]] void run_child(int slave, const exec_plan& plan) noexcept {
  ::setsid();
  if (::ioctl(slave, TIOCSCTTY, 0) != 0) {
    ::_exit(127);  // No terminal to report on: the owner sees EOF and 127.
  }
  if (slave < 3) {
    // dup2 onto 0..2 below would clobber the slave itself.
    slave = ::fcntl(slave, F_DUPFD_CLOEXEC, 3);
  }
  if (slave < 0 || ::dup2(slave, 0) < 0 || ::dup2(slave, 1) < 0 || ::dup2(slave, 2) < 0) {
    ::_exit(127);
  }
  child_close_fds(plan.fd_limit);
  if (!plan.cwd.empty() && ::chdir(plan.cwd.c_str()) != 0) {
    child_fail("cannot change directory to", plan.cwd.c_str(), errno);
  }
  child_reset_signals();
  ::umask(plan.umask);
  const char* program = plan.args.front().c_str();
  int err = ENOENT;
  bool denied = false;
  for (const auto& candidate : plan.candidates) {
    ::execve(candidate.c_str(), plan.argv.data(), plan.envp.data());
    err = errno;
    if (!try_next_candidate(err)) {
      child_fail("cannot run", program, err);
    }
    denied = denied || err == EACCES;
  }
  // Like execvp: a permission problem on the way says more than "not found".
  child_fail("cannot run", program, denied ? EACCES : err);
}

}  // namespace

namespace {

/// Every check made before fork, and the plan the child will follow.
expected<exec_plan> checked_plan(const spawn_options& o) {
  if (o.cols == 0 || o.rows == 0) {
    return make_error(errc::bad_request, "the terminal size must be at least 1x1");
  }
  auto cwd_ok = check_cwd(o.cwd);
  if (!cwd_ok) {
    return std::move(cwd_ok).err();
  }
  return make_plan(o);
}

}  // namespace

expected<bool> pty_process::check(const spawn_options& o) {
  auto plan = checked_plan(o);
  if (!plan) {
    return std::move(plan).err();
  }
  return true;
}

expected<std::unique_ptr<pty_process>> pty_process::spawn(const spawn_options& o) {
  auto plan = checked_plan(o);
  if (!plan) {
    return std::move(plan).err();
  }
  seal(*plan);  // The plan stays put from here on.

  auto master_fd = open_master(o.cols, o.rows);
  if (!master_fd) {
    return std::move(master_fd).err();
  }
  fd_guard master(*master_fd);
  auto slave_fd = open_slave(master.get());
  if (!slave_fd) {
    return std::move(slave_fd).err();
  }
  fd_guard slave(*slave_fd);

  // All signals blocked across fork: otherwise a handler of the parent (say an
  // Asio signal_set writing to its self-pipe) could run in the child before
  // the child resets dispositions. The child unblocks once it has done so.
  sigset_t all;
  sigset_t saved;
  ::sigfillset(&all);
  ::pthread_sigmask(SIG_SETMASK, &all, &saved);
  const pid_t pid = ::fork();
  if (pid == 0) {
    run_child(slave.get(), *plan);
  }
  const int fork_errno = errno;
  ::pthread_sigmask(SIG_SETMASK, &saved, nullptr);
  if (pid < 0) {
    return unavailable("cannot fork", fork_errno);
  }
  return std::unique_ptr<pty_process>(new pty_process(master.release(), pid));
}

pty_process::~pty_process() {
  ::close(fd_);
  if (exit_code_ || reap()) {
    return;
  }
  std::thread([pid = pid_] {
    int status = 0;
    while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
  }).detach();
}

expected<size_t> pty_process::write(std::string_view bytes) {
  if (bytes.empty()) {
    return size_t{0};
  }
  for (int attempt = 0; attempt < eintr_retries_max; ++attempt) {
    const ssize_t n = ::write(fd_, bytes.data(), bytes.size());
    if (n >= 0) {
      return static_cast<size_t>(n);
    }
    if (errno == EAGAIN || errno == EWOULDBLOCK) {
      return size_t{0};
    }
    if (errno != EINTR) {
      return unavailable("cannot write to the pty", errno);
    }
  }
  return size_t{0};  // Interrupted every time: report no progress, caller retries.
}

expected<bool> pty_process::resize(uint16_t cols, uint16_t rows) {
  if (cols == 0 || rows == 0) {
    return make_error(errc::bad_request, "the terminal size must be at least 1x1");
  }
  winsize size{};
  if (::ioctl(fd_, TIOCGWINSZ, &size) != 0) {
    return unavailable("cannot read the pty size", errno);
  }
  if (size.ws_col == cols && size.ws_row == rows) {
    return false;  // The kernel would not send SIGWINCH either.
  }
  size.ws_col = cols;
  size.ws_row = rows;
  if (::ioctl(fd_, TIOCSWINSZ, &size) != 0) {
    return unavailable("cannot resize the pty", errno);
  }
  return true;
}

void pty_process::signal_group(int sig) {
  if (exit_code_) {
    return;
  }
  if (::kill(-pid_, sig) == 0 || errno != ESRCH) {
    return;
  }
  // No such group yet: the child has not reached setsid. It is still alone in
  // our group, so signal it directly.
  ::kill(pid_, sig);
}

bool pty_process::signal_foreground(int sig) {
  if (exit_code_) {
    return false;
  }
  const pid_t group = ::tcgetpgrp(fd_);
  if (group <= 0 || group == pid_) {
    return false;
  }
  return ::kill(-group, sig) == 0;
}

std::optional<int> pty_process::reap() {
  if (exit_code_) {
    return exit_code_;
  }
  for (int attempt = 0; attempt < eintr_retries_max; ++attempt) {
    int status = 0;
    const pid_t r = ::waitpid(pid_, &status, WNOHANG);
    if (r == 0) {
      return std::nullopt;
    }
    if (r == pid_) {
      if (WIFEXITED(status)) {
        exit_code_ = WEXITSTATUS(status);
      } else if (WIFSIGNALED(status)) {
        exit_code_ = 128 + WTERMSIG(status);
      } else {
        return std::nullopt;  // Stopped or continued: still alive.
      }
      return exit_code_;
    }
    if (errno == ECHILD) {
      exit_code_ = -1;
      return exit_code_;
    }
    assert(errno == EINTR);
  }
  return std::nullopt;
}

}  // namespace troupe::pty
