#pragma once

// The decisions a supervisor makes, as plain values and classes with time
// passed in: which children a failure affects, whether a child is restarted,
// how long to wait, and when to give up. The supervisor actor only wires them.

#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <random>
#include <string>
#include <string_view>

#include "runtime/config/node_config.hpp"

namespace troupe {

using steady_time = std::chrono::steady_clock::time_point;

/// Which children a failure restarts (OTP's strategies, plus `dynamic`).
enum class strategy : uint8_t {
  /// Only the failed child.
  one_for_one,
  /// Every child: the others are stopped, then all start again in order.
  one_for_all,
  /// The failed child and every child started after it.
  rest_for_one,
  /// Like one_for_one, for children added at run time (agents, sessions).
  dynamic,
};

/// When a child that ended is started again.
enum class restart_type : uint8_t {
  /// Always, whatever the exit reason.
  permanent,
  /// Only after an abnormal exit.
  transient,
  /// Never.
  temporary,
};

/// What a supervisor does about a failure.
enum class directive : uint8_t {
  /// Keep the actor running (only meaningful before it dies: inside handlers).
  resume,
  /// Start a new incarnation.
  restart,
  /// Leave the child stopped.
  stop,
  /// Give up: the supervisor fails and its parent decides.
  escalate,
};

/// Where a failure came from; the decider's input.
enum class failure_kind : uint8_t {
  /// A message handler threw.
  exception,
  /// The actor ended abnormally (killed, crashed, quit with an error).
  exited,
  /// A request the actor made timed out.
  timeout,
  /// A remote node the actor depended on became unreachable.
  remote_lost,
};

struct failure {
  failure_kind kind = failure_kind::exited;
  /// Human-readable reason (exception text, exit reason).
  std::string reason;
};

/// Maps a failure to a directive; one per child.
using decider = std::function<directive(const failure&)>;

/// Every failure restarts (OTP and Akka's default): an exception may have left
/// the actor's state half-changed, and a fresh incarnation resumes from its
/// durable state. Children whose handlers are exception-safe pick `resume`.
[[nodiscard]] directive default_decider(const failure& f);

[[nodiscard]] std::string_view to_string(strategy s);
[[nodiscard]] std::string_view to_string(restart_type r);
[[nodiscard]] std::string_view to_string(directive d);

/// Whether a child of `type` that ended (normally or not) is started again.
[[nodiscard]] bool restarts_after_exit(restart_type type, bool abnormal);

/// Restart intensity and backoff knobs of one supervisor.
struct restart_policy {
  uint32_t restarts_max = 10;
  std::chrono::milliseconds period{10000};
  std::chrono::milliseconds backoff_min{10};
  std::chrono::milliseconds backoff_max{5000};
  double backoff_jitter = 0.2;
  std::chrono::milliseconds backoff_reset{30000};
  uint32_t stash_max = 1024;
  std::chrono::milliseconds shutdown_timeout{5000};
  /// How long a supervisor waits on a child for a message it routed (the
  /// caller's own, usually shorter, timeout still applies to the caller).
  std::chrono::milliseconds route_timeout{60000};
};

[[nodiscard]] restart_policy make_restart_policy(const supervisor_section& section);

/// OTP restart intensity: more than `restarts_max` restarts within `period`
/// means the supervisor gives up.
class restart_intensity {
 public:
  restart_intensity(uint32_t restarts_max, std::chrono::milliseconds period)
      : restarts_max_(restarts_max), period_(period) {}

  /// Records a restart at `now`; false when it exceeds the intensity.
  [[nodiscard]] bool record(steady_time now);

  [[nodiscard]] size_t recent() const { return restarts_.size(); }

 private:
  uint32_t restarts_max_;
  std::chrono::milliseconds period_;
  // Bounded: never holds more than restarts_max + 1 entries.
  std::deque<steady_time> restarts_;
};

/// Restart delay of one child: the first restart after a quiet time is
/// immediate (a one-off crash recovers fastest), each further one waits
/// min(max, min * 2^(k-1)) for the k-th consecutive, spread by +-jitter.
class restart_backoff {
 public:
  explicit restart_backoff(const restart_policy& policy) : policy_(policy) {}

  /// The delay before the restart for a failure at `now`; `random01` is a
  /// uniform draw in [0, 1) (injected so tests are exact).
  [[nodiscard]] std::chrono::milliseconds next_delay(steady_time now, double random01);

  /// Consecutive failures counted since the last quiet period.
  [[nodiscard]] uint32_t attempts() const { return attempts_; }

 private:
  restart_policy policy_;
  uint32_t attempts_ = 0;
  steady_time last_failure_{};
};

}  // namespace troupe
