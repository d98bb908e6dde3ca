#pragma once

// Waiting on a condition with a deadline (tests never sleep to synchronise).

#include <chrono>
#include <functional>
#include <thread>

namespace troupe::test {

/// Polls `pred` until it holds or `timeout` passes; true when it held.
inline bool wait_until(const std::function<bool()>& pred,
                       std::chrono::milliseconds timeout = std::chrono::milliseconds(5000)) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!pred()) {
    if (std::chrono::steady_clock::now() >= deadline) {
      return false;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  return true;
}

}  // namespace troupe::test
