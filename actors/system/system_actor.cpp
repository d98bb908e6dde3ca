#include "actors/system/system_actor.hpp"

#include <unistd.h>

#include <caf/all.hpp>

#include "actors/system/messages.hpp"
#include "runtime/actor/serve.hpp"
#include "runtime/node/node_context.hpp"
#include "runtime/wall_clock.hpp"
#include "storage/db.hpp"

namespace troupe {

namespace {

uint64_t uptime_ms(const node_context& ctx) {
  return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                   std::chrono::steady_clock::now() - ctx.started_at)
                                   .count());
}

/// A failed write this recent makes the store not ok.
constexpr uint64_t failure_memory_ms = 60'000;

sys::storage_health storage_health_of(const db* store) {
  sys::storage_health out;
  if (store == nullptr) {
    return out;
  }
  const auto h = store->health();
  const auto now = wall_ms();
  out.enabled = true;
  out.failed_writes = h.failed_writes;
  out.last_error = h.last_error;
  out.background_errors = h.background_errors;
  out.writes_stopped = h.writes_stopped;
  const bool recent = h.last_error_ms != 0 && now - h.last_error_ms < failure_memory_ms;
  if (h.last_error_ms != 0) {
    out.last_error_age_s = static_cast<int64_t>((now - std::min(now, h.last_error_ms)) / 1000);
  }
  out.ok = !recent && h.background_errors == 0 && !h.writes_stopped;
  return out;
}

}  // namespace

std::shared_ptr<const handler_table> system_handlers(std::shared_ptr<node_context> ctx,
                                                     std::shared_ptr<db> store) {
  auto table = std::make_shared<handler_table>(
      decode_limits{.body_bytes_max = ctx->config.limits.message_bytes_max});
  table->on<sys::ping_request>(sys::ping_type, [ctx](const sys::ping_request&) {
    return expected<sys::ping_reply>(sys::ping_reply{ctx->config.node.name, uptime_ms(*ctx)});
  });
  table->on<sys::echo_message>(sys::echo_type, [](const sys::echo_message& msg) {
    return expected<sys::echo_message>(msg);
  });
  table->on<sys::info_request>(sys::info_type, [ctx](const sys::info_request&) {
    auto counts = ctx->registry.counts();
    return expected<sys::info_reply>(sys::info_reply{
        ctx->config.node.name,
        troupe_version,
        static_cast<int64_t>(::getpid()),
        uptime_ms(*ctx),
        ctx->config.node.scheduler_threads,
        counts.total,
        counts.running,
        ctx->config.node.data_dir,
    });
  });
  table->on<empty_body>(sys::health_type, [store](const empty_body&) {
    return expected<sys::health_reply>(sys::health_reply{storage_health_of(store.get())});
  });
  return table;
}

child_spec system_child(std::shared_ptr<node_context> ctx, std::shared_ptr<db> store) {
  child_spec spec;
  spec.name = "sys";
  spec.kind = actor_kind::worker;
  spec.restart = restart_type::permanent;
  auto table = system_handlers(std::move(ctx), std::move(store));
  spec.start = [table](caf::actor_system& system, const std::string&) {
    return system.spawn(
        [table](caf::event_based_actor* self) -> caf::behavior { return serve(self, table); });
  };
  return spec;
}

}  // namespace troupe
