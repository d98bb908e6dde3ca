// troupectl session attach: the terminal side of an attached session (raw
// mode, signals, resize, the WebSocket loop).

#include "apps/troupectl/commands.hpp"

namespace troupe::ctl {

namespace {

//
// One thread, no busy loop: ws_client::wait sleeps until a message arrives,
// stdin is readable, or a signal handler writes to a self-pipe; each event is
// handled in full before the next wait. The terminal goes back to its own
// settings on every way out: returns and exceptions through raw_terminal's
// destructor, SIGINT/SIGTERM/SIGHUP through the loop (first signal) or the
// handler itself (a second one, should the loop be stuck).

/// Ctrl-], as in telnet: a byte programs running in a session rarely need.
constexpr char detach_byte = 0x1d;
/// stdin is forwarded in reads of at most this many bytes, one frame each;
/// typing is a byte at a time, a paste is split.
constexpr size_t attach_chunk_bytes = 4096;
/// Signal bytes drained from the self-pipe per wake-up; more just wake again.
constexpr size_t signal_bytes_max = 64;
constexpr std::array<int, 4> attach_signals{SIGINT, SIGTERM, SIGHUP, SIGWINCH};

// State the signal handler reads. `saved_terminal` is written before
// `saved_terminal_valid` says it may be used; a signal fence keeps that order.
termios saved_terminal{};
volatile std::sig_atomic_t saved_terminal_valid = 0;
volatile std::sig_atomic_t signal_pipe_write_fd = -1;
volatile std::sig_atomic_t stop_signal = 0;

void on_attach_signal(int signal_number) {
  const int saved_errno = errno;
  if (signal_number != SIGWINCH) {
    if (stop_signal != 0) {
      // The loop has not acted on the first one (stuck writing to a dead
      // node, say): put the terminal back here and go. Only async-signal-safe calls.
      if (saved_terminal_valid != 0) {
        ::tcsetattr(STDIN_FILENO, TCSANOW, &saved_terminal);
      }
      constexpr std::string_view message = "\r\nerror: interrupted twice; exiting\n";
      [[maybe_unused]] const auto written = ::write(STDERR_FILENO, message.data(), message.size());
      ::_exit(exit_failure);
    }
    stop_signal = signal_number;
  }
  const char byte = static_cast<char>(signal_number);
  [[maybe_unused]] const auto written = ::write(signal_pipe_write_fd, &byte, 1);
  errno = saved_errno;
}

std::string signal_name(int signal_number) {
  switch (signal_number) {
    case SIGINT:
      return "SIGINT";
    case SIGTERM:
      return "SIGTERM";
    case SIGHUP:
      return "SIGHUP";
    default:
      return "signal " + std::to_string(signal_number);
  }
}

/// While alive, the attach signals wake the loop through a self-pipe instead
/// of killing the process with the terminal still raw; SIGPIPE is ignored so
/// a closed stdout is a write error the loop reports, not a silent death.
class signal_guard {
 public:
  signal_guard() {
    if (::pipe2(pipe_fds_.data(), O_NONBLOCK | O_CLOEXEC) != 0) {
      error_ = std::strerror(errno);
      return;
    }
    stop_signal = 0;
    signal_pipe_write_fd = pipe_fds_[1];
    struct sigaction action {};
    action.sa_handler = on_attach_signal;
    sigemptyset(&action.sa_mask);
    // Restart interrupted calls: the loop learns of signals from the pipe, not EINTR.
    action.sa_flags = SA_RESTART;
    for (size_t i = 0; i < attach_signals.size(); ++i) {
      ::sigaction(attach_signals[i], &action, &previous_[i]);
    }
    struct sigaction ignore {};
    ignore.sa_handler = SIG_IGN;
    sigemptyset(&ignore.sa_mask);
    ::sigaction(SIGPIPE, &ignore, &previous_pipe_);
    installed_ = true;
  }

  ~signal_guard() {
    if (installed_) {
      for (size_t i = 0; i < attach_signals.size(); ++i) {
        ::sigaction(attach_signals[i], &previous_[i], nullptr);
      }
      ::sigaction(SIGPIPE, &previous_pipe_, nullptr);
      signal_pipe_write_fd = -1;
    }
    for (const int fd : pipe_fds_) {
      if (fd >= 0) {
        ::close(fd);
      }
    }
  }

  signal_guard(const signal_guard&) = delete;
  signal_guard& operator=(const signal_guard&) = delete;

  [[nodiscard]] bool installed() const { return installed_; }
  [[nodiscard]] const std::string& error_text() const { return error_; }
  [[nodiscard]] int read_fd() const { return pipe_fds_[0]; }

 private:
  std::array<int, 2> pipe_fds_{-1, -1};
  std::array<struct sigaction, attach_signals.size()> previous_{};
  struct sigaction previous_pipe_ {};
  bool installed_ = false;
  std::string error_;
};

/// stdin's terminal in raw mode (cfmakeraw) while alive, like `tmux attach`:
/// every key, Ctrl-C included, goes to the session.
class raw_terminal {
 public:
  raw_terminal() {
    termios raw{};
    if (::tcgetattr(STDIN_FILENO, &saved_terminal) != 0) {
      error_ = std::strerror(errno);
      return;
    }
    raw = saved_terminal;
    ::cfmakeraw(&raw);
    std::atomic_signal_fence(std::memory_order_seq_cst);
    saved_terminal_valid = 1;
    if (::tcsetattr(STDIN_FILENO, TCSANOW, &raw) != 0) {
      error_ = std::strerror(errno);
      saved_terminal_valid = 0;
      return;
    }
    active_ = true;
  }

  ~raw_terminal() { restore(); }

  raw_terminal(const raw_terminal&) = delete;
  raw_terminal& operator=(const raw_terminal&) = delete;

  void restore() {
    if (!active_) {
      return;
    }
    ::tcsetattr(STDIN_FILENO, TCSANOW, &saved_terminal);
    saved_terminal_valid = 0;
    active_ = false;
  }

  [[nodiscard]] bool active() const { return active_; }
  [[nodiscard]] const std::string& error_text() const { return error_; }

 private:
  bool active_ = false;
  std::string error_;
};

struct attach_args {
  std::string id;
  bool readonly = false;
};

/// What one attach loop works with.
struct attach_session {
  explicit attach_session(ws_client& client) : ws(client) {}

  ws_client& ws;
  bool readonly = false;
  /// stdin is a terminal in raw mode: lines end "\r\n" and resizes are followed.
  bool raw = false;
  /// stdout and stderr are the same screen, so status lines share its cursor.
  bool shared_screen = false;
  int signal_fd = -1;
  bool stdin_open = true;
  /// The session's output left the cursor mid-line (at a prompt, say): a
  /// status line then starts on a line of its own.
  bool mid_line = false;
  /// The last `{"type":"error"}` the node sent; a close after it is a failure.
  std::optional<std::string> remote_error;
};

/// How an attach ended: a failure, or a line to print once the terminal is back.
struct attach_end {
  std::optional<failure> failed;
  std::string message;
};

// Status lines go to stderr, so stdout carries the session's bytes only.
void print_status_line(attach_session& s, std::string_view text) {
  const std::string_view newline = s.raw ? "\r\n" : "\n";
  std::cerr << (s.mid_line ? newline : "") << text << newline << std::flush;
  s.mid_line = false;
}

// The session's bytes as they come; a terminal may take them slowly.
std::optional<std::string> write_all(int fd, std::string_view bytes) {
  while (!bytes.empty()) {
    const auto written = ::write(fd, bytes.data(), bytes.size());
    if (written >= 0) {
      bytes.remove_prefix(static_cast<size_t>(written));
      continue;
    }
    if (errno == EAGAIN || errno == EWOULDBLOCK) {
      pollfd writable{fd, POLLOUT, 0};
      ::poll(&writable, 1, -1);
      continue;
    }
    if (errno != EINTR) {
      return std::strerror(errno);
    }
  }
  return std::nullopt;
}

std::optional<attach_end> send_resize(attach_session& s) {
  const auto size = read_terminal_size(STDIN_FILENO);
  if (!size) {
    return std::nullopt;
  }
  const json resize{{"type", "resize"}, {"cols", size->cols}, {"rows", size->rows}};
  if (auto failed = s.ws.write_text(dump_json(resize))) {
    return attach_end{from_error(*failed), {}};
  }
  return std::nullopt;
}

std::optional<attach_end> on_control(attach_session& s, std::string_view text) {
  const auto control = parse_json(text);
  if (!control || !control->is_object()) {
    print_status_line(s, "warning: ignored a control message that is not a JSON object");
    return std::nullopt;
  }
  const auto type = field_text(*control, "type");
  if (type == "notice") {
    print_status_line(s, "notice: " + one_line(field_text(*control, "message")));
  } else if (type == "error") {
    s.remote_error = one_line(field_text(*control, "message"));
    print_status_line(s, "error: " + *s.remote_error);
  } else if (type == "exit") {
    const auto status = field_text(*control, "status");
    return attach_end{std::nullopt, status == "-" ? std::string("session ended")
                                                  : "session ended (status " + status + ")"};
  }
  // Other types are for newer clients; ignoring them keeps this one working.
  return std::nullopt;
}

std::optional<attach_end> on_message(attach_session& s, const ws_message& message) {
  if (!message.binary) {
    return on_control(s, message.data);
  }
  if (auto failed = write_all(STDOUT_FILENO, message.data)) {
    return attach_end{failure{"io_error", "cannot write to stdout: " + *failed}, {}};
  }
  if (s.shared_screen && !message.data.empty()) {
    s.mid_line = message.data.back() != '\n';
  }
  return std::nullopt;
}

// Normal closes end the attach quietly; any other code, or a close after the
// node reported an error, is a failure (exit 1).
attach_end on_close(const attach_session& s, const ws_event& event) {
  constexpr uint16_t close_normal = 1000;
  constexpr uint16_t close_going_away = 1001;
  constexpr uint16_t close_no_status = 1005;
  const auto reason = event.close_reason.empty() ? std::string() : ": " + event.close_reason;
  if (s.remote_error) {
    return {failure{"session_error", *s.remote_error}, {}};
  }
  const auto code = event.close_code;
  if (code != 0 && code != close_normal && code != close_going_away && code != close_no_status) {
    return {failure{"closed",
                    "the node closed the connection with code " + std::to_string(code) + reason},
            {}};
  }
  return {std::nullopt, "connection closed by the node" + reason};
}

std::optional<attach_end> on_stdin(attach_session& s) {
  std::array<char, attach_chunk_bytes> chunk{};
  const auto count = ::read(STDIN_FILENO, chunk.data(), chunk.size());
  if (count < 0) {
    if (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK) {
      return std::nullopt;
    }
    return attach_end{
        failure{"io_error", std::string("cannot read stdin: ") + std::strerror(errno)}, {}};
  }
  if (count == 0) {
    // Piped input ran out: keep showing output until the session ends or a signal comes.
    s.stdin_open = false;
    return std::nullopt;
  }
  const std::string_view bytes(chunk.data(), static_cast<size_t>(count));
  const auto detach = bytes.find(detach_byte);
  const auto forward = bytes.substr(0, detach);
  if (!s.readonly && !forward.empty()) {
    if (auto failed = s.ws.write_binary(forward)) {
      return attach_end{from_error(*failed), {}};
    }
  }
  if (detach != std::string_view::npos) {
    return attach_end{std::nullopt, "detached"};
  }
  return std::nullopt;
}

std::optional<attach_end> on_signal_pipe(attach_session& s) {
  std::array<char, signal_bytes_max> bytes{};
  const auto count = ::read(s.signal_fd, bytes.data(), bytes.size());
  if (stop_signal != 0) {
    return attach_end{failure{"interrupted", "got " + signal_name(stop_signal) +
                                                 "; detached, the session keeps running"},
                      {}};
  }
  // Resizes come in bursts while a window is dragged; one update per wake-up does.
  const auto received = std::span(bytes.data(), static_cast<size_t>(std::max<ssize_t>(count, 0)));
  const bool resized =
      std::find(received.begin(), received.end(), static_cast<char>(SIGWINCH)) != received.end();
  if (resized && s.raw && !s.readonly) {
    return send_resize(s);
  }
  return std::nullopt;
}

attach_end attach_loop(attach_session& s) {
  for (;;) {
    // The signal pipe first: a stop beats more typing.
    const std::array<int, 2> fds{s.signal_fd, STDIN_FILENO};
    const auto event = s.ws.wait(std::span(fds.data(), s.stdin_open ? 2 : 1));
    if (!event) {
      return {from_error(event.err()), {}};
    }
    std::optional<attach_end> end;
    switch (event->what) {
      case ws_event::kind::message:
        end = on_message(s, event->message);
        break;
      case ws_event::kind::closed:
        end = on_close(s, *event);
        break;
      case ws_event::kind::fd_ready:
        end = event->fd == STDIN_FILENO ? on_stdin(s) : on_signal_pipe(s);
        break;
    }
    if (end) {
      return std::move(*end);
    }
  }
}

std::string attach_target(const attach_args& args) {
  return session_target(args.id) + "/attach" + (args.readonly ? "?readonly=1" : "");
}

// Runs once the node has accepted the attach: signals, then raw mode, then the
// loop; the terminal is back to normal before the last line is printed.
int run_attached(ws_client& ws, const attach_args& args) {
  const signal_guard signals;
  if (!signals.installed()) {
    return fail({"internal", "cannot set up signal handling: " + signals.error_text()});
  }
  std::cerr << "attached to " << args.id << "; detach with Ctrl-]\n";
  attach_session session(ws);
  session.readonly = args.readonly;
  session.raw = ::isatty(STDIN_FILENO) == 1;
  session.shared_screen = ::isatty(STDOUT_FILENO) == 1 && ::isatty(STDERR_FILENO) == 1;
  session.signal_fd = signals.read_fd();
  std::optional<raw_terminal> raw;
  if (session.raw) {
    raw.emplace();
    if (!raw->active()) {
      return fail({"io_error", "cannot put the terminal in raw mode: " + raw->error_text()});
    }
  }
  auto end = session.raw && !args.readonly ? send_resize(session) : std::nullopt;
  if (!end) {
    end = attach_loop(session);
  }
  ws.close();
  raw.reset();
  if (session.mid_line) {
    std::cerr << "\n";
  }
  if (end->failed) {
    return fail(*end->failed);
  }
  std::cerr << end->message << "\n";
  return exit_ok;
}

// Raw mode and signals are set up only once the node has accepted the
// attach, so a refusal (unknown id, bad token) prints like any other error.
int run_session_attach(const context& ctx, const attach_args& args) {
  if (args.id.empty()) {
    return usage_error("ID must not be empty");
  }
  ws_client ws;
  const auto timeout_ms = ctx.timeout_ms.value_or(default_timeout_ms);
  if (auto failed = ws.connect(ctx.url, attach_target(args), ctx.token, timeout_ms)) {
    return fail(ws.refusal() ? from_reply(*ws.refusal()) : from_error(*failed));
  }
  return run_attached(ws, args);
}

std::function<int(const context&)> add_session_attach(CLI::App& sub) {
  auto args = std::make_shared<attach_args>();
  sub.add_option("id", args->id, "session id")->required();
  sub.add_flag("--readonly", args->readonly,
               "watch only: keystrokes other than Ctrl-] are dropped");
  return [args](const context& ctx) { return run_session_attach(ctx, *args); };
}

}  // namespace

run_fn add_session_attach_command(CLI::App& sub) {
  return add_session_attach(sub);
}

}  // namespace troupe::ctl
