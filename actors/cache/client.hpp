#pragma once

// The cache family's face for callers outside it (the gateway, the LLM
// router, agents): which shard a key lives on, which shards a fan-out
// reaches, how their answers add up, and hot hits read on the caller's own
// thread from what the shards publish (hot_view). Callers compute no shard
// paths and read none of the family's metrics. Immutable once built;
// thread-safe.

#include <atomic>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "runtime/protocol/envelope.hpp"

namespace troupe {
struct node_config;
class metrics_registry;
class counter;
}  // namespace troupe

namespace troupe::cache {

class hot_view;

class client {
 public:
  /// Routing only (no hot reads): what any actor needs to reach the shards.
  explicit client(const node_config& config);
  /// With the shards' published hot views (one per shard, in order); hot
  /// hits count in `metrics` like the shards' own.
  client(const node_config& config, std::vector<std::shared_ptr<const hot_view>> views,
         metrics_registry* metrics);
  ~client();
  client(const client&) = delete;
  client& operator=(const client&) = delete;

  /// The path of the shard that owns `key` ("cache/shard-<i>").
  [[nodiscard]] std::string shard_for(std::string_view key) const;
  /// Every shard's path, for a fan-out.
  [[nodiscard]] const std::vector<std::string>& shards() const { return paths_; }

  /// The live value of a hot entry that depends on nothing, read on the
  /// calling thread; nullopt sends the caller to the shard (a miss there,
  /// or an entry whose dependencies need checking).
  [[nodiscard]] std::optional<std::string> hot_get(std::string_view key) const;

  /// The shards' cache.invalidate replies added up; any error is the answer.
  [[nodiscard]] static envelope add_invalidations(const std::vector<envelope>& replies);
  /// The shards' cache.stats replies added up, with the hits hot_get
  /// served; any error is the answer.
  [[nodiscard]] envelope add_stats(const std::vector<envelope>& replies) const;

 private:
  std::vector<std::string> paths_;
  uint64_t memory_budget_bytes_ = 0;
  std::vector<std::shared_ptr<const hot_view>> views_;
  counter* hot_hits_metric_ = nullptr;
  /// Hits hot_get served (the shards count their own).
  mutable std::atomic<uint64_t> hot_hits_{0};
};

}  // namespace troupe::cache
