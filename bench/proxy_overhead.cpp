// proxy_overhead: what the LLM gateway adds to a call. 100 concurrent
// clients (closed loop, keep-alive) POST /v1/messages either straight to the
// mock Anthropic upstream or through a Release troupe-node in front of the
// same upstream; alternated, and each repetition's troupe figures compared
// with the direct figures of the same repetition (the median of those
// differences is the result, so a change in the machine's load between
// repetitions cancels out). The node runs with
// `X-Troupe-Cache: bypass`, so every request really goes upstream: this is
// the proxy path, not the cache.
//
// The upstream answers after a fixed delay (default 20 ms): 100 calls stay
// in flight the way 100 agents waiting on a model would, instead of the
// bench measuring which process wins the 2 cores. `--delay-ms 0` measures
// the saturated case too.
//
//   proxy_overhead [--quick] [--clients N] [--seconds S] [--delay-ms D] [--reps R]

#include <signal.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <utility>  // before Asio: its awaitable.hpp uses std::exchange
#include <vector>

#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include "bench/bench_util.hpp"
#include "tests/integration/node_process.hpp"

namespace {

namespace beast = boost::beast;
namespace http = beast::http;
namespace net = boost::asio;
using tcp = net::ip::tcp;
using clock_type = std::chrono::steady_clock;
using troupe::bench::int_flag;
using troupe::bench::quantile;

struct target {
  std::string host;
  std::string port;
  std::vector<std::pair<std::string, std::string>> headers;
};

struct load_result {
  std::vector<double> latencies_us;
  double seconds = 0;
  uint64_t errors = 0;
  double rps() const { return static_cast<double>(latencies_us.size()) / seconds; }
};

/// One client: connect, then request after request until the deadline.
class client : public std::enable_shared_from_this<client> {
 public:
  client(net::io_context& ioc, const target& t, const std::string& body, clock_type::time_point end,
         load_result& out)
      : stream_(ioc), timer_(ioc), target_(t), end_(end), out_(out) {
    request_.method(http::verb::post);
    request_.target("/v1/messages");
    request_.version(11);
    request_.set(http::field::host, t.host);
    request_.set(http::field::content_type, "application/json");
    for (const auto& [k, v] : t.headers) {
      request_.set(k, v);
    }
    request_.body() = body;
    request_.keep_alive(true);
    request_.prepare_payload();
  }

  /// Connects, then waits `stagger` before the first request: clients that
  /// all start together against a fixed-delay upstream would stay in lock
  /// step and arrive as one burst per delay, which no set of agents does.
  void start(const tcp::resolver::results_type& endpoints, std::chrono::microseconds stagger) {
    stream_.async_connect(endpoints, [self = shared_from_this(), stagger](beast::error_code ec,
                                                                          const tcp::endpoint&) {
      if (ec) {
        ++self->out_.errors;
        return;
      }
      self->stream_.socket().set_option(tcp::no_delay(true));
      self->timer_.expires_after(stagger);
      self->timer_.async_wait([self](beast::error_code) { self->send(); });
    });
  }

 private:
  void send() {
    if (clock_type::now() >= end_) {
      return;
    }
    sent_ = clock_type::now();
    http::async_write(stream_, request_, [self = shared_from_this()](beast::error_code ec, size_t) {
      if (ec) {
        ++self->out_.errors;
        return;
      }
      self->response_ = {};
      http::async_read(self->stream_, self->buffer_, self->response_,
                       [self](beast::error_code e, size_t) { self->on_read(e); });
    });
  }

  void on_read(beast::error_code ec) {
    if (ec) {
      ++out_.errors;
      return;
    }
    if (response_.result_int() != 200) {
      ++out_.errors;
    } else {
      out_.latencies_us.push_back(
          std::chrono::duration<double, std::micro>(clock_type::now() - sent_).count());
    }
    send();
  }

  beast::tcp_stream stream_;
  net::steady_timer timer_;
  const target& target_;
  clock_type::time_point end_;
  load_result& out_;
  http::request<http::string_body> request_;
  http::response<http::string_body> response_;
  beast::flat_buffer buffer_;
  clock_type::time_point sent_;
};

load_result drive(const target& t, const std::string& body, int clients, double seconds,
                  std::chrono::milliseconds spread) {
  net::io_context ioc;
  tcp::resolver resolver(ioc);
  const auto endpoints = resolver.resolve(t.host, t.port);
  load_result out;
  // Evenly spread over one upstream delay.
  auto stagger = [&](int i) {
    return std::chrono::microseconds(std::chrono::microseconds(spread).count() * i / clients);
  };
  // A short warm-up (connections, pools, caches), not measured.
  {
    load_result warm;
    const auto end = clock_type::now() + std::chrono::milliseconds(300);
    for (int i = 0; i < clients; ++i) {
      std::make_shared<client>(ioc, t, body, end, warm)->start(endpoints, stagger(i));
    }
    ioc.run();
    ioc.restart();
  }
  const auto begin = clock_type::now();
  const auto end = begin + std::chrono::duration_cast<clock_type::duration>(
                               std::chrono::duration<double>(seconds));
  for (int i = 0; i < clients; ++i) {
    std::make_shared<client>(ioc, t, body, end, out)->start(endpoints, stagger(i));
  }
  ioc.run();
  out.seconds = std::chrono::duration<double>(clock_type::now() - begin).count();
  return out;
}

target target_of(const std::string& url, std::vector<std::pair<std::string, std::string>> headers) {
  const auto rest = url.substr(url.find("://") + 3);
  const auto colon = rest.rfind(':');
  return target{rest.substr(0, colon), rest.substr(colon + 1), std::move(headers)};
}

}  // namespace

int main(int argc, char** argv) {
  signal(SIGPIPE, SIG_IGN);
  const bool quick = troupe::bench::has_flag(argc, argv, "--quick");
  const int clients = int_flag(argc, argv, "--clients", quick ? 10 : 100);
  const int seconds = int_flag(argc, argv, "--seconds", quick ? 1 : 3);
  const int delay_ms = int_flag(argc, argv, "--delay-ms", 20);
  const int reps = int_flag(argc, argv, "--reps", quick ? 1 : 7);

  troupe::test::mock_upstream_process mock(
      {"--threads", "1", "--delay-ms", std::to_string(delay_ms)});
  if (!mock.started()) {
    std::fprintf(stderr, "proxy_overhead: the mock upstream did not start\n");
    return 1;
  }
  troupe::test::node_process node({{},
                                   {{"TROUPE_ANTHROPIC_BASE_URL", mock.url()},
                                    {"ANTHROPIC_API_KEY", "sk-ant-bench"},
                                    {"TROUPE_LOG_LEVEL", "warn"}},
                                   {}});
  if (!node.started()) {
    std::fprintf(stderr, "proxy_overhead: the node did not start:\n%s\n",
                 node.stderr_text().c_str());
    return 1;
  }
  const std::string body =
      R"({"model":"claude-bench","max_tokens":64,"temperature":0,"messages":)"
      R"([{"role":"user","content":"Summarise the supervision tree of this node in one line."}]})";
  const auto direct =
      target_of(mock.url(), {{"x-api-key", "sk-ant-bench"}, {"anthropic-version", "2023-06-01"}});
  const auto proxied = target_of(node.url(), {{"x-api-key", node.token()},
                                              {"anthropic-version", "2023-06-01"},
                                              {"x-troupe-cache", "bypass"}});

  std::vector<double> d50, d99, p50, p99, drps, prps;
  // Every latency of each side over all reps: a second view of p99, from
  // ~7x the samples (it does not cancel load drift between reps, the
  // per-rep differences do).
  std::vector<double> all_direct, all_through;
  uint64_t errors = 0;
  for (int r = 0; r < reps; ++r) {
    for (int side = 0; side < 2; ++side) {
      const bool through = (r + side) % 2 == 1;  // alternate which goes first
      auto res = drive(through ? proxied : direct, body, clients, seconds,
                       std::chrono::milliseconds(delay_ms));
      errors += res.errors;
      (through ? p50 : d50).push_back(quantile(res.latencies_us, 0.5));
      (through ? p99 : d99).push_back(quantile(res.latencies_us, 0.99));
      (through ? prps : drps).push_back(res.rps());
      auto& all = through ? all_through : all_direct;
      all.insert(all.end(), res.latencies_us.begin(), res.latencies_us.end());
      std::printf("  %-8s rep %d: %8.0f req/s  p50 %7.0f us  p99 %7.0f us  errors %llu\n",
                  through ? "troupe" : "direct", r + 1, res.rps(), quantile(res.latencies_us, 0.5),
                  quantile(res.latencies_us, 0.99), static_cast<unsigned long long>(res.errors));
    }
  }
  using troupe::bench::mad;
  using troupe::bench::median;
  auto differences = [](const std::vector<double>& ours, const std::vector<double>& base) {
    std::vector<double> out;
    for (size_t i = 0; i < ours.size(); ++i) {
      out.push_back(ours[i] - base[i]);
    }
    return out;
  };
  const auto added50s = differences(p50, d50);
  const auto added99s = differences(p99, d99);
  const double added50 = median(added50s);
  const double added99 = median(added99s);
  std::printf("proxy_overhead: %d clients, upstream delay %d ms, %d reps of %d s per side\n",
              clients, delay_ms, reps, seconds);
  std::printf("  direct: %.0f req/s, p50 %.0f us, p99 %.0f us\n", median(drps), median(d50),
              median(d99));
  std::printf("  troupe: %.0f req/s, p50 %.0f us, p99 %.0f us\n", median(prps), median(p50),
              median(p99));
  std::printf(
      "  added (median of the reps' differences, MAD):  p50 %.0f us (%.0f), p99 %.0f us "
      "(%.0f) (bar: p99 <= 1000 us)\n",
      added50, mad(added50s), added99, mad(added99s));
  std::printf("  added (all reps' samples pooled):              p50 %.0f us, p99 %.0f us\n",
              quantile(all_through, 0.5) - quantile(all_direct, 0.5),
              quantile(all_through, 0.99) - quantile(all_direct, 0.99));
  if (errors != 0) {
    std::fprintf(stderr, "proxy_overhead: %llu failed requests\n",
                 static_cast<unsigned long long>(errors));
    return 1;
  }
  troupe::bench::print_json({"proxy_overhead", added99, "us added p99", median(d99),
                             median(prps) / median(drps), added50, added99, reps});
  return 0;
}
