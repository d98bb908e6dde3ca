// troupe-node: one process, one node. Parses flags, loads config, binds the
// gateway, starts the supervision tree and runs until SIGINT/SIGTERM (or the
// root supervisor gives up), then shuts down in reverse order.

#include <malloc.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <iostream>
#include <sstream>
#include <thread>

#include <spdlog/logger.h>
#include <CLI/CLI.hpp>
#include <caf/all.hpp>
#include <caf/io/all.hpp>

#include "actors/agents/agents.hpp"
#include "actors/cache/cache.hpp"
#include "actors/gateway/listener.hpp"
#include "actors/gateway/server.hpp"
#include "actors/gateway/token.hpp"
#include "actors/llm/llm.hpp"
#include "actors/pty/sessions.hpp"
#include "actors/system/system_actor.hpp"
#include "runtime/actor/atoms.hpp"
#include "runtime/actor/error_text.hpp"
#include "runtime/log/log.hpp"
#include "runtime/net/io_threads.hpp"
#include "runtime/net/strand_actor.hpp"
#include "runtime/node/node_context.hpp"
#include "runtime/protocol/envelope.hpp"
#include "runtime/supervisor/supervisor.hpp"
#include "storage/db.hpp"

namespace {

using namespace troupe;

struct node_flags {
  std::string config_file;
  std::map<std::string, std::string> overrides;
};

/// Top-level children: the families of the node, started in this order and
/// stopped in reverse.
supervisor_spec root_spec(const std::shared_ptr<node_context>& ctx,
                          const std::shared_ptr<db>& store, child_spec cache, child_spec llm,
                          child_spec sessions, child_spec gateway) {
  auto policy = make_restart_policy(ctx->config.supervisor);
  supervisor_spec root{strategy::one_for_one, policy, {}, 100000, 0x7e0b5eedULL};
  root.children.push_back(system_child(ctx, store));
  root.children.push_back(std::move(cache));
  root.children.push_back(std::move(llm));
  root.children.push_back(agents::agents_family(ctx, store));
  root.children.push_back(std::move(sessions));
  root.children.push_back(std::move(gateway));
  return root;
}

void register_node_metrics(const std::shared_ptr<node_context>& ctx) {
  std::weak_ptr<node_context> weak = ctx;
  ctx->metrics.gauge_fn("troupe_uptime_seconds", "Seconds since the node started", [weak] {
    auto c = weak.lock();
    return c ? std::chrono::duration<double>(std::chrono::steady_clock::now() - c->started_at)
                   .count()
             : 0.0;
  });
  auto by_state = [weak](size_t actor_counts::*field) {
    return [weak, field] {
      auto c = weak.lock();
      return c ? static_cast<double>(c->registry.counts().*field) : 0.0;
    };
  };
  const char* help = "Actors in the supervision tree, by state";
  ctx->metrics.gauge_fn("troupe_actors", help, by_state(&actor_counts::running),
                        {{"state", "running"}});
  ctx->metrics.gauge_fn("troupe_actors", help, by_state(&actor_counts::restarting),
                        {{"state", "restarting"}});
  ctx->metrics.gauge_fn("troupe_actors", help, by_state(&actor_counts::stopped),
                        {{"state", "stopped"}});
}

bool wait_until_ready(const node_context& ctx, std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    if (ctx.registry.tree_ready(ctx.top_level_children)) {
      return true;
    }
    if (std::chrono::steady_clock::now() >= deadline) {
      return false;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
}

/// Blocks SIGINT/SIGTERM in every thread (call before any thread starts);
/// a dedicated thread takes them with sigtimedwait.
sigset_t block_shutdown_signals() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  return set;
}

/// File descriptors kept for everything but gateway connections: the
/// store's files, PTYs and their readers, logs, listening sockets.
constexpr rlim_t fds_reserved = 256;

/// Raises the soft limit on open files to the hard one (the default soft
/// 1024 is far below what a node with hundreds of clients needs) and keeps
/// gateway.connections_max within what that allows.
void fit_fd_limit(node_config& config, spdlog::logger& log) {
  rlimit fds{};
  if (::getrlimit(RLIMIT_NOFILE, &fds) != 0) {
    log.warn("cannot read the open-file limit: {}", std::strerror(errno));
    return;
  }
  if (fds.rlim_cur < fds.rlim_max) {
    rlimit raised{fds.rlim_max, fds.rlim_max};
    if (::setrlimit(RLIMIT_NOFILE, &raised) == 0) {
      fds = raised;
    } else {
      log.warn("cannot raise the open-file limit to {}: {}", fds.rlim_max, std::strerror(errno));
    }
  }
  const rlim_t upstream = config.llm.connections_max;
  const rlim_t room =
      fds.rlim_cur > fds_reserved + upstream ? fds.rlim_cur - fds_reserved - upstream : 1;
  log.info("open-file limit {} (hard {})", fds.rlim_cur, fds.rlim_max);
  if (config.gateway.connections_max > room) {
    log.warn(
        "gateway.connections_max {} does not fit the open-file limit {} (less {} reserved "
        "and llm.connections_max {}): using {}",
        config.gateway.connections_max, fds.rlim_cur, fds_reserved, upstream, room);
    config.gateway.connections_max = static_cast<uint32_t>(room);
  }
}

/// Creates the data dir (mode 0700) or makes an existing one 0700.
expected<bool> private_data_dir(const std::string& dir) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) {
    return make_error(errc::unavailable, "cannot create data dir '" + dir + "': " + ec.message());
  }
  if (::chmod(dir.c_str(), 0700) != 0) {
    return make_error(errc::unavailable,
                      "cannot make data dir '" + dir + "' private (0700): " + std::strerror(errno));
  }
  return true;
}

int run(const node_flags& flags) {
  const auto signals = block_shutdown_signals();
  config_sources sources;
  if (!flags.config_file.empty()) {
    sources.file = flags.config_file;
  } else if (std::filesystem::exists("configs/node.toml")) {
    sources.file = "configs/node.toml";
  }
  sources.env = troupe_environment();
  sources.flags = flags.overrides;
  auto config = load_config(sources);
  if (!config) {
    std::fprintf(stderr, "troupe-node: bad configuration: %s\n", config.err().message.c_str());
    return 1;
  }
  init_logging(log_options{config->log.level, config->log.format});
  auto log = logger("node");
  log->info("starting node '{}' (troupe {}), config: {}", config->node.name, troupe_version,
            sources.file.value_or("(embedded defaults)"));
  for (const auto& [name, why] : ignored_environment(sources.env)) {
    log->warn("env {}: {}", name, why);
  }
  std::istringstream effective(describe(*config));
  for (std::string line; std::getline(effective, line);) {
    log->info("config: {}", line);
  }

  fit_fd_limit(*config, *log);
  // The store holds terminal output, transcripts and answers in plain
  // text: what the node creates is its user's alone.
  ::umask(077);
  if (auto ok = private_data_dir(config->node.data_dir); !ok) {
    log->critical("{}", ok.err().message);
    return 1;
  }
  auto token = load_or_create_token(config->auth.token, config->node.data_dir);
  if (!token) {
    log->critical("{}", token.err().message);
    return 1;
  }

  auto opened = db::open(
      storage_options{(std::filesystem::path(config->node.data_dir) / "store").string(),
                      config->storage.sync_writes, split_cache_memory(config->cache).store});
  if (!opened) {
    log->critical("{}", opened.err().message);
    return 1;
  }
  // Shared with the families that keep durable state; closed after the
  // actor system (declared before it), so no actor outlives it.
  std::shared_ptr<db> store = std::move(*opened);
  log->info("store open at {} (boot #{})", store->path(), store->boot_count());

  auto ctx = std::make_shared<node_context>(std::move(*config));
  register_node_metrics(ctx);

  // The HTTP threads and the terminal threads (the session actors, PTY
  // reads and the WebSocket viewers) are declared before the actor system, so destroyed after it: a
  // connection an actor still holds never outlives its io_context. The
  // listening socket is bound here, so that a bad address fails the boot;
  // gateway/http serves it. (The LLM providers own their upstream threads
  // and connections and close them as they stop.)
  io_threads pty_io("troupe-pty", ctx->config.sessions.io_threads);
  io_threads http_io("troupe-http", ctx->config.gateway.io_threads);
  const gateway_io gateway_threads{http_io.context(), pty_io.context()};
  auto server =
      gateway_server::start(ctx, token->value, ctx->config.gateway.listen, gateway_threads);
  if (!server) {
    log->critical("{}", server.err().message);
    return 1;
  }
  ctx->listen_address = (*server)->address();
  http_io.start();
  pty_io.start();
  auto llm = llm::llm_child(ctx, store);
  if (!llm) {
    log->critical("{}", llm.err().message);
    return 1;
  }
  caf::actor_system_config cfg;
  cfg.set("scheduler.max-threads", static_cast<size_t>(ctx->config.node.scheduler_threads));
  // An idle worker spins briefly, then sleeps on its condition variable,
  // which every message from outside the scheduler (an I/O thread's) wakes.
  // CAF's default puts 500 sleeps of 50 us between the two: a node that
  // gets a message every few milliseconds (a typist, a stream) then never
  // reaches the condition variable, and its workers wake some 20,000 times
  // a second for nothing (bench/pty_echo_under_load: about 0.2 of a core
  // for the echo alone, 0.06 without). The price: a sleeping worker steals
  // a job queued on a busy one (an actor's send from a worker) only when
  // its relaxed sleep times out, not within a few polls.
  cfg.set("work-stealing.moderate-poll-attempts", size_t{0});
  caf::actor_system system{cfg};
  auto cache = make_cache(ctx, store);
  ctx->cache = std::move(cache.client);
  // The context is complete: from here on the I/O threads read it.
  auto spec = root_spec(ctx, store, std::move(cache.child), std::move(*llm),
                        pty::sessions_child(ctx, store, pty_io.context()),
                        gateway_family(ctx, token->value, gateway_threads, std::move(*server)));
  ctx->top_level_children = spec.children.size();
  auto root = spawn_supervisor(system, ctx, "", std::move(spec));
  // Announce the node (the line scripts wait for) once every top-level child
  // runs; until then /readyz says "starting" and calls may get `restarting`.
  if (!wait_until_ready(*ctx, std::chrono::milliseconds(ctx->config.node.shutdown_timeout_ms))) {
    log->warn("not every top-level actor was running after {} ms; serving anyway",
              ctx->config.node.shutdown_timeout_ms);
  }
  log->info("gateway listening on http://{} (token: {})", ctx->listen_address, token->source);
  std::printf("troupe-node '%s' listening on http://%s\ntoken: %s\n", ctx->config.node.name.c_str(),
              ctx->listen_address.c_str(), token->source.c_str());
  std::fflush(stdout);

  caf::scoped_actor self{system};
  self->monitor(root);
  std::atomic<bool> done{false};
  std::thread signal_thread([&, handle = caf::actor{self}] {
    const timespec tick{0, 200'000'000};
    while (!done.load()) {
      if (int sig = sigtimedwait(&signals, nullptr, &tick); sig > 0) {
        caf::anon_send(handle, shutdown_atom::value, static_cast<int32_t>(sig));
        return;
      }
    }
  });

  int exit_code = 0;
  bool root_down = false;
  self->receive(
      [&](shutdown_atom, int32_t sig) {
        log->info("received {}, shutting down", sig == SIGINT ? "SIGINT" : "SIGTERM");
      },
      [&](caf::down_msg& down) {
        root_down = true;
        exit_code = 1;
        log->critical("the root supervisor stopped: {}", error_text(system, down.reason));
      });
  done = true;
  signal_thread.join();

  const auto timeout = std::chrono::milliseconds(ctx->config.node.shutdown_timeout_ms);
  if (!root_down && !drain_gateway(system, *ctx, timeout / 2)) {
    log->warn("requests still in flight after {} ms; closing anyway", (timeout / 2).count());
  }
  if (!root_down) {
    self->send(root, shutdown_atom::value);
    bool stopped = false;
    self->receive([&](caf::down_msg&) { stopped = true; },
                  caf::after(timeout) >>
                      [&] {
                        log->error("actors did not stop within {} ms; killing the tree",
                                   timeout.count());
                        self->send_exit(root, caf::exit_reason::kill);
                      });
    if (!stopped) {
      self->receive([&](caf::down_msg&) {},
                    caf::after(timeout) >> [&] { log->error("the killed tree did not go down"); });
    }
  }
  // The actors that run on the I/O threads (sessions, viewers, connections'
  // exchange actors) end there, through messages posted to those threads;
  // their cleanup needs the actor system. So the threads run until every
  // one has ended (bounded). No I/O handler runs past this point (those
  // still queued are destroyed with the io_context, after the system).
  const auto ends_by = std::chrono::steady_clock::now() + timeout / 2;
  while (strand_base::running() > 0 && std::chrono::steady_clock::now() < ends_by) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  if (const auto left = strand_base::running(); left > 0) {
    log->error("{} actors on the I/O threads did not end within {} ms", left,
               (timeout / 2).count());
  }
  http_io.stop();
  pty_io.stop();
  ctx->registry.remove("");
  log->info("node '{}' stopped", ctx->config.node.name);
  return exit_code;
}

}  // namespace

int main(int argc, char** argv) {
  // A relayed stream passes through in messages of up to 64 KiB, allocated
  // on the upstream thread and freed on the HTTP thread once written. With
  // glibc's default, freeing one can hand the top of that thread's heap
  // back to the kernel (past 128 KiB free), and the next read faults it
  // back in a page at a time (in bench/pty_echo_under_load's relay, 47-55
  // thousand page faults against 3-6 thousand with this). The node keeps
  // up to 32 MiB free per heap instead. (This also fixes the mmap
  // threshold at its 128 KiB start, where glibc would otherwise raise it.)
  mallopt(M_TRIM_THRESHOLD, 32 << 20);
  CLI::App app{"troupe-node: one troupe node (actors, gateway, storage)"};
  node_flags flags;
  std::string data_dir;
  std::string listen;
  std::string name;
  app.add_option("--config", flags.config_file, "TOML config file (default: configs/node.toml)");
  app.add_option("--data-dir", data_dir, "Directory for durable state (default: ./data)");
  app.add_option("--listen", listen, "HOST:PORT of the HTTP gateway (default: 127.0.0.1:7700)");
  app.add_option("--name", name, "Node name");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : 2;
  }
  if (!data_dir.empty()) {
    flags.overrides["node.data_dir"] = data_dir;
  }
  if (!listen.empty()) {
    flags.overrides["gateway.listen"] = listen;
  }
  if (!name.empty()) {
    flags.overrides["node.name"] = name;
  }
  return run(flags);
}
