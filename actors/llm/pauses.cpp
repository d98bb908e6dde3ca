#include "actors/llm/pauses.hpp"

#include <algorithm>
#include <cassert>

namespace troupe::llm {

upstream_pauses::upstream_pauses(std::chrono::milliseconds wait_max, std::size_t keys_max)
    : wait_max_(wait_max), keys_max_(keys_max) {
  assert(keys_max_ > 0);
}

std::chrono::milliseconds upstream_pauses::pause(const std::string& key,
                                                 std::chrono::milliseconds wait, time_point now) {
  wait = std::clamp(wait, std::chrono::milliseconds(0), wait_max_);
  expire(now);
  auto it = until_.find(key);
  if (it == until_.end() && until_.size() >= keys_max_) {
    // Full: forget the pause that ends first, the one whose loss costs least.
    until_.erase(std::min_element(until_.begin(), until_.end(), [](const auto& a, const auto& b) {
      return a.second < b.second;
    }));
  }
  auto& until = until_[key];
  until = std::max(until, now + wait);
  return wait;
}

std::optional<upstream_pauses::time_point> upstream_pauses::until(const std::string& key,
                                                                  time_point now) const {
  const auto it = until_.find(key);
  if (it == until_.end() || it->second <= now) {
    return std::nullopt;
  }
  return it->second;
}

std::vector<std::pair<std::string, int64_t>> upstream_pauses::in_force(time_point now) const {
  std::vector<std::pair<std::string, int64_t>> out;
  for (const auto& [key, until] : until_) {
    if (until > now) {
      out.emplace_back(key,
                       std::chrono::duration_cast<std::chrono::milliseconds>(until - now).count());
    }
  }
  return out;
}

void upstream_pauses::expire(time_point now) {
  std::erase_if(until_, [now](const auto& entry) { return entry.second <= now; });
}

}  // namespace troupe::llm
