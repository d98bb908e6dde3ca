#include "runtime/supervisor/policy.hpp"

#include <cassert>

#include "runtime/backoff.hpp"

namespace troupe {

directive default_decider(const failure&) {
  return directive::restart;
}

std::string_view to_string(strategy s) {
  switch (s) {
    case strategy::one_for_one:
      return "one_for_one";
    case strategy::one_for_all:
      return "one_for_all";
    case strategy::rest_for_one:
      return "rest_for_one";
    case strategy::dynamic:
      return "dynamic";
  }
  return "?";
}

std::string_view to_string(restart_type r) {
  switch (r) {
    case restart_type::permanent:
      return "permanent";
    case restart_type::transient:
      return "transient";
    case restart_type::temporary:
      return "temporary";
  }
  return "?";
}

std::string_view to_string(directive d) {
  switch (d) {
    case directive::resume:
      return "resume";
    case directive::restart:
      return "restart";
    case directive::stop:
      return "stop";
    case directive::escalate:
      return "escalate";
  }
  return "?";
}

bool restarts_after_exit(restart_type type, bool abnormal) {
  switch (type) {
    case restart_type::permanent:
      return true;
    case restart_type::transient:
      return abnormal;
    case restart_type::temporary:
      return false;
  }
  return false;
}

restart_policy make_restart_policy(const supervisor_section& s) {
  using std::chrono::milliseconds;
  return restart_policy{
      .restarts_max = s.restarts_max,
      .period = milliseconds{s.period_ms},
      .backoff_min = milliseconds{s.backoff_min_ms},
      .backoff_max = milliseconds{s.backoff_max_ms},
      .backoff_jitter = s.backoff_jitter,
      .backoff_reset = milliseconds{s.backoff_reset_ms},
      .stash_max = s.stash_max,
      .shutdown_timeout = milliseconds{s.shutdown_timeout_ms},
  };
}

bool restart_intensity::record(steady_time now) {
  while (!restarts_.empty() && now - restarts_.front() >= period_) {
    restarts_.pop_front();
  }
  restarts_.push_back(now);
  if (restarts_.size() > restarts_max_) {
    restarts_.pop_front();
    return false;
  }
  return true;
}

std::chrono::milliseconds restart_backoff::next_delay(steady_time now, double random01) {
  assert(random01 >= 0.0 && random01 < 1.0);
  const bool quiet = attempts_ == 0 || now - last_failure_ >= policy_.backoff_reset;
  attempts_ = quiet ? 1 : attempts_ + 1;
  last_failure_ = now;
  if (attempts_ == 1) {
    return std::chrono::milliseconds{0};
  }
  // The second consecutive failure waits the minimum, and so on.
  return exponential_backoff(policy_.backoff_min, policy_.backoff_max, attempts_ - 1,
                             policy_.backoff_jitter, random01);
}

}  // namespace troupe
