#pragma once

// Waiting on a condition with a deadline (tests never sleep to synchronise).

#include <chrono>
#include <cstdlib>
#include <functional>
#include <thread>

namespace troupe::test {

/// How many times slower than usual this build runs (TESTS_SLOWDOWN,
/// set by CMake for the tests: 4 under ThreadSanitizer, else 1).
inline long slowdown() {
  const char* text = std::getenv("TESTS_SLOWDOWN");
  const long n = text != nullptr ? std::strtol(text, nullptr, 10) : 1;
  return n >= 1 ? n : 1;
}

/// Polls `pred` until it holds or `timeout` (times the slowdown) passes;
/// true when it held.
inline bool wait_until(const std::function<bool()>& pred,
                       std::chrono::milliseconds timeout = std::chrono::milliseconds(5000)) {
  const auto deadline = std::chrono::steady_clock::now() + timeout * slowdown();
  while (!pred()) {
    if (std::chrono::steady_clock::now() >= deadline) {
      return false;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  return true;
}

}  // namespace troupe::test
