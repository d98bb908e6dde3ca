#include "actors/gateway/exchange_actor.hpp"

#include <caf/all.hpp>

#include "actors/gateway/routes.hpp"
#include "runtime/node/node_context.hpp"
#include "runtime/protocol/codec.hpp"

namespace troupe {

namespace {

struct exchange_state {
  std::shared_ptr<exchange_sink> sink;
  caf::actor family;
  bool anthropic = true;
  static inline const char* name = "troupe.gateway.exchange";
};

using exchange_actor = caf::stateful_actor<exchange_state>;

/// The answer when the family cannot take the request: in Anthropic's shape
/// on the LLM routes (their clients parse it; 529 tells them to retry).
void refuse(exchange_actor* self, errc code, const std::string& why) {
  auto reply = self->state.anthropic ? anthropic_error_reply(code, why) : error_reply(code, why);
  self->state.sink->reply(reply.status, {{"content-type", std::move(reply.content_type)}},
                          std::move(reply.body));
  self->quit();
}

}  // namespace

caf::actor spawn_exchange(caf::actor_system& system, std::shared_ptr<node_context> ctx,
                          family_exchange target, exchange_request request,
                          std::shared_ptr<exchange_sink> sink) {
  return system.spawn([ctx = std::move(ctx), target = std::move(target),
                       request = std::move(request),
                       sink = std::move(sink)](exchange_actor* self) mutable -> caf::behavior {
    auto& st = self->state;
    st.sink = std::move(sink);
    st.anthropic = target.anthropic;
    st.family = ctx->registry.current(target.path);
    if (!st.family) {
      auto route = ctx->registry.find(target.path);
      if (!route && !target.missing.empty()) {
        refuse(self, errc::not_found, target.missing);
        return {};
      }
      refuse(self, errc::unavailable,
             "'" + target.path + "' is " +
                 (route ? std::string(to_string(route->state)) : "not started") +
                 "; retry in a moment");
      return {};
    }
    // A request: if the family's actor dies with it unread, this actor
    // hears so (and answers) instead of waiting for ever. Once taken, the
    // family answers, or lets go of it, which says `http.dropped`.
    self->request(st.family, caf::infinite, std::string(http_msg::request_type),
                  encode(http_msg::to_message(std::move(request))), uint64_t{0})
        .then([](std::string&, std::string&, uint64_t) {},
              [self](caf::error&) {
                refuse(self, errc::unavailable, "the actor answering went down; retry");
              });
    return {
        [self](const std::string& type, const std::string& body, uint64_t) {
          auto& s = self->state;
          if (type == http_msg::head_type) {
            if (auto m = decode<http_msg::head>(body)) {
              s.sink->begin_stream(m->status, http_msg::to_headers(std::move(m->headers)));
            }
          } else if (type == http_msg::chunk_type) {
            if (auto m =
                    decode<http_msg::chunk>(body, decode_limits{.body_bytes_max = 64u << 20})) {
              s.sink->stream(std::move(m->bytes));
            }
          } else if (type == http_msg::end_type) {
            s.sink->end_stream();
            self->quit();
          } else if (type == http_msg::reply_type) {
            if (auto m = decode<http_msg::reply>(body, decode_limits{.body_bytes_max = 1u << 30})) {
              s.sink->reply(m->status, http_msg::to_headers(std::move(m->headers)),
                            std::move(m->bytes));
            }
            self->quit();
          } else if (type == http_msg::dropped_type) {
            self->quit();  // the sink answers 500 if nothing was
          } else if (type == http_msg::gone_type) {
            // From the connection: the client left; the family stops working for it.
            self->send(s.family, std::string(http_msg::gone_type), body, uint64_t{0});
          }
        },
    };
  });
}

}  // namespace troupe
