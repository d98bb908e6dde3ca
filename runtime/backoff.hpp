#pragma once

// Exponential backoff with jitter, the one formula behind supervisor
// restarts and upstream retries.

#include <algorithm>
#include <cassert>
#include <chrono>
#include <cmath>
#include <cstdint>

namespace troupe {

/// The wait before the k-th try (k >= 1): min(max, min * 2^(k-1)), spread by
/// +-`jitter` (0.2: +-20 %) and never above `max`. `random01` is a uniform
/// draw in [0, 1), injected so that tests are exact.
[[nodiscard]] inline std::chrono::milliseconds exponential_backoff(std::chrono::milliseconds min,
                                                                   std::chrono::milliseconds max,
                                                                   uint32_t k, double jitter,
                                                                   double random01) {
  assert(k >= 1 && random01 >= 0.0 && random01 < 1.0);
  const auto max_ms = static_cast<double>(max.count());
  // Capped early so that the shift cannot overflow.
  const uint32_t exponent = std::min<uint32_t>(k - 1, 30);
  const double base_ms =
      std::min(max_ms, static_cast<double>(min.count()) * static_cast<double>(1ull << exponent));
  const double spread = 1.0 + jitter * (2.0 * random01 - 1.0);
  return std::chrono::milliseconds{
      static_cast<int64_t>(std::llround(std::clamp(base_ms * spread, 0.0, max_ms)))};
}

}  // namespace troupe
