#pragma once

// The in-memory hot tier of one cache shard: a byte-budgeted LRU with
// per-entry TTL. A plain class so the shard actor stays thin and tests drive
// it directly: no threads, not thread-safe, and time is passed in (`now_ms`)
// so TTL tests are exact and instant.

#include <cstddef>
#include <cstdint>
#include <functional>
#include <list>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace troupe {

/// A cached value's bytes, immutable once stored: the tier and what the
/// shard publishes of it (hot_view) hold the same copy.
using cache_value = std::shared_ptr<const std::string>;

/// One cached value and what the shard stores alongside it.
struct cache_entry {
  /// Never null.
  cache_value value;
  /// Absolute expiry on the caller's clock; 0 means the entry never expires.
  uint64_t expires_at_ms = 0;
  /// Opaque dependency records, stored as given.
  std::vector<std::string> deps;
};

/// Monotonic counters; the shard exports them as metrics.
struct lru_cache_counters {
  uint64_t hits = 0;
  /// Every `get` that returns nullptr, expired entries included, so that
  /// hits + misses = number of gets.
  uint64_t misses = 0;
  /// Entries dropped to fit the byte budget (by `put` or `set_budget`).
  uint64_t evictions = 0;
  /// Entries found expired by `get` and removed there.
  uint64_t expired = 0;
  /// Successful `put`s, replacements included.
  uint64_t inserts = 0;
};

class lru_cache {
public:
  /// Why a fixed charge per entry: a budget that counted only payload bytes
  /// would let many tiny entries use far more memory than configured. The
  /// sketch (64-bit libstdc++): list node = 2 links (16) + key string (32) +
  /// cache_entry (value handle 16 + expiry 8 + deps vector 24) = 96; the
  /// value's shared block (count 16 + string 32) = 48; index node = next (8)
  /// + string_view (16) + iterator (8) + cached hash (8) = 40; a bucket slot
  /// 8. ~192. Fixed rather than computed from sizeof so budgets mean the
  /// same on every platform and build.
  static constexpr uint64_t entry_overhead_bytes = 192;

  /// Called once per entry evicted to fit the budget, least recently used
  /// first, before the entry is destroyed (the shard moves it to the cold
  /// tier). The entry may already be expired; check `expires_at_ms`. The
  /// listener must not call back into this cache (asserted).
  using eviction_listener = std::function<void(const std::string& key, const cache_entry&)>;

  explicit lru_cache(uint64_t budget_bytes);

  lru_cache(const lru_cache&) = delete;
  lru_cache& operator=(const lru_cache&) = delete;
  lru_cache(lru_cache&&) = delete;
  lru_cache& operator=(lru_cache&&) = delete;

  /// Bytes `key` + `entry` are charged against the budget: key, value and
  /// every dep record, plus `entry_overhead_bytes`.
  [[nodiscard]] static uint64_t accounted_bytes(std::string_view key, const cache_entry& entry);

  /// Inserts or replaces `key`, makes it the most recent, then evicts least
  /// recently used entries until the cache fits its budget. An entry whose
  /// accounted size exceeds the whole budget is refused: returns false and
  /// the cache (including any old value under `key`) is left untouched.
  [[nodiscard]] bool put(std::string key, cache_entry entry, uint64_t now_ms);

  /// The live entry under `key`, made most recent; nullptr if absent or
  /// expired (an expired entry is removed here). The pointer is valid until
  /// the next call that modifies the cache.
  [[nodiscard]] const cache_entry* get(std::string_view key, uint64_t now_ms);

  /// Removes and returns the entry under `key`, expired or not. Not counted
  /// as a hit, miss or eviction.
  [[nodiscard]] std::optional<cache_entry> take(std::string_view key);

  /// Removes `key`; false if it was absent.
  bool erase(std::string_view key);

  /// Changes the budget, evicting least recently used entries to fit it.
  void set_budget(uint64_t budget_bytes);

  void set_eviction_listener(eviction_listener listener);

  [[nodiscard]] size_t size() const { return index_.size(); }
  [[nodiscard]] uint64_t bytes() const { return bytes_; }
  [[nodiscard]] uint64_t budget_bytes() const { return budget_bytes_; }
  [[nodiscard]] const lru_cache_counters& counters() const { return counters_; }

private:
  struct node {
    std::string key;
    cache_entry entry;
    uint64_t accounted_bytes = 0;
  };
  // Front is most recent. List nodes never move, so the index can key on a
  // string_view into `node::key`: each key is stored once and a lookup by
  // string_view allocates nothing.
  using node_list = std::list<node>;

  void remove(node_list::iterator it);
  void evict_to_budget();

  uint64_t budget_bytes_;
  uint64_t bytes_ = 0;
  node_list order_;
  std::unordered_map<std::string_view, node_list::iterator> index_;
  lru_cache_counters counters_;
  eviction_listener on_evict_;
  // Guards against a listener re-entering the cache while it iterates.
  bool notifying_ = false;
};

}  // namespace troupe
