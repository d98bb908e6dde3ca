#pragma once

// The supervisor: starts children in order, restarts them per strategy,
// restart type, decider, intensity and backoff, keeps their stable names in
// the registry, stashes messages for a restarting child, and stops children
// in reverse order with a timeout each.

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <caf/allowed_unsafe_message_type.hpp>

#include "runtime/supervisor/actor_registry.hpp"
#include "runtime/supervisor/policy.hpp"

namespace caf {
class actor_system;
}

namespace troupe {

struct node_context;

/// How to run one child.
struct child_spec {
  /// Unique among its siblings; the child's path is "<parent path>/<name>".
  std::string name;
  actor_kind kind = actor_kind::worker;
  restart_type restart = restart_type::permanent;
  /// Spawns one incarnation. Called again for every restart; must not block.
  std::function<caf::actor(caf::actor_system&, const std::string& path)> start;
  /// Decides what an abnormal exit leads to (restart, stop, escalate).
  decider decide = default_decider;
  /// Time to stop before being killed; nullopt: the supervisor's policy.
  std::optional<std::chrono::milliseconds> shutdown_timeout;
};

struct supervisor_spec {
  strategy strat = strategy::one_for_one;
  restart_policy policy;
  /// Started in this order, stopped in reverse.
  std::vector<child_spec> children;
  /// Most children a dynamic supervisor accepts; more get `conflict`.
  uint32_t children_max = 100000;
  /// Seed for backoff jitter; fixed in tests for exact delays.
  uint64_t seed = 0x7e0b5eedULL;
};

/// Body of a supervisor's reply to `start_child` ("sup.started").
inline constexpr const char* sup_started_type = "sup.started";

/// Spawns a supervisor serving `path` ("" for the root, which it registers
/// itself; any other path is registered by its parent).
[[nodiscard]] caf::actor spawn_supervisor(caf::actor_system& system,
                                          std::shared_ptr<node_context> ctx, std::string path,
                                          supervisor_spec spec);

/// A child spec that runs a nested supervisor.
[[nodiscard]] child_spec supervisor_child(std::string name, std::shared_ptr<node_context> ctx,
                                          supervisor_spec spec,
                                          restart_type restart = restart_type::permanent);

}  // namespace troupe

// A child_spec carries a start function: it travels to a local dynamic
// supervisor (start_child) and never crosses nodes.
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(troupe::child_spec)
