#include "actors/cache/cache.hpp"

#include <pthread.h>
#include <sched.h>

#include <cstring>

#include <chrono>
#include <filesystem>
#include <map>
#include <mutex>
#include <random>
#include <set>
#include <thread>
#include <unordered_map>

#include <spdlog/logger.h>
#include <caf/all.hpp>

#include "actors/cache/client.hpp"
#include "actors/cache/dependency.hpp"
#include "actors/cache/hot_view.hpp"
#include "actors/cache/lru_cache.hpp"
#include "actors/cache/messages.hpp"
#include "actors/cache/watcher.hpp"
#include "runtime/actor/ask.hpp"
#include "runtime/actor/envelope_message.hpp"
#include "runtime/actor/serve.hpp"
#include "runtime/breaker/circuit_breaker.hpp"
#include "runtime/log/log.hpp"
#include "runtime/node/node_context.hpp"
#include "runtime/wall_clock.hpp"
#include "storage/db.hpp"

namespace troupe {

namespace {

/// What the cold tier stores for an entry (its expiry is in the store's
/// value header).
struct cold_entry {
  std::string value;
  /// Encoded dependency records: files (`encode_record`) and keys
  /// (`encode_key_record`), those of the keys it depends on included.
  std::vector<std::string> deps;
  /// Drawn afresh by every put; dependents record it. 0: stored by a node
  /// that predates key dependencies (nothing can depend on it yet).
  uint64_t gen = 0;
  TROUPE_FIELDS(value, deps, gen)
};

/// Parts of a cold_entry, decoded from the same bytes for the reads that
/// need no value (the decoder skips the fields a struct does not name, so
/// the value is not copied).
struct cold_deps {
  std::vector<std::string> deps;
  TROUPE_FIELDS(deps)
};

struct cold_generation {
  uint64_t gen = 0;
  TROUPE_FIELDS(gen)
};

/// What the cold tier holds under a key, decoded as T (cold_entry or a part).
template <class T>
struct cold_read {
  /// Empty when absent or expired, or when unreadable.
  std::optional<T> entry;
  /// Set when a value is stored but cannot be read (foreign or damaged): why.
  std::string unreadable;
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

/// Dependency index key of a key dependency: "\x01", the dependency key's
/// length (4 bytes, big-endian), the dependency key, the dependent key. The
/// length keeps keys holding any byte apart; "\x01" keeps these rows apart
/// from the path rows, which start with '/'.
std::string key_index_prefix(std::string_view dep_key) {
  std::string out("\x01");
  const auto n = static_cast<uint32_t>(dep_key.size());
  for (int shift = 24; shift >= 0; shift -= 8) {
    out.push_back(static_cast<char>((n >> shift) & 0xff));
  }
  out.append(dep_key);
  return out;
}

std::string key_index_key(std::string_view dep_key, std::string_view key) {
  return key_index_prefix(dep_key).append(key);
}

/// A shard's counts since the node started: kept by the family across the
/// shard's restarts, touched only by the shard's running incarnation (which
/// answers cache.stats from them).
struct shard_totals {
  uint64_t hits_hot = 0;
  uint64_t hits_cold = 0;
  std::map<std::string, uint64_t> misses;
  uint64_t puts = 0;
  uint64_t invalidations = 0;
  uint64_t cascaded = 0;
  uint64_t cascades_stopped = 0;
  /// Evictions of the shard's earlier incarnations.
  uint64_t evictions_before = 0;
};

/// One count, in the node's metrics and in the shard's own totals.
struct tally {
  counter& metric;
  uint64_t& total;
  void inc() {
    metric.inc();
    ++total;
  }
};

/// The shard's metrics, resolved once: looking a series up takes the
/// registry's lock, which has no place on the path of every get.
struct shard_metrics {
  shard_metrics(metrics_registry& m, const std::string& shard, shard_totals& t)
      : hits_hot{m.counter(cache::hits_metric, "Cache hits by tier", {{"tier", "hot"}}),
                 t.hits_hot},
        hits_cold{m.counter(cache::hits_metric, "Cache hits by tier", {{"tier", "cold"}}),
                  t.hits_cold},
        puts{m.counter(cache::puts_metric, "Entries stored in the cache"), t.puts},
        invalidations{
            m.counter(cache::invalidations_metric, "Entries dropped because a dependency changed"),
            t.invalidations},
        cascaded{
            m.counter(cache::cascaded_metric, "Entries dropped because a key they depend on went"),
            t.cascaded},
        cascades_stopped{m.counter(cache::cascades_stopped_metric,
                                   "Cascades cut short (cache.cascade_max or breaker open)"),
                         t.cascades_stopped},
        evictions(m.counter(cache::evictions_metric, "Hot entries evicted for memory",
                            {{"shard", shard}})),
        entries(m.gauge(cache::entries_metric, "Entries in the hot tier", {{"shard", shard}})),
        bytes(m.gauge(cache::bytes_metric, "Bytes accounted in the hot tier", {{"shard", shard}})) {
    for (const char* reason : cache::miss_reasons) {
      misses.emplace(reason, tally{m.counter(cache::misses_metric, "Cache misses by reason",
                                             {{"reason", reason}}),
                                   t.misses[reason]});
    }
  }

  tally hits_hot;
  tally hits_cold;
  tally puts;
  tally invalidations;
  tally cascaded;
  tally cascades_stopped;
  counter& evictions;
  gauge& entries;
  gauge& bytes;
  std::map<std::string_view, tally> misses;
};

/// A shard's hot tier: an LRU that only the shard's thread touches, whose
/// live entries without dependencies it publishes in the family's hot_view
/// (for GETs served on the gateway's threads). Every change of such an
/// entry here is mirrored there.
class hot_tier {
 public:
  hot_tier(uint64_t budget_bytes, std::shared_ptr<cache::hot_view> view)
      : lru_(budget_bytes), view_(std::move(view)) {
    lru_.set_eviction_listener(
        [this](const std::string& key, const cache_entry&) { view_->erase(key); });
  }
  hot_tier(const hot_tier&) = delete;
  hot_tier& operator=(const hot_tier&) = delete;

  /// A copy of the live entry under `key`, made most recent.
  std::optional<cache_entry> get(std::string_view key, uint64_t now_ms) {
    if (const auto* entry = lru_.get(key, now_ms)) {
      return *entry;
    }
    view_->erase(key);  // expired (or absent): withdrawn too
    return std::nullopt;
  }

  bool put(const std::string& key, cache_entry entry, uint64_t now_ms) {
    const bool plain = entry.deps.empty();
    const auto expires = entry.expires_at_ms;
    auto value = entry.value;  // shared with the view, not copied
    if (!lru_.put(key, std::move(entry), now_ms)) {
      return false;
    }
    if (plain) {
      view_->set(key, std::move(value), expires);
    } else {
      view_->erase(key);
    }
    return true;
  }

  std::optional<cache_entry> take(std::string_view key) {
    view_->erase(key);
    return lru_.take(key);
  }

  struct sizes {
    size_t entries = 0;
    uint64_t bytes = 0;
    /// By this incarnation's tier.
    uint64_t evictions = 0;
  };

  [[nodiscard]] sizes measure() const {
    return sizes{lru_.size(), lru_.bytes(), lru_.counters().evictions};
  }

 private:
  lru_cache lru_;
  std::shared_ptr<cache::hot_view> view_;
};

/// The cascade breaker, one for the whole cache (a runaway cascade is a
/// property of the data, not of the shard that happens to start it), shared
/// by the shards' threads and kept across their restarts.
class cascade_guard {
 public:
  explicit cascade_guard(const node_config& config) : breaker_(breaker_config_of(config)) {}

  /// Whether a cascade may run now (false while the breaker is open).
  bool allow() {
    std::lock_guard lock(mutex_);
    return breaker_.try_acquire(std::chrono::steady_clock::now()).allowed;
  }

  /// The outcome of a cascade `allow` let through: cut short or whole.
  void record(bool cut) {
    std::lock_guard lock(mutex_);
    const auto now = std::chrono::steady_clock::now();
    if (cut) {
      breaker_.on_failure(now, {});
    } else {
      breaker_.on_success(now, {});
    }
  }

 private:
  static breaker_config breaker_config_of(const node_config& config) {
    auto out = make_breaker_config(config.breaker);
    out.seed = cache::key_hash("cache cascade");
    return out;
  }

  std::mutex mutex_;
  circuit_breaker breaker_;
};

/// One shard's state. Lives on the shard's own (detached) thread, so disk
/// and file hashing never block a CAF scheduler thread.
class shard {
 public:
  shard(caf::event_based_actor* self, std::shared_ptr<node_context> ctx, std::shared_ptr<db> store,
        std::shared_ptr<cascade_guard> cascades, std::shared_ptr<cache::hot_view> view,
        std::shared_ptr<shard_totals> totals, std::string path, uint32_t index)
      : self_(self),
        ctx_(std::move(ctx)),
        store_(std::move(store)),
        cascades_(std::move(cascades)),
        path_(std::move(path)),
        index_(index),
        router_(ctx_->config),
        asks_(ctx_->registry),
        hot_(split_cache_memory(ctx_->config.cache).hot / router_.shards().size(), std::move(view)),
        totals_(std::move(totals)),
        metrics_(ctx_->metrics, path_, *totals_),
        generations_(std::random_device{}()),
        log_(logger("cache")),
        roots_(cache::dependency_roots(ctx_->config)) {
    publish_size();
  }

  ~shard() {
    // The next incarnation starts a tier of its own: what this one evicted
    // stays counted.
    totals_->evictions_before += hot_.measure().evictions;
  }

  /// This shard's figures (the client adds the shards' up).
  expected<cache::stats> stats(const empty_body&) const {
    const auto sizes = hot_.measure();
    const auto& t = *totals_;
    cache::stats out;
    out.entries = sizes.entries;
    out.bytes = sizes.bytes;
    out.evictions = t.evictions_before + sizes.evictions;
    out.hits = {t.hits_hot, t.hits_cold, t.hits_hot + t.hits_cold};
    uint64_t missed = 0;
    for (const char* reason : cache::miss_reasons) {
      const auto it = t.misses.find(reason);
      const uint64_t n = it == t.misses.end() ? 0 : it->second;
      out.misses[reason] = n;
      missed += n;
    }
    out.misses["total"] = missed;
    out.invalidations = t.invalidations;
    out.cascaded = t.cascaded;
    out.cascades_stopped = t.cascades_stopped;
    out.puts = t.puts;
    return out;
  }

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
    const uint64_t now = wall_ms();
    auto records = dependency_records(req, now);
    if (!records) {
      return std::move(records).err();
    }
    const uint64_t hot_ttl_ms = (req.ttl_s != 0 ? req.ttl_s : cfg.hot_ttl_s) * 1000ull;
    const uint64_t cold_ttl_ms = (req.ttl_s != 0 ? req.ttl_s : cfg.cold_ttl_s) * 1000ull;
    // The replaced value's index rows go first: its dependencies may not be
    // the new value's.
    unindex(req.key, previous_deps(req.key, now));
    auto stored =
        store_->put(column::cache, req.key,
                    encode(cold_entry{req.value, *records, next_generation()}), now + cold_ttl_ms);
    if (!stored) {
      return std::move(stored).err();
    }
    // Same lifetime as the entry, so index rows age out with it.
    if (auto indexed = index(req.key, *records, now + cold_ttl_ms); !indexed) {
      return std::move(indexed).err();
    }
    std::vector<std::string> watched;
    uint64_t key_records = 0;
    for (const auto& encoded : *records) {
      if (is_key_record(encoded)) {
        ++key_records;
      } else if (auto record = decode_record(encoded)) {
        watched.push_back(record->path);
      }
    }
    const uint64_t file_records = records->size() - key_records;
    (void)hot_.put(req.key,
                   cache_entry{std::make_shared<const std::string>(req.value), now + hot_ttl_ms,
                               std::move(*records)},
                   now);
    watch(watched);
    metrics_.puts.inc();
    // Whatever depended on the value this put replaced is stale now.
    const uint64_t cascaded = cascade_from({req.key}, now).found;
    publish_size();
    return cache::put_reply{req.key, file_records, key_records, cascaded};
  }

  expected<cache::get_reply> get(const cache::get_request& req) {
    if (auto bad = check_key(req.key); bad) {
      return *bad;
    }
    const uint64_t now = wall_ms();
    if (auto entry = hot_.get(req.key, now)) {
      // Checked outside the tier's lock: the check may hash files.
      if (!still_valid(entry->deps, now)) {
        drop(req.key, now);
        return miss("stale");
      }
      metrics_.hits_hot.inc();
      return cache::get_reply{true, *entry->value, "hot", {}};
    }
    return get_cold(req.key, now);
  }

  /// Drops the entries named by key, and those depending on a path (the
  /// path itself, anything below it, or a directory above it). Every shard
  /// gets the request and acts only on keys it owns, so each entry is
  /// counted once; the owner of a named key also cascades to its dependents
  /// (dropping its own, handing the others to their shards).
  expected<cache::invalidate_reply> invalidate(const cache::invalidate_request& req) {
    std::set<std::string> keys;
    for (const auto& key : req.keys) {
      if (owns(key)) {
        keys.insert(key);
      }
    }
    const std::vector<std::string> named(keys.begin(), keys.end());
    const uint64_t now = wall_ms();
    for (const auto& raw_path : req.paths) {
      std::error_code ec;
      const auto absolute = std::filesystem::absolute(raw_path, ec);
      if (raw_path.empty() || ec) {
        return make_error(errc::bad_request, "'" + raw_path + "' is not a path");
      }
      if (raw_path.front() != '/') {
        // Relative to what? The node's working directory is not the caller's.
        return make_error(errc::bad_request,
                          "invalidation paths must be absolute (got '" + raw_path + "')");
      }
      const auto path = absolute.lexically_normal().string();
      auto found = dependents(path, now);
      if (!found) {
        return std::move(found).err();
      }
      keys.insert(found->begin(), found->end());
    }
    cache::invalidate_reply reply;
    for (const auto& key : keys) {
      auto existed = forget(key, now);
      if (!existed) {
        return std::move(existed).err();
      }
      if (*existed) {
        ++reply.invalidated;
        metrics_.invalidations.inc();
        if (!req.cascade) {
          metrics_.cascaded.inc();  // handed here by another shard's cascade
        }
      }
    }
    if (req.cascade) {
      const auto cascade = cascade_from(named, now);
      reply.invalidated += cascade.found;
      reply.cascaded = cascade.found;
      reply.cascade_stopped = cascade.stopped;
    }
    publish_size();
    return reply;
  }

  expected<cache::del_reply> del(const cache::del_request& req) {
    const uint64_t now = wall_ms();
    auto existed = forget(req.key, now);
    if (!existed) {
      return std::move(existed).err();
    }
    const uint64_t cascaded = cascade_from({req.key}, now).found;
    publish_size();
    return cache::del_reply{*existed, cascaded};
  }

 private:
  /// What one cascade did.
  struct cascade_result {
    /// Dependents found: dropped here or handed to their shard.
    uint64_t found = 0;
    /// Cut short by cache.cascade_max or refused by the open breaker.
    bool stopped = false;
  };

  uint64_t next_generation() {
    uint64_t g = 0;
    while (g == 0) {
      g = generations_();
    }
    return g;
  }

  /// The records a put stores: one per file dependency (fingerprinted now,
  /// before anyone reads the value), one per key dependency with that
  /// entry's generation, and the records of each key dependency, so one
  /// look-up finds every dependent and a read checks the whole chain.
  expected<std::vector<std::string>> dependency_records(const cache::put_request& req,
                                                        uint64_t now) {
    std::vector<std::string> records;
    std::set<std::string> seen;
    auto add = [&](std::string encoded) {
      if (seen.insert(encoded).second) {
        records.push_back(std::move(encoded));
      }
    };
    for (const auto& dep : req.deps) {
      if (auto why = cache::dependency_refusal(dep, roots_); !why.empty()) {
        return make_error(errc::bad_request, std::move(why));
      }
      auto record = fingerprint(dep, fingerprint_limits{});
      if (!record) {
        return std::move(record).err();
      }
      add(encode_record(*record));
    }
    for (const auto& dep_key : req.dep_keys) {
      if (auto bad = check_key(dep_key); bad) {
        return *bad;
      }
      if (dep_key == req.key) {
        return make_error(errc::bad_request, "an entry cannot depend on its own key");
      }
      auto cold = read_cold<cold_entry>(dep_key, now);
      if (!cold) {
        return std::move(cold).err();
      }
      if (!cold->unreadable.empty()) {
        return make_error(errc::conflict, "dependency key '" + dep_key +
                                              "' is stored but unreadable: " + cold->unreadable);
      }
      auto& dep = cold->entry;
      if (!dep) {
        return make_error(errc::not_found, "dependency key '" + dep_key + "' is not in the cache");
      }
      if (!still_valid(dep->deps, now)) {
        return make_error(errc::conflict, "dependency key '" + dep_key +
                                              "' is stale: something it depends on changed");
      }
      add(encode_key_record(key_record{dep_key, dep->gen}));
      for (auto& inherited : dep->deps) {
        if (is_key_record(inherited)) {
          if (auto record = decode_key_record(inherited); record && record->key == req.key) {
            return make_error(errc::bad_request, "dependency cycle: '" + dep_key +
                                                     "' already depends on '" + req.key + "'");
          }
        }
        add(std::move(inherited));
      }
    }
    if (records.size() > ctx_->config.cache.deps_max) {
      return make_error(errc::too_large,
                        std::to_string(records.size()) +
                            " dependency records (those of the dependency keys included) "
                            "exceed cache.deps_max (" +
                            std::to_string(ctx_->config.cache.deps_max) + ")");
    }
    return records;
  }

  /// The cold copy of `key` decoded as T; an error only for a store failure.
  template <class T>
  expected<cold_read<T>> read_cold(const std::string& key, uint64_t now) {
    auto raw = store_->get(column::cache, key, now);
    if (!raw) {
      if (raw.err().code == errc::corrupt) {
        return cold_read<T>{std::nullopt, raw.err().message};
      }
      return std::move(raw).err();
    }
    if (!raw->has_value()) {
      return cold_read<T>{};
    }
    auto entry = decode<T>(**raw);
    if (!entry) {
      return cold_read<T>{std::nullopt, "it does not decode: " + entry.err().message};
    }
    return cold_read<T>{std::move(*entry), {}};
  }

  /// Dependency records of the value stored under `key` now, if any.
  std::vector<std::string> previous_deps(const std::string& key, uint64_t now) {
    if (auto cold = read_cold<cold_deps>(key, now); cold && cold->entry) {
      return std::move(cold->entry->deps);
    }
    return {};
  }

  /// Writes the dependency index rows of `key`: one per file or directory
  /// path, one per key it depends on.
  expected<bool> index(const std::string& key, const std::vector<std::string>& records,
                       uint64_t expires_at_ms) {
    for (const auto& encoded : records) {
      std::string row;
      if (is_key_record(encoded)) {
        if (auto record = decode_key_record(encoded)) {
          row = key_index_key(record->key, key);
        }
      } else if (auto record = decode_record(encoded)) {
        row = index_key(record->path, key);
      }
      if (row.empty()) {
        continue;
      }
      if (auto indexed = store_->put(column::deps, row, {}, expires_at_ms); !indexed) {
        return std::move(indexed).err();
      }
    }
    return true;
  }

  /// Removes the index rows `index` wrote for these records (best effort: a
  /// row left behind only costs a needless invalidation later).
  void unindex(const std::string& key, const std::vector<std::string>& records) {
    for (const auto& encoded : records) {
      if (is_key_record(encoded)) {
        if (auto record = decode_key_record(encoded)) {
          (void)store_->remove(column::deps, key_index_key(record->key, key));
        }
      } else if (auto record = decode_record(encoded)) {
        (void)store_->remove(column::deps, index_key(record->path, key));
      }
    }
  }

  /// Drops every entry that depends on one of `keys` (they are gone or
  /// replaced). Dependents of this shard are dropped here; the others are
  /// handed to their shards in one message each. Bounded by
  /// cache.cascade_max and guarded by the cascade breaker: a cut cascade is
  /// logged and counted, and what it did not reach is refused when read,
  /// since every dependent checks the generation of each key it depends on.
  cascade_result cascade_from(const std::vector<std::string>& keys, uint64_t now) {
    cascade_result result;
    if (keys.empty()) {
      return result;
    }
    const uint64_t limit = ctx_->config.cache.cascade_max;
    std::set<std::string> found;
    bool over = false;
    for (const auto& key : keys) {
      auto rows = store_->scan_prefix(column::deps, key_index_prefix(key), now,
                                      static_cast<size_t>(limit - found.size() + 1));
      if (!rows) {
        log_->warn("{}: cascade from '{}' could not read the dependency index: {}", path_, key,
                   rows.err().message);
        result.stopped = true;
        break;
      }
      const size_t prefix_bytes = key_index_prefix(key).size();
      for (auto& [row, unused] : *rows) {
        if (found.size() == limit) {
          over = true;
          break;
        }
        found.insert(row.substr(prefix_bytes));
      }
      if (over) {
        break;
      }
    }
    for (const auto& key : keys) {
      found.erase(key);  // named ones are dropped by the caller
    }
    if (found.empty()) {
      return result;
    }
    if (!cascades_->allow()) {
      metrics_.cascades_stopped.inc();
      log_->warn(
          "{}: cascade breaker open: {} dependents of '{}' not dropped now (they are "
          "refused when read)",
          path_, found.size(), keys.front());
      result.stopped = true;
      return result;
    }
    cascades_->record(over);
    if (over) {
      metrics_.cascades_stopped.inc();
      log_->warn(
          "{}: cascade from '{}' cut at {} dependents (cache.cascade_max); the rest are "
          "refused when read",
          path_, keys.front(), limit);
      result.stopped = true;
    }
    result.found = found.size();
    std::unordered_map<std::string, std::vector<std::string>> elsewhere;
    for (const auto& key : found) {
      auto owner = router_.shard_for(key);
      if (owner != path_) {
        elsewhere[std::move(owner)].push_back(key);
        continue;
      }
      if (auto existed = forget(key, now); existed && *existed) {
        metrics_.invalidations.inc();
        metrics_.cascaded.inc();
      }
    }
    // A request each: a shard that is restarting gets it when it is back
    // (its supervisor holds it), and a failure is logged rather than lost.
    for (auto& [owner, owned] : elsewhere) {
      const auto count = owned.size();
      asks_.ask(self_, owner,
                make_envelope(cache::invalidate_type,
                              cache::invalidate_request{{}, std::move(owned), false}),
                std::chrono::milliseconds(ctx_->config.gateway.request_timeout_ms),
                [log = log_, path = path_, owner, count](envelope r) {
                  if (r.is_error()) {
                    log->warn(
                        "{}: handing {} dependents to {} failed: {} (they are refused "
                        "when read)",
                        path, count, owner, read_error(r).message);
                  }
                });
    }
    return result;
  }

  expected<cache::get_reply> get_cold(const std::string& key, uint64_t now) {
    auto cold = read_cold<cold_entry>(key, now);
    if (!cold) {
      return std::move(cold).err();
    }
    if (!cold->unreadable.empty()) {
      // A foreign or damaged value is skipped (and dropped), not served.
      log_->warn("{}: dropping unreadable cold entry '{}': {}", path_, key, cold->unreadable);
      (void)store_->remove(column::cache, key);
      return miss("corrupt");
    }
    auto& entry = cold->entry;
    if (!entry) {
      return miss("absent");
    }
    if (!still_valid(entry->deps, now)) {
      drop(key, now);
      return miss("stale");
    }
    // Promoted with the hot lifetime; the cold copy keeps its own expiry.
    const uint64_t hot_ttl_ms = ctx_->config.cache.hot_ttl_s * 1000ull;
    (void)hot_.put(key,
                   cache_entry{std::make_shared<const std::string>(entry->value), now + hot_ttl_ms,
                               entry->deps},
                   now);
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
      caf::anon_send(watcher, std::move(msg.type), std::move(msg.body), msg.correlation_id);
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
    if (auto cold = read_cold<cold_deps>(key, now);
        cold && (cold->entry || !cold->unreadable.empty())) {
      existed = true;
      if (cold->entry && deps.empty()) {
        deps = std::move(cold->entry->deps);
      }
    }
    if (auto removed = store_->remove(column::cache, key); !removed) {
      return std::move(removed).err();
    }
    unindex(key, deps);
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
        const bool match =
            exact ? dep == prefix.substr(0, prefix.size() - 1) : dep == path || below;
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
  /// serving is only allowed when staleness is ruled out). A key dependency
  /// holds while that key's cold copy is the very put recorded; the files
  /// behind it were copied into `deps` at put and are checked here too.
  bool still_valid(const std::vector<std::string>& deps, uint64_t now) {
    for (const auto& encoded : deps) {
      if (is_key_record(encoded)) {
        auto record = decode_key_record(encoded);
        if (!record) {
          return false;
        }
        // Only the generation is decoded: a hit does not copy the values
        // it depends on.
        auto current = read_cold<cold_generation>(record->key, now);
        if (!current || !current->entry || current->entry->gen != record->generation) {
          return false;
        }
        continue;
      }
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

  /// Drops a stale entry and, with it, whatever depended on it.
  void drop(const std::string& key, uint64_t now) {
    (void)forget(key, now);  // a failed delete leaves it for the next read to catch
    metrics_.invalidations.inc();
    (void)cascade_from({key}, now);
    publish_size();
  }

  cache::get_reply miss(const char* reason) {
    metrics_.misses.at(reason).inc();
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
    const auto sizes = hot_.measure();
    metrics_.entries.set(static_cast<double>(sizes.entries));
    metrics_.bytes.set(static_cast<double>(sizes.bytes));
    metrics_.evictions.inc(sizes.evictions - evictions_published_);
    evictions_published_ = sizes.evictions;
  }

  caf::event_based_actor* self_;
  std::shared_ptr<node_context> ctx_;
  std::shared_ptr<db> store_;
  std::shared_ptr<cascade_guard> cascades_;
  std::string path_;
  uint32_t index_;
  /// Where the keys of a cascade live.
  cache::client router_;
  /// Cascades handed to other shards, as requests.
  asker asks_;
  hot_tier hot_;
  std::shared_ptr<shard_totals> totals_;
  shard_metrics metrics_;
  std::mt19937_64 generations_;
  std::shared_ptr<spdlog::logger> log_;
  /// Where dependency paths must lie (resolved once per incarnation).
  std::vector<std::string> roots_;
  uint64_t evictions_published_ = 0;
};

child_spec shard_child(uint32_t index, std::shared_ptr<node_context> ctx, std::shared_ptr<db> store,
                       std::shared_ptr<cascade_guard> cascades,
                       std::shared_ptr<cache::hot_view> view, bool detached) {
  child_spec spec;
  spec.name = "shard-" + std::to_string(index);
  auto totals = std::make_shared<shard_totals>();
  spec.start = [ctx, store, cascades, view, totals, index, detached](caf::actor_system& system,
                                                                     const std::string& path) {
    // Each incarnation starts from the cold tier. Withdrawn here, before the
    // new actor exists, so no reader sees the old tier once it is up (until
    // then the gateway may still serve the old tier's plain entries, which
    // are as valid as their cold copies).
    view->clear();
    auto behavior = [ctx, store, cascades, view, totals, index, path,
                     detached](caf::event_based_actor* self) -> caf::behavior {
      // Runs on the shard's own thread, so only that thread changes policy.
      if (detached && ctx->config.cache.shard_policy == shard_policy::idle) {
        const sched_param param{};
        if (const int rc = ::pthread_setschedparam(::pthread_self(), SCHED_IDLE, &param); rc != 0) {
          logger("cache")->warn("{}: could not switch to SCHED_IDLE: {}", path, std::strerror(rc));
        }
      }
      auto state = std::make_shared<shard>(self, ctx, store, cascades, view, totals, path, index);
      // A put carries a value of up to cache.value_bytes_max and a key of up
      // to cache.key_bytes_max on top of an ordinary message (dependencies,
      // ttl): those limits govern it, each refused with its own name by
      // the shard, not the generic message bound.
      const auto& limits = ctx->config;
      auto table = std::make_shared<handler_table>(decode_limits{
          .body_bytes_max = limits.limits.message_bytes_max + limits.cache.value_bytes_max +
                            limits.cache.key_bytes_max});
      table->on<cache::get_request>(cache::get_type,
                                    [state](const auto& r) { return state->get(r); });
      table->on<cache::put_request>(cache::put_type,
                                    [state](const auto& r) { return state->put(r); });
      table->on<cache::del_request>(cache::del_type,
                                    [state](const auto& r) { return state->del(r); });
      table->on<cache::invalidate_request>(cache::invalidate_type,
                                           [state](const auto& r) { return state->invalidate(r); });
      table->on<empty_body>(cache::stats_type, [state](const auto& r) { return state->stats(r); });
      return serve(self, table);
    };
    return detached ? system.spawn<caf::detached>(behavior) : system.spawn(behavior);
  };
  return spec;
}

}  // namespace

cache_family make_cache(std::shared_ptr<node_context> ctx, std::shared_ptr<db> store,
                        cache_options options) {
  const uint32_t shards = cache::shard_count(ctx->config);
  supervisor_spec spec;
  spec.strat = strategy::one_for_one;
  spec.policy = make_restart_policy(ctx->config.supervisor);
  if (options.watch) {
    spec.children.push_back(watcher_child(ctx));
  }
  auto cascades = std::make_shared<cascade_guard>(ctx->config);
  std::vector<std::shared_ptr<const cache::hot_view>> views;
  for (uint32_t i = 0; i < shards; ++i) {
    auto view = std::make_shared<cache::hot_view>();
    views.push_back(view);
    spec.children.push_back(
        shard_child(i, ctx, store, cascades, std::move(view), options.detached));
  }
  auto client = std::make_shared<const cache::client>(ctx->config, std::move(views), &ctx->metrics);
  return cache_family{supervisor_child("cache", ctx, std::move(spec)), std::move(client)};
}

}  // namespace troupe
