#include "actors/cache/cache.hpp"

#include <chrono>
#include <filesystem>
#include <map>
#include <set>
#include <thread>

#include <caf/all.hpp>
#include <spdlog/logger.h>

#include "actors/cache/dependency.hpp"
#include "actors/cache/lru_cache.hpp"
#include "actors/cache/messages.hpp"
#include "actors/cache/watcher.hpp"
#include "runtime/actor/serve.hpp"
#include "runtime/log/log.hpp"
#include "runtime/node/node_context.hpp"
#include "storage/db.hpp"

namespace troupe {

namespace {

/// What the cold tier stores for an entry (its expiry is in the store's
/// value header).
struct cold_entry {
  std::string value;
  std::vector<std::string> deps;
  TROUPE_FIELDS(value, deps)
};

/// Entries one invalidation may touch per path: bounds the work of a single
/// request (a larger cascade is done by repeating it).
constexpr size_t invalidation_scan_max = 100000;

/// Dependency index key: "<dependency path>\0<cache key>".
std::string index_key(std::string_view dep_path, std::string_view key) {
  std::string out(dep_path);
  out.push_back('\0');
  out.append(key);
  return out;
}

uint64_t wall_ms() {
  return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                   std::chrono::system_clock::now().time_since_epoch())
                                   .count());
}

/// The shard's metrics, resolved once: looking a series up takes the
/// registry's lock, which has no place on the path of every get.
struct shard_metrics {
  shard_metrics(metrics_registry& m, const std::string& shard)
      : hits_hot(m.counter(cache::hits_metric, "Cache hits by tier", {{"tier", "hot"}})),
        hits_cold(m.counter(cache::hits_metric, "Cache hits by tier", {{"tier", "cold"}})),
        puts(m.counter(cache::puts_metric, "Entries stored in the cache")),
        invalidations(m.counter(cache::invalidations_metric,
                                "Entries dropped because a dependency changed")),
        evictions(m.counter(cache::evictions_metric, "Hot entries evicted for memory",
                            {{"shard", shard}})),
        entries(m.gauge(cache::entries_metric, "Entries in the hot tier", {{"shard", shard}})),
        bytes(m.gauge(cache::bytes_metric, "Bytes accounted in the hot tier", {{"shard", shard}})) {
    for (const char* reason : cache::miss_reasons) {
      misses.emplace(reason, &m.counter(cache::misses_metric, "Cache misses by reason",
                                        {{"reason", reason}}));
    }
  }

  counter& hits_hot;
  counter& hits_cold;
  counter& puts;
  counter& invalidations;
  counter& evictions;
  gauge& entries;
  gauge& bytes;
  std::map<std::string_view, counter*> misses;
};

/// One shard's state. Lives on the shard's own (detached) thread, so disk
/// and file hashing never block a CAF scheduler thread.
class shard {
 public:
  shard(std::shared_ptr<node_context> ctx, std::shared_ptr<db> store, std::string path,
        uint32_t index, uint64_t budget_bytes)
      : ctx_(std::move(ctx)),
        store_(std::move(store)),
        path_(std::move(path)),
        index_(index),
        hot_(budget_bytes),
        metrics_(ctx_->metrics, path_),
        log_(logger("cache")) {}

  expected<cache::put_reply> put(const cache::put_request& req) {
    const auto& cfg = ctx_->config.cache;
    if (auto bad = check_key(req.key); bad) {
      return *bad;
    }
    if (req.ttl_s > cache::ttl_s_max) {
      return make_error(errc::bad_request, "ttl of " + std::to_string(req.ttl_s) +
                                               " s exceeds the maximum of " +
                                               std::to_string(cache::ttl_s_max) + " s");
    }
    if (req.value.size() > cfg.value_bytes_max) {
      return make_error(errc::too_large, "value of " + std::to_string(req.value.size()) +
                                             " bytes exceeds cache.value_bytes_max (" +
                                             std::to_string(cfg.value_bytes_max) + ")");
    }
    std::vector<std::string> records;
    std::vector<std::string> dep_paths;
    for (const auto& dep : req.deps) {
      auto record = fingerprint(dep, fingerprint_limits{});
      if (!record) {
        return std::move(record).err();
      }
      dep_paths.push_back(record->path);
      records.push_back(encode_record(*record));
    }
    const uint64_t now = wall_ms();
    const uint64_t hot_ttl_ms = (req.ttl_s != 0 ? req.ttl_s : cfg.hot_ttl_s) * 1000ull;
    const uint64_t cold_ttl_ms = (req.ttl_s != 0 ? req.ttl_s : cfg.cold_ttl_s) * 1000ull;
    auto stored = store_->put(column::cache, req.key, encode(cold_entry{req.value, records}),
                              now + cold_ttl_ms);
    if (!stored) {
      return std::move(stored).err();
    }
    for (const auto& dep_path : dep_paths) {
      // Same lifetime as the entry, so index records age out with it.
      auto indexed = store_->put(column::deps, index_key(dep_path, req.key), {}, now + cold_ttl_ms);
      if (!indexed) {
        return std::move(indexed).err();
      }
    }
    (void)hot_.put(req.key, cache_entry{req.value, now + hot_ttl_ms, records}, now);
    watch(dep_paths);
    metrics_.puts.inc();
    publish_size();
    return cache::put_reply{req.key, records.size()};
  }

  expected<cache::get_reply> get(const cache::get_request& req) {
    if (auto bad = check_key(req.key); bad) {
      return *bad;
    }
    const uint64_t now = wall_ms();
    if (const auto* entry = hot_.get(req.key, now)) {
      if (!still_valid(entry->deps)) {
        drop(req.key);
        return miss("stale");
      }
      metrics_.hits_hot.inc();
      return cache::get_reply{true, entry->value, "hot", {}};
    }
    return get_cold(req.key, now);
  }

  /// Drops the entries named by key, and those depending on a path (the
  /// path itself, anything below it, or a directory above it). Every shard
  /// gets the request and acts only on keys it owns, so each entry is
  /// counted once.
  expected<cache::invalidate_reply> invalidate(const cache::invalidate_request& req) {
    std::set<std::string> keys;
    for (const auto& key : req.keys) {
      if (owns(key)) {
        keys.insert(key);
      }
    }
    const uint64_t now = wall_ms();
    for (const auto& raw_path : req.paths) {
      std::error_code ec;
      const auto absolute = std::filesystem::absolute(raw_path, ec);
      if (raw_path.empty() || ec) {
        return make_error(errc::bad_request, "'" + raw_path + "' is not a path");
      }
      const auto path = absolute.lexically_normal().string();
      auto found = dependents(path, now);
      if (!found) {
        return std::move(found).err();
      }
      keys.insert(found->begin(), found->end());
    }
    uint64_t dropped = 0;
    for (const auto& key : keys) {
      auto existed = forget(key, now);
      if (!existed) {
        return std::move(existed).err();
      }
      if (*existed) {
        ++dropped;
        metrics_.invalidations.inc();
      }
    }
    publish_size();
    return cache::invalidate_reply{dropped};
  }

  expected<cache::del_reply> del(const cache::del_request& req) {
    auto existed = forget(req.key, wall_ms());
    if (!existed) {
      return std::move(existed).err();
    }
    publish_size();
    return cache::del_reply{*existed};
  }

 private:
  expected<cache::get_reply> get_cold(const std::string& key, uint64_t now) {
    auto raw = store_->get(column::cache, key, now);
    if (!raw) {
      if (raw.err().code == errc::corrupt) {
        // A foreign or damaged value is skipped (and dropped), not served.
        log_->warn("{}: dropping unreadable cold entry: {}", path_, raw.err().message);
        (void)store_->remove(column::cache, key);
        return miss("corrupt");
      }
      return std::move(raw).err();
    }
    if (!raw->has_value()) {
      return miss("absent");
    }
    auto entry = decode<cold_entry>(**raw);
    if (!entry) {
      log_->warn("{}: dropping cold entry that does not decode: {}", path_, entry.err().message);
      (void)store_->remove(column::cache, key);
      return miss("corrupt");
    }
    if (!still_valid(entry->deps)) {
      drop(key);
      return miss("stale");
    }
    // Promoted with the hot lifetime; the cold copy keeps its own expiry.
    const uint64_t hot_ttl_ms = ctx_->config.cache.hot_ttl_s * 1000ull;
    (void)hot_.put(key, cache_entry{entry->value, now + hot_ttl_ms, entry->deps}, now);
    publish_size();
    metrics_.hits_cold.inc();
    return cache::get_reply{true, std::move(entry->value), "cold", {}};
  }

  /// Asks the watcher (fire-and-forget) to watch these paths, so a change
  /// drops the entry at once instead of at its next read.
  void watch(const std::vector<std::string>& paths) {
    if (paths.empty()) {
      return;
    }
    if (auto watcher = ctx_->registry.current("cache/watcher")) {
      auto msg = make_envelope(watch_type, watch_request{paths});
      caf::anon_send(watcher, std::move(msg.type), std::move(msg.body), msg.correlation_id,
                     std::move(msg.reply_to));
    }
  }

  /// Removes `key` from both tiers and its rows from the dependency index;
  /// whether it was stored.
  expected<bool> forget(const std::string& key, uint64_t now) {
    std::vector<std::string> deps;
    bool existed = false;
    if (auto hot = hot_.take(key)) {
      deps = std::move(hot->deps);
      existed = true;
    }
    if (auto cold = store_->get(column::cache, key, now); cold && cold->has_value()) {
      existed = true;
      if (auto entry = decode<cold_entry>(**cold); entry && deps.empty()) {
        deps = std::move(entry->deps);
      }
    }
    if (auto removed = store_->remove(column::cache, key); !removed) {
      return std::move(removed).err();
    }
    for (const auto& encoded : deps) {
      if (auto record = decode_record(encoded)) {
        (void)store_->remove(column::deps, index_key(record->path, key));
      }
    }
    return existed;
  }

  bool owns(std::string_view key) const {
    return cache::key_hash(key) % cache::shard_count(ctx_->config) == index_;
  }

  /// Keys owned here that depend on `path`, on something below it, or on a
  /// directory above it.
  expected<std::set<std::string>> dependents(const std::string& path, uint64_t now) {
    std::set<std::string> keys;
    auto collect = [&](std::string_view prefix, bool exact) -> std::optional<error> {
      auto rows = store_->scan_prefix(column::deps, prefix, now, invalidation_scan_max);
      if (!rows) {
        return std::move(rows).err();
      }
      for (const auto& [index, unused] : *rows) {
        const auto nul = index.find('\0');
        if (nul == std::string::npos) {
          continue;
        }
        // "exact": the dependency is the prefix itself; else the path or below.
        const std::string_view dep(index.data(), nul);
        // Below "/" is everything; below "/a" is "/a/..." but not "/ab".
        const bool below = path == "/" || (dep.size() > path.size() && dep[path.size()] == '/');
        const bool match = exact ? dep == prefix.substr(0, prefix.size() - 1)
                                 : dep == path || below;
        auto key = index.substr(nul + 1);
        if (match && owns(key)) {
          keys.insert(std::move(key));
        }
      }
      return std::nullopt;
    };
    if (auto failed = collect(path, false)) {
      return *failed;
    }
    for (auto dir = std::filesystem::path(path).parent_path(); !dir.empty();
         dir = dir.parent_path()) {
      if (auto failed = collect(index_key(dir.string(), {}), true)) {
        return *failed;
      }
      if (dir == dir.root_path()) {
        break;
      }
    }
    return keys;
  }

  /// Every dependency unchanged (an unreadable record counts as changed:
  /// serving is only allowed when staleness is ruled out).
  bool still_valid(const std::vector<std::string>& deps) {
    for (const auto& encoded : deps) {
      auto record = decode_record(encoded);
      if (!record) {
        return false;
      }
      auto status = check(*record, fingerprint_limits{});
      if (!status || *status != dep_status::unchanged) {
        return false;
      }
    }
    return true;
  }

  void drop(const std::string& key) {
    (void)forget(key, wall_ms());  // a failed delete leaves it for the next read to catch
    metrics_.invalidations.inc();
    publish_size();
  }

  cache::get_reply miss(const char* reason) {
    metrics_.misses.at(reason)->inc();
    return cache::get_reply{false, {}, {}, reason};
  }

  std::optional<error> check_key(const std::string& key) const {
    if (key.size() > ctx_->config.cache.key_bytes_max) {
      return make_error(errc::too_large, "key of " + std::to_string(key.size()) +
                                             " bytes exceeds cache.key_bytes_max (" +
                                             std::to_string(ctx_->config.cache.key_bytes_max) +
                                             ")");
    }
    return std::nullopt;
  }

  void publish_size() {
    metrics_.entries.set(static_cast<double>(hot_.size()));
    metrics_.bytes.set(static_cast<double>(hot_.bytes()));
    metrics_.evictions.inc(hot_.counters().evictions - evictions_published_);
    evictions_published_ = hot_.counters().evictions;
  }

  std::shared_ptr<node_context> ctx_;
  std::shared_ptr<db> store_;
  std::string path_;
  uint32_t index_;
  lru_cache hot_;
  shard_metrics metrics_;
  std::shared_ptr<spdlog::logger> log_;
  uint64_t evictions_published_ = 0;
};

child_spec shard_child(uint32_t index, std::shared_ptr<node_context> ctx,
                       std::shared_ptr<db> store, uint64_t budget_bytes) {
  child_spec spec;
  spec.name = "shard-" + std::to_string(index);
  spec.start = [ctx, store, index, budget_bytes](caf::actor_system& system,
                                                 const std::string& path) {
    return system.spawn<caf::detached>(
        [ctx, store, index, budget_bytes, path](caf::event_based_actor* self) -> caf::behavior {
          auto state = std::make_shared<shard>(ctx, store, path, index, budget_bytes);
          auto table = std::make_shared<handler_table>(
              decode_limits{.body_bytes_max = ctx->config.limits.message_bytes_max});
          table->on<cache::get_request>(cache::get_type,
                                        [state](const auto& r) { return state->get(r); });
          table->on<cache::put_request>(cache::put_type,
                                        [state](const auto& r) { return state->put(r); });
          table->on<cache::del_request>(cache::del_type,
                                        [state](const auto& r) { return state->del(r); });
          table->on<cache::invalidate_request>(
              cache::invalidate_type, [state](const auto& r) { return state->invalidate(r); });
          return serve(self, table);
        });
  };
  return spec;
}

}  // namespace

child_spec cache_child(std::shared_ptr<node_context> ctx, std::shared_ptr<db> store) {
  const uint32_t shards = cache::shard_count(ctx->config);
  supervisor_spec spec;
  spec.strat = strategy::one_for_one;
  spec.policy = make_restart_policy(ctx->config.supervisor);
  spec.children.push_back(watcher_child(ctx));
  const uint64_t budget = ctx->config.cache.memory_budget_bytes / shards;
  for (uint32_t i = 0; i < shards; ++i) {
    spec.children.push_back(shard_child(i, ctx, store, budget));
  }
  return supervisor_child("cache", ctx, std::move(spec));
}

}  // namespace troupe
