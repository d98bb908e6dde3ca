#include "runtime/breaker/circuit_breaker.hpp"

#include <spdlog/logger.h>

#include "runtime/metrics/metrics.hpp"

#include <algorithm>
#include <cassert>
#include <cmath>
#include <string>
#include <utility>

namespace troupe {

namespace {

using std::chrono::milliseconds;
using std::chrono::nanoseconds;

constexpr uint8_t failed_bit = 1;
constexpr uint8_t slow_bit = 2;

error invalid(std::string_view key, const std::string& reason) {
  return make_error(errc::config_invalid, "breaker." + std::string(key) + ": " + reason);
}

// Written so that NaN is rejected too.
bool in_rate_range(double rate) {
  return rate > 0.0 && rate <= 1.0;
}

std::optional<error> validate_counts(const breaker_config& config) {
  if (config.failures_max < 1) {
    return invalid("failures_max", "must be >= 1 (got 0)");
  }
  if (config.window_calls < 1 || config.window_calls > breaker_window_calls_max) {
    return invalid("window_calls", "must be between 1 and " +
                                       std::to_string(breaker_window_calls_max) + " (got " +
                                       std::to_string(config.window_calls) + ")");
  }
  if (config.calls_min < 1 || config.calls_min > config.window_calls) {
    return invalid("calls_min", "must be between 1 and window_calls (" +
                                    std::to_string(config.window_calls) + ") (got " +
                                    std::to_string(config.calls_min) + ")");
  }
  if (config.half_open_probes < 1) {
    return invalid("half_open_probes", "must be >= 1 (got 0)");
  }
  return std::nullopt;
}

std::optional<error> validate_rates(const breaker_config& config) {
  if (!in_rate_range(config.failure_rate_max)) {
    return invalid("failure_rate_max",
                   "must be in (0, 1] (got " + std::to_string(config.failure_rate_max) + ")");
  }
  if (!in_rate_range(config.slow_rate_max)) {
    return invalid("slow_rate_max",
                   "must be in (0, 1] (got " + std::to_string(config.slow_rate_max) + ")");
  }
  if (!(config.jitter >= 0.0 && config.jitter < 1.0)) {
    return invalid("jitter", "must be in [0, 1) (got " + std::to_string(config.jitter) + ")");
  }
  if (!(std::isfinite(config.open_factor) && config.open_factor >= 1.0)) {
    return invalid("open_factor",
                   "must be finite and >= 1 (got " + std::to_string(config.open_factor) + ")");
  }
  return std::nullopt;
}

std::optional<error> validate_durations(const breaker_config& config) {
  if (config.slow_call_ms < milliseconds{1}) {
    return invalid("slow_call_ms",
                   "must be >= 1 (got " + std::to_string(config.slow_call_ms.count()) + ")");
  }
  if (config.open_ms < milliseconds{1}) {
    return invalid("open_ms", "must be >= 1 (got " + std::to_string(config.open_ms.count()) + ")");
  }
  if (config.open_ms_max < config.open_ms || config.open_ms_max > breaker_open_ms_ceiling) {
    return invalid("open_ms_max", "must be between open_ms (" +
                                      std::to_string(config.open_ms.count()) + ") and " +
                                      std::to_string(breaker_open_ms_ceiling.count()) + " (got " +
                                      std::to_string(config.open_ms_max.count()) + ")");
  }
  return std::nullopt;
}

}  // namespace

std::string_view to_string(breaker_state state) noexcept {
  switch (state) {
    case breaker_state::closed:
      return "closed";
    case breaker_state::open:
      return "open";
    case breaker_state::half_open:
      return "half_open";
  }
  return "unknown";
}

breaker_config make_breaker_config(const breaker_section& section) {
  breaker_config config;
  config.failures_max = section.failures_max;
  config.window_calls = section.window_calls;
  config.calls_min = section.calls_min;
  config.failure_rate_max = section.failure_rate_max;
  config.slow_call_ms = milliseconds{section.slow_call_ms};
  config.slow_rate_max = section.slow_rate_max;
  config.open_ms = milliseconds{section.open_ms};
  config.open_ms_max = milliseconds{section.open_ms_max};
  config.open_factor = section.open_factor;
  config.jitter = section.jitter;
  config.half_open_probes = section.half_open_probes;
  config.seed = 0;
  return config;
}

std::optional<error> validate(const breaker_config& config) {
  if (auto err = validate_counts(config)) {
    return err;
  }
  if (auto err = validate_rates(config)) {
    return err;
  }
  return validate_durations(config);
}

circuit_breaker::circuit_breaker(breaker_config config)
    : config_(config),
      rng_(config.seed),
      window_(config.window_calls, uint8_t{0}),
      open_period_(config.open_ms) {
  assert(!validate(config_).has_value());
}

circuit_breaker::permit circuit_breaker::try_acquire(time_point now) {
  if (state_ == breaker_state::open && now >= opened_until_) {
    enter_half_open();
  }
  switch (state_) {
    case breaker_state::closed:
      return admit();
    case breaker_state::open:
      return refuse(std::chrono::ceil<milliseconds>(opened_until_ - now));
    case breaker_state::half_open:
      if (probes_admitted_ < config_.half_open_probes) {
        ++probes_admitted_;
        ++probes_in_flight_;
        return admit();
      }
      return refuse(milliseconds{0});
  }
  assert(false && "unknown breaker_state");
  return refuse(milliseconds{0});
}

void circuit_breaker::on_success(time_point now, nanoseconds duration) {
  record_outcome(now, false, duration);
}

void circuit_breaker::on_failure(time_point now, nanoseconds duration) {
  record_outcome(now, true, duration);
}

void circuit_breaker::on_not_attempted() {
  if (state_ == breaker_state::half_open && probes_in_flight_ > 0) {
    --probes_in_flight_;
    --probes_admitted_;
  }
}

void circuit_breaker::on_transition(transition_listener listener) {
  listener_ = std::move(listener);
}

void circuit_breaker::reset() {
  close();
}

breaker_state circuit_breaker::state() const noexcept {
  return state_;
}

breaker_state circuit_breaker::state(time_point now) const noexcept {
  if (state_ == breaker_state::open && now >= opened_until_) {
    return breaker_state::half_open;
  }
  return state_;
}

uint32_t circuit_breaker::consecutive_failures() const noexcept {
  return consecutive_failures_;
}

uint32_t circuit_breaker::window_calls() const noexcept {
  return window_count_;
}

uint32_t circuit_breaker::window_failures() const noexcept {
  return window_failed_;
}

uint32_t circuit_breaker::window_slow_calls() const noexcept {
  return window_slow_;
}

milliseconds circuit_breaker::open_period() const noexcept {
  return open_period_;
}

circuit_breaker::time_point circuit_breaker::opened_until() const noexcept {
  return opened_until_;
}

uint32_t circuit_breaker::probes_in_flight() const noexcept {
  return probes_in_flight_;
}

const breaker_counters& circuit_breaker::counters() const noexcept {
  return counters_;
}

const breaker_config& circuit_breaker::config() const noexcept {
  return config_;
}

circuit_breaker::permit circuit_breaker::admit() {
  ++counters_.calls_allowed;
  return permit{true, state_, milliseconds{0}};
}

circuit_breaker::permit circuit_breaker::refuse(milliseconds retry_after) {
  ++counters_.calls_refused;
  return permit{false, state_, retry_after};
}

void circuit_breaker::record_outcome(time_point now, bool failed, nanoseconds duration) {
  assert(duration >= nanoseconds{0});
  if (failed) {
    ++counters_.calls_failed;
  } else {
    ++counters_.calls_succeeded;
  }
  switch (state_) {
    case breaker_state::closed:
      record_closed_outcome(now, failed, duration);
      return;
    case breaker_state::half_open:
      record_probe_outcome(now, failed);
      return;
    case breaker_state::open:
      // A call let through before the breaker opened: the breaker already
      // acted on the failures that opened it, so this one changes nothing.
      return;
  }
}

void circuit_breaker::record_closed_outcome(time_point now, bool failed, nanoseconds duration) {
  consecutive_failures_ = failed ? consecutive_failures_ + 1 : 0;
  push_window(failed, duration >= config_.slow_call_ms);
  if (consecutive_failures_ >= config_.failures_max || window_trips()) {
    // Closing always restores open_ms, so the first open uses the base period.
    assert(open_period_ == config_.open_ms);
    open_for(now, open_period_);
  }
}

void circuit_breaker::record_probe_outcome(time_point now, bool failed) {
  if (probes_in_flight_ == 0) {
    // Not a probe: a call let through while closed, answered late.
    return;
  }
  --probes_in_flight_;
  if (failed) {
    open_for(now, grown(open_period_));
    return;
  }
  ++probe_successes_;
  assert(probe_successes_ <= probes_admitted_);
  if (probe_successes_ == config_.half_open_probes) {
    close();
  }
}

void circuit_breaker::push_window(bool failed, bool slow) {
  if (window_count_ == config_.window_calls) {
    // Full: the slot about to be overwritten holds the oldest outcome.
    const uint8_t oldest = window_[window_next_];
    window_failed_ -= (oldest & failed_bit) != 0 ? 1 : 0;
    window_slow_ -= (oldest & slow_bit) != 0 ? 1 : 0;
  } else {
    ++window_count_;
  }
  window_[window_next_] = static_cast<uint8_t>((failed ? failed_bit : 0) | (slow ? slow_bit : 0));
  window_failed_ += failed ? 1 : 0;
  window_slow_ += slow ? 1 : 0;
  window_next_ = (window_next_ + 1) % config_.window_calls;
  assert(window_failed_ <= window_count_ && window_slow_ <= window_count_);
}

bool circuit_breaker::window_trips() const {
  if (window_count_ < config_.calls_min) {
    return false;
  }
  // Division (not rate * count) so a rate given as k/n compares exactly.
  const auto count = static_cast<double>(window_count_);
  return static_cast<double>(window_failed_) / count >= config_.failure_rate_max ||
         static_cast<double>(window_slow_) / count >= config_.slow_rate_max;
}

void circuit_breaker::open_for(time_point now, milliseconds period) {
  open_period_ = period;
  opened_until_ = now + jittered(period);
  probes_admitted_ = 0;
  probes_in_flight_ = 0;
  probe_successes_ = 0;
  transition_to(breaker_state::open);
}

void circuit_breaker::enter_half_open() {
  probes_admitted_ = 0;
  probes_in_flight_ = 0;
  probe_successes_ = 0;
  transition_to(breaker_state::half_open);
}

void circuit_breaker::close() {
  consecutive_failures_ = 0;
  std::fill(window_.begin(), window_.end(), uint8_t{0});
  window_next_ = 0;
  window_count_ = 0;
  window_failed_ = 0;
  window_slow_ = 0;
  open_period_ = config_.open_ms;
  opened_until_ = time_point{};
  probes_admitted_ = 0;
  probes_in_flight_ = 0;
  probe_successes_ = 0;
  transition_to(breaker_state::closed);
}

void circuit_breaker::transition_to(breaker_state to) {
  const breaker_state from = state_;
  if (from == to) {
    return;
  }
  state_ = to;
  if (listener_) {
    listener_(from, to);
  }
}

milliseconds circuit_breaker::grown(milliseconds period) const {
  // In double, so a large factor saturates at the cap instead of overflowing.
  const double next = std::min(static_cast<double>(period.count()) * config_.open_factor,
                               static_cast<double>(config_.open_ms_max.count()));
  return milliseconds{std::llround(next)};
}

milliseconds circuit_breaker::jittered(milliseconds period) {
  // Zero jitter must give exact periods and leave the PRNG untouched.
  if (config_.jitter == 0.0) {
    return period;
  }
  std::uniform_real_distribution<double> spread(-config_.jitter, config_.jitter);
  const double spread_ms = static_cast<double>(period.count()) * (1.0 + spread(rng_));
  return milliseconds{std::llround(spread_ms)};
}

keyed_breakers::keyed_breakers(breaker_config config, size_t max, listener on_transition)
    : config_(config), max_(max), on_transition_(std::move(on_transition)) {}

std::vector<std::pair<std::string, breaker_state>> keyed_breakers::not_closed(
    circuit_breaker::time_point now) const {
  std::vector<std::pair<std::string, breaker_state>> out;
  for (const auto& [key, e] : breakers_) {
    if (const auto s = e.breaker.state(now); s != breaker_state::closed) {
      out.emplace_back(key, s);
    }
  }
  std::sort(out.begin(), out.end());
  return out;
}

circuit_breaker& keyed_breakers::operator[](const std::string& key) {
  if (auto it = breakers_.find(key); it != breakers_.end()) {
    return it->second.breaker;
  }
  if (breakers_.size() >= max_) {
    std::erase_if(breakers_, [](const auto& kv) {
      return kv.second.breaker.state() == breaker_state::closed;
    });
    while (breakers_.size() >= max_) {
      breakers_.erase(std::min_element(
          breakers_.begin(), breakers_.end(),
          [](const auto& a, const auto& b) { return a.second.made < b.second.made; }));
    }
  }
  auto config = config_;
  config.seed = config_.seed ^ std::hash<std::string>{}(key);
  auto& breaker =
      breakers_.emplace(key, entry{circuit_breaker(config), made_++}).first->second.breaker;
  if (on_transition_) {
    breaker.on_transition(
        [this, key](breaker_state from, breaker_state to) { on_transition_(key, from, to); });
  }
  return breaker;
}

keyed_breakers::listener report_transitions(metrics_registry& metrics,
                                            std::shared_ptr<spdlog::logger> log,
                                            std::string target_prefix) {
  return [&metrics, log = std::move(log), prefix = std::move(target_prefix)](
             const std::string& key, breaker_state from, breaker_state to) {
    const auto target = prefix + key;
    log->warn("breaker of '{}': {} -> {}", target, to_string(from), to_string(to));
    metrics
        .counter("troupe_breaker_transitions_total", "Circuit breaker state changes",
                 {{"target", target}, {"to", std::string(to_string(to))}})
        .inc();
  };
}

}  // namespace troupe
