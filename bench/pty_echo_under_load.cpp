// pty_echo_under_load: does a terminal wait for LLM answers? Keystroke echo
// through an attached WebSocket (as in pty_echo) while 50 clients stream
// long LLM answers (1 MiB of text each, about 8 MiB of SSE events in the
// mock's 16-byte deltas) through the same node, with the response cache
// bypassed so every byte comes from the mock upstream.
//
// Baseline, same run: the same clients stream the same answers straight from
// the mock while the same echo goes through the node. The machine carries
// the same streams (the mock writes them, the clients read them), only none
// of it passes through the node. Runs alternate: control, node, node,
// control, ... (--runs pairs). Reported: echo p50/p99 of each side (the mean
// over its runs) and their ratios, and the rate at which the clients receive
// stream bytes through the node against straight from the mock.
//
// Bars (issue: one message contract): echo p50 and p99 each <= 1.5 x the
// control's; big-stream throughput through the node >= 0.8 x direct. The
// throughput is what each client gets (bytes over the time from its request
// to the stream's last byte, for the streams that ended in the window) times
// the clients.
//
// --floor adds a third side: the same clients stream through a bare TCP
// relay in this process (one thread, each 64 KiB read written on as it is,
// no HTTP, no parsing) instead of the node. That is the least any gateway
// that reads the bytes costs this machine, so the node's figures can be read
// against it. Runs then go control, node, floor, floor, node, control, ...
//
//   pty_echo_under_load [--quick] [--clients N] [--seconds S] [--runs PAIRS]
//                       [--answer-bytes N] [--floor]

#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cstdio>
#include <cstring>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <utility>  // before Asio: its awaitable.hpp uses std::exchange
#include <vector>

#include <boost/asio.hpp>

#include "bench/bench_util.hpp"
#include "bench/pty_bench.hpp"

namespace {

using namespace troupe;
using namespace troupe::bench;
using test::node_process;
namespace net = boost::asio;
using tcp = net::ip::tcp;

constexpr std::string_view ready_marker = "troupe-ready";
/// Raw-mode cat with the terminal's echo off: each byte comes back once
/// (see pty_echo.cpp).
const std::vector<std::string> echo_command{"/bin/sh", "-c",
                                            "stty raw -echo; printf troupe-ready; exec cat"};
constexpr std::chrono::seconds start_timeout{10};
/// A run's echoes must be back within this.
constexpr std::chrono::seconds run_timeout{120};
/// Bytes per client received before the first measured echo.
constexpr uint64_t flowing_bytes_per_client = 256u << 10;
/// Between keystrokes: a fast typist's pace, many samples per run.
constexpr std::chrono::microseconds keystroke_gap{2000};
constexpr double bar_echo_ratio = 1.5;
constexpr double bar_throughput_ratio = 0.8;
/// What each client's read takes at most.
constexpr size_t read_chunk = 64u << 10;
/// Kept from the end of each stream, to check it ended properly.
constexpr size_t tail_keep = 512;

struct endpoint_ref {
  std::string host;
  std::string port;
};

endpoint_ref endpoint_of(const std::string& url) {
  const auto rest = url.substr(url.find("://") + 3);
  const auto colon = rest.rfind(':');
  return {rest.substr(0, colon), rest.substr(colon + 1)};
}

/// What the load clients share with the bench's main thread.
struct load_stats {
  std::atomic<uint64_t> bytes{0};
  std::atomic<uint64_t> streams_done{0};
  /// Bytes and nanoseconds (request sent to last byte) of the streams that
  /// ended whole: the rate each client gets, free of when the window falls.
  std::atomic<uint64_t> done_bytes{0};
  std::atomic<uint64_t> done_ns{0};
  std::atomic<uint64_t> streams_started{0};
  std::atomic<uint64_t> errors{0};
  std::atomic<bool> stop{false};
  /// The first failure, for the report (written once, under errors == 1).
  std::string first_error;
};

/// One streaming client: POST /v1/messages with stream:true, read the whole
/// chunked body (counting bytes, checking it ends with message_stop and the
/// last chunk), then again on a new connection, until told to stop. The
/// request says `Connection: close`, so any answer, an error too, ends.
class stream_client : public std::enable_shared_from_this<stream_client> {
 public:
  stream_client(net::io_context& ioc, tcp::resolver::results_type endpoints, std::string request,
                load_stats& stats)
      : socket_(ioc),
        endpoints_(std::move(endpoints)),
        request_(std::move(request)),
        stats_(stats),
        buffer_(read_chunk) {}

  void start() {
    if (stats_.stop.load()) {
      return;
    }
    head_.clear();
    tail_.clear();
    boost::system::error_code ignored;  // a socket already closed is fine here
    socket_.close(ignored);
    net::async_connect(
        socket_, endpoints_,
        [self = shared_from_this()](boost::system::error_code ec, const tcp::endpoint&) {
          if (ec) {
            return self->fail("connect: " + ec.message());
          }
          self->send();
        });
  }

 private:
  void send() {
    stats_.streams_started.fetch_add(1);
    sent_at_ = std::chrono::steady_clock::now();
    stream_bytes_ = 0;
    net::async_write(socket_, net::buffer(request_),
                     [self = shared_from_this()](boost::system::error_code ec, size_t) {
                       if (ec) {
                         return self->fail("write: " + ec.message());
                       }
                       self->read();
                     });
  }

  void read() {
    socket_.async_read_some(net::buffer(buffer_),
                            [self = shared_from_this()](boost::system::error_code ec, size_t n) {
                              self->on_read(ec, n);
                            });
  }

  void on_read(boost::system::error_code ec, size_t n) {
    if (n > 0) {
      stats_.bytes.fetch_add(n, std::memory_order_relaxed);
      stream_bytes_ += n;
      const std::string_view got(buffer_.data(), n);
      if (head_.size() < 16) {
        head_.append(got.substr(0, 16 - head_.size()));
      }
      tail_.append(got);
      if (tail_.size() > tail_keep) {
        tail_.erase(0, tail_.size() - tail_keep);
      }
    }
    if (ended()) {
      if (!head_.starts_with("HTTP/1.1 200") || tail_.find("message_stop") == std::string::npos) {
        return fail("a stream that did not end with message_stop: " + head_ + " ... " + tail_);
      }
      stats_.streams_done.fetch_add(1);
      stats_.done_bytes.fetch_add(stream_bytes_);
      stats_.done_ns.fetch_add(
          static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                    std::chrono::steady_clock::now() - sent_at_)
                                    .count()));
      return start();
    }
    if (ec) {
      return fail("read: " + ec.message() + " after " + head_ + " ... " + tail_);
    }
    read();
  }

  /// The last chunk of a chunked body arrived.
  [[nodiscard]] bool ended() const { return tail_.ends_with("\r\n0\r\n\r\n"); }

  void fail(std::string why) {
    if (stats_.errors.fetch_add(1) == 0) {
      stats_.first_error = std::move(why);
    }
    start();  // keep the load going; the errors fail the bench at the end
  }

  tcp::socket socket_;
  tcp::resolver::results_type endpoints_;
  std::string request_;
  load_stats& stats_;
  std::vector<char> buffer_;
  std::string head_;
  std::string tail_;
  std::chrono::steady_clock::time_point sent_at_;
  uint64_t stream_bytes_ = 0;
};

std::string stream_request(const endpoint_ref& to,
                           const std::vector<std::pair<std::string, std::string>>& headers) {
  const std::string body = R"({"model":"claude-bench","max_tokens":64000,"stream":true,"messages":)"
                           R"([{"role":"user","content":"Write the longest story you can."}]})";
  std::string r = "POST /v1/messages HTTP/1.1\r\nHost: " + to.host + ":" + to.port +
                  "\r\nContent-Type: application/json\r\nAccept: text/event-stream\r\n"
                  "Connection: close\r\n";
  for (const auto& [k, v] : headers) {
    r += k + ": " + v + "\r\n";
  }
  r += "Content-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body;
  return r;
}

/// `clients` streaming clients against `to` on one thread of this process,
/// until stop().
class load {
 public:
  load(const endpoint_ref& to, const std::vector<std::pair<std::string, std::string>>& headers,
       int clients) {
    tcp::resolver resolver(ioc_);
    const auto endpoints = resolver.resolve(to.host, to.port);
    const auto request = stream_request(to, headers);
    for (int i = 0; i < clients; ++i) {
      std::make_shared<stream_client>(ioc_, endpoints, request, stats_)->start();
    }
    thread_ = std::thread([this] { ioc_.run(); });
  }
  ~load() { stop(); }
  load(const load&) = delete;
  load& operator=(const load&) = delete;

  void stop() {
    if (thread_.joinable()) {
      stats_.stop.store(true);
      ioc_.stop();
      thread_.join();
    }
  }

  load_stats& stats() { return stats_; }

 private:
  net::io_context ioc_{1};
  load_stats stats_;
  std::thread thread_;
};

/// The floor side's relay: accepts on a free loopback port and pipes each
/// connection to `to` and back, one thread for all, each read of up to
/// read_chunk written whole before the next read. A side that ends or fails
/// closes both.
class bare_relay {
 public:
  explicit bare_relay(const endpoint_ref& to)
      : acceptor_(ioc_, tcp::endpoint(net::ip::make_address("127.0.0.1"), 0)),
        target_(*tcp::resolver(ioc_).resolve(to.host, to.port).begin()) {
    accept();
    thread_ = std::thread([this] { ioc_.run(); });
  }
  ~bare_relay() {
    ioc_.stop();
    thread_.join();
  }
  bare_relay(const bare_relay&) = delete;
  bare_relay& operator=(const bare_relay&) = delete;

  [[nodiscard]] endpoint_ref endpoint() const {
    return {"127.0.0.1", std::to_string(acceptor_.local_endpoint().port())};
  }

 private:
  /// One relayed connection: [0] the client's socket, [1] the upstream's.
  struct link : std::enable_shared_from_this<link> {
    explicit link(net::io_context& ioc) : sockets{tcp::socket(ioc), tcp::socket(ioc)} {}

    /// Moves bytes from sockets[from] to the other one, read by read.
    void pump(int from) {
      sockets[from].async_read_some(
          net::buffer(buffers[from]),
          [self = shared_from_this(), from](boost::system::error_code ec, size_t n) {
            if (ec) {
              return self->close();
            }
            net::async_write(self->sockets[1 - from], net::buffer(self->buffers[from].data(), n),
                             [self, from](boost::system::error_code wec, size_t) {
                               if (wec) {
                                 return self->close();
                               }
                               self->pump(from);
                             });
          });
    }

    void close() {
      boost::system::error_code ignored;  // either may be closed already
      sockets[0].close(ignored);
      sockets[1].close(ignored);
    }

    std::array<tcp::socket, 2> sockets;
    std::array<std::vector<char>, 2> buffers{std::vector<char>(read_chunk),
                                             std::vector<char>(read_chunk)};
  };

  void accept() {
    auto l = std::make_shared<link>(ioc_);
    acceptor_.async_accept(l->sockets[0], [this, l](boost::system::error_code ec) {
      if (ec) {
        return;  // the relay is stopping
      }
      l->sockets[1].async_connect(target_, [l](boost::system::error_code cec) {
        if (cec) {
          return l->close();  // the client sees its stream fail
        }
        l->pump(0);
        l->pump(1);
      });
      accept();
    });
  }

  net::io_context ioc_{1};
  tcp::acceptor acceptor_;
  tcp::endpoint target_;
  std::thread thread_;
};

/// Echoes through the attached viewer, one keystroke every `gap` (a fast
/// typist), for `length` or at least `count_min` echoes; round trips in us.
expected<std::vector<double>> echoes(ws_client& ws, std::chrono::milliseconds length, int count_min,
                                     std::chrono::microseconds gap) {
  deadline d(run_timeout);
  const auto until = clock_type::now() + length;
  std::vector<double> rtt_us;
  for (int i = 0; i < count_min || clock_type::now() < until; ++i) {
    auto us = viewer_echo(ws, static_cast<char>('a' + i % 26), d);
    if (!us) {
      return std::move(us).err();
    }
    rtt_us.push_back(*us);
    std::this_thread::sleep_for(gap);  // pacing the keystrokes, not waiting on the node
  }
  return rtt_us;
}

/// Waits (bounded) until the clients received flowing_bytes_per_client
/// each on average; false on a stream error or at the deadline.
bool wait_flowing(const load_stats& stats, int clients) {
  const auto until = clock_type::now() + start_timeout;
  const uint64_t want = flowing_bytes_per_client * static_cast<uint64_t>(clients);
  while (stats.bytes.load() < want) {
    if (stats.errors.load() > 0 || clock_type::now() >= until) {
      return false;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(2));  // polling a count, not a delay
  }
  return true;
}

struct run_result {
  double echo_p50 = 0;
  double echo_p99 = 0;
  double mib_per_s = 0;
  uint64_t streams_done = 0;
};

int fail(const std::string& what) {
  std::fprintf(stderr, "pty_echo_under_load: %s\n", what.c_str());
  return 1;
}

/// Who the load clients stream through.
enum class side { control, node, floor };

struct side_spec {
  std::string name;
  endpoint_ref to;
  std::vector<std::pair<std::string, std::string>> headers;
  /// For messages: "the streams did not start <path>".
  std::string path;
};

struct side_samples {
  std::vector<double> p50;
  std::vector<double> p99;
  std::vector<double> rate;
};

/// Pair `p`'s runs: control and node alternate (control, node, node,
/// control, ...); the floor, when measured, sits at the far end from the
/// control (control, node, floor, floor, node, control, ...).
std::vector<side> run_order(int p, bool floor) {
  std::vector<side> order{side::control, side::node};
  if (floor) {
    order.push_back(side::floor);
  }
  if (p % 2 == 1) {
    std::reverse(order.begin(), order.end());
  }
  return order;
}

double mean(const std::vector<double>& v) {
  double sum = 0;
  for (double x : v) {
    sum += x;
  }
  return v.empty() ? 0 : sum / static_cast<double>(v.size());
}

}  // namespace

int main(int argc, char** argv) {
  signal(SIGPIPE, SIG_IGN);
  const bool quick = has_flag(argc, argv, "--quick");
  const int clients = std::max(1, int_flag(argc, argv, "--clients", quick ? 4 : 50));
  const int seconds = std::max(1, int_flag(argc, argv, "--seconds", quick ? 1 : 6));
  const int pairs = std::max(1, int_flag(argc, argv, "--runs", quick ? 1 : 2));
  const int answer_bytes = int_flag(argc, argv, "--answer-bytes", quick ? 64 << 10 : 1 << 20);
  // Quick mode (the smoke test) runs every side.
  const bool floor = quick || has_flag(argc, argv, "--floor");

  test::mock_upstream_process mock(
      {"--threads", "1", "--answer-bytes", std::to_string(answer_bytes)});
  if (!mock.started()) {
    return fail("the mock upstream did not start");
  }
  auto opts = pinned_node();
  opts.env["TROUPE_ANTHROPIC_BASE_URL"] = mock.url();
  opts.env["ANTHROPIC_API_KEY"] = "sk-ant-bench";
  // The mock builds a whole answer before its first byte, on one thread:
  // with 50 requests at once the last head comes seconds late, and the
  // model's breaker would (rightly) call the upstream slow and open. What
  // is measured here is the relay, not the mock's start-up latency.
  opts.env["TROUPE_BREAKER_SLOW_CALL_MS"] = "600000";
  node_process node(opts);
  if (!node.started()) {
    return fail("the node did not start:\n" + node.stderr_text());
  }
  auto http = node_client(node);
  auto session = create_session(http, echo_command);
  if (!session) {
    return fail("session: " + session.err().message);
  }
  ws_client ws;
  if (auto err = attach(ws, node, session->id)) {
    return fail("attach: " + err->message);
  }
  {
    deadline d(start_timeout);
    auto rest = viewer_read_past(ws, ready_marker, d);
    if (!rest || !rest->empty()) {
      return fail("the echo program did not start: " +
                  (rest ? "output after the marker: " + *rest : rest.err().message));
    }
  }
  if (auto warm = echoes(ws, std::chrono::milliseconds(0), 20, keystroke_gap); !warm) {
    return fail("warm-up: " + warm.err().message);
  }

  const auto direct_to = endpoint_of(mock.url());
  const auto node_to = endpoint_of(node.url());
  const std::vector<std::pair<std::string, std::string>> direct_headers{
      {"x-api-key", "sk-ant-bench"}, {"anthropic-version", "2023-06-01"}};
  const std::vector<std::pair<std::string, std::string>> node_headers{
      {"x-api-key", node.token()},
      {"anthropic-version", "2023-06-01"},
      {"x-troupe-cache", "bypass"}};

  std::optional<bare_relay> relay;
  if (floor) {
    relay.emplace(direct_to);
  }
  const std::array<side_spec, 3> specs{
      side_spec{"control", direct_to, direct_headers, "from the mock"},
      side_spec{"node", node_to, node_headers, "through the node"},
      side_spec{"floor", relay ? relay->endpoint() : direct_to, direct_headers,
                "through the bare relay"}};
  std::array<side_samples, 3> samples;
  std::vector<double> node_cpu_per_mib;
  for (int p = 0; p < pairs; ++p) {
    for (const side which : run_order(p, floor)) {
      const auto& spec = specs[static_cast<size_t>(which)];
      const bool through = which == side::node;
      load l(spec.to, spec.headers, clients);
      // Measure once every client's stream is flowing.
      if (!wait_flowing(l.stats(), clients)) {
        return fail("the streams did not start " + spec.path + ": " + l.stats().first_error);
      }
      const uint64_t bytes0 = l.stats().bytes.load();
      const uint64_t done_bytes0 = l.stats().done_bytes.load();
      const uint64_t done_ns0 = l.stats().done_ns.load();
      const auto t0 = clock_type::now();
      const double cpu0 = cpu_seconds(node.pid());
      auto rtt = echoes(ws, std::chrono::seconds(seconds), 1, keystroke_gap);
      const double seconds = seconds_since(t0);
      const uint64_t bytes1 = l.stats().bytes.load();
      const double node_cpu = cpu_seconds(node.pid()) - cpu0;
      const uint64_t done_bytes = l.stats().done_bytes.load() - done_bytes0;
      const uint64_t done_ns = l.stats().done_ns.load() - done_ns0;
      l.stop();
      if (!rtt) {
        return fail(spec.name + " run: " + rtt.err().message);
      }
      if (l.stats().errors.load() > 0) {
        const auto log = node.stderr_text();
        return fail(std::to_string(l.stats().errors.load()) + " stream errors " + spec.path +
                    "; the first: " + l.stats().first_error + "\nthe node's log ends:\n" +
                    log.substr(log.size() > 4000 ? log.size() - 4000 : 0));
      }
      // The rate: each client always has one stream going, so the clients
      // together get `clients` x (bytes / time) of the streams that ended in
      // the window. (The bytes that arrived in the window say less: the mock
      // writes each wave of answers in a burst, and a window holds two or
      // three bursts depending on where it falls.)
      const double window_rate = static_cast<double>(bytes1 - bytes0) / seconds / (1 << 20);
      const double stream_rate = done_ns == 0
                                     ? window_rate
                                     : clients * static_cast<double>(done_bytes) /
                                           (static_cast<double>(done_ns) / 1e9) / (1 << 20);
      run_result r{quantile(*rtt, 0.5), quantile(*rtt, 0.99), stream_rate,
                   l.stats().streams_done.load()};
      auto& got = samples[static_cast<size_t>(which)];
      got.p50.push_back(r.echo_p50);
      got.p99.push_back(r.echo_p99);
      got.rate.push_back(r.mib_per_s);
      // What relaying costs the node: its CPU time per MiB the clients got
      // through it in the window (the echo's own share is small: see the
      // control's figure, which is the node's CPU per second with no relay).
      const double window_mib = static_cast<double>(bytes1 - bytes0) / (1 << 20);
      if (through && window_mib > 0) {
        node_cpu_per_mib.push_back(node_cpu * 1000 / window_mib);
      }
      std::printf(
          "  %-7s run %d: echo p50 %8.1f us  p99 %8.1f us  streams %7.1f MiB/s (%llu done; "
          "bytes in the window %.1f MiB/s); node CPU %.2f s in %.1f s\n",
          spec.name.c_str(), p + 1, r.echo_p50, r.echo_p99, r.mib_per_s,
          static_cast<unsigned long long>(r.streams_done), window_rate, node_cpu, seconds);
    }
  }
  if (auto err = end_session(http, session->id)) {
    std::fprintf(stderr, "pty_echo_under_load: ending the session: %s\n", err->message.c_str());
  }

  const auto& c = samples[static_cast<size_t>(side::control)];
  const auto& n = samples[static_cast<size_t>(side::node)];
  const double p50_ratio = mean(n.p50) / mean(c.p50);
  const double p99_ratio = mean(n.p99) / mean(c.p99);
  const double rate_ratio = mean(n.rate) / mean(c.rate);
  std::printf(
      "pty_echo_under_load: %d s of keystrokes per run, %d clients streaming %d-byte answers, %d "
      "runs per side\n",
      seconds, clients, answer_bytes, pairs);
  std::printf("  echo p50: node %.1f us, control %.1f us: %.2f x (bar <= %.1f: %s)\n", mean(n.p50),
              mean(c.p50), p50_ratio, bar_echo_ratio,
              p50_ratio <= bar_echo_ratio ? "met" : "NOT met");
  std::printf("  echo p99: node %.1f us, control %.1f us: %.2f x (bar <= %.1f: %s)\n", mean(n.p99),
              mean(c.p99), p99_ratio, bar_echo_ratio,
              p99_ratio <= bar_echo_ratio ? "met" : "NOT met");
  std::printf("  streams: node %.1f MiB/s, direct %.1f MiB/s: %.2f x (bar >= %.1f: %s)\n",
              mean(n.rate), mean(c.rate), rate_ratio, bar_throughput_ratio,
              rate_ratio >= bar_throughput_ratio ? "met" : "NOT met");
  std::printf("  relay cost: %.2f ms of node CPU per MiB through it (mean of %zu runs)\n",
              mean(node_cpu_per_mib), node_cpu_per_mib.size());
  if (floor) {
    const auto& f = samples[static_cast<size_t>(side::floor)];
    std::printf(
        "  floor (bare relay): echo p50 %.1f us (%.2f x control), p99 %.1f us (%.2f x control), "
        "streams %.1f MiB/s (%.2f x direct); the node against it: p99 %.2f x, streams %.2f x\n",
        mean(f.p50), mean(f.p50) / mean(c.p50), mean(f.p99), mean(f.p99) / mean(c.p99),
        mean(f.rate), mean(f.rate) / mean(c.rate), mean(n.p99) / mean(f.p99),
        mean(n.rate) / mean(f.rate));
  }
  print_json({"pty_echo_under_load", mean(n.p99), "us_p99", mean(c.p99), mean(c.p99) / mean(n.p99),
              mean(n.p50), mean(n.p99), pairs * 2});
  return 0;
}
