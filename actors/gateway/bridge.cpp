#include "actors/gateway/bridge.hpp"

#include <caf/all.hpp>

#include <spdlog/logger.h>

#include "actors/gateway/messages.hpp"
#include "runtime/actor/ask.hpp"
#include "runtime/actor/envelope_message.hpp"
#include "runtime/breaker/circuit_breaker.hpp"
#include "runtime/log/log.hpp"
#include "runtime/node/node_context.hpp"
#include "runtime/protocol/codec.hpp"

namespace troupe {

namespace {

/// Calls its function exactly once: with the reply, or, if the call's actor
/// ends without one (the actor system went down under it), with an error
/// from the destructor, so no HTTP client is left waiting.
class once_reply {
 public:
  explicit once_reply(call_done fn) : fn_(std::move(fn)) {}
  once_reply(const once_reply&) = delete;
  once_reply& operator=(const once_reply&) = delete;
  ~once_reply() {
    if (fn_) {
      fn_(make_error_envelope(
          make_error(errc::unavailable, "the node stopped before the call was answered")));
    }
  }
  void operator()(envelope reply) {
    auto fn = std::move(fn_);
    fn_ = nullptr;
    fn(std::move(reply));
  }

 private:
  call_done fn_;
};

/// Breakers are kept for paths that exist (the router checks), so their
/// number follows the number of actors; past this bound the closed ones,
/// which hold nothing worth keeping, are dropped.
constexpr size_t breakers_max = 10000;

/// What the relay adds to a call's own timeout: the target's timeout is
/// reported by gateway/calls (and counts against its breaker) before the
/// caller's own deadline passes.
constexpr std::chrono::milliseconds relay_margin{1000};

/// What a gateway.call adds around the body it carries (path, type,
/// field names), with room to spare.
constexpr size_t call_framing_bytes = 64u << 10;

/// Replies that say the target is failing (as opposed to the caller's
/// mistakes, such as a bad body, which say nothing about the target).
bool counts_as_failure(const envelope& reply) {
  if (!reply.is_error()) {
    return false;
  }
  switch (read_error(reply).code) {
    case errc::timeout:
    case errc::unavailable:
    case errc::restarting:
    case errc::internal:
      return true;
    default:
      return false;
  }
}

/// gateway/calls: one circuit breaker per target path, so an actor that
/// keeps crashing or timing out is answered at once with `breaker_open`
/// instead of collecting requests that will time out.
struct relay_state {
  asker requests;
  std::unique_ptr<keyed_breakers> breakers;
  decode_limits limits;
  static inline const char* name = "troupe.gateway.calls";
};

using relay_actor = caf::stateful_actor<relay_state>;

void relay(relay_actor* self, gateway::call_request call, caf::response_promise promise) {
  using clock = std::chrono::steady_clock;
  auto& st = self->state;
  auto permit = (*st.breakers)[call.path].try_acquire(clock::now());
  if (!permit.allowed) {
    deliver(promise, make_error_envelope(make_error(
                         errc::breaker_open,
                         "calls to '" + call.path + "' keep failing; not trying for another " +
                             std::to_string(permit.retry_after.count()) + " ms")));
    return;
  }
  const auto started = clock::now();
  st.requests.ask(self, call.path, envelope{std::move(call.type), std::move(call.body), 0},
                  std::chrono::milliseconds(call.timeout_ms),
                  [self, path = call.path, started, promise](envelope reply) mutable {
                    const auto now = clock::now();
                    auto& breaker = (*self->state.breakers)[path];
                    if (counts_as_failure(reply)) {
                      breaker.on_failure(now, now - started);
                    } else {
                      breaker.on_success(now, now - started);
                    }
                    deliver(promise, std::move(reply));
                  });
}

/// A call's own actor: asks gateway/calls once per path, then answers.
struct call_state {
  asker requests;
  std::vector<envelope> replies;
  size_t waiting = 0;
  static inline const char* name = "troupe.gateway.call";
};

using call_actor = caf::stateful_actor<call_state>;

}  // namespace

child_spec calls_child(std::shared_ptr<node_context> ctx) {
  child_spec spec;
  spec.name = "calls";
  spec.kind = actor_kind::worker;
  spec.restart = restart_type::permanent;
  spec.start = [ctx](caf::actor_system& system, const std::string&) {
    return system.spawn([ctx](relay_actor* self) -> caf::behavior {
      auto& st = self->state;
      st.requests = asker{ctx->registry};
      // A call carries what an HTTP body carried (a cache value may exceed
      // the actor message bound): its own framing is a few bytes more.
      st.limits =
          decode_limits{.body_bytes_max = std::max<size_t>(ctx->config.limits.message_bytes_max,
                                                           ctx->config.gateway.body_bytes_max) +
                                          call_framing_bytes};
      st.breakers =
          std::make_unique<keyed_breakers>(make_breaker_config(ctx->config.breaker), breakers_max,
                                           report_transitions(ctx->metrics, logger("gateway"), ""));
      return {
          [self](std::string& type, std::string& body, uint64_t) {
            auto promise = self->make_response_promise();
            if (type != gateway::call_type) {
              deliver(promise, make_error_envelope(make_error(
                                   errc::unknown_type,
                                   "gateway/calls takes gateway.call, not '" + type + "'")));
              return;
            }
            auto call = decode<gateway::call_request>(body, self->state.limits);
            if (!call) {
              deliver(promise, make_error_envelope(call.err()));
              return;
            }
            relay(self, std::move(*call), std::move(promise));
          },
      };
    });
  };
  return spec;
}

void submit_call(caf::actor_system& system, std::shared_ptr<node_context> ctx, actor_call call,
                 call_done done) {
  system.spawn([ctx = std::move(ctx), call = std::move(call),
                done = std::make_shared<once_reply>(std::move(done))](
                   call_actor* self) mutable -> caf::behavior {
    auto& st = self->state;
    st.requests = asker{ctx->registry};
    std::vector<std::string> paths =
        call.fanout.empty() ? std::vector<std::string>{call.path} : std::move(call.fanout);
    st.replies.resize(paths.size());
    st.waiting = paths.size();
    const auto timeout_ms = static_cast<uint64_t>(call.timeout.count());
    auto merge = std::move(call.merge);
    for (size_t i = 0; i < paths.size(); ++i) {
      st.requests.ask(
          self, gateway::calls_path,
          make_envelope(gateway::call_type,
                        gateway::call_request{paths[i], call.msg.type, call.msg.body, timeout_ms}),
          call.timeout + relay_margin, [self, i, merge, done](envelope reply) {
            auto& s = self->state;
            s.replies[i] = std::move(reply);
            if (--s.waiting > 0) {
              return;
            }
            (*done)(merge ? merge(s.replies) : std::move(s.replies.front()));
            self->quit();
          });
    }
    // Nothing else reaches it; it ends with its answer.
    return {[](const std::string&, const std::string&, uint64_t) {}};
  });
}

expected<caf::actor> chaos_target(const node_context& ctx, const std::string& path) {
  auto route = ctx.registry.find(path);
  if (!route) {
    return make_error(errc::unknown_actor, "no actor at '" + path + "'");
  }
  if (!route->current) {
    return make_error(errc::conflict, "actor '" + path + "' is " +
                                          std::string(to_string(route->state)) + ", not running");
  }
  return route->current;
}

void crash(const caf::actor& target) {
  // Not exit_reason::kill: CAF propagates `kill` through links untrappably,
  // so it would take the supervisor down with the child.
  // (anon_send_exit takes only an exit_reason, so enqueue the exit_msg here.)
  auto reason = caf::make_error(caf::sec::runtime_error, std::string("killed by chaos"));
  target->enqueue(nullptr, caf::make_message_id(),
                  caf::make_message(caf::exit_msg{target.address(), std::move(reason)}), nullptr);
}

}  // namespace troupe
