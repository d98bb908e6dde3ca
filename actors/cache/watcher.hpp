#pragma once

// Eager invalidation: watches the files and directories that cache entries
// depend on (inotify) and tells every shard to drop the entries depending on
// a path as soon as it changes. The read-time check already guarantees that
// no stale entry is served; the watcher frees the memory at once and keeps
// the counts true. It runs on its own thread, blocked in poll(), so it costs
// nothing while nothing changes.

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "runtime/protocol/fields.hpp"
#include "runtime/supervisor/supervisor.hpp"

namespace troupe {

struct node_context;

/// Most paths watched at once; further watch requests are dropped with a
/// warning (the read-time check still covers them).
inline constexpr size_t watched_paths_max = 8192;

/// The `cache/watcher` child: accepts `cache.watch {paths}` messages.
[[nodiscard]] child_spec watcher_child(std::shared_ptr<node_context> ctx);

/// Type of the message asking the watcher to watch paths.
inline constexpr const char* watch_type = "cache.watch";

struct watch_request {
  std::vector<std::string> paths;
  TROUPE_FIELDS(paths)
};

}  // namespace troupe
