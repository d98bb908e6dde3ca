#pragma once

// A real CAF actor system and node context for tests, plus small helpers to
// call actors by path and to wait on conditions with a deadline.

#include <atomic>
#include <chrono>
#include <functional>
#include <future>
#include <map>
#include <memory>
#include <string>
#include <thread>

#include <caf/all.hpp>

#include "runtime/actor/ask.hpp"
#include "runtime/actor/atoms.hpp"
#include "runtime/actor/envelope_message.hpp"
#include "runtime/actor/error_text.hpp"
#include "runtime/actor/serve.hpp"
#include "runtime/node/node_context.hpp"
#include "runtime/protocol/codec.hpp"
#include "runtime/supervisor/supervisor.hpp"
#include "tests/support/wait.hpp"

namespace troupe::test {

inline caf::actor_system_config& test_system_config(caf::actor_system_config& cfg) {
  cfg.set("scheduler.max-threads", size_t{2});
  return cfg;
}

/// The actor behind actor_harness::call: one request, then it quits.
struct caller_state {
  asker requests;
};
using caller_actor = caf::stateful_actor<caller_state>;

/// An actor system, a node context and a root supervisor that is stopped
/// (and waited for) when the harness goes away.
class actor_harness {
 public:
  explicit actor_harness(node_config config = {})
      : system_(test_system_config(cfg_)),
        ctx_(std::make_shared<node_context>(std::move(config))) {}

  ~actor_harness() {
    if (root_) {
      stop_root();
    }
    ctx_->registry.remove("");
  }

  caf::actor_system& system() { return system_; }
  const std::shared_ptr<node_context>& ctx() { return ctx_; }
  actor_registry& registry() { return ctx_->registry; }

  caf::actor start_root(supervisor_spec spec) {
    root_ = spawn_supervisor(system_, ctx_, "", std::move(spec));
    return root_;
  }

  /// Stops the root supervisor and waits for it; false if it did not stop.
  bool stop_root() {
    caf::scoped_actor self{system_};
    self->monitor(root_);
    self->send(root_, shutdown_atom::value);
    bool down = false;
    self->receive([&](caf::down_msg&) { down = true; },
                  caf::after(std::chrono::seconds(10)) >> [] {});
    root_ = nullptr;
    return down;
  }

  /// Sends `msg` to `path` the way actors do (ask) and waits for the reply.
  envelope call(const std::string& path, envelope msg,
                std::chrono::milliseconds timeout = std::chrono::milliseconds(3000)) {
    auto promise = std::make_shared<std::promise<envelope>>();
    auto reply = promise->get_future();
    auto ctx = ctx_;
    system_.spawn([ctx, path, msg, timeout, promise](caller_actor* self) {
      self->state.requests = asker{ctx->registry};
      self->state.requests.ask(self, path, msg, timeout, [self, promise](envelope r) {
        promise->set_value(std::move(r));
        self->quit();
      });
    });
    return reply.get();
  }

  /// Ends the running incarnation at `path` with an abnormal reason.
  void crash(const std::string& path) {
    auto route = registry().find(path);
    REQUIRE(route.has_value());
    REQUIRE(route->current);
    caf::anon_send(
        route->current,
        caf::exit_msg{{}, caf::make_error(caf::sec::runtime_error, std::string("test crash"))});
  }

  [[nodiscard]] actor_state state_of(const std::string& path) {
    auto info = registry().info(path);
    return info ? info->state : actor_state::stopped;
  }
  [[nodiscard]] uint32_t restarts_of(const std::string& path) {
    auto info = registry().info(path);
    return info ? info->restarts : 0;
  }

 private:
  caf::actor_system_config cfg_;
  caf::actor_system system_;
  std::shared_ptr<node_context> ctx_;
  caf::actor root_;
};

}  // namespace troupe::test
