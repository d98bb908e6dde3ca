#pragma once

// Schema of the cache family (its public face). Callers route with
// cache::client (actors/cache/client.hpp): a key goes to its shard, an
// invalidation and the stats to every shard.
//   cache.get        {key}                     -> {found, value, tier, miss}
//   cache.put        {key, value, ttl_s, deps, dep_keys} -> {key, deps, dep_keys, cascaded}
//   cache.del        {key}                     -> {deleted, cascaded}
//   cache.invalidate {paths, keys, cascade}    -> {invalidated, cascaded, cascade_stopped}
//   cache.stats      {}                        -> stats (the shard's own; the
//                                                 client adds them up)
//
// An entry that depends on other keys depends on everything they depend on
// (their records are copied into it at put), so a key's dependents are found
// with one look-up in the dependency index, and a dependent whose eager
// invalidation was cut short is still refused at its next read.

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include <algorithm>
#include <array>
#include <filesystem>
#include <system_error>
#include <thread>

#include "runtime/config/node_config.hpp"
#include "runtime/protocol/codec.hpp"

namespace troupe::cache {

inline constexpr const char* get_type = "cache.get";
inline constexpr const char* put_type = "cache.put";
inline constexpr const char* del_type = "cache.del";
inline constexpr const char* invalidate_type = "cache.invalidate";
inline constexpr const char* stats_type = "cache.stats";

struct get_request {
  std::string key;
  TROUPE_FIELDS(key)
};

struct get_reply {
  bool found = false;
  std::string value;
  /// "hot" or "cold" on a hit.
  std::string tier;
  /// On a miss: "absent", "expired", "stale" (a dependency changed) or
  /// "corrupt" (the stored value was unreadable and was dropped).
  std::string miss;
  TROUPE_FIELDS(found, value, tier, miss)
};

/// Longest lifetime a put may ask for (ten years): bounds the arithmetic on
/// expiry times.
inline constexpr uint64_t ttl_s_max = 10ull * 365 * 86400;

struct put_request {
  std::string key;
  std::string value;
  /// Seconds the entry lives; 0: the configured default.
  uint64_t ttl_s = 0;
  /// Absolute paths of files or directories the value depends on.
  std::vector<std::string> deps;
  /// Keys of other entries the value depends on; each must be in the cache.
  std::vector<std::string> dep_keys;
  TROUPE_FIELDS(key, value, ttl_s, deps, dep_keys)
};

struct put_reply {
  std::string key;
  /// Dependency records stored with the entry: its files and keys, and
  /// those of the keys it depends on.
  uint64_t deps = 0;
  uint64_t dep_keys = 0;
  /// Entries dropped because they depended on the value this put replaced.
  uint64_t cascaded = 0;
  TROUPE_FIELDS(key, deps, dep_keys, cascaded)
};

struct del_request {
  std::string key;
  TROUPE_FIELDS(key)
};

struct del_reply {
  bool deleted = false;
  /// Entries dropped because they depended on this one.
  uint64_t cascaded = 0;
  TROUPE_FIELDS(deleted, cascaded)
};

struct invalidate_request {
  std::vector<std::string> paths;
  std::vector<std::string> keys;
  /// Also drop the entries that depend on `keys`. False for the lists a
  /// shard hands to another one: those are already the whole cascade.
  bool cascade = true;
  TROUPE_FIELDS(paths, keys, cascade)
};

struct invalidate_reply {
  /// Entries dropped, cascaded ones included (those handed to another
  /// shard are dropped there right after).
  uint64_t invalidated = 0;
  /// Of those, the ones dropped because they depended on a named key.
  uint64_t cascaded = 0;
  /// The cascade was cut short (more dependents than cache.cascade_max, or
  /// the cascade breaker is open); the rest are refused when read.
  bool cascade_stopped = false;
  TROUPE_FIELDS(invalidated, cascaded, cascade_stopped)
};

struct hit_counts {
  uint64_t hot = 0;
  uint64_t cold = 0;
  uint64_t total = 0;
  TROUPE_FIELDS(hot, cold, total)
};

/// What GET /v1/cache shows: one shard's figures (since the node started,
/// across the shard's restarts), or the whole cache's once added up.
struct stats {
  uint64_t shards = 1;
  uint64_t entries = 0;
  uint64_t bytes = 0;
  uint64_t memory_budget_bytes = 0;
  hit_counts hits;
  /// By reason (miss_reasons), and "total".
  std::map<std::string, uint64_t> misses;
  double hit_ratio = 0;
  uint64_t evictions = 0;
  uint64_t invalidations = 0;
  uint64_t cascaded = 0;
  uint64_t cascades_stopped = 0;
  uint64_t puts = 0;
  TROUPE_FIELDS(shards, entries, bytes, memory_budget_bytes, hits, misses, hit_ratio, evictions,
                invalidations, cascaded, cascades_stopped, puts)
};

/// Stable across processes and builds (FNV-1a), so every node maps a key to
/// the same shard index.
[[nodiscard]] constexpr uint64_t key_hash(std::string_view key) {
  uint64_t h = 0xcbf29ce484222325ULL;
  for (char c : key) {
    h ^= static_cast<uint8_t>(c);
    h *= 0x100000001b3ULL;
  }
  return h;
}

[[nodiscard]] inline std::string shard_path(std::string_view key, uint32_t shards) {
  return "cache/shard-" + std::to_string(key_hash(key) % shards);
}

/// Shards the node runs: `cache.shards`, or one per core when 0. The core
/// count is read once: glibc reads it from /sys on every call, which cost
/// an open() per cache request.
[[nodiscard]] inline uint32_t shard_count(const node_config& config) {
  static const uint32_t cores = std::max(1u, std::thread::hardware_concurrency());
  return config.cache.shards != 0 ? config.cache.shards : cores;
}

/// The directories a dependency must lie in (`cache.dependency_roots`, or
/// the working directory and the data dir), symlinks resolved.
[[nodiscard]] inline std::vector<std::string> dependency_roots(const node_config& config) {
  auto roots = config.cache.dependency_roots;
  std::error_code ec;
  if (roots.empty()) {
    roots.push_back(std::filesystem::current_path(ec).string());
    roots.push_back(std::filesystem::absolute(config.node.data_dir, ec).string());
  }
  for (auto& root : roots) {
    root = std::filesystem::weakly_canonical(root, ec).string();
  }
  return roots;
}

/// Why `path` may not be a dependency (it is not absolute, or it lies
/// outside every root once symlinks are resolved); empty when it may.
[[nodiscard]] inline std::string dependency_refusal(const std::string& path,
                                                    const std::vector<std::string>& roots) {
  if (path.empty() || path.front() != '/') {
    return "dependency paths must be absolute (got '" + path + "')";
  }
  std::error_code ec;
  const auto real = std::filesystem::weakly_canonical(path, ec).string();
  if (ec) {
    return "cannot resolve dependency path '" + path + "': " + ec.message();
  }
  for (const auto& root : roots) {
    if (real == root ||
        (real.starts_with(root) && (root.ends_with('/') || real[root.size()] == '/'))) {
      return {};
    }
  }
  std::string listed;
  for (const auto& root : roots) {
    listed += (listed.empty() ? "" : ", ") + root;
  }
  return "dependency path '" + path + "' lies outside cache.dependency_roots (" + listed + ")";
}

/// Every value get_reply.miss takes.
inline constexpr std::array<const char*, 4> miss_reasons{"absent", "expired", "stale", "corrupt"};

/// Metric names the shards count under and GET /v1/cache reads back.
inline constexpr const char* hits_metric = "troupe_cache_hits_total";
inline constexpr const char* misses_metric = "troupe_cache_misses_total";
inline constexpr const char* puts_metric = "troupe_cache_puts_total";
inline constexpr const char* evictions_metric = "troupe_cache_evictions_total";
inline constexpr const char* invalidations_metric = "troupe_cache_invalidations_total";
inline constexpr const char* cascaded_metric = "troupe_cache_cascaded_total";
inline constexpr const char* cascades_stopped_metric = "troupe_cache_cascades_stopped_total";
inline constexpr const char* entries_metric = "troupe_cache_hot_entries";
inline constexpr const char* bytes_metric = "troupe_cache_hot_bytes";

}  // namespace troupe::cache
