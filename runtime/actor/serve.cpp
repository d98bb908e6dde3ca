#include "runtime/actor/serve.hpp"

#include <caf/all.hpp>

#include "runtime/actor/envelope_message.hpp"

namespace troupe {

namespace {

/// Dispatches `in`; an exception is turned into an `internal` reply, and
/// unless the decider says resume, the actor ends so it is restarted.
envelope answer(caf::event_based_actor* self, const handler_table& table, const decider& decide,
                const envelope_view& in) {
  try {
    return table.dispatch(in);
  } catch (const std::exception& e) {
    auto why = "handler for '" + std::string(in.type) + "' threw: " + e.what();
    if (decide(failure{failure_kind::exception, why}) == directive::resume) {
      return make_error_envelope(make_error(errc::internal, why), in.correlation_id);
    }
    // The caller still gets an answer, so it does not retry a message that
    // crashes every incarnation it reaches.
    self->quit(caf::make_error(caf::sec::runtime_error, why));
    return make_error_envelope(make_error(errc::internal, why + "; the actor restarts"),
                               in.correlation_id);
  }
}

/// Whether `type` names an answer: an error, or a reply ("x.y.reply").
bool is_answer(std::string_view type) {
  return type == error_type || type.ends_with(reply_suffix);
}

/// Sends `reply` to whoever sent the message being handled, as CAF's response
/// promise would (a request's response id, or a plain message for a plain
/// send), but in one allocation: the values go straight into the mailbox
/// element, with no caf::message and no promise in between.
void reply_to_current(caf::event_based_actor* self, envelope reply) {
  auto* current = self->current_mailbox_element();
  // A response is never answered (CAF's promise refuses to as well).
  if (current == nullptr || current->mid.is_answered() || current->mid.is_response()) {
    return;
  }
  if (!current->stages.empty()) {
    // Forwarded along a chain of stages: the promise knows the next one.
    auto promise = self->make_response_promise();
    deliver(promise, std::move(reply));
    return;
  }
  const auto id = current->mid.response_id();
  current->mid.mark_as_answered();
  auto to = std::move(current->sender);
  if (!to) {
    return;  // an anonymous send: nobody to answer
  }
  to->enqueue(caf::make_mailbox_element(self->ctrl(), id, {}, std::move(reply.type),
                                        std::move(reply.body), reply.correlation_id),
              self->context());
}

}  // namespace

caf::behavior serve(caf::event_based_actor* self, std::shared_ptr<const handler_table> table,
                    decider decide) {
  return {
      // Read in place: the message may be shared (an asker keeps the request
      // for a retry), and a handler taking mutable references would copy it.
      [self, table = std::move(table), decide = std::move(decide)](
          const std::string& type, const std::string& body, uint64_t correlation_id) {
        const envelope_view in{type, body, correlation_id};
        auto reply = answer(self, *table, decide, in);
        // An answer that arrives by plain send ("x.reply" or "error") is
        // never answered with an error (unknown type, bad body, a failing
        // handler): two actors doing that to each other would bounce errors
        // forever. A request is always answered, or its sender would wait
        // for the timeout.
        if (is_answer(in.type) && reply.is_error() &&
            !self->current_mailbox_element()->mid.is_request()) {
          return;
        }
        reply_to_current(self, std::move(reply));
      },
  };
}

}  // namespace troupe
