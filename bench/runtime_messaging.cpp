// runtime_messaging: request/reply and ping-pong through troupe's envelope
// path (struct -> msgpack -> envelope -> actor -> decode -> handler -> encode
// -> reply -> decode) vs raw CAF with plain atoms, same binary, same thread
// count, rounds alternated. Figure: troupe request/reply round trips per
// second; ratio: troupe / raw CAF.
//
//   runtime_messaging [--quick] [--only raw-rr|troupe-rr|raw-pp|troupe-pp|untimed-rr] [--rounds N]
//
// --only runs one loop (for a profiler; untimed-rr is raw CAF request/reply
// with no timeout); it prints no ratio.
// --rounds sets the round trips per loop.

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
    // quit(): an asker's armed deadline would keep the client alive until it
    // passes, like any awaited reply.
    start(self, rounds, [self, &done, t0, rounds] {
      done.set_value(static_cast<double>(rounds) / seconds_since(t0));
      self->quit();
    });
  });
  return result.get();
}

// --- raw CAF ----------------------------------------------------------------

caf::behavior raw_server() {
  return {[](ping_atom, uint64_t n) { return caf::make_message(pong_atom::value, n); }};
}

/// `timeout` is the request's (caf::infinite: none, so no clock entry).
void raw_request_loop(caf::event_based_actor* self, caf::actor server, caf::duration timeout,
                      uint64_t left, std::function<void()> finish) {
  if (left == 0) {
    finish();
    return;
  }
  self->request(server, timeout, ping_atom::value, left)
      .then([=](pong_atom, uint64_t) { raw_request_loop(self, server, timeout, left - 1, finish); },
            [](caf::error&) { std::abort(); });
}

// --- troupe -----------------------------------------------------------------

std::shared_ptr<const handler_table> echo_table() {
  auto table = std::make_shared<handler_table>();
  table->on<counter_msg>("bench.echo",
                         [](const counter_msg& m) { return expected<counter_msg>(m); });
  return table;
}

void troupe_request_loop(caf::event_based_actor* self, asker& requests, uint64_t left,
                         std::function<void()> finish) {
  if (left == 0) {
    finish();
    return;
  }
  requests.ask(self, "echo", make_envelope("bench.echo", counter_msg{left}), request_timeout,
               [self, &requests, left, finish](envelope reply) {
                 auto body = decode<counter_msg>(reply.body);
                 if (!body || body->n != left) {
                   std::abort();
                 }
                 troupe_request_loop(self, requests, left - 1, finish);
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
  self->send(dest, std::move(e.type), std::move(e.body), e.correlation_id);
}

double troupe_ping_pong(caf::actor_system& system, caf::actor server, uint64_t rounds) {
  std::promise<double> done;
  auto result = done.get_future();
  system.spawn([&, server, rounds](caf::event_based_actor* self) -> caf::behavior {
    auto t0 = clock_type::now();
    send_envelope(self, server, make_envelope("bench.echo", counter_msg{rounds}));
    return {[=, &done](std::string&, std::string& reply_body, uint64_t) {
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
  const std::string only = bench::flag_value(argc, argv, "--only");
  auto runs = [&only](const char* name) { return only.empty() || only == name; };
  // Benches crash and restart actors on purpose: keep the log to real errors.
  init_logging(log_options{log_level::error, log_format::text});
  const std::string rounds_flag = bench::flag_value(argc, argv, "--rounds");
  const uint64_t rounds = !rounds_flag.empty() ? std::stoull(rounds_flag) : quick ? 2000 : 200000;
  const int reps = quick ? 1 : 11;

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

  std::vector<double> raw_rr, troupe_rr, raw_pp, troupe_pp, untimed_rr;
  for (int i = 0; i < reps; ++i) {
    if (runs("raw-rr")) {
      raw_rr.push_back(run_client(system, rounds, [raw](auto* self, uint64_t n, auto fin) {
        raw_request_loop(self, raw, caf::duration{request_timeout}, n, fin);
      }));
    }
    if (runs("troupe-rr")) {
      // The client's asker lives as long as the run (run_client waits).
      asker requests{ctx->registry};
      troupe_rr.push_back(run_client(system, rounds, [&requests](auto* self, uint64_t n, auto fin) {
        troupe_request_loop(self, requests, n, fin);
      }));
    }
    if (runs("raw-pp")) {
      raw_pp.push_back(raw_ping_pong(system, raw, rounds));
    }
    if (runs("troupe-pp")) {
      troupe_pp.push_back(troupe_ping_pong(system, troupe_server, rounds));
    }
    if (runs("untimed-rr")) {
      untimed_rr.push_back(run_client(system, rounds, [raw](auto* self, uint64_t n, auto fin) {
        raw_request_loop(self, raw, caf::infinite, n, fin);
      }));
    }
  }
  auto stop = [&] {
    caf::anon_send_exit(raw, caf::exit_reason::user_shutdown);
    caf::anon_send(root, shutdown_atom::value);
    troupe_server = nullptr;
    ctx->registry.remove("");
  };
  if (!only.empty()) {
    for (const auto* samples : {&raw_rr, &troupe_rr, &raw_pp, &troupe_pp, &untimed_rr}) {
      if (!samples->empty()) {
        std::printf("%s: %.0f rt/s (median of %d)\n", only.c_str(), bench::median(*samples), reps);
      }
    }
    stop();
    return 0;
  }

  // Each troupe run is compared with the raw run next to it, so a change in
  // the machine's load between repetitions cancels out.
  auto paired = [](const std::vector<double>& ours, const std::vector<double>& base) {
    std::vector<double> ratios;
    for (size_t i = 0; i < ours.size(); ++i) {
      ratios.push_back(ours[i] / base[i]);
    }
    return ratios;
  };
  const auto rr_ratios = paired(troupe_rr, raw_rr);
  const auto pp_ratios = paired(troupe_pp, raw_pp);
  const auto untimed_ratios = paired(troupe_rr, untimed_rr);
  const double rr_ratio = bench::median(rr_ratios);
  std::printf(
      "runtime_messaging (%zu scheduler threads, %llu round trips x %d reps; ratio: median "
      "of the reps' troupe/raw ratios, with its MAD)\n",
      threads, static_cast<unsigned long long>(rounds), reps);
  std::printf("  request/reply  raw CAF %10.0f rt/s  troupe %10.0f rt/s  ratio %.3f (MAD %.3f)\n",
              bench::median(raw_rr), bench::median(troupe_rr), rr_ratio, bench::mad(rr_ratios));
  std::printf("  ping-pong      raw CAF %10.0f rt/s  troupe %10.0f rt/s  ratio %.3f (MAD %.3f)\n",
              bench::median(raw_pp), bench::median(troupe_pp), bench::median(pp_ratios),
              bench::mad(pp_ratios));
  std::printf(
      "  for reference: raw CAF request/reply with no timeout %10.0f rt/s; troupe / that "
      "%.3f\n",
      bench::median(untimed_rr), bench::median(untimed_ratios));

  stop();
  bench::print_json({"runtime_messaging", bench::median(troupe_rr), "round_trips_per_s",
                     bench::median(raw_rr), rr_ratio, 0, 0, reps});
  return 0;
}
