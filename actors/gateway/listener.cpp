#include "actors/gateway/listener.hpp"

#include <caf/all.hpp>

#include <spdlog/logger.h>

#include "actors/gateway/bridge.hpp"
#include "actors/gateway/messages.hpp"
#include "actors/gateway/server.hpp"
#include "runtime/actor/atoms.hpp"
#include "runtime/actor/envelope_message.hpp"
#include "runtime/log/log.hpp"
#include "runtime/node/node_context.hpp"
#include "runtime/protocol/codec.hpp"

namespace troupe {

namespace {

using drain_tick_atom = caf::atom_constant<caf::atom("draintick")>;

/// How often a drain looks at the requests in flight.
constexpr std::chrono::milliseconds drain_poll{5};

struct listener_state {
  /// Destroyed with the state, as the actor exits: that closes the
  /// listening socket and every connection of this incarnation.
  std::unique_ptr<gateway_server> server;
  /// gateway.drain requests waiting for the requests in flight.
  std::vector<caf::response_promise> draining;
  std::chrono::steady_clock::time_point drain_deadline;
  bool ticking = false;
  static inline const char* name = "troupe.gateway.http";
};

using listener_actor = caf::stateful_actor<listener_state>;

void answer_drains(listener_actor* self, bool drained) {
  auto& st = self->state;
  const auto left = st.server ? st.server->in_flight() : 0;
  for (auto& promise : st.draining) {
    deliver(promise, make_envelope(gateway::drain_reply_type, gateway::drain_reply{drained, left}));
  }
  st.draining.clear();
}

void drain_tick(listener_actor* self) {
  auto& st = self->state;
  st.ticking = false;
  if (st.draining.empty()) {
    return;
  }
  if (st.server->in_flight() == 0) {
    return answer_drains(self, true);
  }
  if (std::chrono::steady_clock::now() >= st.drain_deadline) {
    return answer_drains(self, false);
  }
  st.ticking = true;
  self->delayed_send(self, drain_poll, drain_tick_atom::value);
}

/// Spawns an incarnation that owns `server`.
caf::actor spawn_listener(caf::actor_system& system, std::unique_ptr<gateway_server> server);

caf::behavior listener(listener_actor* self, gateway_server* taken) {
  auto& st = self->state;
  st.server.reset(taken);
  st.server->serve(self->system());
  return {
      [self](std::string& type, std::string& body, uint64_t) {
        auto promise = self->make_response_promise();
        if (type != gateway::drain_type) {
          deliver(promise,
                  make_error_envelope(make_error(
                      errc::unknown_type, "gateway/http takes gateway.drain, not '" + type + "'")));
          return;
        }
        auto req = decode<gateway::drain_request>(body);
        if (!req) {
          deliver(promise, make_error_envelope(req.err()));
          return;
        }
        auto& s = self->state;
        s.server->stop_accepting();
        s.draining.push_back(std::move(promise));
        s.drain_deadline =
            std::chrono::steady_clock::now() + std::chrono::milliseconds(req->timeout_ms);
        if (!s.ticking) {
          drain_tick(self);
        }
      },
      [self](drain_tick_atom) { drain_tick(self); },
  };
}

caf::actor spawn_listener(caf::actor_system& system, std::unique_ptr<gateway_server> server) {
  // Handed over as a raw pointer (spawn's arguments are copied); the actor
  // owns it from its first step.
  return system.spawn(listener, server.release());
}

child_spec http_child(std::shared_ptr<node_context> ctx, std::string token, gateway_io io,
                      std::unique_ptr<gateway_server> bound) {
  // The server bound at boot, taken by the first incarnation.
  auto first = std::make_shared<std::unique_ptr<gateway_server>>(std::move(bound));
  child_spec spec;
  spec.name = "http";
  spec.kind = actor_kind::worker;
  spec.restart = restart_type::permanent;
  spec.start = [ctx, token, io, first](caf::actor_system& system, const std::string&) {
    std::unique_ptr<gateway_server> server = std::move(*first);
    if (server) {
      return spawn_listener(system, std::move(server));
    }
    auto bound = gateway_server::start(ctx, token, ctx->listen_address, io);
    if (!bound) {
      // The supervisor sees a failure, and tries again after its backoff.
      logger("gateway")->error("{}", bound.err().message);
      return system.spawn([why = bound.err().message](caf::event_based_actor* self) {
        self->quit(caf::make_error(caf::sec::runtime_error, why));
      });
    }
    logger("gateway")->info("listening again on http://{}", (*bound)->address());
    return spawn_listener(system, std::move(*bound));
  };
  return spec;
}

}  // namespace

child_spec gateway_family(std::shared_ptr<node_context> ctx, std::string token, gateway_io io,
                          std::unique_ptr<gateway_server> bound) {
  supervisor_spec spec;
  spec.strat = strategy::one_for_one;
  spec.policy = make_restart_policy(ctx->config.supervisor);
  spec.children.push_back(calls_child(ctx));
  spec.children.push_back(http_child(ctx, std::move(token), io, std::move(bound)));
  return supervisor_child("gateway", std::move(ctx), std::move(spec));
}

bool drain_gateway(caf::actor_system& system, const node_context& ctx,
                   std::chrono::milliseconds timeout) {
  auto http = ctx.registry.current(gateway::http_path);
  if (!http) {
    return true;  // not listening: nothing in flight to wait for
  }
  auto msg = make_envelope(gateway::drain_type,
                           gateway::drain_request{static_cast<uint64_t>(timeout.count())});
  caf::scoped_actor self{system};
  bool drained = false;
  self->request(http, timeout + std::chrono::seconds(1), std::move(msg.type), std::move(msg.body),
                uint64_t{0})
      .receive(
          [&](std::string& type, std::string& body, uint64_t) {
            if (type == gateway::drain_reply_type) {
              if (auto reply = decode<gateway::drain_reply>(body)) {
                drained = reply->drained;
              }
            }
          },
          [&](caf::error&) {});
  return drained;
}

}  // namespace troupe
