#pragma once

// What every actor of a node shares: its configuration, the registry of
// stable names, the metrics registry and its start time. Built once at boot
// and handed to spawn functions as a shared_ptr; immutable but for the
// registries, which are thread-safe.

#include <chrono>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

#include "runtime/config/node_config.hpp"
#include "runtime/metrics/metrics.hpp"
#include "runtime/supervisor/actor_registry.hpp"

namespace troupe {

/// The value of a hot cache entry that may be served on the calling thread
/// (live, no dependency to re-check, so no disk and no hashing); nullopt
/// sends the caller to the shard actor. Thread-safe; counts the hit.
using cache_hot_reader = std::function<std::optional<std::string>(std::string_view key)>;

/// troupe's version, as reported by /v1/node.
inline constexpr const char* troupe_version = "0.1.0";

struct node_context {
  explicit node_context(node_config cfg)
      : config(std::move(cfg)), started_at(std::chrono::steady_clock::now()) {}

  node_config config;
  actor_registry registry;
  metrics_registry metrics;
  std::chrono::steady_clock::time_point started_at;
  /// The address the gateway actually bound (port 0 resolved), once it has.
  std::string listen_address;
  /// Top-level children the root starts; the node is ready when this many
  /// are registered and running (set before the root is spawned).
  size_t top_level_children = 0;
  /// Hot cache hits for GET /v1/cache/{key} without an actor hop; installed
  /// by the cache family.
  cache_hot_reader cache_hot;
};

}  // namespace troupe
