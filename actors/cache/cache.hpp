#pragma once

// The cache family: N shard actors under the `cache` supervisor. Each shard
// keeps a hot tier in memory (LRU, bounded by its share of the memory
// budget) over the cold tier in the node's RocksDB store, and re-checks an
// entry's file dependencies on every read, so a hit is never stale. An entry
// without dependencies needs no such check: each shard publishes those in a
// hot_view, and the gateway serves their hits on its own thread through the
// family's client, without an actor hop and without a lock.

#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "runtime/supervisor/supervisor.hpp"

namespace troupe {

struct node_context;
struct node_config;
class db;

namespace cache {
class client;
}

/// The `cache` supervisor with its shards as children, and the family's
/// client (routing, fan-out sums, hot reads of what the shards publish).
struct cache_family {
  child_spec child;
  std::shared_ptr<const cache::client> client;
};

/// How the family runs. The node keeps the defaults; tests of the shards
/// alone, on CAF's test coordinator (which runs no detached actor and no
/// other thread), turn both off.
struct cache_options {
  /// Each shard on a thread of its own (its disk reads and hashing never
  /// hold up a scheduler thread); false: on the scheduler.
  bool detached = true;
  /// The `watcher` child (inotify on its own thread), which drops entries
  /// as soon as a dependency changes; without it a change is seen at the
  /// entry's next read.
  bool watch = true;
};

[[nodiscard]] cache_family make_cache(std::shared_ptr<node_context> ctx, std::shared_ptr<db> store,
                                      cache_options options = {});

}  // namespace troupe
