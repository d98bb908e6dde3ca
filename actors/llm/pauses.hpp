#pragma once

// Upstream back-off, scoped to what asked for it: a 429 with `retry-after`
// (or an exhausted `anthropic-ratelimit-*` bucket's reset) pauses calls to
// the provider/model that answered it, and nothing else. Each pause is
// capped (llm.retry_after_max_ms), so one answer cannot stop a model for a
// day, and the table is bounded, so client-chosen model names cannot grow
// it. Like the limiter it reads no clock and takes no lock: one actor owns
// it and passes `now`.

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace troupe::llm {

class upstream_pauses {
 public:
  using time_point = std::chrono::steady_clock::time_point;

  /// `wait_max`: the longest pause applied; `keys_max`: pauses kept at once.
  upstream_pauses(std::chrono::milliseconds wait_max, std::size_t keys_max);

  /// `key` ("provider/model") is not to be called before now + `wait`
  /// (capped at wait_max). A pause already in force ends at the later of
  /// the two. Returns the wait applied.
  std::chrono::milliseconds pause(const std::string& key, std::chrono::milliseconds wait,
                                  time_point now);

  /// When `key` may be called again; nullopt when it is not paused.
  [[nodiscard]] std::optional<time_point> until(const std::string& key, time_point now) const;

  /// The pauses in force: key and milliseconds left, by key.
  [[nodiscard]] std::vector<std::pair<std::string, int64_t>> in_force(time_point now) const;

 private:
  void expire(time_point now);

  std::chrono::milliseconds wait_max_;
  std::size_t keys_max_;
  std::map<std::string, time_point> until_;
};

}  // namespace troupe::llm
