#pragma once

// The cache family: N shard actors under the `cache` supervisor. Each shard
// keeps a hot tier in memory (LRU, bounded by its share of the memory
// budget) over the cold tier in the node's RocksDB store, and re-checks an
// entry's file dependencies on every read, so a hit is never stale. An entry
// without dependencies needs no such check: the gateway serves its hot hits
// on its own thread, under the shard's hot-tier lock, without an actor hop.

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "runtime/supervisor/supervisor.hpp"

namespace troupe {

struct node_context;
struct node_config;
class db;

/// The `cache` supervisor with its shards as children, and the reader the
/// gateway serves hot hits with (node_context::cache_hot); both share the
/// shards' hot tiers.
struct cache_family {
  child_spec child;
  std::function<std::optional<std::string>(std::string_view key)> hot_reader;
};

[[nodiscard]] cache_family make_cache(std::shared_ptr<node_context> ctx,
                                      std::shared_ptr<db> store);

}  // namespace troupe
