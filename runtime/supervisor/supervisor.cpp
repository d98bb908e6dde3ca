#include "runtime/supervisor/supervisor.hpp"

#include <algorithm>
#include <deque>
#include <list>
#include <random>
#include <unordered_map>

#include <caf/all.hpp>

#include <spdlog/logger.h>
#include "runtime/actor/atoms.hpp"
#include "runtime/actor/envelope_message.hpp"
#include "runtime/actor/error_text.hpp"

#include "runtime/log/log.hpp"
#include "runtime/node/node_context.hpp"
#include "runtime/protocol/codec.hpp"

namespace troupe {

namespace {

struct started_body {
  std::string path;
  TROUPE_FIELDS(path)
};

/// A message waiting for a child that is restarting.
struct stashed {
  envelope msg;
  caf::response_promise promise;
};

struct child_entry {
  child_spec spec;
  std::string path;
  caf::actor handle;  // null unless running
  actor_state state = actor_state::starting;
  uint32_t restarts = 0;
  std::string last_failure;
  restart_backoff backoff;
  /// Bumped whenever a restart is scheduled or cancelled; a delayed restart
  /// whose generation no longer matches is stale (CAF 0.17 cannot cancel it).
  uint64_t generation = 0;
  std::deque<stashed> stash;
  /// A dynamic supervisor's children are independent (sessions, agents):
  /// each has its own restart intensity, so one crash loop gives up on
  /// that child alone instead of taking its siblings down.
  restart_intensity intensity{0, std::chrono::milliseconds{0}};
};

using child_list = std::list<child_entry>;
using child_iter = child_list::iterator;

struct supervisor_state {
  std::shared_ptr<node_context> ctx;
  std::string path;
  strategy strat = strategy::one_for_one;
  restart_policy policy;
  uint32_t children_max = 0;
  std::shared_ptr<spdlog::logger> log;

  child_list children;  // start order
  std::unordered_map<std::string, child_iter> by_name;
  std::unordered_map<caf::actor_id, child_iter> by_id;
  restart_intensity intensity{0, std::chrono::milliseconds{0}};
  std::mt19937_64 rng;

  // Sequential stopping: one child at a time, each with its timeout.
  std::deque<std::pair<caf::actor, std::chrono::milliseconds>> stop_queue;
  caf::actor stopping;  // the child being stopped now, if any
  uint64_t stop_generation = 0;
  std::function<void()> after_stop;

  // Children stopped as part of a one_for_all / rest_for_one restart.
  std::vector<std::string> group_restart;
  std::chrono::milliseconds group_delay{0};

  bool shutting_down = false;
  std::vector<caf::response_promise> shutdown_waiters;
  /// The supervising parent, once it introduced itself (parent_atom).
  caf::actor_addr parent;

  static inline const char* name = "troupe.supervisor";
};

using supervisor_actor = caf::stateful_actor<supervisor_state>;

// ---------------------------------------------------------------------------
// bookkeeping

void publish(supervisor_actor* self, child_entry& c) {
  self->state.ctx->registry.update(c.path, c.state, c.handle, c.restarts, c.last_failure,
                                   static_cast<uint32_t>(c.stash.size()));
}

void count(supervisor_actor* self, const char* metric, const char* help, const std::string& path) {
  self->state.ctx->metrics.counter(metric, help, {{"path", path}}).inc();
}

void drain_stash(child_entry& c, errc code, const std::string& why) {
  for (auto& s : c.stash) {
    deliver(s.promise, make_error_envelope(make_error(code, why), s.msg.correlation_id));
  }
  c.stash.clear();
}

std::string render(supervisor_actor* self, const caf::error& reason) {
  return error_text(self->system(), reason);
}

std::chrono::milliseconds stop_timeout_of(const supervisor_state& st, const child_entry& c) {
  return c.spec.shutdown_timeout.value_or(st.policy.shutdown_timeout);
}

// ---------------------------------------------------------------------------
// starting

void handle_failure(supervisor_actor* self, child_iter it, const std::string& reason,
                    bool abnormal);

/// Starts one incarnation of `it`; a start that throws or returns no actor is
/// a failure of that child like any other.
void start_child(supervisor_actor* self, child_iter it) {
  auto& c = *it;
  if (c.spec.kind == actor_kind::supervisor) {
    // A nested supervisor registers its own children as it starts (possibly
    // on another thread before spawn returns): forget the previous
    // incarnation's subtree first, so no stale handle is routed to.
    self->state.ctx->registry.remove_below(c.path);
    self->state.ctx->registry.set_children_started(c.path, false);
  }
  caf::actor handle;
  std::string start_error;
  try {
    handle = c.spec.start(self->system(), c.path);
  } catch (const std::exception& e) {
    start_error = std::string("start failed: ") + e.what();
  }
  if (!handle && start_error.empty()) {
    start_error = "start failed: the start function returned no actor";
  }
  if (!start_error.empty()) {
    handle_failure(self, it, start_error, true);
    return;
  }
  // Monitor: a down message arrives however the child ends (CAF unlinks from
  // the sender of an exit message before handling it, so a child we stop
  // never sends us an exit message). Link: the child dies with us.
  self->monitor(handle);
  self->link_to(handle);
  if (c.spec.kind == actor_kind::supervisor) {
    self->send(handle, parent_atom::value);
  }
  self->state.by_id[handle.id()] = it;
  c.handle = handle;
  c.state = actor_state::running;
  // Waiting messages go to the new incarnation in arrival order; the reply
  // goes straight back to the original sender.
  for (auto& s : c.stash) {
    delegate(s.promise, handle, std::move(s.msg));
  }
  c.stash.clear();
  publish(self, c);
}

child_iter add_child(supervisor_actor* self, child_spec spec) {
  auto& st = self->state;
  auto path = child_path(st.path, spec.name);
  auto name = spec.name;
  auto kind = spec.kind;
  st.children.push_back(child_entry{std::move(spec),
                                    path,
                                    {},
                                    actor_state::starting,
                                    0,
                                    {},
                                    restart_backoff{st.policy},
                                    0,
                                    {},
                                    restart_intensity{st.policy.restarts_max, st.policy.period}});
  auto it = std::prev(st.children.end());
  st.by_name.emplace(name, it);
  actor_info info{path, name, st.path, kind, actor_state::starting, 0, {}, 0, 0};
  st.ctx->registry.put(std::move(info), caf::actor{}, caf::actor_cast<caf::actor>(self));
  return it;
}

void remove_child(supervisor_actor* self, child_iter it) {
  auto& st = self->state;
  drain_stash(*it, errc::unavailable, "actor '" + it->path + "' was removed");
  st.ctx->registry.remove(it->path);
  st.by_name.erase(it->spec.name);
  st.children.erase(it);
}

// ---------------------------------------------------------------------------
// stopping

void stop_next(supervisor_actor* self) {
  auto& st = self->state;
  if (st.stopping) {
    return;  // one at a time; the current one's exit continues the queue
  }
  if (st.stop_queue.empty()) {
    if (st.after_stop) {
      auto done = std::move(st.after_stop);
      st.after_stop = nullptr;
      done();
    }
    return;
  }
  auto [handle, timeout] = std::move(st.stop_queue.front());
  st.stop_queue.pop_front();
  st.stopping = handle;
  self->send_exit(handle, caf::exit_reason::user_shutdown);
  self->delayed_send(self, timeout, stop_timeout_atom::value, ++st.stop_generation);
}

/// Detaches `c`'s running incarnation from routing and queues it for stopping.
void queue_stop(supervisor_actor* self, child_entry& c, actor_state next_state) {
  auto& st = self->state;
  if (c.handle) {
    st.by_id.erase(c.handle.id());
    st.stop_queue.emplace_back(c.handle, stop_timeout_of(st, c));
    c.handle = nullptr;
  }
  c.state = next_state;
  publish(self, c);
}

/// Stops every child in reverse start order, then quits with `reason`.
void shut_down(supervisor_actor* self, caf::error reason) {
  auto& st = self->state;
  if (st.shutting_down) {
    return;
  }
  st.shutting_down = true;
  st.group_restart.clear();
  st.log->info("{}: stopping {} children{}", st.path.empty() ? "root" : st.path, st.children.size(),
               reason ? " (" + render(self, reason) + ")" : "");
  for (auto it = st.children.rbegin(); it != st.children.rend(); ++it) {
    ++it->generation;  // cancels pending restarts
    drain_stash(*it, errc::shutting_down, "actor '" + it->path + "' is shutting down");
    queue_stop(self, *it, actor_state::stopped);
  }
  st.after_stop = [self, reason = std::move(reason)] {
    for (auto& waiter : self->state.shutdown_waiters) {
      waiter.deliver(caf::unit);
    }
    self->state.shutdown_waiters.clear();
    self->quit(reason);
  };
  stop_next(self);
}

/// Gives up: stops everything in reverse order and fails, so the parent decides.
void give_up(supervisor_actor* self, const std::string& why) {
  auto& st = self->state;
  st.log->error("{}: giving up: {}", st.path.empty() ? "root" : st.path, why);
  count(self, "troupe_supervisor_give_ups_total",
        "Supervisors that exceeded their restart intensity or escalated", st.path);
  for (auto& c : st.children) {
    drain_stash(c, errc::unavailable, "actor '" + c.path + "' is unavailable: " + why);
  }
  shut_down(self, caf::make_error(caf::sec::runtime_error, why));
  for (auto& c : st.children) {
    c.state = actor_state::failed;
    publish(self, c);
  }
}

// ---------------------------------------------------------------------------
// restarting

void schedule_restart(supervisor_actor* self, child_entry& c, std::chrono::milliseconds delay) {
  auto gen = ++c.generation;
  c.state = actor_state::restarting;
  publish(self, c);
  if (delay.count() == 0) {
    start_child(self, self->state.by_name.at(c.spec.name));
    return;
  }
  self->delayed_send(self, delay, restart_atom::value, c.spec.name, gen);
}

void restart_group(supervisor_actor* self) {
  auto& st = self->state;
  auto names = std::move(st.group_restart);
  st.group_restart.clear();
  for (const auto& name : names) {
    auto it = st.by_name.find(name);
    if (it != st.by_name.end() && !it->second->handle) {
      schedule_restart(self, *it->second, st.group_delay);
    }
  }
}

/// The children a failure of `failed` takes down with it, by strategy.
std::vector<child_iter> affected(supervisor_state& st, child_iter failed) {
  std::vector<child_iter> out;
  switch (st.strat) {
    case strategy::one_for_one:
    case strategy::dynamic:
      out.push_back(failed);
      break;
    case strategy::one_for_all:
      for (auto it = st.children.begin(); it != st.children.end(); ++it) {
        out.push_back(it);
      }
      break;
    case strategy::rest_for_one:
      for (auto it = failed; it != st.children.end(); ++it) {
        out.push_back(it);
      }
      break;
  }
  return out;
}

void restart_affected(supervisor_actor* self, child_iter failed, std::chrono::milliseconds delay) {
  auto& st = self->state;
  auto group = affected(st, failed);
  if (group.size() == 1) {
    schedule_restart(self, *failed, delay);
    return;
  }
  // Siblings stop in reverse start order, then the group starts in order.
  for (auto g = group.rbegin(); g != group.rend(); ++g) {
    auto& c = **g;
    if (*g != failed && (c.state == actor_state::stopped || c.state == actor_state::failed)) {
      continue;  // stopped for good: a sibling's failure does not revive it
    }
    if (c.handle) {
      ++c.restarts;
      c.last_failure =
          "restarted with '" + failed->spec.name + "' (" + std::string(to_string(st.strat)) + ")";
      queue_stop(self, c, actor_state::restarting);
    }
    st.group_restart.push_back(c.spec.name);
  }
  std::reverse(st.group_restart.begin(), st.group_restart.end());
  failed->state = actor_state::restarting;
  publish(self, *failed);
  st.group_delay = delay;
  st.after_stop = [self] { restart_group(self); };
  stop_next(self);
}

void stop_for_good(supervisor_actor* self, child_iter it, actor_state state) {
  auto& st = self->state;
  ++it->generation;
  drain_stash(*it, errc::unavailable, "actor '" + it->path + "' has stopped");
  it->state = state;
  // A dynamic child that was given up on stays in the tree, failed, so an
  // operator sees it; one that stopped is gone.
  if (st.strat == strategy::dynamic && state != actor_state::failed) {
    remove_child(self, it);
    return;
  }
  publish(self, *it);
}

void handle_failure(supervisor_actor* self, child_iter it, const std::string& reason,
                    bool abnormal) {
  auto& st = self->state;
  auto& c = *it;
  c.last_failure = abnormal ? reason : std::string{};
  if (!restarts_after_exit(c.spec.restart, abnormal)) {
    stop_for_good(self, it, actor_state::stopped);
    return;
  }
  auto d = abnormal ? c.spec.decide(failure{failure_kind::exited, reason}) : directive::restart;
  if (d == directive::stop) {
    stop_for_good(self, it, actor_state::stopped);
    return;
  }
  if (d == directive::escalate) {
    count(self, "troupe_supervisor_escalations_total", "Failures a decider escalated", c.path);
    give_up(self, "child '" + c.path + "' escalated: " + reason);
    return;
  }
  auto now = std::chrono::steady_clock::now();
  if (st.strat == strategy::dynamic && !c.intensity.record(now)) {
    count(self, "troupe_supervisor_give_ups_total",
          "Supervisors that exceeded their restart intensity or escalated", c.path);
    st.log->error("{}: more than {} restarts in {} ms; giving up on it: {}", c.path,
                  st.policy.restarts_max, st.policy.period.count(), reason);
    c.last_failure = "gave up after " + std::to_string(c.restarts) + " restarts: " + reason;
    stop_for_good(self, it, actor_state::failed);
    return;
  }
  if (st.strat != strategy::dynamic && !st.intensity.record(now)) {
    c.state = actor_state::failed;
    publish(self, c);
    give_up(self, "more than " + std::to_string(st.policy.restarts_max) + " restarts in " +
                      std::to_string(st.policy.period.count()) + " ms; last: '" + c.path +
                      "': " + reason);
    return;
  }
  std::uniform_real_distribution<double> uniform(0.0, 1.0);
  auto delay = c.backoff.next_delay(now, uniform(st.rng));
  ++c.restarts;
  count(self, "troupe_actor_restarts_total", "Restarts of supervised actors", c.path);
  st.log->warn("{} ({}) ended: {}; restart #{} in {} ms", c.path, to_string(c.spec.kind), reason,
               c.restarts, delay.count());
  restart_affected(self, it, delay);
}

/// Exit messages: only our parent's, an anonymous one or one naming us as
/// its source (CAF's anon_send_exit convention; chaos kills) mean "stop"; a
/// child's end is handled once, by its down message.
void on_exit(supervisor_actor* self, caf::exit_msg& msg) {
  auto& st = self->state;
  if (!msg.source || msg.source == self->address() || (st.parent && msg.source == st.parent)) {
    if (st.shutting_down) {
      // Asked again while stopping: the parent's patience ran out. Quit now;
      // the links take the remaining children down with us.
      self->quit(std::move(msg.reason));
      return;
    }
    shut_down(self, std::move(msg.reason));
  }
}

void on_down(supervisor_actor* self, caf::down_msg& msg) {
  auto& st = self->state;
  if (st.stopping && msg.source == st.stopping.address()) {
    st.stopping = nullptr;
    stop_next(self);
    return;
  }
  auto queued = std::find_if(st.stop_queue.begin(), st.stop_queue.end(),
                             [&](const auto& q) { return q.first.address() == msg.source; });
  if (queued != st.stop_queue.end()) {
    // Ended on its own while waiting to be stopped: one less to stop.
    st.stop_queue.erase(queued);
    stop_next(self);
    return;
  }
  auto found = msg.source ? st.by_id.find(msg.source.id()) : st.by_id.end();
  if (found == st.by_id.end()) {
    return;  // an incarnation we already replaced or removed
  }
  auto it = found->second;
  st.by_id.erase(found);
  it->handle = nullptr;
  if (it->spec.kind == actor_kind::supervisor) {
    st.ctx->registry.remove_below(it->path);
  }
  if (st.shutting_down) {
    it->state = actor_state::stopped;
    publish(self, *it);
    return;
  }
  const bool abnormal = msg.reason && msg.reason != caf::exit_reason::user_shutdown;
  handle_failure(self, it, render(self, msg.reason), abnormal);
}

// ---------------------------------------------------------------------------
// messages

void route(supervisor_actor* self, const std::string& name, envelope& msg,
           caf::response_promise promise) {  // NOLINT: recursion is bounded by restarts
  auto& st = self->state;
  auto found = st.by_name.find(name);
  if (found == st.by_name.end()) {
    deliver(promise,
            make_error_envelope(
                make_error(errc::unknown_actor, "no actor at '" + child_path(st.path, name) + "'"),
                msg.correlation_id));
    return;
  }
  auto& c = *found->second;
  if (c.handle) {
    // Not a plain delegate: the incarnation may have died with its down
    // message still queued here. Then the message goes to the stash like any
    // other that arrives during a restart, instead of failing the caller.
    auto copy = msg;
    self->request(c.handle, st.policy.route_timeout, std::move(msg.type), std::move(msg.body),
                  msg.correlation_id)
        .then(
            [promise](std::string& type, std::string& body, uint64_t correlation_id) mutable {
              deliver(promise, from_fields(type, body, correlation_id));
            },
            [self, name, copy = std::move(copy), promise](caf::error& err) mutable {
              if (err == caf::sec::request_receiver_down) {
                route(self, name, copy, std::move(promise));
                return;
              }
              deliver(promise,
                      make_error_envelope(
                          make_error(errc::timeout, "actor '" + child_path(self->state.path, name) +
                                                        "' did not answer: " + render(self, err)),
                          copy.correlation_id));
            });
    return;
  }
  if (c.state == actor_state::starting || c.state == actor_state::restarting) {
    if (c.stash.size() >= st.policy.stash_max) {
      count(self, "troupe_stash_overflows_total",
            "Messages refused because a restarting actor's stash was full", c.path);
      deliver(promise, make_error_envelope(make_error(errc::restarting,
                                                      "actor '" + c.path + "' is restarting and " +
                                                          std::to_string(st.policy.stash_max) +
                                                          " messages already wait for it"),
                                           msg.correlation_id));
      return;
    }
    c.stash.push_back(stashed{std::move(msg), std::move(promise)});
    publish(self, c);
    return;
  }
  deliver(promise, make_error_envelope(
                       make_error(errc::unavailable,
                                  "actor '" + c.path + "' is " + std::string(to_string(c.state)) +
                                      (c.last_failure.empty() ? "" : ": " + c.last_failure)),
                       msg.correlation_id));
}

envelope start_dynamic(supervisor_actor* self, child_spec& spec) {
  auto& st = self->state;
  if (st.shutting_down) {
    return make_error_envelope(make_error(errc::shutting_down, "supervisor is shutting down"));
  }
  if (st.by_name.count(spec.name) != 0) {
    return make_error_envelope(make_error(
        errc::conflict, "an actor named '" + child_path(st.path, spec.name) + "' exists"));
  }
  if (st.children.size() >= st.children_max) {
    return make_error_envelope(
        make_error(errc::conflict, "supervisor '" + st.path + "' already has its maximum of " +
                                       std::to_string(st.children_max) + " children"));
  }
  auto it = add_child(self, std::move(spec));
  auto path = it->path;
  start_child(self, it);
  return make_envelope(sup_started_type, started_body{path});
}

caf::behavior supervisor_behavior(supervisor_actor* self, std::shared_ptr<node_context> ctx,
                                  std::string path, supervisor_spec spec) {
  auto& st = self->state;
  st.ctx = std::move(ctx);
  st.path = std::move(path);
  st.strat = spec.strat;
  st.policy = spec.policy;
  st.children_max = spec.children_max;
  st.intensity = restart_intensity{spec.policy.restarts_max, spec.policy.period};
  st.rng.seed(spec.seed);
  st.log = logger("supervisor");
  self->set_exit_handler([self](caf::exit_msg& msg) { on_exit(self, msg); });
  self->set_down_handler([self](caf::down_msg& msg) { on_down(self, msg); });
  // Ordered start: each child is spawned and linked before the next.
  for (auto& child : spec.children) {
    start_child(self, add_child(self, std::move(child)));
  }
  st.ctx->registry.set_children_started(st.path, true);
  return {
      [self](route_atom, const std::string& name, std::string& type, std::string& body,
             uint64_t correlation_id) {
        auto promise = self->make_response_promise();
        auto msg = from_fields(type, body, correlation_id);
        route(self, name, msg, promise);
        return promise;
      },
      [self](start_child_atom, child_spec& child) {
        return to_message(start_dynamic(self, child));
      },
      [self](stop_child_atom, const std::string& name) -> caf::message {
        auto& st = self->state;
        auto found = st.by_name.find(name);
        if (found == st.by_name.end()) {
          return to_message(make_error_envelope(
              make_error(errc::unknown_actor, "no actor at '" + child_path(st.path, name) + "'")));
        }
        auto it = found->second;
        queue_stop(self, *it, actor_state::stopped);
        stop_for_good(self, it, actor_state::stopped);
        stop_next(self);
        return to_message(make_envelope("sup.stopped", started_body{child_path(st.path, name)}));
      },
      [self](restart_atom, const std::string& name, uint64_t generation) {
        auto& st = self->state;
        auto found = st.by_name.find(name);
        if (st.shutting_down || found == st.by_name.end() ||
            found->second->generation != generation || found->second->handle) {
          return;  // stale: cancelled, removed or already running
        }
        start_child(self, found->second);
      },
      [self](stop_timeout_atom, uint64_t generation) {
        auto& st = self->state;
        if (st.stopping && generation == st.stop_generation) {
          st.log->warn("{}: a child did not stop in time; forcing it", st.path);
          // Not exit_reason::kill: CAF propagates it through our link to us.
          self->send_exit(st.stopping, caf::make_error(caf::sec::runtime_error,
                                                       std::string("did not stop in time")));
        }
      },
      [self](parent_atom) {
        self->state.parent = caf::actor_cast<caf::actor_addr>(self->current_sender());
      },
      [self](shutdown_atom) {
        auto promise = self->make_response_promise();
        self->state.shutdown_waiters.push_back(promise);
        shut_down(self, caf::exit_reason::user_shutdown);
        return promise;
      },
  };
}

}  // namespace

caf::actor spawn_supervisor(caf::actor_system& system, std::shared_ptr<node_context> ctx,
                            std::string path, supervisor_spec spec) {
  const bool root = path.empty();
  auto registry_ctx = ctx;
  if (root) {
    // Registered before it runs, so its init finds its own entry.
    actor_info info{"", "root", "", actor_kind::supervisor, actor_state::starting, 0, {}, 0, 0};
    registry_ctx->registry.put(std::move(info), caf::actor{}, caf::actor{});
  }
  auto handle = system.spawn(supervisor_behavior, std::move(ctx), path, std::move(spec));
  if (root) {
    registry_ctx->registry.update("", actor_state::running, handle, 0, {}, 0);
  }
  return handle;
}

child_spec supervisor_child(std::string name, std::shared_ptr<node_context> ctx,
                            supervisor_spec spec, restart_type restart) {
  child_spec child;
  child.name = std::move(name);
  child.kind = actor_kind::supervisor;
  child.restart = restart;
  // A nested supervisor stops its own children one by one, each within its
  // timeout: give it room for a few before killing it.
  child.shutdown_timeout = spec.policy.shutdown_timeout * 4;
  child.start = [ctx = std::move(ctx), spec = std::move(spec)](caf::actor_system& system,
                                                               const std::string& path) {
    return spawn_supervisor(system, ctx, path, spec);
  };
  return child;
}

}  // namespace troupe
