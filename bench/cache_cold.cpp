// cache_cold: a cold-tier read (troupe's store: RocksDB get + value header
// check) vs a raw RocksDB Get of the same data in the same store, same key
// sequence, same run. Figure: cold get p99 in microseconds.
//
//   cache_cold [--quick]

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <random>
#include <string>
#include <vector>

#include <rocksdb/db.h>

#include "bench/bench_util.hpp"
#include "storage/db.hpp"

using namespace troupe;
using clock_type = std::chrono::steady_clock;

int main(int argc, char** argv) {
  const bool quick = bench::has_flag(argc, argv, "--quick");
  const size_t entries = quick ? 1000 : 50000;
  const size_t gets = quick ? 2000 : 100000;
  const auto dir = std::filesystem::temp_directory_path() /
                   ("troupe-cache-cold-" + std::to_string(std::random_device{}()));
  std::vector<std::string> keys;
  const std::string value(1024, 'v');
  std::vector<double> troupe_us, raw_us;
  {
    // Written, then closed: both sides below read a reopened store (SST
    // files, not the memtable of the writes).
    auto opened = db::open(storage_options{dir.string(), false});
    if (!opened) {
      std::fprintf(stderr, "%s\n", opened.err().message.c_str());
      return 1;
    }
    for (size_t i = 0; i < entries; ++i) {
      keys.push_back("key:" + std::to_string(i * 7919));
      (void)(*opened)->put(column::cache, keys.back(), value, 0);
    }
  }
  {
    auto opened = db::open(storage_options{dir.string(), false});
    if (!opened) {
      return 1;
    }
    auto& store = **opened;
    const uint64_t now = 1;
    // Pass 0 warms the block cache, unrecorded, exactly as for the baseline.
    for (int pass = 0; pass < 2; ++pass) {
      std::mt19937_64 rng(2);
      for (size_t i = 0; i < gets; ++i) {
        const auto& key = keys[rng() % entries];
        auto t0 = clock_type::now();
        auto got = store.get(column::cache, key, now);
        if (pass == 1) {
          troupe_us.push_back(
              std::chrono::duration<double, std::micro>(clock_type::now() - t0).count());
        }
        if (!got || !got->has_value()) {
          std::abort();
        }
      }
    }
  }
  {
    // The baseline opens the same files with plain RocksDB and reads the
    // same keys (values there carry troupe's 10-byte header; size is the same).
    rocksdb::DBOptions options;
    std::vector<std::string> names;
    (void)rocksdb::DB::ListColumnFamilies(options, dir.string(), &names);
    std::vector<rocksdb::ColumnFamilyDescriptor> descriptors;
    for (const auto& n : names) {
      descriptors.emplace_back(n, rocksdb::ColumnFamilyOptions());
    }
    std::vector<rocksdb::ColumnFamilyHandle*> handles;
    rocksdb::DB* raw = nullptr;
    if (!rocksdb::DB::Open(options, dir.string(), descriptors, &handles, &raw).ok()) {
      return 1;
    }
    rocksdb::ColumnFamilyHandle* cache_cf = nullptr;
    for (size_t i = 0; i < names.size(); ++i) {
      if (names[i] == "cache") {
        cache_cf = handles[i];
      }
    }
    std::string out;
    for (int pass = 0; pass < 2; ++pass) {
      std::mt19937_64 rng(2);
      for (size_t i = 0; i < gets; ++i) {
        const auto& key = keys[rng() % entries];
        auto t0 = clock_type::now();
        auto s = raw->Get(rocksdb::ReadOptions(), cache_cf, key, &out);
        if (pass == 1) {
          raw_us.push_back(std::chrono::duration<double, std::micro>(clock_type::now() - t0).count());
        }
        if (!s.ok()) {
          std::abort();
        }
      }
    }
    for (auto* h : handles) {
      raw->DestroyColumnFamilyHandle(h);
    }
    delete raw;
  }
  std::error_code ec;
  std::filesystem::remove_all(dir, ec);
  const double p50 = bench::quantile(troupe_us, 0.5);
  const double p99 = bench::quantile(troupe_us, 0.99);
  const double base_p50 = bench::quantile(raw_us, 0.5);
  std::printf("cache_cold (%zu entries of 1 KiB, %zu random gets)\n", entries, gets);
  std::printf("  troupe store get  p50 %7.2f us  p99 %7.2f us  p999 %7.2f us\n", p50, p99,
              bench::quantile(troupe_us, 0.999));
  std::printf("  raw RocksDB Get   p50 %7.2f us  p99 %7.2f us  p999 %7.2f us\n", base_p50,
              bench::quantile(raw_us, 0.99), bench::quantile(raw_us, 0.999));
  bench::print_json({"cache_cold", p99, "us_get_p99", base_p50, base_p50 / p50, p50, p99, 1});
  return 0;
}
