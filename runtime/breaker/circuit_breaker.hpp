#pragma once

// A circuit breaker as a pure state machine (the union of Akka's
// CircuitBreaker and resilience4j). It reads no clock, starts no thread and
// takes no lock: every method that needs time takes `now`, so tests drive it
// exactly, and one actor owns it (it is not thread-safe).
//
// closed    every call is let through; outcomes feed a consecutive-failure
//           count and a count-based sliding window. Opens on `failures_max`
//           consecutive failures, or once the window holds `calls_min` calls
//           and its failure rate or slow-call rate reaches its maximum.
// open      every call is refused at once with the time left. The first
//           `try_acquire` after the open period turns the breaker half-open.
// half_open at most `half_open_probes` calls are let through. All must
//           succeed to close; one failure reopens with a longer period.

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "runtime/config/node_config.hpp"
#include "runtime/error.hpp"

namespace spdlog {
class logger;
}

namespace troupe {

class metrics_registry;

enum class breaker_state : uint8_t { closed, open, half_open };

/// "closed", "open" or "half_open" (the names used in events and metrics).
[[nodiscard]] std::string_view to_string(breaker_state state) noexcept;

/// Bounds a breaker's memory: the window keeps one byte per call.
inline constexpr uint32_t breaker_window_calls_max = 10000;

/// Bounds open periods so `now + period` cannot overflow; matches the
/// uint32_t milliseconds of `breaker_section`.
inline constexpr std::chrono::milliseconds breaker_open_ms_ceiling{UINT32_MAX};

/// The knobs of `breaker_section` (same names, same meaning; durations are
/// std::chrono::milliseconds, keeping the `_ms` key names so the config file
/// maps one to one) plus the jitter seed. Defaults are `breaker_section`'s.
struct breaker_config {
  uint32_t failures_max = breaker_section{}.failures_max;
  uint32_t window_calls = breaker_section{}.window_calls;
  uint32_t calls_min = breaker_section{}.calls_min;
  double failure_rate_max = breaker_section{}.failure_rate_max;
  /// A call whose duration is >= this is slow.
  std::chrono::milliseconds slow_call_ms{breaker_section{}.slow_call_ms};
  double slow_rate_max = breaker_section{}.slow_rate_max;
  std::chrono::milliseconds open_ms{breaker_section{}.open_ms};
  std::chrono::milliseconds open_ms_max{breaker_section{}.open_ms_max};
  double open_factor = breaker_section{}.open_factor;
  double jitter = breaker_section{}.jitter;
  uint32_t half_open_probes = breaker_section{}.half_open_probes;
  /// Seeds the jitter PRNG. Give each breaker its own seed (e.g. a hash of
  /// what it guards) so breakers tripped together do not probe in lockstep.
  uint64_t seed = 0;
};

/// The breaker config for a config-file section; `seed` is left 0.
[[nodiscard]] breaker_config make_breaker_config(const breaker_section& section);

/// nullopt when `config` holds the invariants: failures_max >= 1,
/// 1 <= calls_min <= window_calls <= breaker_window_calls_max,
/// 0 < failure_rate_max, slow_rate_max <= 1, slow_call_ms >= 1ms,
/// 1ms <= open_ms <= open_ms_max <= breaker_open_ms_ceiling, finite
/// open_factor >= 1, 0 <= jitter < 1, half_open_probes >= 1. Otherwise a
/// `config_invalid` error naming the key, e.g. "breaker.calls_min: ...".
[[nodiscard]] std::optional<error> validate(const breaker_config& config);

/// The answer to "may I call?".
struct breaker_permit {
  bool allowed = false;
  /// The state the decision was taken in (after a lazy open -> half_open).
  breaker_state state = breaker_state::closed;
  /// When refused while open: time left of the open period, rounded up so a
  /// caller waiting this long finds it over. Zero otherwise (also when
  /// half-open refuses because all probes are taken: no time is known).
  std::chrono::milliseconds retry_after{0};
};

/// Lifetime counts for metrics; monotonic, `reset()` keeps them.
struct breaker_counters {
  uint64_t calls_allowed = 0;
  uint64_t calls_refused = 0;
  uint64_t calls_succeeded = 0;
  uint64_t calls_failed = 0;
};

class circuit_breaker {
 public:
  using time_point = std::chrono::steady_clock::time_point;
  using permit = breaker_permit;
  /// Called after each state change, with the breaker already in `to`. It
  /// may read the breaker but must not call its mutating methods.
  using transition_listener = std::function<void(breaker_state from, breaker_state to)>;

  /// Precondition: `validate(config)` holds (asserted). Starts closed.
  explicit circuit_breaker(breaker_config config);

  /// Asks to make one call. An allowed call must be answered by exactly one
  /// `on_success`, `on_failure` or `on_not_attempted`; a half-open probe never answered keeps
  /// its slot taken, so the caller reports a timeout as `on_failure`.
  [[nodiscard]] permit try_acquire(time_point now);

  /// Outcome of an allowed call that took `duration` (>= 0). Outcomes count
  /// in the state they arrive in: while open they change nothing (a call let
  /// through before the breaker opened); while half-open with no probe in
  /// flight they are ignored for the same reason.
  void on_success(time_point now, std::chrono::nanoseconds duration);
  void on_failure(time_point now, std::chrono::nanoseconds duration);
  /// The third way to answer an allowed call: it never reached the guarded
  /// dependency (it found no free connection, or its caller left first), so
  /// there is no verdict. A half-open probe's slot is given back for another
  /// call; nothing else changes.
  void on_not_attempted();

  /// Replaces the listener (one per breaker: the owning actor fans out).
  void on_transition(transition_listener listener);

  /// Forces closed: clears window, consecutive failures and probes, and puts
  /// the open period back to `open_ms`. Counters are kept.
  void reset();

  /// The stored state; `try_acquire` may still turn an elapsed open into
  /// half-open.
  [[nodiscard]] breaker_state state() const noexcept;
  /// The state `try_acquire(now)` would decide in, without changing anything.
  [[nodiscard]] breaker_state state(time_point now) const noexcept;

  [[nodiscard]] uint32_t consecutive_failures() const noexcept;
  /// Calls in the sliding window, and how many of them failed or were slow.
  [[nodiscard]] uint32_t window_calls() const noexcept;
  [[nodiscard]] uint32_t window_failures() const noexcept;
  [[nodiscard]] uint32_t window_slow_calls() const noexcept;
  /// The un-jittered open period: `open_ms` until a probe fails, then grown.
  [[nodiscard]] std::chrono::milliseconds open_period() const noexcept;
  /// End of the current open period (jitter included); meaningful while open.
  [[nodiscard]] time_point opened_until() const noexcept;
  [[nodiscard]] uint32_t probes_in_flight() const noexcept;
  [[nodiscard]] const breaker_counters& counters() const noexcept;
  [[nodiscard]] const breaker_config& config() const noexcept;

 private:
  permit admit();
  permit refuse(std::chrono::milliseconds retry_after);
  void record_outcome(time_point now, bool failed, std::chrono::nanoseconds duration);
  void record_closed_outcome(time_point now, bool failed, std::chrono::nanoseconds duration);
  void record_probe_outcome(time_point now, bool failed);
  void push_window(bool failed, bool slow);
  [[nodiscard]] bool window_trips() const;
  void open_for(time_point now, std::chrono::milliseconds period);
  void enter_half_open();
  void close();
  void transition_to(breaker_state to);
  [[nodiscard]] std::chrono::milliseconds grown(std::chrono::milliseconds period) const;
  [[nodiscard]] std::chrono::milliseconds jittered(std::chrono::milliseconds period);

  breaker_config config_;
  std::mt19937_64 rng_;
  transition_listener listener_;
  breaker_state state_ = breaker_state::closed;
  breaker_counters counters_;

  // Closed: the window is a ring of the last `window_calls` outcomes.
  uint32_t consecutive_failures_ = 0;
  std::vector<uint8_t> window_;
  uint32_t window_next_ = 0;
  uint32_t window_count_ = 0;
  uint32_t window_failed_ = 0;
  uint32_t window_slow_ = 0;

  // Open.
  std::chrono::milliseconds open_period_;
  time_point opened_until_{};

  // Half-open: probes admitted never exceed `half_open_probes`.
  uint32_t probes_admitted_ = 0;
  uint32_t probes_in_flight_ = 0;
  uint32_t probe_successes_ = 0;
};

/// One breaker per key (a target path, a model), made on first use with a
/// jitter seed of its own, so breakers tripped together do not probe in
/// lockstep. At most `max` are kept: past that, closed breakers are dropped
/// (they remember nothing that matters); if none is closed, the one made
/// first goes (its key starts closed again), so the bound holds even when
/// every key keeps failing. Not thread-safe: one actor owns it.
class keyed_breakers {
 public:
  using listener =
      std::function<void(const std::string& key, breaker_state from, breaker_state to)>;

  /// `on_transition` hears every state change of every breaker.
  keyed_breakers(breaker_config config, size_t max, listener on_transition);
  keyed_breakers(const keyed_breakers&) = delete;  // breakers' listeners point at it
  keyed_breakers& operator=(const keyed_breakers&) = delete;

  /// The breaker of `key`, made if needed. The reference is valid until the
  /// next call (which may drop closed breakers).
  circuit_breaker& operator[](const std::string& key);

  [[nodiscard]] size_t size() const { return breakers_.size(); }

  /// The keys whose breaker is not closed at `now`, with its state.
  [[nodiscard]] std::vector<std::pair<std::string, breaker_state>> not_closed(
      circuit_breaker::time_point now) const;

 private:
  breaker_config config_;
  size_t max_;
  listener on_transition_;
  struct entry {
    circuit_breaker breaker;
    /// When it was made, in breakers made so far (the oldest goes first).
    uint64_t made = 0;
  };
  std::unordered_map<std::string, entry> breakers_;
  uint64_t made_ = 0;
};

/// The usual listener: a warning in `log` and a count in
/// troupe_breaker_transitions_total{target = target_prefix + key, to}.
[[nodiscard]] keyed_breakers::listener report_transitions(metrics_registry& metrics,
                                                          std::shared_ptr<spdlog::logger> log,
                                                          std::string target_prefix);

}  // namespace troupe
