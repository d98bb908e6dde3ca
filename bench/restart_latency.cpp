// restart_latency: a supervised actor crashes; how long until a request sent
// right after the crash is answered by its next incarnation (stable path,
// supervisor stash, restart, delegate). Baseline: spawning a fresh raw CAF
// actor and getting its first reply, same binary and run. Ratio: baseline
// p50 / troupe p50 (1.0 = a supervised restart costs what a bare spawn does). Each crash is an
// isolated one (backoff reset after 1 ms), so it takes the policy's
// immediate first restart.
//
//   restart_latency [--quick]

#include <chrono>
#include <cstdio>
#include <future>

#include <caf/all.hpp>

#include "bench/bench_util.hpp"
#include "runtime/actor/ask.hpp"
#include "runtime/actor/atoms.hpp"
#include "runtime/actor/serve.hpp"
#include "runtime/log/log.hpp"
#include "runtime/node/node_context.hpp"
#include "runtime/protocol/codec.hpp"
#include "runtime/supervisor/supervisor.hpp"

using namespace troupe;
using namespace std::chrono_literals;

namespace {

using ping_atom = caf::atom_constant<caf::atom("ping")>;
using clock_type = std::chrono::steady_clock;

double micros_since(clock_type::time_point t0) {
  return std::chrono::duration<double, std::micro>(clock_type::now() - t0).count();
}

std::shared_ptr<const handler_table> ping_table() {
  auto table = std::make_shared<handler_table>();
  table->on<empty_body>("bench.ping",
                        [](const empty_body&) { return expected<empty_body>(empty_body{}); });
  return table;
}

/// Crash the running incarnation, then ask it by path; latency until the reply.
void crash_loop(caf::event_based_actor* self, std::shared_ptr<node_context> ctx, asker* requests,
                int left, std::shared_ptr<std::vector<double>> out, std::promise<void>* done) {
  if (left == 0) {
    done->set_value();
    self->quit();
    return;
  }
  auto route = ctx->registry.find("worker");
  if (!route || !route->current) {
    // Not up again yet from the previous round's point of view: try again.
    self->delayed_send(self, 100us, caf::ok_atom::value);
    self->become(caf::keep_behavior, [=](caf::ok_atom) {
      self->unbecome();
      crash_loop(self, ctx, requests, left, out, done);
    });
    return;
  }
  auto t0 = clock_type::now();
  self->send_exit(route->current, caf::make_error(caf::sec::runtime_error, std::string("bench")));
  requests->ask(self, "worker", make_envelope("bench.ping", empty_body{}), 5s, [=](envelope reply) {
    if (reply.is_error()) {
      std::fprintf(stderr, "error: %s\n", read_error(reply).message.c_str());
      std::abort();
    }
    out->push_back(micros_since(t0));
    crash_loop(self, ctx, requests, left - 1, out, done);
  });
}

/// Baseline: spawn a fresh raw CAF actor and get its first reply, driven by an
/// event-based actor exactly like the troupe side.
void spawn_loop(caf::event_based_actor* self, int left, std::shared_ptr<std::vector<double>> out,
                std::promise<void>* done) {
  if (left == 0) {
    done->set_value();
    self->quit();
    return;
  }
  auto t0 = clock_type::now();
  auto fresh = self->spawn([]() -> caf::behavior { return {[](ping_atom) { return 1; }}; });
  self->request(fresh, 5s, ping_atom::value)
      .then(
          [=](int) {
            out->push_back(micros_since(t0));
            self->send_exit(fresh, caf::exit_reason::user_shutdown);
            spawn_loop(self, left - 1, out, done);
          },
          [](caf::error&) { std::abort(); });
}

}  // namespace

int main(int argc, char** argv) {
  const bool quick = bench::has_flag(argc, argv, "--quick");
  // Benches crash and restart actors on purpose: keep the log to real errors.
  init_logging(log_options{log_level::error, log_format::text});
  const int runs = quick ? 50 : 5000;

  caf::actor_system_config cfg;
  cfg.set("scheduler.max-threads", size_t{2});
  caf::actor_system system{cfg};
  node_config config;
  config.supervisor.backoff_reset_ms = 1;
  auto ctx = std::make_shared<node_context>(config);

  supervisor_spec spec;
  spec.policy = make_restart_policy(config.supervisor);
  spec.policy.restarts_max = 1000000;  // the bench crashes on purpose
  spec.policy.backoff_reset = 0ms;     // every crash is an isolated one
  auto table = ping_table();
  child_spec worker;
  worker.name = "worker";
  worker.start = [table](caf::actor_system& sys, const std::string&) {
    return sys.spawn(
        [table](caf::event_based_actor* self) -> caf::behavior { return serve(self, table); });
  };
  spec.children.push_back(worker);
  auto root = spawn_supervisor(system, ctx, "", spec);

  auto baseline = std::make_shared<std::vector<double>>();
  std::promise<void> baseline_done;
  auto baseline_finished = baseline_done.get_future();
  system.spawn(
      [&](caf::event_based_actor* self) { spawn_loop(self, runs, baseline, &baseline_done); });
  baseline_finished.wait();
  auto samples = std::make_shared<std::vector<double>>();
  std::promise<void> done;
  auto finished = done.get_future();
  asker requests{ctx->registry};
  system.spawn([&](caf::event_based_actor* self) {
    crash_loop(self, ctx, &requests, runs, samples, &done);
  });
  finished.wait();

  const double p50 = bench::quantile(*samples, 0.5);
  const double p99 = bench::quantile(*samples, 0.99);
  const double base_p50 = bench::quantile(*baseline, 0.5);
  std::printf("restart_latency (%d crashes, 2 scheduler threads)\n", runs);
  std::printf("  crash -> first reply   p50 %8.1f us  p99 %8.1f us  max %8.1f us\n", p50, p99,
              bench::quantile(*samples, 1.0));
  std::printf("  raw spawn + reply      p50 %8.1f us  p99 %8.1f us\n", base_p50,
              bench::quantile(*baseline, 0.99));
  std::printf("  restarts counted by the supervisor: %u\n", ctx->registry.info("worker")->restarts);

  caf::anon_send(root, shutdown_atom::value);
  ctx->registry.remove("");
  bench::print_json({"restart_latency", p99, "us_p99", base_p50, base_p50 / p50, p50, p99, runs});
  return 0;
}
