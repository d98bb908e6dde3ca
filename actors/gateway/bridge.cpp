#include "actors/gateway/bridge.hpp"

#include <caf/all.hpp>

#include <spdlog/logger.h>

#include <unordered_map>

#include "runtime/actor/ask.hpp"
#include "runtime/breaker/circuit_breaker.hpp"
#include "runtime/log/log.hpp"
#include "runtime/node/node_context.hpp"
#include "runtime/protocol/codec.hpp"

namespace troupe {

namespace {

/// Calls its function exactly once: with the reply, or, if the call is
/// dropped unanswered (its actor died with it in the mailbox), with an error
/// from the destructor, so no HTTP client is left waiting.
class once_reply {
 public:
  explicit once_reply(call_done fn) : fn_(std::move(fn)) {}
  once_reply(const once_reply&) = delete;
  once_reply& operator=(const once_reply&) = delete;
  ~once_reply() {
    if (fn_) {
      fn_(make_error_envelope(make_error(
          errc::unavailable, "the gateway actor went down before the call was answered")));
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

struct http_call {
  std::string path;
  envelope msg;
  std::chrono::milliseconds timeout{0};
  std::shared_ptr<once_reply> done;
  std::vector<std::string> fanout;
  std::function<envelope(const std::vector<envelope>&)> merge;
};

}  // namespace

}  // namespace troupe

// Local only: carries a completion callback from an HTTP thread.
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(troupe::http_call)

namespace troupe {

namespace {

/// Breakers are kept for paths that exist (the router checks), so their
/// number follows the number of actors; past this bound the closed ones,
/// which hold nothing worth keeping, are dropped.
constexpr size_t breakers_max = 10000;

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

/// The `gateway` actor's state: one circuit breaker per target path, so an
/// actor that keeps crashing or timing out is answered at once with
/// `breaker_open` instead of collecting requests that will time out.
struct bridge_state {
  std::shared_ptr<node_context> ctx;
  asker requests;
  std::unique_ptr<keyed_breakers> breakers;
  std::shared_ptr<spdlog::logger> log;

  circuit_breaker& breaker_for(const std::string& path) { return (*breakers)[path]; }

  static inline const char* name = "troupe.gateway";
};

using bridge_actor = caf::stateful_actor<bridge_state>;

/// Sends `msg` to every path and answers once with `merge` of all replies.
void fan_out(bridge_actor* self, std::vector<std::string> paths, const envelope& msg,
             std::chrono::milliseconds timeout,
             std::function<envelope(const std::vector<envelope>&)> merge,
             std::shared_ptr<once_reply> done) {
  struct gather {
    std::vector<envelope> replies;
    size_t waiting = 0;
  };
  auto state = std::make_shared<gather>();
  state->replies.resize(paths.size());
  state->waiting = paths.size();
  for (size_t i = 0; i < paths.size(); ++i) {
    self->state.requests.ask(self, paths[i], msg, timeout, [state, i, merge, done](envelope reply) {
      state->replies[i] = std::move(reply);
      if (--state->waiting == 0) {
        (*done)(merge(state->replies));
      }
    });
  }
}

void forward(bridge_actor* self, http_call& call) {
  using clock = std::chrono::steady_clock;
  auto& st = self->state;
  auto permit = st.breaker_for(call.path).try_acquire(clock::now());
  if (!permit.allowed) {
    (*call.done)(make_error_envelope(make_error(
        errc::breaker_open, "calls to '" + call.path + "' keep failing; not trying for another " +
                                std::to_string(permit.retry_after.count()) + " ms")));
    return;
  }
  const auto started = clock::now();
  st.requests.ask(self, call.path, std::move(call.msg), call.timeout,
                  [self, path = call.path, started, done = std::move(call.done)](envelope reply) {
                    const auto now = clock::now();
                    auto& breaker = self->state.breaker_for(path);
                    if (counts_as_failure(reply)) {
                      breaker.on_failure(now, now - started);
                    } else {
                      breaker.on_success(now, now - started);
                    }
                    (*done)(std::move(reply));
                  });
}

}  // namespace

child_spec gateway_child(std::shared_ptr<node_context> ctx) {
  child_spec spec;
  spec.name = "gateway";
  spec.kind = actor_kind::worker;
  spec.restart = restart_type::permanent;
  spec.start = [ctx](caf::actor_system& system, const std::string&) {
    return system.spawn([ctx](bridge_actor* self) -> caf::behavior {
      self->state.ctx = ctx;
      self->state.requests = asker{ctx->registry};
      self->state.log = logger("gateway");
      self->state.breakers =
          std::make_unique<keyed_breakers>(make_breaker_config(ctx->config.breaker), breakers_max,
                                           report_transitions(ctx->metrics, self->state.log, ""));
      return {
          [self](http_call& call) {
            if (!call.fanout.empty()) {
              fan_out(self, std::move(call.fanout), call.msg, call.timeout, std::move(call.merge),
                      std::move(call.done));
              return;
            }
            forward(self, call);
          },
      };
    });
  };
  return spec;
}

void submit_call(const node_context& ctx, actor_call call, call_done done) {
  auto route = ctx.registry.find("gateway");
  if (!route || !route->current) {
    done(make_error_envelope(
        make_error(errc::restarting, "the gateway actor is restarting; try again")));
    return;
  }
  caf::anon_send(route->current, http_call{std::move(call.path), std::move(call.msg), call.timeout,
                                           std::make_shared<once_reply>(std::move(done)),
                                           std::move(call.fanout), std::move(call.merge)});
}

expected<bool> kill_actor(const node_context& ctx, const std::string& path) {
  auto route = ctx.registry.find(path);
  if (!route) {
    return make_error(errc::unknown_actor, "no actor at '" + path + "'");
  }
  if (!route->current) {
    return make_error(errc::conflict, "actor '" + path + "' is " +
                                          std::string(to_string(route->state)) + ", not running");
  }
  // Not exit_reason::kill: CAF propagates `kill` through links untrappably,
  // so it would take the supervisor down with the child.
  // (anon_send_exit takes only an exit_reason, so enqueue the exit_msg here.)
  const auto& target = route->current;
  auto reason = caf::make_error(caf::sec::runtime_error, std::string("killed by chaos"));
  target->enqueue(nullptr, caf::make_message_id(),
                  caf::make_message(caf::exit_msg{target.address(), std::move(reason)}), nullptr);
  return true;
}

}  // namespace troupe
