#include "runtime/actor/ask.hpp"

#include <caf/all.hpp>

#include "runtime/actor/atoms.hpp"
#include "runtime/actor/envelope_message.hpp"
#include "runtime/actor/error_text.hpp"
#include "runtime/protocol/codec.hpp"

namespace troupe {

namespace {

envelope error_reply(caf::event_based_actor* self, const caf::error& err, std::string_view path,
                     std::chrono::milliseconds timeout) {
  if (err == caf::sec::request_timeout) {
    return make_error_envelope(
        make_error(errc::timeout, "no reply from '" + std::string(path) + "' within " +
                                      std::to_string(timeout.count()) + " ms"));
  }
  if (err == caf::sec::request_receiver_down) {
    return make_error_envelope(
        make_error(errc::unavailable, "actor '" + std::string(path) + "' is down"));
  }
  return make_error_envelope(make_error(
      errc::internal,
      "request to '" + std::string(path) + "' failed: " + error_text(self->system(), err)));
}

void ask_supervisor(caf::event_based_actor* self, const actor_route& route, std::string path,
                    envelope msg, std::chrono::milliseconds timeout, reply_handler on_reply) {
  if (!route.supervisor) {
    on_reply(make_error_envelope(make_error(
        errc::unavailable, "actor '" + path + "' is " + std::string(to_string(route.state)))));
    return;
  }
  self->request(route.supervisor, timeout, route_atom::value, route.name, std::move(msg.type),
                std::move(msg.body), msg.correlation_id, std::move(msg.reply_to))
      .then(
          [on_reply](std::string& type, std::string& body, uint64_t correlation_id,
                     std::string& reply_to) {
            on_reply(from_fields(type, body, correlation_id, reply_to));
          },
          [self, on_reply, path, timeout](caf::error& err) {
            on_reply(error_reply(self, err, path, timeout));
          });
}

}  // namespace

void ask(caf::event_based_actor* self, const actor_registry& registry, std::string_view path,
         envelope msg, std::chrono::milliseconds timeout, reply_handler on_reply) {
  auto current = registry.current(path);
  if (!current) {
    auto route = registry.find(path);
    if (!route) {
      on_reply(make_error_envelope(
          make_error(errc::unknown_actor, "no actor at '" + std::string(path) + "'")));
      return;
    }
    ask_supervisor(self, *route, std::string(path), std::move(msg), timeout, std::move(on_reply));
    return;
  }
  // One allocation holds what both outcomes need. The request is kept for one
  // retry: a receiver that went down before reading it never saw it, so
  // sending it to the next incarnation is still at-most-once.
  struct pending {
    reply_handler on_reply;
    envelope retry;
    std::string path;
  };
  auto state = std::make_shared<pending>(pending{std::move(on_reply), msg, std::string(path)});
  self->request(current, timeout, std::move(msg.type), std::move(msg.body), msg.correlation_id,
                std::move(msg.reply_to))
      .then(
          [state](std::string& type, std::string& body, uint64_t correlation_id,
                  std::string& reply_to) {
            state->on_reply(from_fields(type, body, correlation_id, reply_to));
          },
          [self, &registry, state, timeout](caf::error& err) {
            if (err == caf::sec::request_receiver_down) {
              if (auto route = registry.find(state->path)) {
                ask_supervisor(self, *route, state->path, std::move(state->retry), timeout,
                               std::move(state->on_reply));
                return;
              }
            }
            state->on_reply(error_reply(self, err, state->path, timeout));
          });
}

}  // namespace troupe
