#pragma once

// Stable names for actors. CAF gives every incarnation of a restarted actor a
// new address; callers address actors by path ("cache/shard-0") instead, and
// the registry maps a path to the incarnation serving it now and to the
// supervisor that stashes messages while it restarts. Supervisors keep it up
// to date; it is also the source of the tree shown by GET /v1/actors.

#include <atomic>
#include <cstdint>
#include <map>
#include <optional>
#include <shared_mutex>
#include <string>
#include <string_view>
#include <vector>

#include <caf/actor.hpp>

namespace troupe {

enum class actor_kind : uint8_t { worker, supervisor };

enum class actor_state : uint8_t {
  /// Spawned, not yet serving.
  starting,
  running,
  /// Ended; a new incarnation is due (after backoff).
  restarting,
  /// Ended and not coming back (normal exit, stop directive, temporary child).
  stopped,
  /// Its supervisor gave up on it.
  failed,
};

[[nodiscard]] std::string_view to_string(actor_kind k);
[[nodiscard]] std::string_view to_string(actor_state s);

/// What the tree shows about one actor.
struct actor_info {
  std::string path;
  std::string name;
  /// Path of the supervising actor; empty for the root.
  std::string parent;
  actor_kind kind = actor_kind::worker;
  actor_state state = actor_state::starting;
  uint32_t restarts = 0;
  std::string last_failure;
  /// Messages held for it while it restarts.
  uint32_t stashed = 0;
  /// Supervisors: this incarnation has started its initial children.
  bool children_started = false;
  /// Start order among siblings, so the tree lists children as they start.
  uint64_t order = 0;
};

/// Where to send a message for a path right now.
struct actor_route {
  /// The running incarnation; null while restarting or stopped.
  caf::actor current;
  /// The supervisor, which stashes messages while `current` is null.
  caf::actor supervisor;
  std::string name;
  actor_state state = actor_state::starting;
};

/// Whether `route` (a find() result) names an incarnation that runs now.
[[nodiscard]] inline bool is_running(const std::optional<actor_route>& route) {
  return route && route->state == actor_state::running && route->current;
}

struct actor_counts {
  size_t total = 0;
  size_t running = 0;
  size_t restarting = 0;
  size_t stopped = 0;
};

/// Thread-safe: read by every sender, written by supervisors.
class actor_registry {
 public:
  /// Adds or replaces the entry for `info.path`.
  void put(actor_info info, caf::actor current, caf::actor supervisor);

  /// Updates state, incarnation and restart bookkeeping of an existing path.
  void update(std::string_view path, actor_state state, caf::actor current, uint32_t restarts,
              std::string last_failure, uint32_t stashed);

  /// Removes `path` and everything below it.
  void remove(std::string_view path);

  /// Removes everything below `path` (a supervisor's subtree, when it ends:
  /// its next incarnation registers its children anew).
  void remove_below(std::string_view path);

  [[nodiscard]] std::optional<actor_route> find(std::string_view path) const;

  /// `path` is not registered now, but may be again in a moment: its
  /// nearest registered ancestor is a supervisor that is restarting,
  /// starting, or has not started its children yet (its subtree is being
  /// rebuilt). Callers answer `restarting` rather than `unknown_actor`.
  [[nodiscard]] bool coming_back(std::string_view path) const;

  /// The running incarnation at `path`, or null: the hot path of every send.
  [[nodiscard]] caf::actor current(std::string_view path) const;

  /// Changes whenever some path's incarnation may have changed (a put, an
  /// update that replaces the incarnation, a removal). A caller may keep a
  /// handle from current() for as long as this stays the same, provided it
  /// read this before calling current().
  [[nodiscard]] uint64_t generation() const noexcept {
    return generation_.load(std::memory_order_acquire);
  }
  [[nodiscard]] std::optional<actor_info> info(std::string_view path) const;

  /// All entries, parents before children, siblings in start order.
  [[nodiscard]] std::vector<actor_info> snapshot() const;

  [[nodiscard]] actor_counts counts() const;

  /// Marks whether the supervisor at `path` has started its initial children.
  void set_children_started(std::string_view path, bool started);

  /// The whole tree is up: at least `top_level` children of the root, every
  /// actor running, every supervisor done starting its initial children.
  [[nodiscard]] bool tree_ready(size_t top_level) const;

  /// Children of `path` (direct only), in start order.
  [[nodiscard]] std::vector<actor_info> children(std::string_view path) const;

 private:
  struct entry {
    actor_info info;
    actor_route route;
  };

  void erase_below(std::string_view path);  // caller holds the lock

  mutable std::shared_mutex mutex_;
  std::map<std::string, entry, std::less<>> entries_;
  uint64_t next_order_ = 0;
  std::atomic<uint64_t> generation_{0};
};

/// "a/b" + "c" -> "a/b/c"; "" + "c" -> "c".
[[nodiscard]] std::string child_path(std::string_view parent, std::string_view name);

}  // namespace troupe
