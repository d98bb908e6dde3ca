#include "actors/cache/hot_view.hpp"

namespace troupe::cache {

std::optional<std::string> hot_view::get(std::string_view key, uint64_t now_ms) const {
  const auto b = buckets_[bucket_of(key)].load(std::memory_order_acquire);
  if (!b) {
    return std::nullopt;
  }
  const auto it = b->find(key);
  if (it == b->end()) {
    return std::nullopt;
  }
  const auto& e = *it->second;
  if (e.expires_at_ms != 0 && e.expires_at_ms <= now_ms) {
    return std::nullopt;  // the shard withdraws it when it next looks
  }
  return *e.value;
}

void hot_view::set(const std::string& key, std::shared_ptr<const std::string> value,
                   uint64_t expires_at_ms) {
  auto& slot = buckets_[bucket_of(key)];
  const auto old = slot.load(std::memory_order_relaxed);  // only this thread writes
  auto copy = old ? std::make_shared<bucket>(*old) : std::make_shared<bucket>();
  (*copy)[key] = std::make_shared<const entry>(entry{std::move(value), expires_at_ms});
  slot.store(std::move(copy), std::memory_order_release);
}

void hot_view::erase(std::string_view key) {
  auto& slot = buckets_[bucket_of(key)];
  const auto old = slot.load(std::memory_order_relaxed);
  if (!old || old->find(key) == old->end()) {
    return;
  }
  auto copy = std::make_shared<bucket>(*old);
  copy->erase(copy->find(key));
  slot.store(copy->empty() ? nullptr : std::shared_ptr<const bucket>(std::move(copy)),
             std::memory_order_release);
}

void hot_view::clear() {
  for (auto& slot : buckets_) {
    slot.store(nullptr, std::memory_order_release);
  }
}

}  // namespace troupe::cache
