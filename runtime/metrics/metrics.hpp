#pragma once

// Process-wide metrics rendered in the Prometheus text exposition format
// 0.0.4 (served at GET /metrics).
//
// Updates are hot-path operations: lock-free relaxed atomics, no allocation.
// Creation goes through `metrics_registry` under a mutex and is meant to
// happen once per series; callers keep the returned reference (it stays valid
// for the registry's lifetime) instead of looking it up per event.
//
// Metric and label names are code, not input: an invalid name, or asking for
// an existing name as a different kind, is a programming error and asserted.
// Label *values* may come from anywhere; they are escaped when rendered.

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace troupe {

/// Label pairs of one series, e.g. {{"actor", "/cache"}, {"result", "hit"}}.
/// Order does not matter: the registry keys and renders them sorted by name.
using metric_labels = std::vector<std::pair<std::string, std::string>>;

/// A monotonic count of events.
class counter {
 public:
  void inc(uint64_t n = 1) noexcept { value_.fetch_add(n, std::memory_order_relaxed); }
  [[nodiscard]] uint64_t value() const noexcept { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<uint64_t> value_{0};
};

/// A value that goes up and down (queue depth, open sessions, bytes held).
class gauge {
 public:
  void set(double v) noexcept { value_.store(v, std::memory_order_relaxed); }
  void add(double delta) noexcept { value_.fetch_add(delta, std::memory_order_relaxed); }
  [[nodiscard]] double value() const noexcept { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<double> value_{0.0};
};

/// A distribution over fixed upper bounds (Prometheus `le` buckets).
/// Each bucket counts its own observations; rendering makes them cumulative,
/// so `+Inf` always equals `_count` even while observers race the render.
class histogram {
 public:
  /// `bounds_upper` must be finite and strictly increasing; `+Inf` is implied.
  explicit histogram(std::vector<double> bounds_upper);

  void observe(double v) noexcept;

  [[nodiscard]] const std::vector<double>& bounds_upper() const noexcept { return bounds_; }
  /// Observations in bucket `i` alone (not cumulative); `i == bounds.size()`
  /// is the overflow bucket above the last bound.
  [[nodiscard]] uint64_t bucket_count(std::size_t i) const noexcept;
  [[nodiscard]] uint64_t count() const noexcept;
  [[nodiscard]] double sum() const noexcept { return sum_.load(std::memory_order_relaxed); }

 private:
  std::vector<double> bounds_;
  std::unique_ptr<std::atomic<uint64_t>[]> buckets_;  // bounds_.size() + 1
  std::atomic<double> sum_{0.0};
};

/// Upper bounds in seconds for request/handler latencies: 50 µs to 10 s in
/// 1-2.5-5 steps, wide enough for a cache hit and an LLM call alike.
[[nodiscard]] std::vector<double> latency_buckets_s();

/// `[a-zA-Z_:][a-zA-Z0-9_:]*`
[[nodiscard]] bool is_valid_metric_name(std::string_view name) noexcept;
/// `[a-zA-Z_][a-zA-Z0-9_]*`, and not starting with `__` (reserved by Prometheus).
[[nodiscard]] bool is_valid_label_name(std::string_view name) noexcept;

/// Owns every metric of a node and renders them.
class metrics_registry {
 public:
  metrics_registry();
  ~metrics_registry();
  metrics_registry(const metrics_registry&) = delete;
  metrics_registry& operator=(const metrics_registry&) = delete;

  // Get-or-create: the same (name, labels) always yields the same object.
  // `help` of the first call for a name wins; later calls may repeat it.

  troupe::counter& counter(std::string_view name, std::string_view help, metric_labels l = {});
  troupe::gauge& gauge(std::string_view name, std::string_view help, metric_labels l = {});
  /// All series of one histogram family must use the same bounds (asserted).
  troupe::histogram& histogram(std::string_view name, std::string_view help,
                               std::vector<double> bounds_upper, metric_labels l = {});

  /// A gauge whose value is read from `read` at render time, for values
  /// owned elsewhere (uptime, a cache's byte count). Registering the same
  /// (name, labels) again replaces the callback. `read` runs under the
  /// registry's mutex: it must be cheap, thread-safe, and must not call back
  /// into this registry.
  void gauge_fn(std::string_view name, std::string_view help, std::function<double()> read,
                metric_labels l = {});

  /// The whole registry in text format 0.0.4: families sorted by name, each
  /// with one `# HELP` and `# TYPE`, its series sorted by labels.
  [[nodiscard]] std::string render() const;

 private:
  struct state;
  std::unique_ptr<state> state_;
};

}  // namespace troupe
