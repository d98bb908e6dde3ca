// pty_throughput: how fast a session's output reaches its viewer. The
// session runs `head -c 100M /dev/zero | base64` and one viewer on the
// attach WebSocket reads until the node's {"type":"exit"} message; the
// figure is the output's bytes over the time from the go signal to that
// message. Baseline, same binary and run: the same command on a bare PTY of
// this process, its master read in a poll() loop (64 KiB reads, as the
// node's session reader) until EIO. Repetitions alternate the two sides;
// the medians are compared.
//
// Both sides count the bytes after a ready marker, and both must receive
// exactly the expected output: base64's text with a line break every 76
// characters, each "\n" turned into "\r\n" by the terminal (onlcr); a
// node that loses bytes fails the bench. The node closes a viewer that
// falls 8 MiB behind (the session never waits for its viewers), and with
// this bench's reader, base64 and the node on two cores that can happen: such
// a repetition is counted as dropped, left out of the median and reported;
// only when every troupe repetition is dropped does the bench fail.
//
//   pty_throughput [--quick] [--mib N] [--reps R]

#include <signal.h>

#include <cstdio>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "bench/bench_util.hpp"
#include "bench/pty_bench.hpp"

namespace {

using namespace troupe;
using namespace troupe::bench;
using test::node_process;

constexpr std::string_view ready_marker = "troupe-ready";
constexpr std::chrono::seconds start_timeout{10};
/// One repetition may take this long (100 MiB at ~3 MB/s).
constexpr std::chrono::seconds rep_timeout{50};
/// The bar from the plan: troupe at least half the bare PTY's rate.
constexpr double bar_ratio = 0.5;

/// The command: echo off and a marker, so both sides start counting at the
/// same byte; then it waits for a line (the go signal, not echoed), so the
/// viewer is attached before any output and the clock starts with it.
std::vector<std::string> command_of(int mib) {
  return {"/bin/sh", "-c",
          "stty -echo; printf troupe-ready; read go; head -c " + std::to_string(mib) +
              "M /dev/zero | base64; exit 0"};
}

/// What the terminal delivers for `mib` MiB through base64: 4 characters
/// per 3 bytes (padded), a "\n" after every 76 and after the last partial
/// line, and the terminal makes each "\n" a "\r\n".
uint64_t expected_bytes(int mib) {
  const uint64_t in = static_cast<uint64_t>(mib) << 20;
  const uint64_t text = 4 * ((in + 2) / 3);
  const uint64_t lines = (text + 75) / 76;
  return text + 2 * lines;
}

struct rep_result {
  uint64_t bytes = 0;
  double seconds = 0;
  /// The node closed the viewer before the end: `bytes` is what came until then.
  bool dropped = false;
  double mb_per_s() const { return static_cast<double>(bytes) / seconds / 1e6; }
};

/// Reads the viewer until the session's exit message; the bytes after
/// `counted` (already received) and the time since `go`.
expected<rep_result> drain_viewer(ws_client& ws, uint64_t counted, clock_type::time_point go) {
  deadline d(rep_timeout);
  for (;;) {
    auto m = next_message(ws, d);
    if (!m && m.err().code == errc::unavailable) {
      return rep_result{counted, seconds_since(go), true};
    }
    if (!m) {
      return std::move(m).err();
    }
    if (m->binary) {
      counted += m->data.size();
      continue;
    }
    const auto control = nlohmann::json::parse(m->data, nullptr, false);
    if (control.is_object() && control.value("type", "") == "exit") {
      const double s = seconds_since(go);
      if (control.value("status", -1) != 0) {
        return make_error(errc::internal, "the command failed: " + m->data);
      }
      return rep_result{counted, s};
    }
    return make_error(errc::internal, "unexpected control message: " + m->data);
  }
}

/// One repetition through the node: a fresh session, one viewer.
expected<rep_result> troupe_rep(const node_process& node, http_client& http, int mib) {
  auto session = create_session(http, command_of(mib));
  if (!session) {
    return std::move(session).err();
  }
  ws_client ws;
  if (auto err = attach(ws, node, session->id)) {
    return *err;
  }
  deadline d(start_timeout);
  auto rest = viewer_read_past(ws, ready_marker, d);
  if (!rest) {
    return std::move(rest).err();
  }
  const auto go = clock_type::now();
  if (auto err = ws.write_binary("\n")) {
    return *err;
  }
  auto rep = drain_viewer(ws, rest->size(), go);
  if (!rep || rep->dropped) {
    // The command may still run: end it, so it does not load the next rep.
    (void)end_session(http, session->id);
  }
  return rep;
}

/// One repetition on a bare PTY: read the master until EIO.
expected<rep_result> bare_rep(int mib) {
  auto bare = spawn_bare(command_of(mib));
  if (!bare) {
    return std::move(bare).err();
  }
  auto& p = **bare;
  deadline start(start_timeout);
  auto rest = bare_read_past(p, ready_marker, start);
  if (!rest) {
    return std::move(rest).err();
  }
  uint64_t counted = rest->size();
  deadline d(rep_timeout);
  const auto go = clock_type::now();
  auto written = p.write("\n");
  if (!written || *written != 1) {
    return make_error(errc::internal, "bare: the terminal took no input");
  }
  std::string chunk;
  for (;;) {
    chunk.clear();
    auto more = bare_read_some(p, chunk, d);
    if (!more) {
      return std::move(more).err();
    }
    if (!*more) {
      break;
    }
    counted += chunk.size();
  }
  const double s = seconds_since(go);
  const auto status = reap_bare(p, false);
  if (status != 0) {
    return make_error(errc::internal,
                      "bare: the command ended with status " + std::to_string(status.value_or(-1)));
  }
  return rep_result{counted, s};
}

int fail(const std::string& what) {
  std::fprintf(stderr, "pty_throughput: %s\n", what.c_str());
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  signal(SIGPIPE, SIG_IGN);
  const bool quick = has_flag(argc, argv, "--quick");
  const int mib = std::max(1, int_flag(argc, argv, "--mib", quick ? 1 : 100));
  const int reps = std::max(1, int_flag(argc, argv, "--reps", quick ? 1 : 3));
  const uint64_t expected = expected_bytes(mib);

  node_process node(pinned_node());
  if (!node.started()) {
    return fail("the node did not start:\n" + node.stderr_text());
  }
  auto http = node_client(node);
  std::vector<double> troupe_mbps;
  std::vector<double> bare_mbps;
  int dropped = 0;
  for (int r = 0; r < reps; ++r) {
    for (int turn = 0; turn < 2; ++turn) {
      const bool through_node = (r + turn) % 2 == 1;  // alternate which goes first
      auto rep = through_node ? troupe_rep(node, http, mib) : bare_rep(mib);
      const auto name =
          std::string(through_node ? "troupe" : "bare") + " rep " + std::to_string(r + 1);
      if (!rep) {
        return fail(name + ": " + rep.err().message);
      }
      if (rep->dropped) {
        ++dropped;
        std::printf(
            "  %s: the node closed the viewer after %llu of %llu bytes (%.1f MB/s "
            "until then): it fell 8 MiB behind\n",
            name.c_str(), static_cast<unsigned long long>(rep->bytes),
            static_cast<unsigned long long>(expected), rep->mb_per_s());
        continue;
      }
      if (rep->bytes != expected) {
        return fail(name + ": received " + std::to_string(rep->bytes) + " bytes, expected " +
                    std::to_string(expected));
      }
      (through_node ? troupe_mbps : bare_mbps).push_back(rep->mb_per_s());
      std::printf("  %s: %8.1f MB/s (%.3f s)\n", name.c_str(), rep->mb_per_s(), rep->seconds);
    }
  }
  if (troupe_mbps.empty()) {
    return fail("the node closed the viewer in every repetition");
  }
  const double troupe = median(troupe_mbps);
  const double bare = median(bare_mbps);
  const double ratio = troupe / bare;
  std::printf(
      "pty_throughput: head -c %dM /dev/zero | base64 on an 80x24 terminal, %llu bytes "
      "received per run (onlcr: \\n -> \\r\\n), %d reps per side, medians\n",
      mib, static_cast<unsigned long long>(expected), reps);
  std::printf("  bare pty: %.1f MB/s (MAD %.1f)\n", bare, mad(bare_mbps));
  std::printf(
      "  troupe:   %.1f MB/s (MAD %.1f), one WebSocket viewer; %d of %d reps dropped "
      "by the node\n",
      troupe, mad(troupe_mbps), dropped, reps);
  std::printf("  ratio (troupe / bare) %.3f; bar >= %.1f: %s\n", ratio, bar_ratio,
              ratio >= bar_ratio ? "met" : "NOT met");
  print_json({"pty_throughput", troupe, "MB_per_s", bare, ratio, 0, 0,
              static_cast<int>(troupe_mbps.size())});
  return 0;
}
