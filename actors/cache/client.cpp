#include "actors/cache/client.hpp"

#include <chrono>

#include "actors/cache/hot_view.hpp"
#include "actors/cache/messages.hpp"
#include "runtime/metrics/metrics.hpp"
#include "runtime/wall_clock.hpp"

namespace troupe::cache {

client::client(const node_config& config) : memory_budget_bytes_(config.cache.memory_budget_bytes) {
  const auto n = shard_count(config);
  paths_.reserve(n);
  for (uint32_t i = 0; i < n; ++i) {
    paths_.push_back("cache/shard-" + std::to_string(i));
  }
}

client::client(const node_config& config, std::vector<std::shared_ptr<const hot_view>> views,
               metrics_registry* metrics)
    : client(config) {
  views_ = std::move(views);
  if (metrics != nullptr) {
    hot_hits_metric_ = &metrics->counter(hits_metric, "Cache hits by tier", {{"tier", "hot"}});
  }
}

client::~client() = default;

std::string client::shard_for(std::string_view key) const {
  return paths_[key_hash(key) % paths_.size()];
}

std::optional<std::string> client::hot_get(std::string_view key) const {
  if (views_.empty()) {
    return std::nullopt;
  }
  auto value = views_[key_hash(key) % views_.size()]->get(key, wall_ms());
  if (value) {
    hot_hits_.fetch_add(1, std::memory_order_relaxed);
    if (hot_hits_metric_ != nullptr) {
      hot_hits_metric_->inc();
    }
  }
  return value;
}

envelope client::add_invalidations(const std::vector<envelope>& replies) {
  invalidate_reply total;
  for (const auto& r : replies) {
    if (r.is_error()) {
      return r;
    }
    if (auto body = decode<invalidate_reply>(r.body)) {
      total.invalidated += body->invalidated;
      total.cascaded += body->cascaded;
      total.cascade_stopped = total.cascade_stopped || body->cascade_stopped;
    }
  }
  return make_envelope(std::string(invalidate_type) + ".reply", total);
}

envelope client::add_stats(const std::vector<envelope>& replies) const {
  stats total;
  total.shards = paths_.size();
  total.memory_budget_bytes = memory_budget_bytes_;
  for (const auto& r : replies) {
    if (r.is_error()) {
      return r;
    }
    auto s = decode<stats>(r.body);
    if (!s) {
      return make_error_envelope(
          make_error(errc::internal, "an unreadable cache.stats reply: " + s.err().message));
    }
    total.entries += s->entries;
    total.bytes += s->bytes;
    total.hits.hot += s->hits.hot;
    total.hits.cold += s->hits.cold;
    for (const auto& [reason, n] : s->misses) {
      total.misses[reason] += n;
    }
    total.evictions += s->evictions;
    total.invalidations += s->invalidations;
    total.cascaded += s->cascaded;
    total.cascades_stopped += s->cascades_stopped;
    total.puts += s->puts;
  }
  total.hits.hot += hot_hits_.load(std::memory_order_relaxed);
  total.hits.total = total.hits.hot + total.hits.cold;
  const uint64_t missed = total.misses["total"];
  const uint64_t asked = total.hits.total + missed;
  total.hit_ratio =
      asked == 0 ? 0.0 : static_cast<double>(total.hits.total) / static_cast<double>(asked);
  return make_envelope(std::string(stats_type) + ".reply", total);
}

}  // namespace troupe::cache
