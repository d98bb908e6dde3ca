// The watcher with the shards it serves, on real threads: a dependency that
// changes on disk drops its entries at once, without anyone reading them.

#include "actors/cache/watcher.hpp"

#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>

#include "actors/cache/cache.hpp"
#include "actors/cache/messages.hpp"
#include "storage/db.hpp"
#include "tests/support/actor_harness.hpp"
#include "tests/support/scratch_dir.hpp"

using namespace troupe;
using troupe::test::actor_harness;
using troupe::test::wait_until;

namespace {

node_config one_shard(const std::string& dir) {
  node_config config;
  config.cache.shards = 1;
  config.cache.dependency_roots = {dir + "/files"};
  config.node.data_dir = dir;
  return config;
}

}  // namespace

TEST_CASE("watcher: a changed dependency drops its entry without a read") {
  const troupe::test::scratch_dir scratch("troupe-watch");
  const auto& dir = scratch.path();
  std::filesystem::create_directories(dir + "/files");
  {
    actor_harness h(one_shard(dir));
    auto store = db::open(storage_options{dir + "/store", false});
    REQUIRE(store);
    supervisor_spec spec;
    spec.children = {make_cache(h.ctx(), std::shared_ptr<db>(std::move(*store))).child};
    h.ctx()->top_level_children = 1;
    h.start_root(std::move(spec));
    REQUIRE(wait_until([&] {
      return h.state_of("cache/watcher") == actor_state::running &&
             h.state_of("cache/shard-0") == actor_state::running;
    }));

    const auto file = dir + "/files/notes.md";
    std::ofstream(file) << "first draft";
    auto put =
        h.call("cache/shard-0",
               make_envelope(cache::put_type,
                             cache::put_request{"summary", "of the first draft", 0, {file}, {}}));
    REQUIRE_FALSE(put.is_error());
    auto stats = [&] {
      auto reply = h.call("cache/shard-0", make_envelope(cache::stats_type, empty_body{}));
      REQUIRE_FALSE(reply.is_error());
      return *decode<cache::stats>(reply.body);
    };
    // The watch is asked for as the put is stored; a change made before it
    // is in place is caught by the read-time check instead, so change the
    // file until the watcher has seen one.
    REQUIRE(wait_until([&] {
      std::ofstream(file, std::ios::app) << " and more";
      return stats().invalidations >= 1;
    }));
    auto after = stats();
    CHECK(after.entries == 0);
    CHECK(after.misses["total"] == 0);  // nobody read it
  }
}
