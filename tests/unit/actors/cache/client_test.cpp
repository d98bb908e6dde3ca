// The cache family's client: where keys go, how fan-out answers add up,
// and hot reads of what shards publish (counted in the stats).

#include "actors/cache/client.hpp"

#include <catch2/catch.hpp>

#include <set>

#include "actors/cache/hot_view.hpp"
#include "actors/cache/messages.hpp"
#include "runtime/config/node_config.hpp"
#include "runtime/metrics/metrics.hpp"
#include "tests/support/round_trip.hpp"

using namespace troupe;
using troupe::test::round_trips;

namespace {

node_config shards(uint32_t n) {
  node_config cfg;
  cfg.cache.shards = n;
  return cfg;
}

cache::stats one_shard(uint64_t hot, uint64_t cold, uint64_t absent) {
  cache::stats s;
  s.entries = 3;
  s.bytes = 300;
  s.hits = {hot, cold, hot + cold};
  s.misses = {{"absent", absent}, {"expired", 1}, {"stale", 0}, {"corrupt", 0},
              {"total", absent + 1}};
  s.evictions = 2;
  s.invalidations = 4;
  s.cascaded = 1;
  s.cascades_stopped = 1;
  s.puts = 7;
  return s;
}

}  // namespace

TEST_CASE("cache client: a key has one shard, the same as the shards' own hashing") {
  const cache::client client(shards(4));
  REQUIRE(client.shards().size() == 4);
  std::set<std::string> used;
  for (int i = 0; i < 200; ++i) {
    const auto key = "key-" + std::to_string(i);
    const auto path = client.shard_for(key);
    CHECK(path == "cache/shard-" + std::to_string(cache::key_hash(key) % 4));
    used.insert(path);
  }
  CHECK(used.size() == 4);
}

TEST_CASE("cache client: the shards' stats add up, with the hot hits it served itself") {
  auto view = std::make_shared<cache::hot_view>();
  metrics_registry metrics;
  const cache::client client(shards(1), {view}, &metrics);
  view->set("k", std::make_shared<const std::string>("v"), 0);
  CHECK(client.hot_get("k") == "v");
  CHECK_FALSE(client.hot_get("absent"));
  CHECK(metrics.counter(cache::hits_metric, "", {{"tier", "hot"}}).value() == 1);

  auto total = client.add_stats({make_envelope("cache.stats.reply", one_shard(5, 2, 3)),
                                 make_envelope("cache.stats.reply", one_shard(1, 0, 0))});
  REQUIRE_FALSE(total.is_error());
  auto s = decode<cache::stats>(total.body);
  REQUIRE(s);
  CHECK(s->shards == 1);
  CHECK(s->entries == 6);
  CHECK(s->hits.hot == 5 + 1 + 1);
  CHECK(s->hits.cold == 2);
  CHECK(s->hits.total == 9);
  CHECK(s->misses["absent"] == 3);
  CHECK(s->misses["total"] == 5);
  CHECK(s->hit_ratio == Approx(9.0 / 14.0));
  CHECK(s->puts == 14);
  CHECK(s->cascades_stopped == 2);

  const auto failed = make_error_envelope(make_error(errc::timeout, "shard-1 did not answer"));
  CHECK(client.add_stats({make_envelope("cache.stats.reply", one_shard(1, 1, 1)), failed})
            .is_error());
  CHECK(cache::client::add_invalidations({failed}).is_error());
  auto inv = decode<cache::invalidate_reply>(
      cache::client::add_invalidations(
          {make_envelope("r", cache::invalidate_reply{3, 1, false}),
           make_envelope("r", cache::invalidate_reply{2, 0, true})})
          .body);
  REQUIRE(inv);
  CHECK(inv->invalidated == 5);
  CHECK(inv->cascaded == 1);
  CHECK(inv->cascade_stopped);
}

TEST_CASE("cache client: a routing-only client serves no hot reads") {
  const cache::client client(shards(2));
  CHECK_FALSE(client.hot_get("anything"));
}

TEST_CASE("cache messages: the stats round-trip through msgpack") {
  round_trips(one_shard(1, 2, 3));
}
