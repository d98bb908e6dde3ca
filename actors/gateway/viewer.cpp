#include "actors/gateway/viewer.hpp"

#include <caf/all.hpp>

#include "runtime/actor/error_text.hpp"
#include "runtime/net/strand_actor.hpp"
#include "runtime/node/node_context.hpp"
#include "runtime/node/terminal.hpp"
#include "runtime/protocol/codec.hpp"

namespace troupe {

namespace {

/// How long an attach may wait, a restart's backoff included.
constexpr std::chrono::seconds attach_timeout{30};

struct viewer_state {
  std::shared_ptr<node_context> ctx;
  std::string id;
  bool readonly = false;
  std::shared_ptr<viewer_socket> socket;
  /// The incarnation attached to (null between two).
  caf::actor session;
  /// Absolute offset of the next output byte: where a re-attach resumes.
  uint64_t position = 0;
  bool attached_once = false;
  static inline const char* name = "troupe.gateway.viewer";
};

using viewer_actor = caf::stateful_actor<viewer_state, strand_base>;

using retry_atom = caf::atom_constant<caf::atom("vwretry")>;

/// Most attempts for one attach that meets a dead incarnation.
constexpr int attach_tries_max = 5;

void attached(viewer_actor* self, expected<term::attach_reply> body, caf::actor session);

void attach(viewer_actor* self, int tries = 0) {
  auto& st = self->state;
  auto manager = st.ctx->registry.current("sessions/manager");
  if (!manager) {
    return attached(self, make_error(errc::restarting, "the sessions manager is restarting"), {});
  }
  const term::attach_request req{st.id, st.readonly, st.attached_once, st.position};
  self->request(manager, attach_timeout, std::string(term::attach_type), encode(req), uint64_t{0})
      .then(
          [self](std::string& type, std::string& body, uint64_t) {
            if (type == error_type) {
              return attached(self, read_error(envelope{type, body, 0}), {});
            }
            // Forwarded by the manager: the reply comes from the session.
            attached(self, decode<term::attach_reply>(body),
                     caf::actor_cast<caf::actor>(self->current_sender()));
          },
          [self, tries](caf::error& err) {
            // The incarnation it was forwarded to died with it unread.
            if (err == caf::sec::request_receiver_down && tries + 1 < attach_tries_max) {
              // Once its supervisor has seen it go, the manager holds the
              // next try until the restart.
              self->delayed_send(self, std::chrono::milliseconds(20 << tries), retry_atom::value,
                                 int32_t{tries + 1});
              return;
            }
            attached(
                self,
                make_error(errc::unavailable, "attaching to session '" + self->state.id +
                                                  "' failed: " + error_text(self->system(), err)),
                {});
          });
}

void attached(viewer_actor* self, expected<term::attach_reply> body, caf::actor session) {
  auto& s = self->state;
  if (body && !session) {
    body = make_error(errc::internal, "the attach reply has no sender");
  }
  if (!body) {
    if (s.attached_once) {
      // Gone for good, or not reachable again: say which.
      s.socket->close(body.err().code == errc::not_found
                          ? "the session ended"
                          : "lost the session: " + body.err().message);
    } else {
      s.socket->refused(body.err());
    }
    self->quit();
    return;
  }
  s.position = body->from;
  s.session = session;
  s.attached_once = true;
  self->monitor(session);
  s.socket->attached(session, body->cols, body->rows);
}

}  // namespace

caf::actor spawn_viewer(caf::actor_system& system, boost::asio::any_io_executor executor,
                        std::shared_ptr<node_context> ctx, std::string id, bool readonly,
                        std::shared_ptr<viewer_socket> socket) {
  return spawn_on_strand(system, std::move(executor),
                         [ctx = std::move(ctx), id = std::move(id), readonly,
                          socket = std::move(socket)](viewer_actor* self) -> caf::behavior {
                           auto& st = self->state;
                           st.ctx = ctx;
                           st.id = id;
                           st.readonly = readonly;
                           st.socket = socket;
                           self->set_down_handler([self](caf::down_msg& down) {
                             auto& s = self->state;
                             if (down.source != s.session.address()) {
                               return;
                             }
                             // Its incarnation went down: the next one (after the restart) picks
                             // up where this one left off; an ended session refuses, which closes.
                             s.session = nullptr;
                             attach(self);
                           });
                           attach(self);
                           return {
                               [self](retry_atom, int32_t tries) { attach(self, tries); },
                               [self](const std::string& type, const std::string& body, uint64_t) {
                                 auto& s = self->state;
                                 if (type == term::output_type) {
                                   if (auto m = decode<term::bytes_msg>(
                                           body, decode_limits{.body_bytes_max = 2u << 20})) {
                                     s.position += m->bytes.size();
                                     s.socket->output(std::move(m->bytes));
                                   }
                                 } else if (type == term::control_type) {
                                   if (auto m = decode<term::control_msg>(body)) {
                                     s.socket->control(std::move(m->json));
                                   }
                                 } else if (type == term::close_type) {
                                   if (auto m = decode<term::close_msg>(body)) {
                                     s.socket->close(std::move(m->why));
                                   }
                                   self->quit();
                                 }
                               },
                           };
                         });
}

}  // namespace troupe
