#include "runtime/actor/ask.hpp"

#include <algorithm>
#include <cassert>
#include <deque>
#include <optional>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include <caf/all.hpp>

#include "runtime/actor/atoms.hpp"
#include "runtime/actor/envelope_message.hpp"
#include "runtime/actor/error_text.hpp"
#include "runtime/protocol/codec.hpp"
#include "runtime/supervisor/actor_registry.hpp"

namespace troupe {

namespace {

using clock_type = std::chrono::steady_clock;

/// Handles cached per asker; past this many, the cache starts over.
constexpr size_t route_cache_max = 256;

/// One request in flight.
struct call {
  reply_handler on_reply;
  /// The request as sent, kept for one retry through the supervisor: a
  /// receiver that went down before reading it never saw it, so sending it to
  /// the next incarnation is still at-most-once. Shared with the mailbox.
  caf::message request;
  std::string path;
  std::chrono::milliseconds timeout{0};
  /// The id its reply arrives with now (a retry through the supervisor
  /// replaces it); a deadline kept for an earlier id is stale.
  caf::message_id awaiting;
  bool answered = false;

  void answer(envelope reply) {
    answered = true;
    request = caf::message{};
    auto handler = std::move(on_reply);
    handler(std::move(reply));
  }
};

envelope error_reply(caf::event_based_actor* self, const caf::error& err, const call& c) {
  if (err == caf::sec::request_timeout) {
    return make_error_envelope(make_error(
        errc::timeout,
        "no reply from '" + c.path + "' within " + std::to_string(c.timeout.count()) + " ms"));
  }
  if (err == caf::sec::request_receiver_down) {
    return make_error_envelope(make_error(errc::unavailable, "actor '" + c.path + "' is down"));
  }
  return make_error_envelope(make_error(
      errc::internal, "request to '" + c.path + "' failed: " + error_text(self->system(), err)));
}

struct string_hash {
  using is_transparent = void;
  size_t operator()(std::string_view s) const noexcept { return std::hash<std::string_view>{}(s); }
};

}  // namespace

struct asker::state : std::enable_shared_from_this<asker::state> {
  /// A request's deadline. Within one queue, deadlines come in send order.
  struct deadline {
    clock_type::time_point at;
    /// The id its reply (or our timeout error) arrives with.
    caf::message_id response_id;
    std::shared_ptr<call> of;

    /// Still waited for: not answered, and not replaced by a retry.
    [[nodiscard]] bool live() const { return !of->answered && of->awaiting == response_id; }
  };

  /// Requests sent with one timeout value.
  struct timeout_queue {
    std::chrono::milliseconds timeout{0};
    std::deque<deadline> entries;
  };

  const actor_registry* registry = nullptr;

  /// Running incarnations by path, valid while the registry's generation is
  /// `routes_generation`.
  std::unordered_map<std::string, caf::actor, string_hash, std::equal_to<>> routes;
  uint64_t routes_generation = 0;

  /// Callers use one or a few timeout values, so a queue per value keeps
  /// every queue sorted by deadline at the cost of a push and a pop.
  std::vector<timeout_queue> queues;
  /// When the earliest clock entry fires, if one is set.
  std::optional<clock_type::time_point> tick_at;

  explicit state(const actor_registry& r) : registry(&r), routes_generation(r.generation()) {}

  caf::actor current(std::string_view path) {
    const uint64_t generation = registry->generation();
    if (generation != routes_generation || routes.size() >= route_cache_max) {
      routes.clear();
      routes_generation = generation;
    }
    if (auto it = routes.find(path); it != routes.end()) {
      return it->second;
    }
    auto handle = registry->current(path);
    if (handle) {
      routes.emplace(std::string(path), handle);
    }
    return handle;
  }

  /// Sends `msg` for `c` to `dest`, which is the target itself (`to_target`:
  /// then `c` keeps the request for a retry) or its supervisor.
  void send(caf::event_based_actor* self, const caf::actor& dest, caf::message msg,
            std::shared_ptr<call> c, bool to_target) {
    auto handle = self->request(dest, caf::infinite, std::move(msg));
    const auto response_id = handle.id();
    handle.then(
        [c](std::string& type, std::string& body, uint64_t correlation_id) {
          c->answer(from_fields(type, body, correlation_id));
        },
        [self, this_state = shared_from_this(), c, to_target](caf::error& err) {
          if (to_target && err == caf::sec::request_receiver_down) {
            if (auto route = this_state->registry->find(c->path)) {
              this_state->via_supervisor(self, *route, c);
              return;
            }
          }
          c->answer(error_reply(self, err, *c));
        });
    c->awaiting = response_id;
    track(self, response_id, std::move(c));
  }

  void via_supervisor(caf::event_based_actor* self, const actor_route& route,
                      std::shared_ptr<call> c) {
    if (!route.supervisor) {
      c->answer(make_error_envelope(make_error(
          errc::unavailable, "actor '" + c->path + "' is " + std::string(to_string(route.state)))));
      return;
    }
    // The supervisor takes the route name in front of the envelope's fields;
    // there is no retry after this one.
    auto m = std::move(c->request);
    auto routed = caf::make_message(route_atom::value, route.name, m.get_as<std::string>(0),
                                    m.get_as<std::string>(1), m.get_as<uint64_t>(2));
    send(self, route.supervisor, std::move(routed), std::move(c), false);
  }

  timeout_queue& queue_for(std::chrono::milliseconds timeout) {
    for (auto& q : queues) {
      if (q.timeout == timeout) {
        return q;
      }
    }
    return queues.emplace_back(timeout_queue{timeout, {}});
  }

  void track(caf::event_based_actor* self, caf::message_id response_id, std::shared_ptr<call> c) {
    auto& q = queue_for(c->timeout);
    while (!q.entries.empty() && !q.entries.front().live()) {
      q.entries.pop_front();
    }
    const auto at = clock_type::now() + c->timeout;
    q.entries.push_back(deadline{at, response_id, std::move(c)});
    if (!tick_at || at < *tick_at) {
      arm(self, at);
    }
  }

  /// Sets a clock entry for `at`, as a request to nobody whose only answer is
  /// CAF's own timeout error.
  void arm(caf::event_based_actor* self, clock_type::time_point at) {
    tick_at = at;
    const auto id = self->new_request_id(caf::message_priority::normal);
    self->add_multiplexed_response_handler(
        id.response_id(), caf::behavior{[self, this_state = shared_from_this(), at](caf::error&) {
          this_state->expire(self, at);
        }});
    const auto delay = std::max(at - clock_type::now(), clock_type::duration::zero());
    self->request_response_timeout(caf::duration{delay}, id);
  }

  /// A clock entry set for `fired` went off: times out what is due, drops
  /// what was answered, and sets the entry for the next deadline.
  void expire(caf::event_based_actor* self, clock_type::time_point fired) {
    if (tick_at && *tick_at == fired) {
      tick_at.reset();
    }
    const auto now = clock_type::now();
    std::optional<clock_type::time_point> next;
    for (auto q = queues.begin(); q != queues.end();) {
      auto& entries = q->entries;
      while (!entries.empty() && (!entries.front().live() || entries.front().at <= now)) {
        if (entries.front().live()) {
          // Answered by the request's own error handler, the way CAF's clock
          // would: that also drops CAF's handler for a reply that never came.
          self->eq_impl(entries.front().response_id, nullptr, self->context(),
                        caf::make_error(caf::sec::request_timeout));
        }
        entries.pop_front();
      }
      if (entries.empty()) {
        q = queues.erase(q);
        continue;
      }
      if (!next || entries.front().at < *next) {
        next = entries.front().at;
      }
      ++q;
    }
    if (next && (!tick_at || *next < *tick_at)) {
      arm(self, *next);
    }
  }
};

asker::asker() = default;
asker::asker(const actor_registry& registry) : state_(std::make_shared<state>(registry)) {}
asker::~asker() = default;
asker::asker(asker&&) noexcept = default;
asker& asker::operator=(asker&&) noexcept = default;

size_t asker::waiting() const {
  size_t n = 0;
  if (state_) {
    for (const auto& q : state_->queues) {
      n += static_cast<size_t>(std::count_if(q.entries.begin(), q.entries.end(),
                                             [](const auto& d) { return d.live(); }));
    }
  }
  return n;
}

void asker::ask(caf::event_based_actor* self, std::string_view path, envelope msg,
                std::chrono::milliseconds timeout, reply_handler on_reply) {
  assert(state_ && "an asker made by default was used before being assigned");
  auto c = std::make_shared<call>(
      call{std::move(on_reply), to_message(std::move(msg)), std::string(path), timeout, {}, false});
  if (auto current = state_->current(path)) {
    auto request = c->request;
    state_->send(self, current, std::move(request), std::move(c), true);
    return;
  }
  auto route = state_->registry->find(path);
  if (!route) {
    c->answer(make_error_envelope(
        state_->registry->coming_back(path)
            ? make_error(errc::restarting,
                         "actor '" + std::string(path) + "' is restarting with its supervisor")
            : make_error(errc::unknown_actor, "no actor at '" + std::string(path) + "'")));
    return;
  }
  state_->via_supervisor(self, *route, std::move(c));
}

}  // namespace troupe
