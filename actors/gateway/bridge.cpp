#include "actors/gateway/bridge.hpp"

#include <caf/all.hpp>

#include "runtime/actor/ask.hpp"
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
};

}  // namespace

}  // namespace troupe

// Local only: carries a completion callback from an HTTP thread.
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(troupe::http_call)

namespace troupe {

child_spec gateway_child(std::shared_ptr<node_context> ctx) {
  child_spec spec;
  spec.name = "gateway";
  spec.kind = actor_kind::worker;
  spec.restart = restart_type::permanent;
  spec.start = [ctx](caf::actor_system& system, const std::string&) {
    return system.spawn([ctx](caf::event_based_actor* self) -> caf::behavior {
      return {
          [self, ctx](http_call& call) {
            ask(self, ctx->registry, call.path, std::move(call.msg), call.timeout,
                [done = std::move(call.done)](envelope reply) { (*done)(std::move(reply)); });
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
  caf::anon_send(route->current, http_call{std::move(call.path), std::move(call.msg),
                                           call.timeout,
                                           std::make_shared<once_reply>(std::move(done))});
}

expected<bool> kill_actor(const node_context& ctx, const std::string& path) {
  auto route = ctx.registry.find(path);
  if (!route) {
    return make_error(errc::unknown_actor, "no actor at '" + path + "'");
  }
  if (!route->current) {
    return make_error(errc::conflict, "actor '" + path + "' is " +
                                          std::string(to_string(route->state)) +
                                          ", not running");
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
