// runtime_messaging: request/reply and ping-pong through troupe's envelope
// path (struct -> msgpack -> envelope -> actor -> decode -> handler -> encode
// -> reply -> decode) vs raw CAF with plain atoms, same binary, same thread
// count, rounds alternated. Figure: troupe request/reply round trips per
// second; ratio: troupe / raw CAF.
//
//   runtime_messaging [--quick]

#include <chrono>
#include <cstdio>
#include <future>
#include <memory>

#include <caf/all.hpp>

#include "bench/bench_util.hpp"
#include "runtime/actor/ask.hpp"
#include "runtime/actor/atoms.hpp"
#include "runtime/actor/envelope_message.hpp"
#include "runtime/actor/serve.hpp"
#include "runtime/log/log.hpp"
#include "runtime/node/node_context.hpp"
#include "runtime/protocol/codec.hpp"
#include "runtime/supervisor/supervisor.hpp"

using namespace troupe;
using namespace std::chrono_literals;

namespace {

using ping_atom = caf::atom_constant<caf::atom("ping")>;
using pong_atom = caf::atom_constant<caf::atom("pong")>;

struct counter_msg {
  uint64_t n = 0;
  TROUPE_FIELDS(n)
};

constexpr auto request_timeout = 5s;
constexpr size_t threads = 2;

using clock_type = std::chrono::steady_clock;

double seconds_since(clock_type::time_point t0) {
  return std::chrono::duration<double>(clock_type::now() - t0).count();
}

/// Runs `rounds` sequential request/reply round trips from a fresh client
/// actor; returns round trips per second.
template <class Start>
double run_client(caf::actor_system& system, uint64_t rounds, Start start) {
  std::promise<double> done;
  auto result = done.get_future();
  system.spawn([&, rounds, start](caf::event_based_actor* self) {
    auto t0 = clock_type::now();
    start(self, rounds,
          [&done, t0, rounds] { done.set_value(static_cast<double>(rounds) / seconds_since(t0)); });
  });
  return result.get();
}

// --- raw CAF ----------------------------------------------------------------

caf::behavior raw_server() {
  return {[](ping_atom, uint64_t n) { return caf::make_message(pong_atom::value, n); }};
}

void raw_request_loop(caf::event_based_actor* self, caf::actor server, uint64_t left,
                      std::function<void()> finish) {
  if (left == 0) {
    finish();
    return;
  }
  self->request(server, request_timeout, ping_atom::value, left)
      .then([=](pong_atom, uint64_t) { raw_request_loop(self, server, left - 1, finish); },
            [](caf::error&) { std::abort(); });
}

// --- troupe -----------------------------------------------------------------

std::shared_ptr<const handler_table> echo_table() {
  auto table = std::make_shared<handler_table>();
  table->on<counter_msg>("bench.echo",
                         [](const counter_msg& m) { return expected<counter_msg>(m); });
  return table;
}

void troupe_request_loop(caf::event_based_actor* self, const actor_registry& registry,
                         uint64_t left, std::function<void()> finish) {
  if (left == 0) {
    finish();
    return;
  }
  ask(self, registry, "echo", make_envelope("bench.echo", counter_msg{left}), request_timeout,
      [self, &registry, left, finish](envelope reply) {
        auto body = decode<counter_msg>(reply.body);
        if (!body || body->n != left) {
          std::abort();
        }
        troupe_request_loop(self, registry, left - 1, finish);
      });
}

// --- ping-pong (plain sends, no request ids) ---------------------------------

double raw_ping_pong(caf::actor_system& system, caf::actor server, uint64_t rounds) {
  std::promise<double> done;
  auto result = done.get_future();
  system.spawn([&, server, rounds](caf::event_based_actor* self) -> caf::behavior {
    auto t0 = clock_type::now();
    self->send(server, ping_atom::value, rounds);
    return {[=, &done](pong_atom, uint64_t n) {
      if (n == 1) {
        done.set_value(static_cast<double>(rounds) / seconds_since(t0));
        self->quit();
        return;
      }
      self->send(server, ping_atom::value, n - 1);
    }};
  });
  return result.get();
}

void send_envelope(caf::event_based_actor* self, const caf::actor& dest, envelope e) {
  self->send(dest, std::move(e.type), std::move(e.body), e.correlation_id, std::move(e.reply_to));
}

double troupe_ping_pong(caf::actor_system& system, caf::actor server, uint64_t rounds) {
  std::promise<double> done;
  auto result = done.get_future();
  system.spawn([&, server, rounds](caf::event_based_actor* self) -> caf::behavior {
    auto t0 = clock_type::now();
    send_envelope(self, server, make_envelope("bench.echo", counter_msg{rounds}));
    return {[=, &done](std::string&, std::string& reply_body, uint64_t, std::string&) {
      auto body = decode<counter_msg>(reply_body);
      if (!body) {
        std::abort();
      }
      if (body->n == 1) {
        done.set_value(static_cast<double>(rounds) / seconds_since(t0));
        self->quit();
        return;
      }
      send_envelope(self, server, make_envelope("bench.echo", counter_msg{body->n - 1}));
    }};
  });
  return result.get();
}

}  // namespace

int main(int argc, char** argv) {
  const bool quick = bench::has_flag(argc, argv, "--quick");
  // Benches crash and restart actors on purpose: keep the log to real errors.
  (void)init_logging(log_options{"error", "text"});
  const uint64_t rounds = quick ? 2000 : 200000;
  const int reps = quick ? 1 : 7;

  caf::actor_system_config cfg;
  cfg.set("scheduler.max-threads", threads);
  caf::actor_system system{cfg};
  auto ctx = std::make_shared<node_context>(node_config{});

  auto table = echo_table();
  supervisor_spec spec;
  child_spec echo;
  echo.name = "echo";
  echo.start = [table](caf::actor_system& sys, const std::string&) {
    return sys.spawn(
        [table](caf::event_based_actor* self) -> caf::behavior { return serve(self, table); });
  };
  spec.children.push_back(echo);
  auto root = spawn_supervisor(system, ctx, "", spec);
  while (!ctx->registry.find("echo") || !ctx->registry.find("echo")->current) {
    std::this_thread::yield();
  }
  auto troupe_server = ctx->registry.find("echo")->current;
  auto raw = system.spawn(raw_server);

  std::vector<double> raw_rr, troupe_rr, raw_pp, troupe_pp;
  for (int i = 0; i < reps; ++i) {
    raw_rr.push_back(run_client(system, rounds, [raw](auto* self, uint64_t n, auto fin) {
      raw_request_loop(self, raw, n, fin);
    }));
    troupe_rr.push_back(run_client(system, rounds, [&ctx](auto* self, uint64_t n, auto fin) {
      troupe_request_loop(self, ctx->registry, n, fin);
    }));
    raw_pp.push_back(raw_ping_pong(system, raw, rounds));
    troupe_pp.push_back(troupe_ping_pong(system, troupe_server, rounds));
  }

  const double rr_raw = bench::median(raw_rr);
  const double rr_troupe = bench::median(troupe_rr);
  const double pp_raw = bench::median(raw_pp);
  const double pp_troupe = bench::median(troupe_pp);
  std::printf("runtime_messaging (%zu scheduler threads, %llu round trips x %d reps)\n", threads,
              static_cast<unsigned long long>(rounds), reps);
  std::printf("  request/reply  raw CAF %10.0f rt/s  troupe %10.0f rt/s (MAD %.0f)  ratio %.3f\n",
              rr_raw, rr_troupe, bench::mad(troupe_rr), rr_troupe / rr_raw);
  std::printf("  ping-pong      raw CAF %10.0f rt/s  troupe %10.0f rt/s (MAD %.0f)  ratio %.3f\n",
              pp_raw, pp_troupe, bench::mad(troupe_pp), pp_troupe / pp_raw);

  caf::anon_send_exit(raw, caf::exit_reason::user_shutdown);
  caf::anon_send(root, shutdown_atom::value);
  troupe_server = nullptr;
  ctx->registry.remove("");

  bench::print_json({"runtime_messaging", rr_troupe, "round_trips_per_s", rr_raw,
                     rr_troupe / rr_raw, 0, 0, reps});
  return 0;
}
