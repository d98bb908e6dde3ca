#pragma once

// An actor system on CAF's test coordinator: actors run only when the test
// says so, one message at a time on the test's thread, and time passes only
// when the test advances it. For testing one actor (or a small family)
// alone, deterministically, without a node.

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <utility>

#include <caf/all.hpp>
#include <caf/scheduler/test_coordinator.hpp>

#include "runtime/actor/envelope_message.hpp"
#include "runtime/node/node_context.hpp"
#include "runtime/protocol/codec.hpp"

namespace troupe::test {

class deterministic_system {
 public:
  explicit deterministic_system(node_config config = {})
      : system_(configure(cfg_)),
        sched_(dynamic_cast<caf::scheduler::test_coordinator&>(system_.scheduler())),
        self_(system_, true),
        ctx_(std::make_shared<node_context>(std::move(config))) {}

  ~deterministic_system() {
    run();
    ctx_->registry.remove("");
  }

  caf::actor_system& system() { return system_; }

  /// Registers `who` as the running actor at `path` (a child of its parent
  /// path), so that actors under test find it there: the test's own actor
  /// plays a family's actor, or a stand-in does.
  void register_running(const std::string& path, const caf::actor& who) {
    actor_info info;
    info.path = path;
    const auto slash = path.rfind('/');
    info.name = slash == std::string::npos ? path : path.substr(slash + 1);
    info.parent = slash == std::string::npos ? std::string() : path.substr(0, slash);
    info.state = actor_state::running;
    ctx_->registry.put(info, who, caf::actor{});
  }
  /// The test's own actor (the sender of what the test sends).
  caf::actor self() { return caf::actor_cast<caf::actor>(self_); }
  const std::shared_ptr<node_context>& ctx() { return ctx_; }

  /// Also runs `poll` whenever the actors run, until neither has anything
  /// left to do: an io_context's poll, where strand actors take their turns
  /// (runtime/net/strand_actor.hpp). What it polls must outlive this system.
  void also_run(std::function<size_t()> poll) { also_ = std::move(poll); }

  /// Runs every actor (and what also_run names) until no message is left.
  size_t run() {
    size_t total = 0;
    for (;;) {
      size_t n = sched_.run();
      if (also_) {
        n += also_();
      }
      if (n == 0) {
        return total;
      }
      total += n;
    }
  }

  /// Moves the clock on (firing what falls due), then runs.
  void advance(std::chrono::milliseconds by) {
    sched_.advance_time(by);
    run();
  }

  /// Requests `msg` of `to` and returns its answer: everything runs first,
  /// so an answer that is not in the test actor's mailbox then never comes
  /// (the actor kept the request): that is an `error` envelope, not a hang.
  envelope call(const caf::actor& to, envelope msg) {
    auto handle = self_->request(to, caf::infinite, std::move(msg.type), std::move(msg.body),
                                 msg.correlation_id);
    run();
    envelope out = make_error_envelope(make_error(errc::timeout, "no answer: the request is kept"));
    if (!has_mail()) {
      return out;
    }
    handle.receive([&](std::string& type, std::string& body,
                       uint64_t id) { out = from_fields(type, body, id); },
                   [&](caf::error& err) {
                     out = make_error_envelope(make_error(errc::internal, to_string(err)));
                   });
    return out;
  }

  /// The next message waiting for the test actor, as an envelope, and
  /// whether it came as a request; nullopt when none (or no envelope) waits.
  std::optional<std::pair<envelope, bool>> take_mail() {
    if (!has_mail()) {
      return std::nullopt;
    }
    std::optional<std::pair<envelope, bool>> out;
    self_->receive(
        [&](std::string& type, std::string& body, uint64_t id) {
          out.emplace(from_fields(type, body, id),
                      self_->current_mailbox_element()->mid.is_request());
        },
        // Anything else stays where it is: nullopt, not a hang.
        caf::after(std::chrono::seconds(0)) >> [] {});
    return out;
  }

  /// Takes the next request waiting for the test actor and answers it with
  /// `answer` (the test plays the actor asked); the request, or nullopt
  /// when none waits.
  std::optional<envelope> answer_next(envelope answer) {
    if (!has_mail()) {
      return std::nullopt;
    }
    std::optional<envelope> out;
    self_->receive(
        [&](std::string& type, std::string& body, uint64_t id) -> caf::message {
          out.emplace(from_fields(type, body, id));
          return caf::make_message(std::move(answer.type), std::move(answer.body),
                                   answer.correlation_id);
        },
        caf::after(std::chrono::seconds(0)) >> [] {});
    run();
    return out;
  }

  /// Requests `msg` of `to` without waiting for the answer, and runs: the
  /// answer, if one comes, waits in the test actor's mailbox (has_mail).
  void request_later(const caf::actor& to, envelope msg) {
    (void)self_->request(to, caf::infinite, std::move(msg.type), std::move(msg.body),
                         msg.correlation_id);
    run();
  }

  /// Sends `msg` to `to`, as the test's own actor, and runs.
  void send(const caf::actor& to, envelope msg) {
    self_->send(to, std::move(msg.type), std::move(msg.body), msg.correlation_id);
    run();
  }

  /// Whether the test's actor has a message waiting (e.g. an answer that
  /// is held back): checked without blocking.
  bool has_mail() { return !self_->mailbox().empty(); }

 private:
  static caf::actor_system_config& configure(caf::actor_system_config& cfg) {
    cfg.set("scheduler.policy", caf::atom("testing"));
    cfg.set("logger.verbosity", caf::atom("quiet"));
    return cfg;
  }

  caf::actor_system_config cfg_;
  caf::actor_system system_;
  caf::scheduler::test_coordinator& sched_;
  caf::scoped_actor self_;
  std::shared_ptr<node_context> ctx_;
  std::function<size_t()> also_;
};

}  // namespace troupe::test
