// The sys actor's handlers: its answers to ping, echo, info and the
// readiness probe, the last over a real RocksDB store in a temp dir.

#include "actors/system/system_actor.hpp"

#include <catch2/catch.hpp>

#include <filesystem>
#include <random>

#include "actors/system/messages.hpp"
#include "runtime/node/node_context.hpp"
#include "storage/db.hpp"

using namespace troupe;

namespace {

envelope ask(const handler_table& table, const envelope& in) {
  return table.dispatch(envelope_view{in.type, in.body, in.correlation_id});
}

}  // namespace

TEST_CASE("sys: ping, echo and info answer from the node's context") {
  node_config cfg;
  cfg.node.name = "node-under-test";
  auto ctx = std::make_shared<node_context>(cfg);
  auto table = system_handlers(ctx);
  auto ping = ask(*table, make_envelope(sys::ping_type, empty_body{}));
  REQUIRE_FALSE(ping.is_error());
  CHECK(decode<sys::ping_reply>(ping.body)->node == "node-under-test");
  auto echo = ask(*table, make_envelope(sys::echo_type, sys::echo_message{"hello"}));
  CHECK(decode<sys::echo_message>(echo.body)->text == "hello");
  auto info = ask(*table, make_envelope(sys::info_type, empty_body{}));
  CHECK(decode<sys::info_reply>(info.body)->name == "node-under-test");
}

TEST_CASE("sys: health says how the store takes writes, or that there is none") {
  auto ctx = std::make_shared<node_context>(node_config{});
  auto without = ask(*system_handlers(ctx), make_envelope(sys::health_type, empty_body{}));
  REQUIRE_FALSE(without.is_error());
  auto none = decode<sys::health_reply>(without.body);
  REQUIRE(none);
  CHECK_FALSE(none->storage.enabled);
  CHECK(none->storage.ok);

  std::random_device rd;
  const auto path =
      (std::filesystem::temp_directory_path() / ("troupe-sys-" + std::to_string(rd()))).string();
  {
    auto opened = db::open(storage_options{path, false});
    REQUIRE(opened);
    std::shared_ptr<db> store = std::move(opened).value();
    REQUIRE(store->put(column::meta, "k", "v"));
    auto with = ask(*system_handlers(ctx, store), make_envelope(sys::health_type, empty_body{}));
    auto h = decode<sys::health_reply>(with.body);
    REQUIRE(h);
    CHECK(h->storage.enabled);
    CHECK(h->storage.ok);
    CHECK(h->storage.failed_writes == 0);
    CHECK(h->storage.last_error_age_s == -1);
    CHECK(h->storage.background_errors == 0);
    CHECK_FALSE(h->storage.writes_stopped);
  }
  std::error_code ec;
  std::filesystem::remove_all(path, ec);
}
