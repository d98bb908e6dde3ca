// The hot tier of a cache shard: a byte-budgeted LRU with TTL. Expected byte
// counts are written out by hand (overhead + key + value + deps) rather than
// taken from `accounted_bytes`, so a change in accounting fails here.

#include "actors/cache/lru_cache.hpp"

#include <catch2/catch.hpp>

#include <string>
#include <utility>
#include <vector>

using namespace troupe;

namespace {

constexpr uint64_t overhead = lru_cache::entry_overhead_bytes;

cache_entry value_of(std::string value, uint64_t expires_at_ms = 0,
                     std::vector<std::string> deps = {}) {
  return cache_entry{std::make_shared<const std::string>(std::move(value)), expires_at_ms,
                     std::move(deps)};
}

bool has(lru_cache& cache, std::string_view key, uint64_t now_ms = 0) {
  return cache.get(key, now_ms) != nullptr;
}

}  // namespace

TEST_CASE("eviction drops the least recently used entry, and a get refreshes") {
  // Each entry: 1-byte key + 1-byte value; the budget holds exactly three.
  lru_cache cache(3 * (overhead + 2));
  REQUIRE(cache.put("a", value_of("1"), 0));
  REQUIRE(cache.put("b", value_of("2"), 0));
  REQUIRE(cache.put("c", value_of("3"), 0));
  REQUIRE(cache.size() == 3);

  // Without this get, "a" would be the oldest and go first.
  REQUIRE(has(cache, "a"));
  REQUIRE(cache.put("d", value_of("4"), 0));

  CHECK(cache.size() == 3);
  CHECK(cache.counters().evictions == 1);
  CHECK_FALSE(has(cache, "b"));
  CHECK(has(cache, "a"));
  CHECK(has(cache, "c"));
  CHECK(has(cache, "d"));
}

TEST_CASE("bytes track puts, replacements and erases exactly") {
  lru_cache cache(10'000);
  CHECK(cache.bytes() == 0);

  REQUIRE(cache.put("k1", value_of("hello", 0, {"ab", "cde"}), 0));
  const uint64_t k1_bytes = overhead + 2 + 5 + 2 + 3;
  CHECK(cache.bytes() == k1_bytes);
  CHECK(lru_cache::accounted_bytes("k1", value_of("hello", 0, {"ab", "cde"})) == k1_bytes);

  REQUIRE(cache.put("k22", value_of(""), 0));
  const uint64_t k22_bytes = overhead + 3;
  CHECK(cache.bytes() == k1_bytes + k22_bytes);

  // Replacement charges the new size only, not old + new.
  REQUIRE(cache.put("k1", value_of("hi"), 0));
  const uint64_t k1_new_bytes = overhead + 2 + 2;
  CHECK(cache.bytes() == k1_new_bytes + k22_bytes);
  CHECK(cache.size() == 2);

  CHECK(cache.erase("k1"));
  CHECK(cache.bytes() == k22_bytes);
  CHECK_FALSE(cache.erase("k1"));
  CHECK(cache.bytes() == k22_bytes);

  auto taken = cache.take("k22");
  REQUIRE(taken.has_value());
  CHECK(cache.bytes() == 0);
  CHECK(cache.size() == 0);
  CHECK_FALSE(cache.take("k22").has_value());
}

TEST_CASE("replacing an entry updates it in place and makes it most recent") {
  lru_cache cache(2 * (overhead + 2));
  REQUIRE(cache.put("a", value_of("1"), 0));
  REQUIRE(cache.put("b", value_of("2"), 0));

  // "a" grows by one byte, so one entry must go: "b" (now the oldest), never
  // the entry just written.
  REQUIRE(cache.put("a", value_of("11"), 0));
  CHECK(cache.size() == 1);
  CHECK(cache.bytes() == overhead + 1 + 2);
  CHECK(cache.counters().evictions == 1);
  const cache_entry* a = cache.get("a", 0);
  REQUIRE(a != nullptr);
  CHECK((*a->value) == "11");
  CHECK_FALSE(has(cache, "b"));
}

TEST_CASE("an entry larger than the whole budget is refused without evicting") {
  const uint64_t budget = 2 * (overhead + 2);
  lru_cache cache(budget);
  std::vector<std::string> evicted;
  cache.set_eviction_listener(
      [&evicted](const std::string& key, const cache_entry&) { evicted.push_back(key); });
  REQUIRE(cache.put("a", value_of("1"), 0));
  REQUIRE(cache.put("b", value_of("2"), 0));
  const uint64_t bytes_before = cache.bytes();

  // With a 1-byte key: overhead + 1 + (budget - overhead) = one byte over.
  const std::string big(budget - overhead, 'x');
  CHECK_FALSE(cache.put("c", value_of(big), 0));
  CHECK(cache.size() == 2);
  CHECK(cache.bytes() == bytes_before);
  CHECK(cache.counters().evictions == 0);
  CHECK(cache.counters().inserts == 2);
  CHECK(evicted.empty());

  SECTION("a refused replacement keeps the old value") {
    CHECK_FALSE(cache.put("a", value_of(big), 0));
    const cache_entry* a = cache.get("a", 0);
    REQUIRE(a != nullptr);
    CHECK((*a->value) == "1");
    CHECK(cache.bytes() == bytes_before);
  }

  SECTION("an entry of exactly the budget is accepted and evicts the rest") {
    CHECK(cache.put("c", value_of(big.substr(1)), 0));
    CHECK(cache.size() == 1);
    CHECK(cache.bytes() == budget);
    CHECK(evicted == std::vector<std::string>{"a", "b"});
  }
}

TEST_CASE("an entry is live until its expiry instant and gone at it") {
  lru_cache cache(10'000);
  REQUIRE(cache.put("t", value_of("v", 1000), 0));
  REQUIRE(cache.put("forever", value_of("v", 0), 0));

  CHECK(has(cache, "t", 999));
  CHECK(cache.counters().expired == 0);

  CHECK_FALSE(has(cache, "t", 1000));
  CHECK(cache.counters().expired == 1);
  CHECK(cache.counters().misses == 1);
  // Removed on the spot, and its bytes returned.
  CHECK(cache.size() == 1);
  CHECK(cache.bytes() == overhead + 7 + 1);

  // A second get is a plain miss: nothing left to expire.
  CHECK_FALSE(has(cache, "t", 1000));
  CHECK(cache.counters().expired == 1);

  // expires_at_ms = 0 means never.
  CHECK(has(cache, "forever", UINT64_MAX));
}

TEST_CASE("the eviction listener sees evicted entries in LRU order, still intact") {
  lru_cache cache(3 * (overhead + 2));
  std::vector<std::pair<std::string, std::string>> evicted;
  cache.set_eviction_listener([&evicted](const std::string& key, const cache_entry& entry) {
    evicted.emplace_back(key, *entry.value);
  });
  REQUIRE(cache.put("a", value_of("1"), 0));
  REQUIRE(cache.put("b", value_of("2"), 0));
  REQUIRE(cache.put("c", value_of("3"), 0));
  REQUIRE(has(cache, "a"));  // order, oldest first: b, c, a

  REQUIRE(cache.put("d", value_of("4"), 0));  // evicts b
  cache.set_budget(overhead + 2);             // evicts c, then a

  using pair = std::pair<std::string, std::string>;
  CHECK(evicted == std::vector<pair>{{"b", "2"}, {"c", "3"}, {"a", "1"}});
  CHECK(cache.counters().evictions == 3);

  // Erase, take and expiry are not evictions: the listener stays silent.
  REQUIRE(cache.put("e", value_of("5", 10), 0));  // evicts d
  CHECK_FALSE(has(cache, "e", 10));
  REQUIRE(cache.put("f", value_of("6"), 0));
  CHECK(cache.erase("f"));
  CHECK(evicted.size() == 4);
  CHECK(evicted.back() == pair{"d", "4"});
}

TEST_CASE("set_budget shrinks by evicting and grows without evicting") {
  lru_cache cache(4 * (overhead + 2));
  for (const char* key : {"a", "b", "c", "d"}) {
    REQUIRE(cache.put(key, value_of("v"), 0));
  }
  cache.set_budget(4 * (overhead + 2) + 1000);
  CHECK(cache.size() == 4);
  CHECK(cache.counters().evictions == 0);

  // One byte short of two entries leaves one.
  cache.set_budget(2 * (overhead + 2) - 1);
  CHECK(cache.budget_bytes() == 2 * (overhead + 2) - 1);
  CHECK(cache.size() == 1);
  CHECK(cache.bytes() == overhead + 2);
  CHECK(cache.counters().evictions == 3);
  CHECK(has(cache, "d"));

  cache.set_budget(0);
  CHECK(cache.size() == 0);
  CHECK(cache.bytes() == 0);
  CHECK_FALSE(cache.put("e", value_of(""), 0));
}

TEST_CASE("an empty key with an empty value is an ordinary entry") {
  lru_cache cache(10'000);
  REQUIRE(cache.put("", value_of(""), 0));
  CHECK(cache.size() == 1);
  CHECK(cache.bytes() == overhead);
  const cache_entry* entry = cache.get("", 0);
  REQUIRE(entry != nullptr);
  CHECK((*entry->value).empty());
  CHECK_FALSE(has(cache, "x"));
  CHECK(cache.erase(""));
  CHECK(cache.bytes() == 0);
  CHECK_FALSE(has(cache, ""));
}

TEST_CASE("take hands back the whole entry and removes it") {
  lru_cache cache(10'000);
  REQUIRE(cache.put("k", value_of("v", 500, {"dep1", "dep2"}), 0));
  auto taken = cache.take("k");
  REQUIRE(taken.has_value());
  CHECK((*taken->value) == "v");
  CHECK(taken->expires_at_ms == 500);
  CHECK(taken->deps == std::vector<std::string>{"dep1", "dep2"});
  CHECK(cache.size() == 0);
  CHECK_FALSE(has(cache, "k"));
}

TEST_CASE("counters count each operation exactly once") {
  lru_cache cache(2 * (overhead + 2));
  REQUIRE(cache.put("a", value_of("1", 100), 0));  // insert
  REQUIRE(cache.put("b", value_of("2"), 0));       // insert
  REQUIRE(cache.put("b", value_of("3"), 0));       // insert (replacement)
  CHECK(has(cache, "b", 50));                      // hit
  CHECK(has(cache, "a", 50));                      // hit
  CHECK_FALSE(has(cache, "zz", 50));               // miss
  CHECK_FALSE(has(cache, "a", 100));               // miss + expired
  REQUIRE(cache.put("c", value_of("4"), 0));       // insert
  REQUIRE(cache.put("d", value_of("5"), 0));       // insert + eviction of b
  CHECK_FALSE(cache.put("e", value_of(std::string(1000, 'x')), 0));  // refused: nothing
  CHECK(cache.erase("c"));                          // nothing
  CHECK(cache.take("d").has_value());               // nothing

  const lru_cache_counters& c = cache.counters();
  CHECK(c.inserts == 5);
  CHECK(c.hits == 2);
  CHECK(c.misses == 2);
  CHECK(c.expired == 1);
  CHECK(c.evictions == 1);
}
