#include "runtime/net/strand_actor.hpp"

#include <vector>

#include <boost/asio/post.hpp>
#include <caf/actor_cast.hpp>
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

}  // namespace

/// What a strand actor's turns need besides the actor: the execution unit
/// they run in (sends from a turn go to CAF's scheduler as from any thread
/// outside it), and the messages its behavior skipped (while it awaits a
/// response), which it gets again after each message it takes, oldest
/// first, as CAF's mailbox would give them.
struct strand_base::turns {
  explicit turns(caf::actor_system& system) : unit(&system) {}
  caf::scoped_execution_unit unit;
  /// Rarely more than empty (a vector allocates nothing until then).
  std::vector<caf::mailbox_element_ptr> skipped;
};

strand_base::strand_base(caf::actor_config& cfg)
    : super(cfg), turns_(std::make_unique<turns>(home_system())) {
  context(&turns_->unit);
}

strand_base::~strand_base() = default;

void strand_base::initialize() {
  super::initialize();
  setf(caf::abstract_actor::is_initialized_flag);
  if (initial_behavior_fac_) {
    auto bhvr = initial_behavior_fac_(this);
    initial_behavior_fac_ = nullptr;
    if (bhvr) {
      become(std::move(bhvr));
    }
  }
}

// The enqueue handler stays when the actor ends itself (CAF's companion
// drops it right away, under an exclusive spin lock that every sender
// holds, shared, while its handler posts: the turn that ended an exchange
// actor, run just after a sender woke its thread, could spin until that
// sender, preempted on the same core, ran again: an eighth of the HTTP
// thread's time in bench/proxy_overhead). The turn a late message posts
// sees `ended_` and answers a request with an error. The handler holds the
// actor weakly: a message on its way keeps nothing alive, and a turn holds
// the actor for its length.
void strand_base::run_on(net::any_io_executor executor, bool initialize) {
  auto weak = caf::actor_cast<caf::weak_actor_ptr>(ctrl());
  on_enqueue([weak, executor](caf::mailbox_element_ptr m) {
    net::post(executor, [weak, m = std::move(m)]() mutable {
      if (auto strong = weak.lock()) {
        static_cast<strand_base*>(caf::actor_cast<caf::abstract_actor*>(strong))
            ->turn(std::move(m));
      } else {
        bounce_requests(std::move(m));
      }
    });
  });
  if (initialize) {
    // After the handler is in place: the first turn may run at once, on
    // another thread, and what it asks for may be answered at once. Held
    // until that turn, as CAF's scheduler holds an actor it has yet to
    // run: one spawned and let go still starts.
    net::post(executor, [self = caf::strong_actor_ptr(ctrl())] {
      static_cast<strand_base*>(caf::actor_cast<caf::abstract_actor*>(self))->start();
    });
  }
}

void strand_base::start() {
  if (!ended_ && !activate(&turns_->unit)) {
    finish();
  }
}

void strand_base::turn(caf::mailbox_element_ptr m) {
  if (ended_) {
    return bounce_requests(std::move(m));
  }
  using result = caf::scheduled_actor::activation_result;
  switch (activate(&turns_->unit, *m)) {
    case result::skipped:
      turns_->skipped.push_back(std::move(m));
      return;
    case result::terminated:
      return finish();
    case result::success:
      return retry_skipped();
    case result::dropped:
      return;
  }
}

void strand_base::retry_skipped() {
  using result = caf::scheduled_actor::activation_result;
  auto& skipped = turns_->skipped;
  for (size_t i = 0; i < skipped.size();) {
    const auto r = activate(&turns_->unit, *skipped[i]);
    if (r == result::skipped) {
      ++i;
      continue;
    }
    skipped.erase(skipped.begin() + static_cast<std::ptrdiff_t>(i));
    if (r == result::terminated) {
      return finish();
    }
    i = 0;  // the behavior may have changed: from the oldest again
  }
}

void strand_base::finish() {
  ended_ = true;
  for (auto& m : turns_->skipped) {
    bounce_requests(std::move(m));
  }
  turns_->skipped.clear();
  if (on_end_) {
    auto hook = std::move(on_end_);
    hook();
  }
}

void strand_base::stop() {
  // The handler goes (it holds the executor, which must not outlive its
  // io_context). This takes the exclusive lock that senders hold while
  // they post: once per actor, not per turn.
  on_enqueue(bounce_requests);
  if (ended_) {
    return;  // CAF's cleanup again would wake its clock thread for nothing
  }
  ended_ = true;
  for (auto& m : turns_->skipped) {
    bounce_requests(std::move(m));
  }
  turns_->skipped.clear();
  quit(caf::exit_reason::user_shutdown);
  cleanup(caf::make_error(caf::exit_reason::user_shutdown), &turns_->unit);
}

strand_actor::strand_actor(caf::actor_system& system, net::any_io_executor executor)
    // Hidden: the system does not wait for it at shutdown; its owner ends it.
    : actor_(caf::actor_cast<caf::strong_actor_ptr>(system.spawn<strand_base, caf::hidden>())) {
  self()->run_on(std::move(executor), false);
}

strand_actor::~strand_actor() {
  self()->stop();
}

strand_base* strand_actor::self() const {
  return static_cast<strand_base*>(caf::actor_cast<caf::abstract_actor*>(actor_));
}

bool strand_actor::ended() const {
  return self()->ended();
}

void strand_actor::on_end(std::function<void()> hook) {
  self()->on_end(std::move(hook));
}

caf::actor strand_actor::handle() const {
  return caf::actor_cast<caf::actor>(actor_);
}

void strand_actor::request(const caf::actor& dest, caf::message request, caf::behavior on_reply) {
  auto* s = self();
  const auto id = s->new_request_id(caf::message_priority::normal);
  s->add_multiplexed_response_handler(id.response_id(), std::move(on_reply));
  dest->enqueue(caf::make_mailbox_element(s->ctrl(), id, {}, std::move(request)), s->context());
}

}  // namespace troupe
