// pty_echo: a keystroke's round trip through a session. A viewer on the
// attach WebSocket sends one byte, the program on the terminal echoes it,
// and the time until the byte is back at the viewer is one sample. The
// troupe side is the whole path: WebSocket frame -> gateway -> session
// actor -> PTY write -> program -> PTY read (Asio) -> actor (scrollback,
// screen state, recording) -> the viewer's queue -> WebSocket frame.
//
// Baseline, same binary and run: the same program on a bare PTY of this
// process; one byte written to the master, poll() until it is back. The
// two sides alternate in rounds (which goes first alternates too); p50 and
// p99 are over all the echoes of a side, the per-round p99s give the spread.
//
// --cast-load then measures the node's echo while a client fetches another
// session's recording (GET /v1/sessions/{id}/cast, a full 1 MiB one) in a
// loop, against rounds without it, alternated: the sessions share the
// terminal thread, so whatever a recording costs there, every keystroke
// waits for.
//
//   pty_echo [--quick] [--echoes N] [--rounds R] [--cast-load]

#include <signal.h>

#include <atomic>
#include <condition_variable>
#include <cstdio>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "bench/bench_util.hpp"
#include "bench/pty_bench.hpp"

namespace {

using namespace troupe;
using namespace troupe::bench;
using test::node_process;

constexpr std::string_view ready_marker = "troupe-ready";

/// The program on the terminal: `cat` in raw mode with the terminal's own
/// echo off, which answers each byte exactly once. Cooked, the terminal
/// would hold the byte until a newline (cat would see nothing; only the
/// kernel would echo); with echo on, the kernel and cat would each send it
/// back. This is also how interactive programs work (a shell's line editor,
/// an editor, an agent's TUI): they take each byte as typed and echo it
/// themselves. The marker says stty has run, so no measured byte meets the
/// terminal in its old mode.
const std::vector<std::string> echo_command{"/bin/sh", "-c",
                                            "stty raw -echo; printf troupe-ready; exec cat"};

/// One round may take this long; an echo that does not come back within it
/// fails the bench.
constexpr std::chrono::seconds round_timeout{30};
constexpr std::chrono::seconds start_timeout{10};
/// The bar from the plan: a keystroke's echo, p99.
constexpr double bar_p99_us = 2000;

/// The byte of echo `i`: a letter, nothing the terminal acts on.
char key_of(int i) {
  return static_cast<char>('a' + i % 26);
}

std::string unexpected(std::string_view side, char key, std::string_view got) {
  return std::string(side) + ": expected the echo of '" + key + "', got '" + std::string(got) + "'";
}

/// `count` echoes through the node; the round-trip times in microseconds.
expected<std::vector<double>> troupe_round(ws_client& ws, int count) {
  deadline d(round_timeout);
  std::vector<double> rtt_us;
  rtt_us.reserve(static_cast<size_t>(count));
  for (int i = 0; i < count; ++i) {
    auto us = viewer_echo(ws, key_of(i), d);
    if (!us) {
      return make_error(us.err().code, "troupe: " + us.err().message);
    }
    rtt_us.push_back(*us);
  }
  return rtt_us;
}

/// `count` echoes through the bare PTY; the round-trip times in microseconds.
expected<std::vector<double>> bare_round(pty::pty_process& p, int count) {
  deadline d(round_timeout);
  std::vector<double> rtt_us;
  rtt_us.reserve(static_cast<size_t>(count));
  std::string got;
  for (int i = 0; i < count; ++i) {
    const char key = key_of(i);
    got.clear();
    const auto sent = clock_type::now();
    auto written = p.write(std::string_view(&key, 1));
    if (!written) {
      return std::move(written).err();
    }
    if (*written != 1) {
      return make_error(errc::internal, "bare: the terminal took no input");
    }
    auto more = bare_read_some(p, got, d);
    const double us = micros_since(sent);
    if (!more) {
      return std::move(more).err();
    }
    if (!*more || got != std::string_view(&key, 1)) {
      return make_error(errc::internal, unexpected("bare", key, got));
    }
    rtt_us.push_back(us);
  }
  return rtt_us;
}

/// A session running the echo program, a viewer attached, past the marker.
std::optional<error> start_troupe_side(const node_process& node, http_client& http, std::string& id,
                                       ws_client& ws) {
  auto session = create_session(http, echo_command);
  if (!session) {
    return session.err();
  }
  id = session->id;
  if (auto err = attach(ws, node, id)) {
    return err;
  }
  deadline d(start_timeout);
  auto rest = viewer_read_past(ws, ready_marker, d);
  if (!rest) {
    return rest.err();
  }
  if (!rest->empty()) {
    return make_error(errc::internal, "troupe: output after the marker: " + *rest);
  }
  return std::nullopt;
}

/// The echo program on a bare PTY, past the marker.
expected<std::unique_ptr<pty::pty_process>> start_bare_side() {
  auto bare = spawn_bare(echo_command);
  if (!bare) {
    return bare;
  }
  deadline d(start_timeout);
  auto rest = bare_read_past(**bare, ready_marker, d);
  if (!rest) {
    return std::move(rest).err();
  }
  if (!rest->empty()) {
    return make_error(errc::internal, "bare: output after the marker: " + *rest);
  }
  return bare;
}

struct side_samples {
  std::vector<double> all_us;
  std::vector<double> round_p99_us;

  void add(const std::vector<double>& round) {
    all_us.insert(all_us.end(), round.begin(), round.end());
    round_p99_us.push_back(quantile(round, 0.99));
  }
};

int fail(const std::string& what) {
  std::fprintf(stderr, "pty_echo: %s\n", what.c_str());
  return 1;
}

/// The other session of --cast-load: 1.4 MB of base64 lines, which fills its
/// recording (1 MiB kept), then it idles.
const std::vector<std::string> cast_command{
    "/bin/sh", "-c",
    "head -c 1048576 /dev/urandom | base64 -w 64; printf cast-filled; exec sleep 600"};

/// Fetches a session's recording in a loop on a thread of its own while on.
class cast_reader {
 public:
  cast_reader(const node_process& node, std::string id)
      : http_(node_client(node)), id_(std::move(id)), thread_([this] { run(); }) {}
  ~cast_reader() {
    stop_.store(true);
    thread_.join();
  }
  cast_reader(const cast_reader&) = delete;
  cast_reader& operator=(const cast_reader&) = delete;

  void start() { on_.store(true); }
  /// Stops fetching, and returns once no fetch is under way.
  void pause() {
    on_.store(false);
    std::unique_lock lock(mutex_);
    idle_.wait(lock, [this] { return !busy_; });
  }
  [[nodiscard]] uint64_t fetches() const { return fetches_.load(); }
  [[nodiscard]] uint64_t failures() const { return failures_.load(); }

 private:
  void run() {
    while (!stop_.load()) {
      if (!on_.load()) {
        std::this_thread::sleep_for(std::chrono::milliseconds(1));  // idle, not a wait on the node
        continue;
      }
      {
        std::lock_guard lock(mutex_);
        if (!on_.load()) {
          continue;
        }
        busy_ = true;
      }
      auto r = http_.request("GET", "/v1/sessions/" + id_ + "/cast");
      if (r && r->status == 200 && r->body.size() > (1u << 20)) {
        fetches_.fetch_add(1);
      } else {
        failures_.fetch_add(1);
      }
      {
        std::lock_guard lock(mutex_);
        busy_ = false;
      }
      idle_.notify_all();
    }
  }

  http_client http_;
  std::string id_;
  std::atomic<bool> on_{false};
  std::atomic<bool> stop_{false};
  std::atomic<uint64_t> fetches_{0};
  std::atomic<uint64_t> failures_{0};
  std::mutex mutex_;
  std::condition_variable idle_;
  bool busy_ = false;  // a fetch is under way (under mutex_)
  std::thread thread_;
};

/// --cast-load: the node's echo in rounds with the reader on and off
/// (alternated); prints both and returns 0, or fails.
int cast_load(const node_process& node, http_client& http, ws_client& ws, int rounds,
              int per_round) {
  auto other = create_session(http, cast_command);
  if (!other) {
    return fail("cast-load session: " + other.err().message);
  }
  // Filled when its marker is in the scrollback.
  deadline d(start_timeout);
  while (true) {
    auto r = http.request("GET", "/v1/sessions/" + other->id + "/scrollback");
    if (r && r->status == 200 && r->body.find("cast-filled") != std::string::npos) {
      break;
    }
    if (d.poll_timeout_ms() == 0) {
      return fail("cast-load: the other session's output did not end in time");
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));  // polling the session, bounded
  }
  side_samples quiet;
  side_samples loaded;
  uint64_t fetched = 0;
  {
    cast_reader reader(node, other->id);
    for (int r = 0; r < rounds; ++r) {
      for (int turn = 0; turn < 2; ++turn) {
        const bool load = (r + turn) % 2 == 1;
        if (load) {
          reader.start();
        }
        const auto before = reader.fetches();
        auto round = troupe_round(ws, per_round);
        reader.pause();
        if (!round) {
          return fail("cast-load round: " + round.err().message);
        }
        (load ? loaded : quiet).add(*round);
        if (load) {
          fetched += reader.fetches() - before;
        }
        std::printf("  %-12s round %d: p50 %7.1f us  p99 %7.1f us  max %8.1f us\n",
                    load ? "cast fetched" : "quiet", r + 1, quantile(*round, 0.5),
                    quantile(*round, 0.99), quantile(*round, 1.0));
      }
    }
    if (reader.failures() > 0) {
      return fail("cast-load: " + std::to_string(reader.failures()) + " recording fetches failed");
    }
  }
  if (auto err = end_session(http, other->id)) {
    std::fprintf(stderr, "pty_echo: ending the cast-load session: %s\n", err->message.c_str());
  }
  std::printf(
      "pty_echo --cast-load: %d echoes per side; %llu recordings fetched during the loaded "
      "rounds\n",
      per_round * rounds, static_cast<unsigned long long>(fetched));
  std::printf("  quiet:        p50 %.1f us, p99 %.1f us, max %.1f us\n",
              quantile(quiet.all_us, 0.5), quantile(quiet.all_us, 0.99),
              quantile(quiet.all_us, 1.0));
  std::printf("  cast fetched: p50 %.1f us, p99 %.1f us, max %.1f us (p99 %.2f x quiet)\n",
              quantile(loaded.all_us, 0.5), quantile(loaded.all_us, 0.99),
              quantile(loaded.all_us, 1.0),
              quantile(loaded.all_us, 0.99) / quantile(quiet.all_us, 0.99));
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  signal(SIGPIPE, SIG_IGN);
  const bool quick = has_flag(argc, argv, "--quick");
  const int echoes = std::max(1, int_flag(argc, argv, "--echoes", quick ? 50 : 5000));
  const int rounds = std::max(1, int_flag(argc, argv, "--rounds", quick ? 2 : 5));
  const int per_round = std::max(1, echoes / rounds);
  // Not measured: first-use costs (allocations, page faults, caches) on both sides.
  const int warmup = quick ? 5 : 100;

  node_process node(pinned_node());
  if (!node.started()) {
    return fail("the node did not start:\n" + node.stderr_text());
  }
  auto http = node_client(node);
  std::string id;
  ws_client ws;
  if (auto err = start_troupe_side(node, http, id, ws)) {
    return fail("troupe side: " + err->message);
  }
  auto bare = start_bare_side();
  if (!bare) {
    return fail("bare side: " + bare.err().message);
  }
  auto warm_troupe = troupe_round(ws, warmup);
  auto warm_bare = bare_round(**bare, warmup);
  if (!warm_troupe || !warm_bare) {
    return fail("warm-up: " + (warm_troupe ? warm_bare.err() : warm_troupe.err()).message);
  }

  side_samples troupe_side;
  side_samples bare_side;
  for (int r = 0; r < rounds; ++r) {
    for (int turn = 0; turn < 2; ++turn) {
      const bool through_node = (r + turn) % 2 == 0;  // alternate which goes first
      auto round = through_node ? troupe_round(ws, per_round) : bare_round(**bare, per_round);
      if (!round) {
        return fail(std::string(through_node ? "troupe" : "bare") + " round " +
                    std::to_string(r + 1) + ": " + round.err().message);
      }
      (through_node ? troupe_side : bare_side).add(*round);
      std::printf("  %-6s round %d: p50 %7.1f us  p99 %7.1f us\n", through_node ? "troupe" : "bare",
                  r + 1, quantile(*round, 0.5), quantile(*round, 0.99));
    }
  }

  // Quick mode (the smoke test) runs it too.
  if (quick || has_flag(argc, argv, "--cast-load")) {
    if (const int failed = cast_load(node, http, ws, rounds, per_round); failed != 0) {
      return failed;
    }
  }

  if (!reap_bare(**bare, true)) {
    std::fprintf(stderr, "pty_echo: the bare child did not end in time\n");
  }
  if (auto err = end_session(http, id)) {
    std::fprintf(stderr, "pty_echo: ending the session: %s\n", err->message.c_str());
  }

  const double t50 = quantile(troupe_side.all_us, 0.5);
  const double t99 = quantile(troupe_side.all_us, 0.99);
  const double b50 = quantile(bare_side.all_us, 0.5);
  const double b99 = quantile(bare_side.all_us, 0.99);
  std::printf(
      "pty_echo: %d one-byte echoes per side in %d alternated rounds; raw-mode cat, 80x24\n",
      per_round * rounds, rounds);
  std::printf("  bare pty: p50 %.1f us, p99 %.1f us (per-round p99 median %.1f, MAD %.1f)\n", b50,
              b99, median(bare_side.round_p99_us), mad(bare_side.round_p99_us));
  std::printf("  troupe:   p50 %.1f us, p99 %.1f us (per-round p99 median %.1f, MAD %.1f)\n", t50,
              t99, median(troupe_side.round_p99_us), mad(troupe_side.round_p99_us));
  std::printf("  bar: troupe p99 <= %.0f us: %s; ratio (bare p99 / troupe p99) %.3f\n", bar_p99_us,
              t99 <= bar_p99_us ? "met" : "NOT met", b99 / t99);
  print_json({"pty_echo", t99, "us_p99", b99, b99 / t99, t50, t99, rounds});
  return 0;
}
