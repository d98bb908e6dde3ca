#include "runtime/actor/ask.hpp"

#include <caf/all.hpp>

#include "runtime/actor/atoms.hpp"
#include "runtime/actor/error_text.hpp"
#include "runtime/protocol/codec.hpp"

namespace troupe {

namespace {

envelope error_reply(caf::event_based_actor* self, const caf::error& err, std::string_view path,
                     std::chrono::milliseconds timeout) {
  if (err == caf::sec::request_timeout) {
    return make_error_envelope(make_error(errc::timeout, "no reply from '" + std::string(path) +
                                                             "' within " +
                                                             std::to_string(timeout.count()) +
                                                             " ms"));
  }
  if (err == caf::sec::request_receiver_down) {
    return make_error_envelope(
        make_error(errc::unavailable, "actor '" + std::string(path) + "' is down"));
  }
  return make_error_envelope(make_error(errc::internal, "request to '" + std::string(path) +
                                                            "' failed: " +
                                                            error_text(self->system(), err)));
}

void ask_supervisor(caf::event_based_actor* self, const actor_route& route, std::string path,
                    envelope msg, std::chrono::milliseconds timeout, reply_handler on_reply) {
  if (!route.supervisor) {
    on_reply(make_error_envelope(make_error(errc::unavailable,
                                            "actor '" + path + "' is " +
                                                std::string(to_string(route.state)))));
    return;
  }
  self->request(route.supervisor, timeout, route_atom::value, route.name, std::move(msg))
      .then([on_reply](envelope& reply) { on_reply(std::move(reply)); },
            [self, on_reply, path, timeout](caf::error& err) {
              on_reply(error_reply(self, err, path, timeout));
            });
}

}  // namespace

void ask(caf::event_based_actor* self, const actor_registry& registry, std::string_view path,
         envelope msg, std::chrono::milliseconds timeout, reply_handler on_reply) {
  auto route = registry.find(path);
  if (!route) {
    on_reply(make_error_envelope(
        make_error(errc::unknown_actor, "no actor at '" + std::string(path) + "'")));
    return;
  }
  if (!route->current) {
    ask_supervisor(self, *route, std::string(path), std::move(msg), timeout, std::move(on_reply));
    return;
  }
  // Kept for one retry: a receiver that went down before reading the request
  // never saw it, so sending it to the next incarnation is still at-most-once.
  auto retry = msg;
  self->request(route->current, timeout, std::move(msg))
      .then([on_reply](envelope& reply) { on_reply(std::move(reply)); },
            [self, route = *route, path = std::string(path), retry = std::move(retry), timeout,
             on_reply](caf::error& err) mutable {
              if (err == caf::sec::request_receiver_down) {
                ask_supervisor(self, route, path, std::move(retry), timeout, std::move(on_reply));
                return;
              }
              on_reply(error_reply(self, err, path, timeout));
            });
}

}  // namespace troupe
