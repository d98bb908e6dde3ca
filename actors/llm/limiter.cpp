#include "actors/llm/limiter.hpp"

#include <algorithm>
#include <cassert>
#include <string_view>
#include <utility>

namespace troupe::llm {

namespace {

using std::chrono::nanoseconds;

// The fixed-point scale of a bucket: one unit is this many unit-nanoseconds,
// so a bucket of N per minute refills by exactly N per nanosecond.
constexpr std::int64_t ns_per_minute = 60'000'000'000;

static_assert(limiter_per_minute_max <= INT64_MAX / ns_per_minute / 3,
              "a bucket, a minute of debt and a settle correction must fit in int64_t");

// For a > 0 and b > 0 only, which is all the buckets need.
std::int64_t ceil_div(std::int64_t a, std::int64_t b) {
  assert(a > 0 && b > 0);
  return (a + b - 1) / b;
}

error invalid(std::string_view key, const std::string& reason) {
  return make_error(errc::config_invalid, "llm." + std::string(key) + ": " + reason);
}

std::optional<error> validate_per_minute(std::string_view key, std::int64_t per_minute) {
  if (per_minute < 0 || per_minute > limiter_per_minute_max) {
    return invalid(key, "must be between 0 (unlimited) and " +
                            std::to_string(limiter_per_minute_max) + " (got " +
                            std::to_string(per_minute) + ")");
  }
  return std::nullopt;
}

std::optional<error> check_estimate(std::string_view name, std::int64_t tokens,
                                    std::int64_t per_minute) {
  if (tokens < 0) {
    return make_error(errc::bad_request, "llm limiter: " + std::string(name) +
                                             " estimate must be >= 0 (got " +
                                             std::to_string(tokens) + ")");
  }
  if (per_minute > 0 && tokens > per_minute) {
    return make_error(errc::bad_request, "llm limiter: " + std::string(name) + " estimate " +
                                             std::to_string(tokens) + " exceeds the limit of " +
                                             std::to_string(per_minute) + " " + std::string(name) +
                                             " per minute, so the request could never run");
  }
  return std::nullopt;
}

const limiter_config& checked(const limiter_config& config) {
  assert(!validate(config).has_value());
  return config;
}

}  // namespace

std::optional<error> validate(const limiter_config& config) {
  if (auto err = validate_per_minute("requests_per_minute", config.requests_per_minute)) {
    return err;
  }
  if (auto err = validate_per_minute("input_tokens_per_minute", config.input_tokens_per_minute)) {
    return err;
  }
  if (auto err = validate_per_minute("output_tokens_per_minute", config.output_tokens_per_minute)) {
    return err;
  }
  if (config.queue_max < 1 || config.queue_max > limiter_queue_max_ceiling) {
    return invalid("queue_max", "must be between 1 and " +
                                    std::to_string(limiter_queue_max_ceiling) + " (got " +
                                    std::to_string(config.queue_max) + ")");
  }
  if (config.priorities < 1 || config.priorities > limiter_priorities_max) {
    return invalid("priorities", "must be between 1 and " + std::to_string(limiter_priorities_max) +
                                     " (got " + std::to_string(config.priorities) + ")");
  }
  return std::nullopt;
}

// --- bucket -----------------------------------------------------------------

limiter::bucket::bucket(std::int64_t per_minute, time_point now)
    : per_minute_(per_minute),
      capacity_(per_minute * ns_per_minute),
      level_(capacity_),
      refilled_at_(now) {
  assert(per_minute >= 0 && per_minute <= limiter_per_minute_max);
}

bool limiter::bucket::unlimited() const noexcept {
  return per_minute_ == 0;
}

void limiter::bucket::refill(time_point now) {
  // A clock that steps back (it should not: steady) refills nothing.
  if (unlimited() || now <= refilled_at_) {
    return;
  }
  const std::int64_t elapsed_ns =
      std::chrono::duration_cast<nanoseconds>(now - refilled_at_).count();
  const std::int64_t missing = capacity_ - level_;  // <= 2 * capacity_: fits
  if (missing == 0 || elapsed_ns >= ceil_div(missing, per_minute_)) {
    level_ = capacity_;
  } else {
    level_ += per_minute_ * elapsed_ns;  // < missing: cannot overflow
  }
  refilled_at_ = now;
  assert(level_ >= -capacity_ && level_ <= capacity_);
}

bool limiter::bucket::holds(std::int64_t units) const {
  assert(units >= 0);
  return unlimited() || level_ >= units * ns_per_minute;
}

void limiter::bucket::take(std::int64_t units) {
  assert(holds(units));
  if (!unlimited()) {
    level_ -= units * ns_per_minute;
  }
}

void limiter::bucket::adjust(std::int64_t units) {
  if (unlimited()) {
    return;
  }
  // Beyond two capacities the clamp below saturates anyway; clamping first
  // keeps the products inside int64_t whatever upstream reported.
  units = std::clamp(units, -2 * per_minute_, 2 * per_minute_);
  level_ = std::clamp(level_ + units * ns_per_minute, -capacity_, capacity_);
}

limiter::time_point limiter::bucket::ready_at(std::int64_t units) const {
  assert(units >= 0);
  const std::int64_t needed = units * ns_per_minute;
  if (unlimited() || level_ >= needed) {
    return refilled_at_;
  }
  // Refill is linear until the bucket is full, and needed <= capacity_, so
  // the level reaches `needed` before the cap can interfere.
  assert(needed <= capacity_);
  const nanoseconds wait{ceil_div(needed - level_, per_minute_)};
  return refilled_at_ + std::chrono::ceil<time_point::duration>(wait);
}

// --- limiter ----------------------------------------------------------------

limiter::limiter(limiter_config config, time_point now)
    : config_(checked(config)),
      requests_(config.requests_per_minute, now),
      input_tokens_(config.input_tokens_per_minute, now),
      output_tokens_(config.output_tokens_per_minute, now),
      levels_(static_cast<std::size_t>(config.priorities)) {}

expected<limiter::submitted> limiter::submit(const ticket& request, time_point now) {
  if (auto err = check(request)) {
    return std::move(*err);
  }
  refill(now);
  if (may_admit_at_once(request.priority, now) &&
      fits(request.input_tokens, request.output_tokens)) {
    take(request.input_tokens, request.output_tokens);
    return submitted{next_id_++, true};
  }
  if (waiting() >= config_.queue_max) {
    return make_error(errc::too_large, "llm limiter: queue is full (" + std::to_string(waiting()) +
                                           " requests wait, queue_max " +
                                           std::to_string(config_.queue_max) + ")");
  }
  const ticket_id id = next_id_++;
  enqueue(id, request);
  return submitted{id, false};
}

std::vector<ticket_id> limiter::poll(time_point now) {
  std::vector<ticket_id> admitted;
  refill(now);
  // Each pass admits and removes one request, so this ends within waiting().
  int priority = 0;
  while (const waiting_ticket* next = head(&priority)) {
    if (!fits(next->input_tokens, next->output_tokens)) {
      break;
    }
    take(next->input_tokens, next->output_tokens);
    admitted.push_back(next->id);
    pop_head(priority);
  }
  return admitted;
}

std::optional<limiter::time_point> limiter::next_ready(time_point now) const {
  int priority = 0;
  const waiting_ticket* next = head(&priority);
  if (next == nullptr) {
    return std::nullopt;
  }
  return std::max({now, requests_.ready_at(1), input_tokens_.ready_at(next->input_tokens),
                   output_tokens_.ready_at(next->output_tokens)});
}

bool limiter::cancel(ticket_id id) {
  const auto found = waiting_by_id_.find(id);
  if (found == waiting_by_id_.end()) {
    return false;
  }
  const location where = found->second;  // forget_waiting() erases `found`
  level& lvl = levels_[static_cast<std::size_t>(where.priority)];
  const auto fifo = lvl.fifo.find(where.client);
  assert(fifo != lvl.fifo.end());
  auto& tickets = fifo->second;
  const auto it = std::find_if(tickets.begin(), tickets.end(),
                               [id](const waiting_ticket& t) { return t.id == id; });
  assert(it != tickets.end());
  tickets.erase(it);
  --lvl.count;
  if (tickets.empty()) {
    lvl.fifo.erase(fifo);
    const auto turn = std::find(lvl.rotation.begin(), lvl.rotation.end(), where.client);
    assert(turn != lvl.rotation.end());
    lvl.rotation.erase(turn);
  }
  forget_waiting(id, where.client);
  return true;
}

void limiter::settle(const ticket& estimate, std::int64_t actual_input_tokens,
                     std::int64_t actual_output_tokens, time_point now) {
  assert(estimate.input_tokens >= 0 && estimate.output_tokens >= 0);
  refill(now);
  // Both terms are >= 0, so the differences cannot overflow.
  input_tokens_.adjust(estimate.input_tokens - std::max<std::int64_t>(actual_input_tokens, 0));
  output_tokens_.adjust(estimate.output_tokens - std::max<std::int64_t>(actual_output_tokens, 0));
}

std::size_t limiter::waiting() const noexcept {
  return waiting_by_id_.size();
}

std::size_t limiter::waiting(const std::string& client) const {
  const auto found = waiting_by_client_.find(client);
  return found == waiting_by_client_.end() ? 0 : found->second;
}

const limiter_config& limiter::config() const noexcept {
  return config_;
}

std::optional<error> limiter::check(const ticket& request) const {
  if (request.priority < 0 || request.priority >= config_.priorities) {
    return make_error(errc::bad_request,
                      "llm limiter: priority " + std::to_string(request.priority) +
                          " is out of range 0.." + std::to_string(config_.priorities - 1));
  }
  if (auto err =
          check_estimate("input_tokens", request.input_tokens, config_.input_tokens_per_minute)) {
    return err;
  }
  return check_estimate("output_tokens", request.output_tokens, config_.output_tokens_per_minute);
}

bool limiter::may_admit_at_once(int priority, time_point /*now*/) const {
  // A request may not overtake one of the same or a higher priority.
  for (int p = 0; p <= priority; ++p) {
    if (levels_[static_cast<std::size_t>(p)].count > 0) {
      return false;
    }
  }
  return true;
}

bool limiter::fits(std::int64_t input_tokens, std::int64_t output_tokens) const {
  return requests_.holds(1) && input_tokens_.holds(input_tokens) &&
         output_tokens_.holds(output_tokens);
}

void limiter::take(std::int64_t input_tokens, std::int64_t output_tokens) {
  requests_.take(1);
  input_tokens_.take(input_tokens);
  output_tokens_.take(output_tokens);
}

void limiter::refill(time_point now) {
  requests_.refill(now);
  input_tokens_.refill(now);
  output_tokens_.refill(now);
}

void limiter::enqueue(ticket_id id, const ticket& request) {
  level& lvl = levels_[static_cast<std::size_t>(request.priority)];
  auto& tickets = lvl.fifo[request.client];
  if (tickets.empty()) {
    lvl.rotation.push_back(request.client);  // a new client joins at the back
  }
  tickets.push_back(waiting_ticket{id, request.input_tokens, request.output_tokens});
  ++lvl.count;
  waiting_by_id_.emplace(id, location{request.priority, request.client});
  ++waiting_by_client_[request.client];
  assert(waiting() <= config_.queue_max);
}

const limiter::waiting_ticket* limiter::head(int* priority) const {
  for (int p = 0; p < config_.priorities; ++p) {
    const level& lvl = levels_[static_cast<std::size_t>(p)];
    if (lvl.count == 0) {
      continue;
    }
    assert(!lvl.rotation.empty());
    const auto fifo = lvl.fifo.find(lvl.rotation.front());
    assert(fifo != lvl.fifo.end() && !fifo->second.empty());
    *priority = p;
    return &fifo->second.front();
  }
  return nullptr;
}

void limiter::pop_head(int priority) {
  level& lvl = levels_[static_cast<std::size_t>(priority)];
  assert(lvl.count > 0);
  std::string client = std::move(lvl.rotation.front());
  lvl.rotation.pop_front();
  const auto fifo = lvl.fifo.find(client);
  assert(fifo != lvl.fifo.end() && !fifo->second.empty());
  const ticket_id id = fifo->second.front().id;
  fifo->second.pop_front();
  --lvl.count;
  // Round-robin: a client served goes to the back of its priority's turn.
  if (fifo->second.empty()) {
    lvl.fifo.erase(fifo);
  } else {
    lvl.rotation.push_back(client);
  }
  forget_waiting(id, client);
}

void limiter::forget_waiting(ticket_id id, const std::string& client) {
  const std::size_t erased = waiting_by_id_.erase(id);
  assert(erased == 1);
  (void)erased;
  const auto count = waiting_by_client_.find(client);
  assert(count != waiting_by_client_.end() && count->second > 0);
  if (--count->second == 0) {
    waiting_by_client_.erase(count);
  }
}

}  // namespace troupe::llm
