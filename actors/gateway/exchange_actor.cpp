#include "actors/gateway/exchange_actor.hpp"

#include <cassert>

#include <caf/actor_companion.hpp>
#include <caf/all.hpp>

#include "runtime/node/node_context.hpp"
#include "runtime/protocol/codec.hpp"

namespace troupe {

/// The current exchange, on the connection's strand.
struct exchange_actor::state {
  caf::actor_companion* self = nullptr;
  std::shared_ptr<exchange_sink> sink;
  caf::actor family;
  bool anthropic = true;
  uint64_t id = 0;
  /// Sent and not yet answered in full. While it is, the family is
  /// monitored: one that ends without answering (an agent deleted in the
  /// middle of a turn) leaves it to the connection to answer.
  bool open = false;
  /// Its stream has begun (a head came).
  bool streaming = false;

  /// The exchange is answered, or will not be: the family is no longer
  /// watched for it.
  void close() {
    open = false;
    if (family) {
      self->demonitor(family);
    }
  }
  /// Nothing more comes for the exchange: the connection answers it.
  void abandon() {
    close();
    sink->abandon(id);
  }

  /// The answer when the family cannot take the request: in Anthropic's
  /// shape on the LLM routes (their clients parse it; 529 tells them to
  /// retry).
  void refuse(errc code, const std::string& why) {
    close();
    auto reply = anthropic ? anthropic_error_reply(code, why) : error_reply(code, why);
    sink->reply(id, reply.status, {{"content-type", std::move(reply.content_type)}},
                std::move(reply.body));
  }

  /// The family's actor ended (the monitor says so) or was gone before it
  /// read the request (its error response says so), whichever comes first:
  /// a stream begun ends with an error event, anything else is a refusal
  /// the client may retry.
  void family_lost() {
    if (!open) {
      return;
    }
    if (streaming) {
      abandon();
    } else {
      refuse(errc::unavailable, "the actor answering went down; retry");
    }
  }

  /// One message from the family about the current exchange. `body` is
  /// the message's own (it came to this actor alone): a chunk's bytes are
  /// handed to the connection inside it, never copied here.
  void on_answer(const std::string& type, std::string& body) {
    if (type == http_msg::chunk_type) {
      if (auto m = decode<http_msg::chunk_view>(body, decode_limits{.body_bytes_max = 64u << 20})) {
        // chunk_view decodes to a view into the body (http_exchange_test
        // checks it): the bytes stay where they are, named by offset.
        const std::size_t size = m->bytes.size();
        const std::size_t offset =
            size == 0 ? 0 : static_cast<std::size_t>(m->bytes.data() - body.data());
        assert(offset + size <= body.size());
        sink->stream(id, body_slice{std::move(body), offset, size});
      }
    } else if (type == http_msg::head_type) {
      if (auto m = decode<http_msg::head>(body)) {
        streaming = true;
        sink->begin_stream(id, m->status, http_msg::to_headers(std::move(m->headers)));
      }
    } else if (type == http_msg::end_type) {
      close();
      sink->end_stream(id);
    } else if (type == http_msg::reply_type) {
      close();
      if (auto m = decode<http_msg::reply>(body, decode_limits{.body_bytes_max = 1u << 30})) {
        sink->reply(id, m->status, http_msg::to_headers(std::move(m->headers)),
                    std::move(m->bytes));
      } else {
        sink->abandon(id);  // answered with a 500
      }
    } else if (type == http_msg::dropped_type) {
      abandon();
    }
  }
};

exchange_actor::exchange_actor(caf::actor_system& system, boost::asio::any_io_executor executor,
                               std::shared_ptr<exchange_sink> sink)
    : st_(std::make_shared<state>()), actor_(system, std::move(executor)) {
  st_->sink = std::move(sink);
  st_->self = actor_.self();
  // The family ended with the exchange open (it answered nothing, or not
  // all): the connection answers.
  actor_.self()->set_down_handler([st = st_](caf::down_msg& down) {
    if (down.source == st->family.address()) {
      st->family_lost();
    }
  });
  // So does this actor, should it end in a turn (an exception).
  actor_.on_end([st = st_] {
    if (st->open) {
      st->abandon();
    }
  });
  actor_.self()->become(
      [st = st_](const std::string& type, std::string& body, uint64_t correlation) {
        // What comes late for an exchange the family let go of is not the
        // current one's.
        if (correlation == st->id && st->open) {
          st->on_answer(type, body);
        }
      });
}

exchange_actor::~exchange_actor() {
  // The connection lets go with an exchange open (it is closing): the
  // family is no longer watched, and the connection, if it is still
  // there, answers.
  if (st_->open) {
    st_->abandon();
  }
}

void exchange_actor::start(const node_context& ctx, family_exchange target,
                           exchange_request request, uint64_t id) {
  auto& st = *st_;
  if (st.open) {
    st.abandon();  // not expected: one exchange at a time
  }
  st.id = id;
  st.open = true;
  st.streaming = false;
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
  // answers, or lets go of it, which says `http.dropped`, or ends, which
  // the monitor says.
  actor_.self()->monitor(st.family);
  actor_.self()
      ->request(st.family, caf::infinite, std::string(http_msg::request_type),
                encode(http_msg::to_message(std::move(request))), id)
      .then([](std::string&, std::string&, uint64_t) {},
            [st = st_, id](caf::error&) {
              if (st->id == id) {
                st->family_lost();
              }
            });
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
