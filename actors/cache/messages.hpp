#pragma once

// Schema of the cache family (its public face). Keys go to shard
// "cache/shard-<shard_for(key, shards)>".
//   cache.get        {key}                     -> {found, value, tier, miss}
//   cache.put        {key, value, ttl_s, deps} -> {key, deps}
//   cache.del        {key}                     -> {deleted}
//   cache.invalidate {paths, keys}             -> {invalidated}

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include <algorithm>
#include <array>
#include <thread>

#include "runtime/config/node_config.hpp"
#include "runtime/protocol/codec.hpp"

namespace troupe::cache {

inline constexpr const char* get_type = "cache.get";
inline constexpr const char* put_type = "cache.put";
inline constexpr const char* del_type = "cache.del";
inline constexpr const char* invalidate_type = "cache.invalidate";

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
  TROUPE_FIELDS(key, value, ttl_s, deps)
};

struct put_reply {
  std::string key;
  uint64_t deps = 0;
  TROUPE_FIELDS(key, deps)
};

struct del_request {
  std::string key;
  TROUPE_FIELDS(key)
};

struct del_reply {
  bool deleted = false;
  TROUPE_FIELDS(deleted)
};

struct invalidate_request {
  std::vector<std::string> paths;
  std::vector<std::string> keys;
  TROUPE_FIELDS(paths, keys)
};

struct invalidate_reply {
  uint64_t invalidated = 0;
  TROUPE_FIELDS(invalidated)
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

/// Shards the node runs: `cache.shards`, or one per core when 0.
[[nodiscard]] inline uint32_t shard_count(const node_config& config) {
  return config.cache.shards != 0 ? config.cache.shards
                                  : std::max(1u, std::thread::hardware_concurrency());
}

/// Every value get_reply.miss takes.
inline constexpr std::array<const char*, 4> miss_reasons{"absent", "expired", "stale", "corrupt"};

/// Metric names the shards count under and GET /v1/cache reads back.
inline constexpr const char* hits_metric = "troupe_cache_hits_total";
inline constexpr const char* misses_metric = "troupe_cache_misses_total";
inline constexpr const char* puts_metric = "troupe_cache_puts_total";
inline constexpr const char* evictions_metric = "troupe_cache_evictions_total";
inline constexpr const char* invalidations_metric = "troupe_cache_invalidations_total";
inline constexpr const char* entries_metric = "troupe_cache_hot_entries";
inline constexpr const char* bytes_metric = "troupe_cache_hot_bytes";

}  // namespace troupe::cache
