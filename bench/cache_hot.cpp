// cache_hot: the hot tier's get and put (the shard's LRU, in process, no
// actor hop) vs the floor of a mutex-guarded std::unordered_map, same data,
// same key sequence, same run, alternated. Figure: hot get p99 in ns.
//
//   cache_hot [--quick]

#include <chrono>
#include <cstdio>
#include <mutex>
#include <random>
#include <string>
#include <unordered_map>
#include <vector>

#include "actors/cache/lru_cache.hpp"
#include "bench/bench_util.hpp"

using namespace troupe;
using clock_type = std::chrono::steady_clock;

namespace {

struct run_result {
  std::vector<double> get_ns;
  std::vector<double> put_ns;
  double get_ops_s = 0;
};

template <class Put, class Get>
run_result measure(const std::vector<std::string>& keys, const std::vector<size_t>& order,
                   const std::string& value, Put put, Get get) {
  run_result r;
  r.put_ns.reserve(keys.size());
  for (const auto& key : keys) {
    auto t0 = clock_type::now();
    put(key, value);
    r.put_ns.push_back(std::chrono::duration<double, std::nano>(clock_type::now() - t0).count());
  }
  r.get_ns.reserve(order.size());
  const auto start = clock_type::now();
  size_t found = 0;
  for (size_t i : order) {
    auto t0 = clock_type::now();
    found += get(keys[i]) ? 1 : 0;
    r.get_ns.push_back(std::chrono::duration<double, std::nano>(clock_type::now() - t0).count());
  }
  r.get_ops_s = static_cast<double>(order.size()) /
                std::chrono::duration<double>(clock_type::now() - start).count();
  if (found != order.size()) {
    std::fprintf(stderr, "lost entries: %zu of %zu\n", order.size() - found, order.size());
    std::abort();
  }
  return r;
}

}  // namespace

int main(int argc, char** argv) {
  const bool quick = bench::has_flag(argc, argv, "--quick");
  const size_t entries = quick ? 1000 : 100000;
  const size_t gets = quick ? 10000 : 1000000;
  const int reps = quick ? 1 : 5;
  std::vector<std::string> keys;
  for (size_t i = 0; i < entries; ++i) {
    keys.push_back("key:" + std::to_string(i * 7919));
  }
  std::mt19937_64 rng(1);
  std::vector<size_t> order(gets);
  for (auto& i : order) {
    i = rng() % entries;
  }
  const std::string value(100, 'v');
  std::vector<double> t_get, t_put, b_get, b_put, t_ops, b_ops;
  for (int rep = 0; rep < reps; ++rep) {
    lru_cache lru(uint64_t{1} << 30);
    auto t = measure(keys, order, value,
                     [&](const std::string& k, const std::string& v) {
                       (void)lru.put(k, cache_entry{std::make_shared<const std::string>(v), 0, {}}, 0);
                     },
                     [&](const std::string& k) { return lru.get(k, 0) != nullptr; });
    std::mutex mutex;
    std::unordered_map<std::string, std::string> map;
    auto b = measure(keys, order, value,
                     [&](const std::string& k, const std::string& v) {
                       std::lock_guard lock(mutex);
                       map[k] = v;
                     },
                     [&](const std::string& k) {
                       std::lock_guard lock(mutex);
                       return map.find(k) != map.end();
                     });
    t_get.insert(t_get.end(), t.get_ns.begin(), t.get_ns.end());
    t_put.insert(t_put.end(), t.put_ns.begin(), t.put_ns.end());
    b_get.insert(b_get.end(), b.get_ns.begin(), b.get_ns.end());
    b_put.insert(b_put.end(), b.put_ns.begin(), b.put_ns.end());
    t_ops.push_back(t.get_ops_s);
    b_ops.push_back(b.get_ops_s);
  }
  const double ops = bench::median(t_ops);
  const double base_ops = bench::median(b_ops);
  std::printf("cache_hot (%zu entries of 100 B, %zu random gets x %d reps; ns include ~20 ns of clock reads)\n",
              entries, gets, reps);
  std::printf("  lru get   p50 %6.0f  p99 %6.0f  p999 %6.0f ns   %10.0f ops/s\n",
              bench::quantile(t_get, 0.5), bench::quantile(t_get, 0.99),
              bench::quantile(t_get, 0.999), ops);
  std::printf("  map get   p50 %6.0f  p99 %6.0f  p999 %6.0f ns   %10.0f ops/s (mutex + unordered_map)\n",
              bench::quantile(b_get, 0.5), bench::quantile(b_get, 0.99),
              bench::quantile(b_get, 0.999), base_ops);
  std::printf("  lru put   p50 %6.0f  p99 %6.0f  p999 %6.0f ns\n", bench::quantile(t_put, 0.5),
              bench::quantile(t_put, 0.99), bench::quantile(t_put, 0.999));
  std::printf("  map put   p50 %6.0f  p99 %6.0f  p999 %6.0f ns\n", bench::quantile(b_put, 0.5),
              bench::quantile(b_put, 0.99), bench::quantile(b_put, 0.999));
  bench::print_json({"cache_hot", bench::quantile(t_get, 0.99), "ns_get_p99", base_ops,
                     ops / base_ops, bench::quantile(t_get, 0.5), bench::quantile(t_get, 0.99),
                     reps});
  return 0;
}
