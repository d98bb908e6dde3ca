#pragma once

// What every actor of a node shares: its configuration, the registry of
// stable names, the metrics registry and its start time. Built once at boot
// and handed to spawn functions as a shared_ptr; immutable but for the
// registries, which are thread-safe.

#include <chrono>
#include <memory>
#include <string>

#include "runtime/config/node_config.hpp"
#include "runtime/metrics/metrics.hpp"
#include "runtime/supervisor/actor_registry.hpp"

namespace troupe {

namespace cache {
class client;
}

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
  /// The cache family's client (routing, fan-out sums, hot reads of what
  /// the shards publish); set by the node before the gateway serves.
  std::shared_ptr<const cache::client> cache;
};

}  // namespace troupe
