#include "actors/gateway/exchange_actor.hpp"

#include <caf/actor_companion.hpp>
#include <caf/all.hpp>

#include "runtime/node/node_context.hpp"
#include "runtime/protocol/codec.hpp"

namespace troupe {

/// The current exchange, on the connection's strand.
struct exchange_actor::state {
  std::shared_ptr<exchange_sink> sink;
  caf::actor family;
  bool anthropic = true;
  uint64_t id = 0;
  /// Sent and not yet answered in full.
  bool open = false;

  /// Should the actor end with an exchange open (an exception in a turn),
  /// the connection still answers it.
  ~state() {
    if (open) {
      sink->abandon(id);
    }
  }

  /// The answer when the family cannot take the request: in Anthropic's
  /// shape on the LLM routes (their clients parse it; 529 tells them to
  /// retry).
  void refuse(errc code, const std::string& why) {
    open = false;
    auto reply = anthropic ? anthropic_error_reply(code, why) : error_reply(code, why);
    sink->reply(id, reply.status, {{"content-type", std::move(reply.content_type)}},
                std::move(reply.body));
  }

  /// One message from the family about the current exchange.
  void on_answer(const std::string& type, const std::string& body) {
    if (type == http_msg::chunk_type) {
      if (auto m = decode<http_msg::chunk>(body, decode_limits{.body_bytes_max = 64u << 20})) {
        sink->stream(id, std::move(m->bytes));
      }
    } else if (type == http_msg::head_type) {
      if (auto m = decode<http_msg::head>(body)) {
        sink->begin_stream(id, m->status, http_msg::to_headers(std::move(m->headers)));
      }
    } else if (type == http_msg::end_type) {
      open = false;
      sink->end_stream(id);
    } else if (type == http_msg::reply_type) {
      open = false;
      if (auto m = decode<http_msg::reply>(body, decode_limits{.body_bytes_max = 1u << 30})) {
        sink->reply(id, m->status, http_msg::to_headers(std::move(m->headers)),
                    std::move(m->bytes));
      } else {
        sink->abandon(id);  // answered with a 500
      }
    } else if (type == http_msg::dropped_type) {
      open = false;
      sink->abandon(id);
    }
  }
};

exchange_actor::exchange_actor(caf::actor_system& system, boost::asio::any_io_executor executor,
                               std::shared_ptr<exchange_sink> sink)
    : st_(std::make_shared<state>()), actor_(system, std::move(executor)) {
  st_->sink = std::move(sink);
  actor_.self()->become(
      [st = st_](const std::string& type, const std::string& body, uint64_t correlation) {
        // What comes late for an exchange the family let go of is not the
        // current one's.
        if (correlation == st->id && st->open) {
          st->on_answer(type, body);
        }
      });
}

exchange_actor::~exchange_actor() = default;

void exchange_actor::start(const node_context& ctx, family_exchange target,
                           exchange_request request, uint64_t id) {
  auto& st = *st_;
  st.id = id;
  st.open = true;
  st.anthropic = target.anthropic;
  st.family = ctx.registry.current(target.path);
  if (!st.family) {
    auto route = ctx.registry.find(target.path);
    if (!route && !target.missing.empty()) {
      return st.refuse(errc::not_found, target.missing);
    }
    return st.refuse(errc::unavailable,
                     "'" + target.path + "' is " +
                         (route ? std::string(to_string(route->state)) : "not started") +
                         "; retry in a moment");
  }
  // A request: if the family's actor dies with it unread, this actor hears
  // so (and answers) instead of waiting for ever. Once taken, the family
  // answers, or lets go of it, which says `http.dropped`.
  actor_.request(st.family,
                 caf::make_message(std::string(http_msg::request_type),
                                   encode(http_msg::to_message(std::move(request))), id),
                 caf::behavior{[](std::string&, std::string&, uint64_t) {},
                               [st = st_, id](caf::error&) {
                                 if (st->id == id && st->open) {
                                   st->refuse(errc::unavailable,
                                              "the actor answering went down; retry");
                                 }
                               }});
}

void exchange_actor::client_left() {
  if (st_->open && st_->family) {
    actor_.self()->send(st_->family, std::string(http_msg::gone_type), encode(empty_body{}),
                        st_->id);
  }
}

bool exchange_actor::usable() const {
  return !actor_.ended();
}

caf::actor exchange_actor::handle() const {
  return actor_.handle();
}

}  // namespace troupe
