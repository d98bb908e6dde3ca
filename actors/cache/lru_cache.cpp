#include "actors/cache/lru_cache.hpp"

#include <cassert>
#include <iterator>
#include <utility>

namespace troupe {

namespace {

bool is_expired(const cache_entry& entry, uint64_t now_ms) {
  return entry.expires_at_ms != 0 && now_ms >= entry.expires_at_ms;
}

}  // namespace

lru_cache::lru_cache(uint64_t budget_bytes) : budget_bytes_(budget_bytes) {}

uint64_t lru_cache::accounted_bytes(std::string_view key, const cache_entry& entry) {
  uint64_t total = entry_overhead_bytes + key.size() + (entry.value ? entry.value->size() : 0);
  for (const auto& dep : entry.deps) {
    total += dep.size();
  }
  return total;
}

bool lru_cache::put(std::string key, cache_entry entry, uint64_t now_ms) {
  // The clock is not needed to insert; eviction is by recency alone, and an
  // already-expired entry is dropped by the first get that meets it.
  (void)now_ms;
  assert(!notifying_);
  const uint64_t entry_bytes = accounted_bytes(key, entry);
  if (entry_bytes > budget_bytes_) {
    return false;
  }
  if (auto found = index_.find(key); found != index_.end()) {
    // Replace in place: the node keeps its key string, so the index's
    // string_view into it stays valid.
    node& existing = *found->second;
    bytes_ -= existing.accounted_bytes;
    existing.entry = std::move(entry);
    existing.accounted_bytes = entry_bytes;
    bytes_ += entry_bytes;
    order_.splice(order_.begin(), order_, found->second);
  } else {
    order_.push_front(node{std::move(key), std::move(entry), entry_bytes});
    index_.emplace(std::string_view(order_.front().key), order_.begin());
    bytes_ += entry_bytes;
  }
  ++counters_.inserts;
  // The new entry is at the front and fits the budget on its own, so
  // eviction stops before reaching it.
  evict_to_budget();
  assert(bytes_ <= budget_bytes_);
  return true;
}

const cache_entry* lru_cache::get(std::string_view key, uint64_t now_ms) {
  assert(!notifying_);
  auto found = index_.find(key);
  if (found == index_.end()) {
    ++counters_.misses;
    return nullptr;
  }
  auto it = found->second;
  if (is_expired(it->entry, now_ms)) {
    remove(it);
    ++counters_.expired;
    ++counters_.misses;
    return nullptr;
  }
  order_.splice(order_.begin(), order_, it);
  ++counters_.hits;
  return &it->entry;
}

std::optional<cache_entry> lru_cache::take(std::string_view key) {
  assert(!notifying_);
  auto found = index_.find(key);
  if (found == index_.end()) {
    return std::nullopt;
  }
  auto it = found->second;
  std::optional<cache_entry> taken(std::move(it->entry));
  remove(it);
  return taken;
}

bool lru_cache::erase(std::string_view key) {
  assert(!notifying_);
  auto found = index_.find(key);
  if (found == index_.end()) {
    return false;
  }
  remove(found->second);
  return true;
}

void lru_cache::set_budget(uint64_t budget_bytes) {
  assert(!notifying_);
  budget_bytes_ = budget_bytes;
  evict_to_budget();
}

void lru_cache::set_eviction_listener(eviction_listener listener) {
  assert(!notifying_);
  on_evict_ = std::move(listener);
}

void lru_cache::remove(node_list::iterator it) {
  // Drop the index entry first: its string_view points into the node.
  const size_t erased = index_.erase(std::string_view(it->key));
  assert(erased == 1);
  (void)erased;
  assert(bytes_ >= it->accounted_bytes);
  bytes_ -= it->accounted_bytes;
  order_.erase(it);
}

void lru_cache::evict_to_budget() {
  // Bounded: each pass removes one entry, and an empty cache holds 0 bytes.
  while (bytes_ > budget_bytes_) {
    assert(!order_.empty());
    auto victim = std::prev(order_.end());
    if (on_evict_) {
      notifying_ = true;
      on_evict_(victim->key, victim->entry);
      notifying_ = false;
    }
    remove(victim);
    ++counters_.evictions;
  }
  assert(order_.empty() == (bytes_ == 0));
}

}  // namespace troupe
