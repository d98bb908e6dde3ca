// The hot view a cache shard publishes: what readers see after each change
// the shard makes, expiry on the reader's side, and readers that keep
// reading while the shard rewrites the same bucket.

#include "actors/cache/hot_view.hpp"

#include <catch2/catch.hpp>

#include <atomic>
#include <string>
#include <thread>
#include <vector>

using troupe::cache::hot_view;

TEST_CASE("hot view: readers see what the shard published, until it withdraws it") {
  hot_view view;
  CHECK_FALSE(view.get("k", 0));
  view.set("k", std::make_shared<const std::string>("one"), 0);
  view.set("other", std::make_shared<const std::string>("two"), 0);
  CHECK(view.get("k", 5) == "one");
  view.set("k", std::make_shared<const std::string>("replaced"), 0);
  CHECK(view.get("k", 5) == "replaced");
  CHECK(view.get("other", 5) == "two");
  view.erase("k");
  CHECK_FALSE(view.get("k", 5));
  CHECK(view.get("other", 5) == "two");
  view.erase("never there");
  view.clear();
  CHECK_FALSE(view.get("other", 5));
}

TEST_CASE("hot view: an entry past its expiry is not served") {
  hot_view view;
  view.set("k", std::make_shared<const std::string>("v"), 1000);
  CHECK(view.get("k", 999) == "v");
  CHECK_FALSE(view.get("k", 1000));
  CHECK_FALSE(view.get("k", 5000));
}

TEST_CASE("hot view: a reader never sees a torn or foreign value while the writer works") {
  hot_view view;
  // Keys that share buckets with the one read: every write copies buckets
  // the reader may be holding.
  std::vector<std::string> keys;
  for (int i = 0; i < 20'000; ++i) {
    keys.push_back("key-" + std::to_string(i));
  }
  view.set("watched", std::make_shared<const std::string>("value-0"), 0);
  std::atomic<bool> done{false};
  std::atomic<uint64_t> bad{0};
  std::atomic<uint64_t> reads{0};
  std::thread reader([&] {
    while (!done.load()) {
      auto v = view.get("watched", 1);
      if (!v || !v->starts_with("value-")) {
        ++bad;
      }
      ++reads;
    }
  });
  for (int round = 0; round < 3; ++round) {
    for (size_t i = 0; i < keys.size(); ++i) {
      view.set(keys[i], std::make_shared<const std::string>(std::string(100, 'x')), 0);
      if (i % 1000 == 0) {
        view.set("watched", std::make_shared<const std::string>("value-" + std::to_string(i)), 0);
      }
    }
    for (const auto& k : keys) {
      view.erase(k);
    }
  }
  // The reader has read at least once while the writer worked (waited on,
  // not slept for).
  while (reads.load() == 0) {
    std::this_thread::yield();
  }
  done = true;
  reader.join();
  CHECK(bad.load() == 0);
  CHECK(view.get("watched", 1)->starts_with("value-"));
}
