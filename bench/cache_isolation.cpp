// cache_isolation: the cache's blocking work (RocksDB reads, re-hashing a
// dependency on every hit) stays off the CAF scheduler threads. Measured on
// a Release troupe-node: the round trip of `sys.ping` (the `sys` actor runs
// on the scheduler, and so does the gateway actor in front of it) while the
// node is idle (baseline) and while two clients keep every cache shard busy
// re-hashing an 8 MiB dependency on each GET, alternated. Were a shard on a
// scheduler thread, a ping queued behind it would wait a whole hash (the
// GET latency printed below); on detached shards it waits for a core, not
// for the hash. Run once per cache.shard_policy ("normal": the shard threads
// share the CPU evenly; "idle": SCHED_IDLE). Ratio: idle p99 / loaded p99.
//
//   cache_isolation [--quick]

#include <atomic>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "client/http_client.hpp"
#include "bench/bench_util.hpp"
#include "tests/integration/node_process.hpp"

using namespace troupe;
using namespace troupe::test;
using troupe::bench::quantile;
using clock_type = std::chrono::steady_clock;

namespace {

constexpr int keys = 8;
constexpr size_t dep_bytes = 8u << 20;

http_client client_of(const node_process& node) {
  auto url = parse_node_url(node.url());
  if (!url) {
    std::fprintf(stderr, "bad node url %s\n", node.url().c_str());
    std::exit(1);
  }
  return http_client(*url, node.token(), 30000);
}

struct phase {
  std::vector<double> ping_us;
  std::vector<double> get_us;
  uint64_t errors = 0;
};

/// Pings `sys` one at a time, 1 ms apart, for `seconds`; with `loaded`, two
/// more clients GET the dependent keys back to back meanwhile.
phase run_phase(const node_process& node, double seconds, bool loaded) {
  phase out;
  std::atomic<bool> stop{false};
  std::vector<std::thread> loaders;
  std::vector<std::vector<double>> gets(2);
  std::atomic<uint64_t> errors{0};
  if (loaded) {
    for (int t = 0; t < 2; ++t) {
      loaders.emplace_back([&, t] {
        auto http = client_of(node);
        for (int i = t; !stop.load(); ++i) {
          const auto t0 = clock_type::now();
          auto r = http.request("GET", "/v1/cache/iso-" + std::to_string(i % keys), "", "");
          if (!r || r->status != 200) {
            errors.fetch_add(1);
            continue;
          }
          gets[t].push_back(
              std::chrono::duration<double, std::micro>(clock_type::now() - t0).count());
        }
      });
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(200));  // let the load build up
  }
  auto http = client_of(node);
  const std::string ping = R"({"type": "sys.ping", "body": {}})";
  const auto end = clock_type::now() + std::chrono::duration<double>(seconds);
  while (clock_type::now() < end) {
    const auto t0 = clock_type::now();
    auto r = http.request("POST", "/v1/actors/sys/messages", ping, "application/json");
    const double us = std::chrono::duration<double, std::micro>(clock_type::now() - t0).count();
    if (!r || r->status != 200) {
      errors.fetch_add(1);
    } else {
      out.ping_us.push_back(us);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  stop = true;
  for (auto& l : loaders) {
    l.join();
  }
  for (auto& g : gets) {
    out.get_us.insert(out.get_us.end(), g.begin(), g.end());
  }
  out.errors = errors.load();
  return out;
}

struct policy_result {
  std::vector<double> idle_ping;
  std::vector<double> loaded_ping;
  std::vector<double> loaded_get;
};

/// One node with the shards under `policy`; idle and loaded phases alternated.
policy_result measure(const std::string& policy, const std::string& dep, double seconds, int reps) {
  node_process::options o;
  o.env["TROUPE_LOG_LEVEL"] = "error";
  o.env["TROUPE_CACHE_SHARD_POLICY"] = policy;
  node_process node(o);
  if (!node.started()) {
    std::fprintf(stderr, "node did not start:\n%s\n", node.stderr_text().c_str());
    std::exit(1);
  }
  auto http = client_of(node);
  for (int i = 0; i < keys; ++i) {
    auto r = http.request("PUT", "/v1/cache/iso-" + std::to_string(i) + "?dep=" + dep, "value",
                          "application/octet-stream");
    if (!r || r->status != 200) {
      std::fprintf(stderr, "put failed\n");
      std::exit(1);
    }
  }
  policy_result out;
  uint64_t errors = 0;
  for (int rep = 0; rep < reps; ++rep) {
    auto idle = run_phase(node, seconds, false);
    auto loaded = run_phase(node, seconds, true);
    out.idle_ping.insert(out.idle_ping.end(), idle.ping_us.begin(), idle.ping_us.end());
    out.loaded_ping.insert(out.loaded_ping.end(), loaded.ping_us.begin(), loaded.ping_us.end());
    out.loaded_get.insert(out.loaded_get.end(), loaded.get_us.begin(), loaded.get_us.end());
    errors += idle.errors + loaded.errors;
  }
  if (errors != 0 || out.idle_ping.empty() || out.loaded_ping.empty() || out.loaded_get.empty()) {
    std::fprintf(stderr, "%llu failed requests\n", static_cast<unsigned long long>(errors));
    std::exit(1);
  }
  return out;
}

void print_policy(const std::string& policy, const policy_result& r, double total_s) {
  std::printf("  cache.shard_policy = \"%s\"\n", policy.c_str());
  std::printf("    sys.ping idle         p50 %7.0f us  p99 %7.0f us  (%zu pings)\n",
              quantile(r.idle_ping, 0.5), quantile(r.idle_ping, 0.99), r.idle_ping.size());
  std::printf("    sys.ping cache-loaded p50 %7.0f us  p99 %7.0f us  (%zu pings)\n",
              quantile(r.loaded_ping, 0.5), quantile(r.loaded_ping, 0.99), r.loaded_ping.size());
  std::printf("    load: %.0f GET/s, each re-hashing %zu MiB (GET p50 %.1f ms, p99 %.1f ms)\n",
              static_cast<double>(r.loaded_get.size()) / total_s, dep_bytes >> 20,
              quantile(r.loaded_get, 0.5) / 1000, quantile(r.loaded_get, 0.99) / 1000);
}

}  // namespace

int main(int argc, char** argv) {
  const bool quick = bench::has_flag(argc, argv, "--quick");
  const double seconds = quick ? 0.5 : 4;
  const int reps = quick ? 1 : 3;

  temp_dir dir;
  const auto dep = dir.path() + "/big.bin";
  {
    std::mt19937_64 rng(7);
    std::string bytes(dep_bytes, '\0');
    for (auto& c : bytes) {
      c = static_cast<char>(rng());
    }
    std::ofstream(dep, std::ios::binary) << bytes;
  }
  const auto normal = measure("normal", dep, seconds, reps);
  const auto idle = measure("idle", dep, seconds, reps);
  std::printf("cache_isolation (%d x %.1f s per phase, alternated; cores: %u)\n", reps, seconds,
              std::thread::hardware_concurrency());
  print_policy("normal", normal, seconds * reps);
  print_policy("idle", idle, seconds * reps);
  // Figure: ping p99 with the shards hashing flat out under the default
  // policy; baseline: the same node idle.
  const double base_p99 = quantile(normal.idle_ping, 0.99);
  const double loaded_p99 = quantile(normal.loaded_ping, 0.99);
  std::printf("  ratio (idle p99 / loaded p99, default policy) %.3f; with \"idle\" %.3f\n",
              base_p99 / loaded_p99,
              quantile(idle.idle_ping, 0.99) / quantile(idle.loaded_ping, 0.99));
  bench::print_json({"cache_isolation", loaded_p99, "us", base_p99, base_p99 / loaded_p99,
                     quantile(normal.loaded_ping, 0.5), loaded_p99, reps});
  return 0;
}
