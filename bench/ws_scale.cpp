// ws_scale: what an idle attached session costs the node. N sessions, each
// a shell waiting in `sleep`, each with one attached viewer that stays open
// and idle; the node's RSS (VmRSS) before the first session and after the
// last viewer attached, over N. No baseline (BENCHMARKS.md: a figure with
// its spread): each repetition runs a fresh node, and the median over the
// repetitions is reported with its MAD. The RSS is split into the sessions'
// part (measured after creating them) and the viewers' part. Session
// creation and attach rates are printed alongside.
//
// Only the node's RSS counts: each session's shell is a process of its own.
// Before measuring, one session is created, attached, and ended, so
// first-use costs (the first PTY, the first upgrade) are not spread over N.
//
//   ws_scale [--quick] [--sessions N] [--reps R]

#include <signal.h>
#include <sys/resource.h>

#include <cstdio>
#include <fstream>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "bench/bench_util.hpp"
#include "bench/pty_bench.hpp"

namespace {

using namespace troupe;
using namespace troupe::bench;
using test::node_process;

/// Idle, prints nothing, and outlives any run of the bench.
const std::vector<std::string> idle_command{"/bin/sh", "-c", "exec sleep 600"};

/// Descriptors per idle viewer in this process (socket, and its io_context's
/// epoll, eventfd and timerfd), and per session in the node (PTY master, the
/// reader's dup, the viewer's socket); with headroom for everything else.
constexpr int bench_fds_per_viewer = 4;
constexpr int node_fds_per_session = 3;
constexpr int fds_headroom = 256;
/// RSS samples per measurement (100 ms apart): an idle node's RSS should
/// not move, and if it does, the median of a few samples is what counts.
constexpr int rss_samples = 3;
/// No repetition starts past this point, so the bench stays near a minute.
constexpr std::chrono::seconds reps_budget{35};
/// Time the shells get to be gone once the node stopped.
constexpr std::chrono::seconds shells_exit_timeout{10};

/// Raises this process's open-file limit to its hard limit; the node
/// inherits it (posix_spawn keeps limits). The soft limit now in force.
rlim_t raise_fd_limit() {
  rlimit limit{};
  if (::getrlimit(RLIMIT_NOFILE, &limit) != 0) {
    return 1024;
  }
  limit.rlim_cur = limit.rlim_max;
  if (::setrlimit(RLIMIT_NOFILE, &limit) != 0) {
    ::getrlimit(RLIMIT_NOFILE, &limit);
  }
  return limit.rlim_cur;
}

/// True while `pid` runs (exists and is not a zombie).
bool running(pid_t pid) {
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  std::string text;
  if (!std::getline(stat, text)) {
    return false;
  }
  const auto paren = text.rfind(") ");
  const char state = paren == std::string::npos ? '?' : text[paren + 2];
  return state != 'Z' && state != 'X';
}

/// The shells' pids, from GET /v1/sessions.
std::vector<pid_t> shell_pids(http_client& http) {
  std::vector<pid_t> pids;
  auto r = http.request("GET", "/v1/sessions");
  if (!r || r->status != 200) {
    return pids;
  }
  const auto list = nlohmann::json::parse(r->body, nullptr, false);
  if (!list.is_object() || !list.contains("sessions") || !list["sessions"].is_array()) {
    return pids;
  }
  for (const auto& s : list["sessions"]) {
    if (s.is_object() && s.contains("pid") && s["pid"].is_number_integer() &&
        s["pid"].get<int64_t>() > 0) {
      pids.push_back(static_cast<pid_t>(s["pid"].get<int64_t>()));
    }
  }
  return pids;
}

struct rep_result {
  double kib_per_session = 0;
  double kib_per_session_alone = 0;  // before the viewers attached
  double kib_per_viewer = 0;
  double sessions_per_s = 0;
  double attaches_per_s = 0;
};

/// Creates one session with a viewer and ends it: first-use costs.
std::optional<error> warm_up(const node_process& node, http_client& http) {
  auto session = create_session(http, idle_command);
  if (!session) {
    return session.err();
  }
  ws_client ws;
  if (auto err = attach(ws, node, session->id)) {
    return err;
  }
  ws.close();
  return end_session(http, session->id);
}

/// Ends every session, stops the node, and makes sure the shells are gone.
void clean_up(node_process& node, http_client& http, const std::vector<session_ref>& sessions) {
  const auto pids = shell_pids(http);
  for (const auto& s : sessions) {
    if (auto err = end_session(http, s.id)) {
      std::fprintf(stderr, "ws_scale: %s\n", err->message.c_str());
    }
  }
  if (node.stop(SIGTERM) != 0) {
    std::fprintf(stderr, "ws_scale: the node did not stop cleanly on SIGTERM\n");
  }
  const auto until = clock_type::now() + shells_exit_timeout;
  size_t left = pids.size();
  while (left > 0 && clock_type::now() < until) {
    left = static_cast<size_t>(std::count_if(pids.begin(), pids.end(), running));
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  if (left > 0) {
    std::fprintf(stderr, "ws_scale: %zu shells still run after the node stopped\n", left);
  }
}

/// One repetition on a fresh node: N sessions, then N viewers.
expected<rep_result> run_rep(int n) {
  node_process node(pinned_node());
  if (!node.started()) {
    return make_error(errc::unavailable, "the node did not start:\n" + node.stderr_text());
  }
  auto http = node_client(node);
  auto pid = node_pid(http);
  if (!pid) {
    return std::move(pid).err();
  }
  if (auto err = warm_up(node, http)) {
    return *err;
  }
  const auto before = settled_rss_kib(*pid, rss_samples);
  std::vector<session_ref> sessions;
  sessions.reserve(static_cast<size_t>(n));
  const auto t_create = clock_type::now();
  for (int i = 0; i < n; ++i) {
    auto s = create_session(http, idle_command);
    if (!s) {
      clean_up(node, http, sessions);
      return make_error(s.err().code, "session " + std::to_string(i + 1) + ": " + s.err().message);
    }
    sessions.push_back(std::move(*s));
  }
  const double create_s = seconds_since(t_create);
  const auto with_sessions = settled_rss_kib(*pid, rss_samples);
  std::vector<std::unique_ptr<ws_client>> viewers;
  viewers.reserve(static_cast<size_t>(n));
  const auto t_attach = clock_type::now();
  for (const auto& s : sessions) {
    viewers.push_back(std::make_unique<ws_client>());
    if (auto err = attach(*viewers.back(), node, s.id)) {
      const auto which = "viewer " + std::to_string(viewers.size()) + ": ";
      viewers.clear();
      clean_up(node, http, sessions);
      return make_error(err->code, which + err->message);
    }
  }
  const double attach_s = seconds_since(t_attach);
  const auto after = settled_rss_kib(*pid, rss_samples);
  viewers.clear();  // drops the connections
  clean_up(node, http, sessions);
  if (!before || !with_sessions || !after) {
    return make_error(errc::internal,
                      "the node's /proc/" + std::to_string(*pid) + "/status could not be read");
  }
  const double per = 1.0 / n;
  return rep_result{(*after - *before) * per, (*with_sessions - *before) * per,
                    (*after - *with_sessions) * per, n / create_s, n / attach_s};
}

}  // namespace

int main(int argc, char** argv) {
  signal(SIGPIPE, SIG_IGN);
  const bool quick = has_flag(argc, argv, "--quick");
  int n = std::max(1, int_flag(argc, argv, "--sessions", quick ? 20 : 1000));
  const int reps = std::max(1, int_flag(argc, argv, "--reps", quick ? 1 : 3));

  const auto fd_limit = static_cast<long long>(raise_fd_limit());
  const long long fits =
      (fd_limit - fds_headroom) / std::max(bench_fds_per_viewer, node_fds_per_session);
  if (n > fits) {
    std::printf("  (open-file limit %lld: %lld sessions instead of %d)\n", fd_limit, fits, n);
    n = static_cast<int>(std::max(1LL, fits));
  }

  std::vector<rep_result> results;
  const auto start = clock_type::now();
  for (int r = 0; r < reps; ++r) {
    if (r > 0 && clock_type::now() - start > reps_budget) {
      std::printf("  (time budget spent: %d of %d reps)\n", r, reps);
      break;
    }
    auto rep = run_rep(n);
    if (!rep) {
      std::fprintf(stderr, "ws_scale: rep %d: %s\n", r + 1, rep.err().message.c_str());
      return 1;
    }
    std::printf(
        "  rep %d: %7.1f KiB/session (session %.1f + viewer %.1f), %6.0f sessions/s "
        "created, %6.0f viewers/s attached\n",
        r + 1, rep->kib_per_session, rep->kib_per_session_alone, rep->kib_per_viewer,
        rep->sessions_per_s, rep->attaches_per_s);
    results.push_back(*rep);
  }
  auto column = [&](double rep_result::*field) {
    std::vector<double> values;
    for (const auto& r : results) {
      values.push_back(r.*field);
    }
    return values;
  };
  const auto per_session = column(&rep_result::kib_per_session);
  const double figure = median(per_session);
  std::printf(
      "ws_scale: %d idle sessions (sh -> sleep), one idle WebSocket viewer each, %zu "
      "fresh node(s), node RSS\n",
      n, results.size());
  std::printf("  per session with its viewer: %.1f KiB (MAD %.1f, min %.1f, max %.1f)\n", figure,
              mad(per_session), quantile(per_session, 0), quantile(per_session, 1));
  std::printf("  of which the session: %.1f KiB, the viewer: %.1f KiB\n",
              median(column(&rep_result::kib_per_session_alone)),
              median(column(&rep_result::kib_per_viewer)));
  std::printf("  created %.0f sessions/s, attached %.0f viewers/s\n",
              median(column(&rep_result::sessions_per_s)),
              median(column(&rep_result::attaches_per_s)));
  print_json(
      {"ws_scale", figure, "KiB_per_session", 0, 0, figure, 0, static_cast<int>(results.size())});
  return 0;
}
