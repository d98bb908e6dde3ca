#include "runtime/metrics/metrics.hpp"

#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <limits>
#include <thread>
#include <vector>

using namespace troupe;

TEST_CASE("render prints families sorted by name with HELP and TYPE once", "[metrics]") {
  metrics_registry reg;
  reg.gauge("troupe_sessions_open", "Open PTY sessions.").set(3);
  reg.counter("troupe_cache_requests_total", "Cache lookups.", {{"result", "miss"}}).inc();
  reg.counter("troupe_cache_requests_total", "Cache lookups.", {{"result", "hit"}}).inc(41);
  reg.gauge_fn("troupe_uptime_seconds", "Seconds since start.", [] { return 12.5; });

  CHECK(reg.render() ==
        "# HELP troupe_cache_requests_total Cache lookups.\n"
        "# TYPE troupe_cache_requests_total counter\n"
        "troupe_cache_requests_total{result=\"hit\"} 41\n"
        "troupe_cache_requests_total{result=\"miss\"} 1\n"
        "# HELP troupe_sessions_open Open PTY sessions.\n"
        "# TYPE troupe_sessions_open gauge\n"
        "troupe_sessions_open 3\n"
        "# HELP troupe_uptime_seconds Seconds since start.\n"
        "# TYPE troupe_uptime_seconds gauge\n"
        "troupe_uptime_seconds 12.5\n");
}

TEST_CASE("label values and help are escaped", "[metrics]") {
  metrics_registry reg;
  reg.counter("x_total", "back\\slash \"quoted\"\nsecond line", {{"path", "a\\b\"c\"\nd"}}).inc();

  CHECK(reg.render() ==
        "# HELP x_total back\\\\slash \"quoted\"\\nsecond line\n"
        "# TYPE x_total counter\n"
        "x_total{path=\"a\\\\b\\\"c\\\"\\nd\"} 1\n");
}

TEST_CASE("labels are keyed and rendered sorted by name", "[metrics]") {
  metrics_registry reg;
  counter& a = reg.counter("req_total", "h", {{"route", "/v1"}, {"code", "200"}});
  counter& b = reg.counter("req_total", "h", {{"code", "200"}, {"route", "/v1"}});
  CHECK(&a == &b);
  a.inc();
  CHECK(reg.render() ==
        "# HELP req_total h\n"
        "# TYPE req_total counter\n"
        "req_total{code=\"200\",route=\"/v1\"} 1\n");
}

TEST_CASE("get-or-create returns the same object for the same series", "[metrics]") {
  metrics_registry reg;
  CHECK(&reg.counter("c_total", "h") == &reg.counter("c_total", "h"));
  CHECK(&reg.counter("c_total", "h", {{"k", "1"}}) != &reg.counter("c_total", "h", {{"k", "2"}}));
  CHECK(&reg.gauge("g", "h") == &reg.gauge("g", "h"));
  auto bounds = std::vector<double>{1, 2};
  CHECK(&reg.histogram("h_seconds", "h", bounds) == &reg.histogram("h_seconds", "h", bounds));
}

TEST_CASE("histogram buckets are cumulative with +Inf, sum and count", "[metrics]") {
  metrics_registry reg;
  histogram& h = reg.histogram("rpc_seconds", "RPC latency.", {0.005, 0.25, 1}, {{"m", "get"}});
  h.observe(0.001);
  h.observe(0.005);  // on a bound: counted in that bucket (le is inclusive)
  h.observe(0.1);
  h.observe(3);
  h.observe(2.5);

  CHECK(h.count() == 5);
  CHECK(reg.render() ==
        "# HELP rpc_seconds RPC latency.\n"
        "# TYPE rpc_seconds histogram\n"
        "rpc_seconds_bucket{m=\"get\",le=\"0.005\"} 2\n"
        "rpc_seconds_bucket{m=\"get\",le=\"0.25\"} 3\n"
        "rpc_seconds_bucket{m=\"get\",le=\"1\"} 3\n"
        "rpc_seconds_bucket{m=\"get\",le=\"+Inf\"} 5\n"
        "rpc_seconds_sum{m=\"get\"} 5.606\n"
        "rpc_seconds_count{m=\"get\"} 5\n");
}

TEST_CASE("unlabelled histogram renders le as its only label", "[metrics]") {
  metrics_registry reg;
  reg.histogram("size_bytes", "Sizes.", {1024}).observe(100);
  CHECK(reg.render() ==
        "# HELP size_bytes Sizes.\n"
        "# TYPE size_bytes histogram\n"
        "size_bytes_bucket{le=\"1024\"} 1\n"
        "size_bytes_bucket{le=\"+Inf\"} 1\n"
        "size_bytes_sum 100\n"
        "size_bytes_count 1\n");
}

TEST_CASE("NaN observation lands in the overflow bucket", "[metrics]") {
  histogram h({1, 2});
  h.observe(std::numeric_limits<double>::quiet_NaN());
  CHECK(h.bucket_count(0) == 0);
  CHECK(h.bucket_count(2) == 1);
}

TEST_CASE("numbers render without locale, exponent on integers, or lost precision", "[metrics]") {
  metrics_registry reg;
  reg.gauge("a", "").set(-2);
  reg.gauge("b", "").set(1e15);
  reg.gauge("c", "").set(0.1);
  reg.gauge("d", "").set(std::numeric_limits<double>::infinity());
  reg.gauge("e", "").set(-std::numeric_limits<double>::infinity());
  reg.gauge("f", "").set(std::nan(""));
  reg.gauge("g", "").set(1e300);
  reg.counter("h_total", "").inc(18446744073709551615ULL);
  std::string text = reg.render();
  CHECK_THAT(text, Catch::Contains("\na -2\n"));
  CHECK_THAT(text, Catch::Contains("\nb 1000000000000000\n"));
  CHECK_THAT(text, Catch::Contains("\nc 0.1\n"));
  CHECK_THAT(text, Catch::Contains("\nd +Inf\n"));
  CHECK_THAT(text, Catch::Contains("\ne -Inf\n"));
  CHECK_THAT(text, Catch::Contains("\nf NaN\n"));
  CHECK_THAT(text, Catch::Contains("\ng 1e+300\n"));
  CHECK_THAT(text, Catch::Contains("\nh_total 18446744073709551615\n"));
}

TEST_CASE("gauge add and set, gauge_fn is read at render time and replaceable", "[metrics]") {
  metrics_registry reg;
  gauge& g = reg.gauge("depth", "h");
  g.add(5);
  g.add(-2);
  CHECK(g.value() == 3);
  double owned = 1;
  reg.gauge_fn("owned", "h", [&owned] { return owned; });
  owned = 7;
  CHECK_THAT(reg.render(), Catch::Contains("\nowned 7\n"));
  reg.gauge_fn("owned", "h", [] { return 9.0; });
  CHECK_THAT(reg.render(), Catch::Contains("\nowned 9\n"));
}

TEST_CASE("concurrent increments and observations sum exactly", "[metrics]") {
  metrics_registry reg;
  constexpr int threads_n = 4;
  constexpr int per_thread_n = 100000;
  std::vector<std::thread> threads;
  for (int t = 0; t < threads_n; ++t) {
    threads.emplace_back([&reg] {
      // Lookup per thread races creation too: all must get the same objects.
      counter& c = reg.counter("hits_total", "h");
      histogram& h = reg.histogram("lat_seconds", "h", latency_buckets_s());
      for (int i = 0; i < per_thread_n; ++i) {
        c.inc();
        h.observe(0.001);
      }
    });
  }
  for (auto& t : threads) {
    t.join();
  }
  CHECK(reg.counter("hits_total", "h").value() == uint64_t{threads_n} * per_thread_n);
  CHECK(reg.histogram("lat_seconds", "h", latency_buckets_s()).count() ==
        uint64_t{threads_n} * per_thread_n);
}

TEST_CASE("latency buckets strictly increase from 50us to 10s", "[metrics]") {
  auto b = latency_buckets_s();
  REQUIRE(b.size() > 10);
  CHECK(b.front() == 0.00005);
  CHECK(b.back() == 10.0);
  CHECK(std::is_sorted(b.begin(), b.end()));
  CHECK(std::adjacent_find(b.begin(), b.end()) == b.end());
}

TEST_CASE("name validation follows the Prometheus grammar", "[metrics]") {
  CHECK(is_valid_metric_name("troupe:cache_hits_total"));
  CHECK(is_valid_metric_name("_x9"));
  CHECK_FALSE(is_valid_metric_name(""));
  CHECK_FALSE(is_valid_metric_name("9x"));
  CHECK_FALSE(is_valid_metric_name("a-b"));
  CHECK(is_valid_label_name("route_2"));
  CHECK_FALSE(is_valid_label_name("a:b"));
  CHECK_FALSE(is_valid_label_name("__reserved"));
  CHECK_FALSE(is_valid_label_name("1a"));
}
