#pragma once

// A connection's exchange actor: the connection's side of the exchanges it
// hands to a family that answers them itself (the LLM routes), one at a
// time. For each it sends the request to the family's actor as an
// `http.request` message (its correlation id naming the exchange), receives
// the answer as messages (`http.reply`, or `http.head`, `http.chunk`...
// `http.end`) and hands them to the connection; when the client leaves it
// tells the family (`http.gone`). It lives on the connection's strand
// (runtime/net/strand_actor.hpp), for as long as the connection: an
// upstream's chunk reaches the connection as one message, with no scheduler
// thread in between, and an exchange costs no actor of its own. See
// runtime/node/http_exchange.hpp.

#include <cstdint>
#include <memory>

#include <boost/asio/any_io_executor.hpp>
#include <caf/fwd.hpp>

#include "actors/gateway/routes.hpp"
#include "runtime/net/strand_actor.hpp"
#include "runtime/node/http_exchange.hpp"

namespace troupe {

struct node_context;

class exchange_actor {
 public:
  /// An actor on `executor` (the connection's strand; everything below is
  /// called on its thread) whose answers go to `sink`.
  exchange_actor(caf::actor_system& system, boost::asio::any_io_executor executor,
                 std::shared_ptr<exchange_sink> sink);
  ~exchange_actor();
  exchange_actor(const exchange_actor&) = delete;
  exchange_actor& operator=(const exchange_actor&) = delete;

  /// Starts exchange `id` (greater than any before): `request` goes to the
  /// actor at `target.path`. When the family cannot take it the sink gets
  /// the error answer at once.
  void start(const node_context& ctx, family_exchange target, exchange_request request,
             uint64_t id);
  /// The client left: the current exchange's family hears it.
  void client_left();
  /// Whether it can take another exchange (false once it ended on an
  /// exception; the connection then makes a new one).
  [[nodiscard]] bool usable() const;
  [[nodiscard]] caf::actor handle() const;

 private:
  struct state;
  std::shared_ptr<state> st_;
  strand_actor actor_;
};

}  // namespace troupe
