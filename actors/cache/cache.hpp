#pragma once

// The cache family: N shard actors under the `cache` supervisor. Each shard
// keeps a hot tier in memory (LRU, bounded by its share of the memory
// budget) over the cold tier in the node's RocksDB store, and re-checks an
// entry's file dependencies on every read, so a hit is never stale.

#include <memory>

#include "runtime/supervisor/supervisor.hpp"

namespace troupe {

struct node_context;
struct node_config;
class db;

/// The `cache` supervisor with its shards as children.
[[nodiscard]] child_spec cache_child(std::shared_ptr<node_context> ctx, std::shared_ptr<db> store);

}  // namespace troupe
