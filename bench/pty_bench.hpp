#pragma once

// Shared by the terminal benches (pty_echo, pty_throughput, ws_scale): a
// node with its thread counts pinned, sessions made over REST, a viewer on
// the attach WebSocket that never waits past a deadline, and the bare-PTY
// side of the baselines. Every wait here is bounded, so a broken node fails
// a bench instead of hanging it.

#include <poll.h>
#include <signal.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <fstream>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "actors/pty/pty_process.hpp"
#include "bench/bench_util.hpp"
#include "client/http_client.hpp"
#include "client/ws_client.hpp"
#include "tests/integration/node_process.hpp"

namespace troupe::bench {

using clock_type = std::chrono::steady_clock;

/// Output a program may print before its ready marker; past it, the program
/// did not start the way the bench expects.
constexpr size_t marker_search_bytes_max = 64u << 10;
/// What one read of a PTY master takes: the node's session reader reads
/// 64 KiB at a time, and the baseline pins the same.
constexpr size_t pty_read_bytes = 64u << 10;
/// Time a child gets to be reaped after it ended or was killed.
constexpr std::chrono::milliseconds reap_timeout{5000};
/// Bounds each REST call and each WebSocket connect.
constexpr uint32_t http_timeout_ms = 10'000;

inline double micros_since(clock_type::time_point t0) {
  return std::chrono::duration<double, std::micro>(clock_type::now() - t0).count();
}

inline double seconds_since(clock_type::time_point t0) {
  return std::chrono::duration<double>(clock_type::now() - t0).count();
}

/// A node whose thread counts are spelled out (the defaults, but a bench
/// must not depend on them): 2 CAF workers, 1 Asio thread for HTTP and
/// WebSockets. The PTY readers and the upstream client keep their default
/// of one thread each (a node from before they had threads of their own
/// shared the HTTP thread instead), so A/B runs compare the defaults.
inline test::node_process::options pinned_node() {
  return {{},
          {{"TROUPE_NODE_SCHEDULER_THREADS", "2"},
           {"TROUPE_GATEWAY_IO_THREADS", "1"},
           {"TROUPE_LOG_LEVEL", "warn"}},
          {}};
}

/// A one-shot deadline as a timerfd, so ws_client::wait can watch it beside
/// the socket; poll() users ask `poll_timeout_ms`. Should the timerfd not be
/// created (no fds left), ws_client reports the bad fd as ready at once: the
/// bench then fails with "deadline passed" rather than waiting unbounded.
class deadline {
 public:
  explicit deadline(std::chrono::milliseconds in)
      : fd_(::timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC)), at_(clock_type::now() + in) {
    itimerspec spec{};
    // A zero it_value would disarm the timer: at least 1 ms.
    const auto ms = std::max<int64_t>(in.count(), 1);
    spec.it_value.tv_sec = ms / 1000;
    spec.it_value.tv_nsec = (ms % 1000) * 1'000'000;
    if (fd_ >= 0) {
      ::timerfd_settime(fd_, 0, &spec, nullptr);
    }
  }
  ~deadline() {
    if (fd_ >= 0) {
      ::close(fd_);
    }
  }
  deadline(const deadline&) = delete;
  deadline& operator=(const deadline&) = delete;

  [[nodiscard]] int fd() const noexcept { return fd_; }
  /// What is left, in whole ms, for poll(); 0 once passed.
  [[nodiscard]] int poll_timeout_ms() const {
    const auto left = std::chrono::ceil<std::chrono::milliseconds>(at_ - clock_type::now());
    return static_cast<int>(std::max<int64_t>(left.count(), 0));
  }

 private:
  int fd_;
  clock_type::time_point at_;
};

// ---------------------------------------------------------------------------
// The node's side: REST and the attach WebSocket
// ---------------------------------------------------------------------------

inline http_client node_client(const test::node_process& node) {
  return http_client(*parse_node_url(node.url()), node.token(), http_timeout_ms);
}

struct session_ref {
  std::string id;
};

/// POST /v1/sessions with `command` on an 80x24 terminal.
inline expected<session_ref> create_session(http_client& http,
                                            const std::vector<std::string>& command) {
  const nlohmann::json spec{{"command", command}, {"cols", 80}, {"rows", 24}};
  auto r = http.request("POST", "/v1/sessions", spec.dump());
  if (!r) {
    return std::move(r).err();
  }
  const auto reply = nlohmann::json::parse(r->body, nullptr, false);
  if (r->status != 200 || !reply.is_object() || !reply.contains("id") || !reply["id"].is_string()) {
    return make_error(errc::internal,
                      "POST /v1/sessions: HTTP " + std::to_string(r->status) + " " + r->body);
  }
  return session_ref{reply["id"].get<std::string>()};
}

/// DELETE /v1/sessions/{id}: the node hangs up its terminal.
inline std::optional<error> end_session(http_client& http, const std::string& id) {
  auto r = http.request("DELETE", "/v1/sessions/" + id);
  if (!r) {
    return std::move(r).err();
  }
  if (r->status != 200) {
    return make_error(errc::internal, "DELETE /v1/sessions/" + id + ": HTTP " +
                                          std::to_string(r->status) + " " + r->body);
  }
  return std::nullopt;
}

/// GET /v1/sessions/{id}/attach as a WebSocket.
inline std::optional<error> attach(ws_client& ws, const test::node_process& node,
                                   const std::string& id) {
  auto url = parse_node_url(node.url());
  if (!url) {
    return url.err();
  }
  return ws.connect(*url, "/v1/sessions/" + id + "/attach", node.token(), http_timeout_ms);
}

/// The next message from the node. Errors: the node closed the viewer
/// (close frame or dropped connection), or the deadline passed.
inline expected<ws_message> next_message(ws_client& ws, const deadline& d) {
  const int fds[] = {d.fd()};
  auto ev = ws.wait(fds);
  if (!ev) {
    return std::move(ev).err();
  }
  switch (ev->what) {
    case ws_event::kind::message:
      return std::move(ev->message);
    case ws_event::kind::closed:
      return make_error(errc::unavailable, "the node closed the viewer (code " +
                                               std::to_string(ev->close_code) + ": " +
                                               ev->close_reason + ")");
    case ws_event::kind::fd_ready:
      break;
  }
  return make_error(errc::timeout, "the deadline passed waiting for the node");
}

/// Reads terminal output until it holds `marker`; returns what followed
/// the marker. A control message first means the program did not start as
/// expected (it ended, or restarts): an error quoting it.
inline expected<std::string> viewer_read_past(ws_client& ws, std::string_view marker,
                                              const deadline& d) {
  std::string seen;
  for (;;) {
    if (const auto at = seen.find(marker); at != std::string::npos) {
      return seen.substr(at + marker.size());
    }
    if (seen.size() > marker_search_bytes_max) {
      return make_error(errc::internal, "no '" + std::string(marker) + "' in the first " +
                                            std::to_string(seen.size()) +
                                            " bytes: " + seen.substr(0, 200));
    }
    auto m = next_message(ws, d);
    if (!m) {
      return make_error(m.err().code, m.err().message + "; output so far: " + seen);
    }
    if (!m->binary) {
      return make_error(errc::internal, "before '" + std::string(marker) +
                                            "' the node sent: " + m->data + "; output: " + seen);
    }
    seen += m->data;
  }
}

/// Types `key` into the session through the attached viewer and reads its
/// echo (the program on the terminal echoes each byte once); the round trip
/// in microseconds. Errors: the viewer failed, the deadline passed, or
/// something else came back.
inline expected<double> viewer_echo(ws_client& ws, char key, const deadline& d) {
  const auto sent = clock_type::now();
  if (auto err = ws.write_binary(std::string_view(&key, 1))) {
    return *err;
  }
  auto m = next_message(ws, d);
  const double us = micros_since(sent);
  if (!m) {
    return std::move(m).err();
  }
  if (!m->binary || m->data != std::string_view(&key, 1)) {
    return make_error(errc::internal,
                      std::string("expected the echo of '") + key + "', got '" + m->data + "'");
  }
  return us;
}

/// The node's pid, from sys.info (node_process does not expose it).
inline expected<pid_t> node_pid(http_client& http) {
  auto r = http.request("POST", "/v1/actors/sys/messages", R"({"type":"sys.info","body":{}})");
  if (!r) {
    return std::move(r).err();
  }
  const auto reply = nlohmann::json::parse(r->body, nullptr, false);
  if (r->status != 200 || !reply.is_object() || !reply.contains("body") ||
      !reply["body"].is_object() || !reply["body"].contains("pid") ||
      !reply["body"]["pid"].is_number_integer()) {
    return make_error(errc::internal,
                      "sys.info: HTTP " + std::to_string(r->status) + " " + r->body);
  }
  return static_cast<pid_t>(reply["body"]["pid"].get<int64_t>());
}

// ---------------------------------------------------------------------------
// The baseline's side: a bare PTY in this process
// ---------------------------------------------------------------------------

/// `command` on a PTY of the sessions' size (80x24), nothing else around it.
inline expected<std::unique_ptr<pty::pty_process>> spawn_bare(
    const std::vector<std::string>& command) {
  pty::spawn_options o;
  o.command = command;
  o.cols = 80;
  o.rows = 24;
  return pty::pty_process::spawn(o);
}

/// One read of the master once it is readable: bytes appended to `out`
/// (true), or false at EOF/EIO (the child side is gone). Errors: the
/// deadline passed, or poll/read failed otherwise.
inline expected<bool> bare_read_some(const pty::pty_process& p, std::string& out,
                                     const deadline& d) {
  char buffer[pty_read_bytes];
  for (;;) {
    pollfd pfd{p.fd(), POLLIN, 0};
    const int ready = ::poll(&pfd, 1, d.poll_timeout_ms());
    if (ready < 0 && errno == EINTR) {
      continue;
    }
    if (ready < 0) {
      return make_error(errc::internal, std::string("poll: ") + std::strerror(errno));
    }
    if (ready == 0) {
      return make_error(errc::timeout, "the deadline passed waiting for the bare pty");
    }
    const ssize_t n = ::read(p.fd(), buffer, sizeof buffer);
    if (n > 0) {
      out.append(buffer, static_cast<size_t>(n));
      return true;
    }
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
      continue;
    }
    return false;  // 0 or EIO: every slave holder has closed it
  }
}

/// Like viewer_read_past, on the bare master.
inline expected<std::string> bare_read_past(const pty::pty_process& p, std::string_view marker,
                                            const deadline& d) {
  std::string seen;
  for (;;) {
    if (const auto at = seen.find(marker); at != std::string::npos) {
      return seen.substr(at + marker.size());
    }
    if (seen.size() > marker_search_bytes_max) {
      return make_error(errc::internal, "no '" + std::string(marker) + "' in the first " +
                                            std::to_string(seen.size()) +
                                            " bytes: " + seen.substr(0, 200));
    }
    auto more = bare_read_some(p, seen, d);
    if (!more) {
      return std::move(more).err();
    }
    if (!*more) {
      return make_error(errc::unavailable, "the bare pty closed before '" + std::string(marker) +
                                               "'; output: " + seen);
    }
  }
}

/// Waits for the child to be reapable; `kill_first` sends SIGKILL to its
/// group before. The exit code, or nullopt if it did not end in time.
inline std::optional<int> reap_bare(pty::pty_process& p, bool kill_first) {
  if (kill_first) {
    p.signal_group(SIGKILL);
  }
  const auto until = clock_type::now() + reap_timeout;
  for (;;) {
    if (auto code = p.reap()) {
      return code;
    }
    if (clock_type::now() >= until) {
      return std::nullopt;
    }
    // EIO can precede the zombie by a moment (see pty_process.hpp).
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
}

}  // namespace troupe::bench
