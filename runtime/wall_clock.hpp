#pragma once

// Wall-clock time as the store and the wire count it: milliseconds since the
// Unix epoch (expiry times, ages shown to people). Durations and deadlines
// use steady_clock instead.

#include <chrono>
#include <cstdint>

namespace troupe {

[[nodiscard]] inline uint64_t wall_ms() {
  return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                   std::chrono::system_clock::now().time_since_epoch())
                                   .count());
}

}  // namespace troupe
