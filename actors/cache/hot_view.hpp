#pragma once

// What a cache shard publishes of its hot tier for readers on other threads
// (the gateway's GET /v1/cache/{key}): its live entries that carry no
// dependency, whose hits need no check, so no disk and no hashing. The
// shard is the only writer; readers load an immutable snapshot of one
// bucket without a lock and without waiting for the shard.
//
// A change copies one bucket (the keys hashed there, about entries / 4096)
// and publishes the copy; a reader holding the old bucket finishes with it
// undisturbed. A reader's hit does not make the entry recent in the
// shard's LRU: recency is what the shard itself sees (puts and its own
// reads).

#include <array>
#include <atomic>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>

namespace troupe::cache {

class hot_view {
 public:
  hot_view() = default;
  hot_view(const hot_view&) = delete;
  hot_view& operator=(const hot_view&) = delete;

  // Readers, any thread.

  /// The value under `key` if it is published and live at `now_ms`.
  [[nodiscard]] std::optional<std::string> get(std::string_view key, uint64_t now_ms) const;

  // The writer: the owning shard only.

  /// Publishes `value` under `key` until `expires_at_ms` (0: no expiry).
  /// The view shares the bytes with the shard's tier; it copies none.
  void set(const std::string& key, std::shared_ptr<const std::string> value,
           uint64_t expires_at_ms);
  /// Withdraws `key` (no-op if not published).
  void erase(std::string_view key);
  /// Withdraws everything (a new shard incarnation starts empty).
  void clear();

 private:
  struct entry {
    std::shared_ptr<const std::string> value;
    uint64_t expires_at_ms = 0;
  };
  struct hash {
    using is_transparent = void;
    size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
  };
  using bucket = std::unordered_map<std::string, std::shared_ptr<const entry>, hash, std::equal_to<>>;
  static constexpr size_t bucket_count = 4096;

  [[nodiscard]] static size_t bucket_of(std::string_view key) { return hash{}(key) % bucket_count; }

  std::array<std::atomic<std::shared_ptr<const bucket>>, bucket_count> buckets_{};
};

}  // namespace troupe::cache
