#include "runtime/net/strand_actor.hpp"

#include <boost/asio/post.hpp>
#include <caf/actor_cast.hpp>
#include <caf/actor_companion.hpp>
#include <caf/actor_system.hpp>
#include <caf/detail/sync_request_bouncer.hpp>
#include <caf/exit_reason.hpp>
#include <caf/mailbox_element.hpp>
#include <caf/scoped_execution_unit.hpp>

namespace troupe {

namespace net = boost::asio;

namespace {

/// A request to an actor that has ended gets an error, as CAF answers one
/// to any ended actor, instead of no answer at all.
void bounce_requests(caf::mailbox_element_ptr m) {
  if (m != nullptr && m->mid.is_request()) {
    caf::detail::sync_request_bouncer{caf::error{}}(*m);
  }
}

/// A companion whose enqueue handler stays when it ends (until its owner
/// lets go). CAF's own drops it right away, under an exclusive spin lock
/// that every sender holds (shared) while its handler posts: the turn that
/// ended the actor, run just after a sender woke its thread, could spin
/// until that sender, preempted on the same core, ran again (an eighth of
/// the HTTP thread's time in bench/proxy_overhead). Here the handler stays;
/// the turn it posts sees `ended` and answers a request with an error.
class strand_companion final : public caf::actor_companion {
 public:
  using caf::actor_companion::actor_companion;
  void on_exit() override {
    ended = true;
    if (on_end) {
      on_end();
    }
  }
  /// Touched only on the executor's thread.
  bool ended = false;
  std::function<void()> on_end;
};

}  // namespace

/// What the posted messages reach: the actor and the execution unit its
/// turns run in (sends from a turn go to CAF's scheduler as from any other
/// thread outside it). Held by the owner and, for the length of a turn, by
/// the turn: it ends the actor when the last of them lets go, never during
/// a turn.
struct strand_actor::core {
  explicit core(caf::actor_system& system) : unit(&system) {}
  core(const core&) = delete;
  core& operator=(const core&) = delete;

  ~core() {
    auto* s = self();
    // The handler goes (it holds the executor, which must not outlive its
    // io_context). This takes the exclusive lock that senders hold while
    // they post: once per actor, when its owner lets go, not per turn.
    s->on_enqueue(bounce_requests);
    if (!s->ended) {
      // Not again for an actor that ended itself: CAF's cleanup would wake
      // its clock thread a second time (to cancel timeouts it does not have).
      s->quit(caf::exit_reason::user_shutdown);
      s->cleanup(caf::make_error(caf::exit_reason::user_shutdown), &unit);
    }
  }

  [[nodiscard]] strand_companion* self() const {
    return static_cast<strand_companion*>(caf::actor_cast<caf::abstract_actor*>(actor));
  }

  caf::strong_actor_ptr actor;
  caf::scoped_execution_unit unit;
};

strand_actor::strand_actor(caf::actor_system& system, net::any_io_executor executor)
    : core_(std::make_shared<core>(system)) {
  // Hidden: the system does not wait for it at shutdown; its owner ends it.
  core_->actor =
      caf::actor_cast<caf::strong_actor_ptr>(system.spawn<strand_companion, caf::hidden>());
  auto* s = core_->self();
  s->context(&core_->unit);
  s->on_enqueue([weak = std::weak_ptr<core>(core_),
                 executor = std::move(executor)](caf::mailbox_element_ptr m) {
    net::post(executor, [weak, m = std::move(m)]() mutable {
      auto c = weak.lock();
      if (c && !c->self()->ended) {
        c->self()->activate(&c->unit, *m);
      } else {
        bounce_requests(std::move(m));  // it ended, or its owner let go
      }
    });
  });
}

strand_actor::~strand_actor() = default;

caf::actor_companion* strand_actor::self() const {
  return core_->self();
}

bool strand_actor::ended() const {
  return core_->self()->ended;
}

void strand_actor::on_end(std::function<void()> hook) {
  core_->self()->on_end = std::move(hook);
}

caf::actor strand_actor::handle() const {
  return caf::actor_cast<caf::actor>(core_->actor);
}

void strand_actor::request(const caf::actor& dest, caf::message request, caf::behavior on_reply) {
  auto* s = core_->self();
  const auto id = s->new_request_id(caf::message_priority::normal);
  s->add_multiplexed_response_handler(id.response_id(), std::move(on_reply));
  dest->enqueue(caf::make_mailbox_element(s->ctrl(), id, {}, std::move(request)), s->context());
}

}  // namespace troupe
