#include "runtime/net/strand_actor.hpp"

#include <atomic>
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

namespace {

std::atomic<int64_t> strand_actors_running{0};

}  // namespace

strand_base::strand_base(caf::actor_config& cfg)
    : super(cfg), turns_(std::make_unique<turns>(home_system())) {
  context(&turns_->unit);
}

strand_base::~strand_base() {
  // Destroyed without an end of its own (nobody held it any more: CAF's
  // on_destroy cleaned it up as unreachable).
  if (!ended_) {
    mark_ended();
  }
}

int64_t strand_base::running() {
  return strand_actors_running.load();
}

void strand_base::began() {
  began_ = true;
  strand_actors_running.fetch_add(1);
}

void strand_base::mark_ended() {
  ended_ = true;
  if (began_) {
    strand_actors_running.fetch_sub(1);
  }
  for (auto& m : turns_->skipped) {
    bounce_requests(std::move(m));
  }
  turns_->skipped.clear();
}

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
// sees `ended_` and answers a request with an error.
void strand_base::run_spawned(net::any_io_executor executor) {
  began();
  auto weak = caf::actor_cast<caf::weak_actor_ptr>(ctrl());
  on_enqueue([weak, executor](caf::mailbox_element_ptr m) {
    // The posted turn holds the actor: a message on its way keeps it alive,
    // as CAF's scheduler holds an actor with mail (a viewer whose session
    // held the last handle still gets the session's last words). Whoever
    // sends to it holds it now, so this lock succeeds unless it is being
    // destroyed.
    if (auto self = weak.lock()) {
      net::post(executor, [self = std::move(self), m = std::move(m)]() mutable {
        static_cast<strand_base*>(caf::actor_cast<caf::abstract_actor*>(self))->turn(std::move(m));
      });
    } else {
      bounce_requests(std::move(m));
    }
  });
  // After the handler is in place: the first turn may run at once, on
  // another thread, and what it asks for may be answered at once.
  net::post(executor, [self = caf::strong_actor_ptr(ctrl())] {
    static_cast<strand_base*>(caf::actor_cast<caf::abstract_actor*>(self))->start();
  });
}

void strand_base::run_owned(net::any_io_executor executor, std::weak_ptr<void> owner) {
  began();
  // The owner's token holds the actor, and a turn holds the token: `this`
  // is alive whenever the lock succeeds.
  on_enqueue([self = this, owner = std::move(owner), executor](caf::mailbox_element_ptr m) {
    net::post(executor, [self, owner, m = std::move(m)]() mutable {
      if (auto held = owner.lock()) {
        self->turn(std::move(m));
      } else {
        bounce_requests(std::move(m));
      }
    });
  });
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
  mark_ended();
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
  on_end_ = nullptr;
  if (ended_) {
    return;  // CAF's cleanup again would wake its clock thread for nothing
  }
  mark_ended();
  // As CAF's finalize does: on_exit (a stateful actor's state goes), then
  // cleanup (monitors and links hear it).
  quit(caf::exit_reason::user_shutdown);
  on_exit();
  cleanup(caf::make_error(caf::exit_reason::user_shutdown), &turns_->unit);
}

/// Ends its actor when the owner and every turn have let go: never during
/// a turn, wherever the owner lets go.
struct strand_actor::owner_token {
  explicit owner_token(caf::strong_actor_ptr a) : actor(std::move(a)) {}
  owner_token(const owner_token&) = delete;
  owner_token& operator=(const owner_token&) = delete;
  ~owner_token() {
    static_cast<strand_base*>(caf::actor_cast<caf::abstract_actor*>(actor))->stop();
  }
  caf::strong_actor_ptr actor;
};

strand_actor::strand_actor(caf::actor_system& system, net::any_io_executor executor)
    // Hidden: the system does not wait for it at shutdown; its owner ends it.
    : token_(std::make_shared<owner_token>(
          caf::actor_cast<caf::strong_actor_ptr>(system.spawn<strand_base, caf::hidden>()))),
      self_(static_cast<strand_base*>(caf::actor_cast<caf::abstract_actor*>(token_->actor))) {
  self_->run_owned(std::move(executor), token_);
}

strand_actor::~strand_actor() = default;

strand_base* strand_actor::self() const {
  return self_;
}

bool strand_actor::ended() const {
  return self_->ended();
}

void strand_actor::on_end(std::function<void()> hook) {
  self_->on_end(std::move(hook));
}

caf::actor strand_actor::handle() const {
  return caf::actor_cast<caf::actor>(token_->actor);
}

}  // namespace troupe
