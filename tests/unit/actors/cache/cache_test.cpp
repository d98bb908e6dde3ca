// The cache shards alone, on CAF's test coordinator, over a real RocksDB in
// a temporary directory: the two tiers, dependencies, cascades across
// shards, a restart that keeps the cold tier, and the stats.

#include "actors/cache/cache.hpp"

#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>

#include "actors/cache/client.hpp"
#include "actors/cache/messages.hpp"
#include "storage/db.hpp"
#include "tests/support/deterministic.hpp"
#include "tests/support/scratch_dir.hpp"

using namespace troupe;
using troupe::test::deterministic_system;
using troupe::test::scratch_dir;

namespace {

node_config two_shards(const std::string& dir) {
  node_config config;
  config.cache.shards = 2;
  config.cache.dependency_roots = {dir + "/files"};
  config.node.data_dir = dir;
  return config;
}

struct shards {
  explicit shards(const scratch_dir& dir)
      : sys(two_shards(dir.path())), routing(sys.ctx()->config) {
    std::filesystem::create_directories(dir.path() + "/files");  // the dependency root
    auto opened = db::open(storage_options{dir.path() + "/store", false});
    REQUIRE(opened);
    store = std::move(*opened);
    supervisor_spec root;
    root.children.push_back(
        make_cache(sys.ctx(), store, cache_options{.detached = false, .watch = false}).child);
    sys.ctx()->top_level_children = 1;
    root_actor = spawn_supervisor(sys.system(), sys.ctx(), "", std::move(root));
    sys.run();
    REQUIRE(sys.ctx()->registry.current("cache/shard-0"));
    REQUIRE(sys.ctx()->registry.current("cache/shard-1"));
  }
  ~shards() {
    caf::anon_send_exit(root_actor, caf::exit_reason::user_shutdown);
    sys.run();
  }

  template <class Reply, class Request>
  Reply ask(const std::string& key, const char* type, const Request& body) {
    auto reply =
        sys.call(sys.ctx()->registry.current(routing.shard_for(key)), make_envelope(type, body));
    INFO(reply.type);
    REQUIRE_FALSE(reply.is_error());
    auto decoded = decode<Reply>(reply.body);
    REQUIRE(decoded);
    return *decoded;
  }
  cache::put_reply put(const std::string& key, const std::string& value,
                       std::vector<std::string> deps = {}, std::vector<std::string> dep_keys = {}) {
    return ask<cache::put_reply>(
        key, cache::put_type,
        cache::put_request{key, value, 0, std::move(deps), std::move(dep_keys)});
  }
  cache::get_reply get(const std::string& key) {
    return ask<cache::get_reply>(key, cache::get_type, cache::get_request{key});
  }

  /// A key that lives on shard `index`.
  std::string key_on(uint32_t index, const std::string& stem) const {
    for (int i = 0;; ++i) {
      auto key = stem + std::to_string(i);
      if (routing.shard_for(key) == "cache/shard-" + std::to_string(index)) {
        return key;
      }
    }
  }

  deterministic_system sys;
  cache::client routing;
  std::shared_ptr<db> store;
  caf::actor root_actor;
};

}  // namespace

TEST_CASE("cache shards: a put is a hot hit, a delete a miss") {
  scratch_dir dir("troupe-shards");
  shards c(dir);
  CHECK(c.put("greeting", "hello").key == "greeting");
  auto hit = c.get("greeting");
  CHECK(hit.found);
  CHECK(hit.value == "hello");
  CHECK(hit.tier == "hot");
  auto gone = c.ask<cache::del_reply>("greeting", cache::del_type, cache::del_request{"greeting"});
  CHECK(gone.deleted);
  auto miss = c.get("greeting");
  CHECK_FALSE(miss.found);
  CHECK(miss.miss == "absent");
}

TEST_CASE("cache shards: an entry whose file changed is a stale miss") {
  scratch_dir dir("troupe-shards");
  shards c(dir);
  const auto file = dir.path() + "/files/input.txt";
  std::ofstream(file) << "version one";
  c.put("summary", "about version one", {file});
  CHECK(c.get("summary").found);
  std::ofstream(file, std::ios::trunc) << "version two, longer";
  auto stale = c.get("summary");
  CHECK_FALSE(stale.found);
  CHECK(stale.miss == "stale");
}

TEST_CASE("cache shards: dropping a key drops its dependents on the other shard") {
  scratch_dir dir("troupe-shards");
  shards c(dir);
  const auto base = c.key_on(0, "base-");
  const auto derived = c.key_on(1, "derived-");
  c.put(base, "facts");
  auto put = c.put(derived, "built on the facts", {}, {base});
  CHECK(put.dep_keys == 1);
  auto dropped = c.ask<cache::del_reply>(base, cache::del_type, cache::del_request{base});
  CHECK(dropped.deleted);
  CHECK(dropped.cascaded >= 1);
  c.sys.run();  // the cascade reaches shard-1 as a request of its own
  auto miss = c.get(derived);
  CHECK_FALSE(miss.found);
}

TEST_CASE("cache shards: a restarted shard serves its entries from the cold tier") {
  scratch_dir dir("troupe-shards");
  shards c(dir);
  const auto key = c.key_on(1, "kept-");
  c.put(key, "on disk too");
  auto shard = c.sys.ctx()->registry.current("cache/shard-1");
  // A failure (not a shutdown): its supervisor restarts it.
  shard->enqueue(
      nullptr, caf::make_message_id(),
      caf::make_message(caf::exit_msg{
          shard.address(), caf::make_error(caf::sec::runtime_error, std::string("crash"))}),
      nullptr);
  c.sys.run();
  c.sys.advance(std::chrono::milliseconds(1000));  // past any restart backoff
  auto next = c.sys.ctx()->registry.current("cache/shard-1");
  REQUIRE(next);
  CHECK(next != shard);
  auto hit = c.get(key);
  CHECK(hit.found);
  CHECK(hit.value == "on disk too");
  CHECK(hit.tier == "cold");
}

TEST_CASE("cache shards: each answers cache.stats with its own figures") {
  scratch_dir dir("troupe-shards");
  shards c(dir);
  const auto key = c.key_on(0, "counted-");
  c.put(key, "v");
  (void)c.get(key);
  (void)c.get(c.key_on(0, "absent-"));
  auto stats = c.ask<cache::stats>(key, cache::stats_type, empty_body{});
  CHECK(stats.puts == 1);
  CHECK(stats.entries == 1);
  CHECK(stats.hits.total == 1);
  CHECK(stats.misses["absent"] == 1);
}
