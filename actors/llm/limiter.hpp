#pragma once

// The LLM gateway's local rate limiter: it mirrors Anthropic's three buckets
// (requests, input tokens and output tokens per minute) so that we hold
// requests back before upstream answers 429, and it QUEUES what does not fit
// instead of refusing it. Like `circuit_breaker` it reads no clock, starts no
// thread and takes no lock: every method that needs time takes `now`, and one
// actor owns it.
//
// Buckets     each holds up to its per-minute figure, starts full and refills
//             continuously at figure/60 s (exact integer arithmetic: a bucket
//             of 60 per minute gains one unit every second on the nanosecond).
//             A figure of 0 means that bucket is unlimited.
// Admission   a request takes 1 from the request bucket and its token
//             estimates from the token buckets. It is admitted when every
//             bucket holds enough; `settle` later corrects the token buckets
//             by what the call really used, which may leave a bucket in debt.
// Order       highest priority first (0 is highest); within a priority,
//             round-robin across clients, each client's requests FIFO. The
//             next request in that order blocks the ones behind it even if a
//             smaller one would fit: skipping ahead would let a stream of
//             small requests starve a large one forever.
// Bounds      `queue_max` waiting requests across all clients, so the number
//             of clients tracked is bounded too; admitted requests leave no
//             state behind (`settle` takes the estimates back as arguments).

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "runtime/error.hpp"

namespace troupe::llm {

/// Largest per-minute figure a bucket accepts. Buckets count in units times
/// nanoseconds-per-minute in an int64_t, which must hold a full bucket plus a
/// full minute of debt plus one settle correction; 50M per minute is far
/// above any Anthropic tier.
inline constexpr std::int64_t limiter_per_minute_max = 50'000'000;

/// Largest `queue_max`: a waiting request costs ~150 bytes plus its client
/// name, so this keeps a misconfigured queue to tens of megabytes.
inline constexpr std::size_t limiter_queue_max_ceiling = 100'000;

/// Largest number of priority levels (each level is one queue to scan).
inline constexpr int limiter_priorities_max = 16;

struct limiter_config {
  /// Each bucket's capacity and refill per minute; 0 = unlimited.
  std::int64_t requests_per_minute = 0;
  std::int64_t input_tokens_per_minute = 0;
  std::int64_t output_tokens_per_minute = 0;
  /// Waiting requests, all clients together; one more is `too_large`.
  std::size_t queue_max = 1000;
  /// Priority levels: 0 is the highest, `priorities - 1` the lowest.
  int priorities = 3;
};

/// nullopt when 0 <= each per-minute figure <= limiter_per_minute_max,
/// 1 <= queue_max <= limiter_queue_max_ceiling and
/// 1 <= priorities <= limiter_priorities_max. Otherwise a `config_invalid`
/// error naming the key, e.g. "llm.queue_max: ...".
[[nodiscard]] std::optional<error> validate(const limiter_config& config);

/// One request as the limiter sees it. The token counts are estimates made
/// before the call (e.g. counted prompt tokens and `max_tokens`).
struct ticket {
  std::string client;
  int priority = 1;
  std::int64_t input_tokens = 0;
  std::int64_t output_tokens = 0;
};

/// Unique per limiter, never reused, starting at 1.
using ticket_id = std::uint64_t;

class limiter {
 public:
  using time_point = std::chrono::steady_clock::time_point;

  struct submitted {
    ticket_id id = 0;
    /// True: admitted now, the caller may send it. False: it waits until a
    /// `poll` returns its id (or it is cancelled).
    bool admitted = false;
  };

  /// Precondition: `validate(config)` holds (asserted). Buckets start full.
  limiter(limiter_config config, time_point now);

  /// Admits the request at once when no request of the same or a higher
  /// priority waits and the buckets allow it; queues it
  /// otherwise. Errors: `bad_request` for a priority out of range, a negative
  /// estimate, or an estimate larger than its bucket's per-minute capacity
  /// (it could never be admitted); `too_large` when it would have to wait and
  /// `queue_max` requests already wait.
  [[nodiscard]] expected<submitted> submit(const ticket& request, time_point now);

  /// Admits, in order, what the refilled buckets allow at `now`; stops at
  /// the first request in order that does not fit. The ids are in admission
  /// order and no longer wait.
  [[nodiscard]] std::vector<ticket_id> poll(time_point now);

  /// When `poll` will admit the next request in order, if nothing else
  /// changes: `now` when it would admit at once, nullopt when nothing waits.
  /// An actor arms one timer for this instant after each call that changes
  /// the limiter.
  [[nodiscard]] std::optional<time_point> next_ready(time_point now) const;

  /// Removes a waiting request (its client went away); false when `id` does
  /// not wait (unknown, already admitted or already cancelled).
  bool cancel(ticket_id id);

  /// Corrects the token buckets once an admitted call has finished:
  /// `estimate` is the ticket as submitted, `actual_*` what upstream reported
  /// (negative values count as 0). Using more than estimated takes the excess
  /// from the buckets, possibly into debt that refill repays before anything
  /// else is admitted; using less gives the rest back. Debt is capped at one
  /// minute of capacity, so one wild report cannot block the gateway for
  /// more than two minutes. The request bucket is never refunded: upstream
  /// counted the request.
  void settle(const ticket& estimate, std::int64_t actual_input_tokens,
              std::int64_t actual_output_tokens, time_point now);

  /// Waiting requests, all clients together / of one client.
  [[nodiscard]] std::size_t waiting() const noexcept;
  [[nodiscard]] std::size_t waiting(const std::string& client) const;

  [[nodiscard]] const limiter_config& config() const noexcept;

 private:
  // A token bucket in fixed point: `level_` counts units times nanoseconds
  // per minute, so refilling `per_minute` units per minute adds exactly
  // `per_minute` per nanosecond and no rounding ever happens.
  class bucket {
   public:
    bucket(std::int64_t per_minute, time_point now);
    [[nodiscard]] bool unlimited() const noexcept;
    void refill(time_point now);
    [[nodiscard]] bool holds(std::int64_t units) const;
    void take(std::int64_t units);
    /// Adds `units` (negative: takes), clamped to [-capacity, capacity].
    void adjust(std::int64_t units);
    /// Earliest time at which the bucket holds `units`; units <= capacity.
    [[nodiscard]] time_point ready_at(std::int64_t units) const;

   private:
    std::int64_t per_minute_;
    std::int64_t capacity_;  // fixed point
    std::int64_t level_;     // fixed point, in [-capacity_, capacity_]
    time_point refilled_at_;
  };

  struct waiting_ticket {
    ticket_id id = 0;
    std::int64_t input_tokens = 0;
    std::int64_t output_tokens = 0;
  };

  // The requests waiting at one priority.
  struct level {
    // Clients with a waiting request here, the next one to serve first.
    std::deque<std::string> rotation;
    std::unordered_map<std::string, std::deque<waiting_ticket>> fifo;
    std::size_t count = 0;
  };

  struct location {
    int priority = 0;
    std::string client;
  };

  [[nodiscard]] std::optional<error> check(const ticket& request) const;
  [[nodiscard]] bool may_admit_at_once(int priority, time_point now) const;
  [[nodiscard]] bool fits(std::int64_t input_tokens, std::int64_t output_tokens) const;
  void take(std::int64_t input_tokens, std::int64_t output_tokens);
  void refill(time_point now);
  void enqueue(ticket_id id, const ticket& request);
  [[nodiscard]] const waiting_ticket* head(int* priority) const;
  void pop_head(int priority);
  void forget_waiting(ticket_id id, const std::string& client);

  limiter_config config_;
  bucket requests_;
  bucket input_tokens_;
  bucket output_tokens_;
  ticket_id next_id_ = 1;

  std::vector<level> levels_;
  std::unordered_map<ticket_id, location> waiting_by_id_;
  std::unordered_map<std::string, std::size_t> waiting_by_client_;
};

}  // namespace troupe::llm
