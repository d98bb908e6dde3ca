// The store's writer thread against a real RocksDB in a temp dir: the order
// of writes, what it applies before it goes, and removals by prefix past
// one scan page.

#include "storage/writer.hpp"

#include <catch2/catch.hpp>

#include <memory>
#include <string>

#include "storage/db.hpp"
#include "tests/support/scratch_dir.hpp"

using namespace troupe;

namespace {

std::shared_ptr<db> open_store(const std::string& path) {
  auto store = db::open(storage_options{path, false});
  if (!store) {
    FAIL(store.err().message);
  }
  return std::move(store).value();
}

}  // namespace

TEST_CASE("the writer applies writes in the order posted, and all of them before it goes") {
  test::scratch_dir dir;
  auto store = open_store(dir.path() + "/store");
  {
    store_writer writer(store, "test");
    for (int i = 0; i < 2500; ++i) {
      writer.put(column::sessions, "sb/a/" + std::to_string(10000 + i), "x");
    }
    writer.put(column::sessions, "sb/b/1", "kept");
    writer.put(column::sessions, "k", "first");
    writer.put(column::sessions, "k", "second");  // the later put wins
    writer.remove_prefix(column::sessions, "sb/a/");
  }
  CHECK(store->scan_prefix(column::sessions, "sb/a/", 0, 10).value().empty());
  CHECK(store->get(column::sessions, "k", 0).value() == "second");
  {
    store_writer writer(store, "test");
    writer.put(column::sessions, "late", "written before the writer goes");
    writer.remove(column::sessions, "sb/b/1");
  }
  CHECK(store->get(column::sessions, "late", 0).value() == "written before the writer goes");
  CHECK_FALSE(store->get(column::sessions, "sb/b/1", 0).value().has_value());
}

TEST_CASE("a removal by prefix goes on past one scan page, and stops at the prefix") {
  test::scratch_dir dir;
  auto store = open_store(dir.path() + "/store");
  {
    store_writer writer(store, "test");
    // More keys than one scan reads (10,000), around keys it must keep.
    writer.put(column::transcripts, "t/a", "before the prefix");
    for (int i = 0; i < 10050; ++i) {
      writer.put(column::transcripts, "t/b/" + std::to_string(100000 + i), "x");
    }
    writer.put(column::transcripts, "t/c", "after the prefix");
    writer.remove_prefix(column::transcripts, "t/b/");
  }
  CHECK(store->scan_prefix(column::transcripts, "t/b/", 0, 10).value().empty());
  CHECK(store->get(column::transcripts, "t/a", 0).value() == "before the prefix");
  CHECK(store->get(column::transcripts, "t/c", 0).value() == "after the prefix");
}

TEST_CASE("values with an expiry are written with it") {
  test::scratch_dir dir;
  auto store = open_store(dir.path() + "/store");
  {
    store_writer writer(store, "test");
    writer.put(column::cache, "old", "v", 1000);
    writer.put(column::cache, "new", "v", 5000);
  }
  // Read at 2,000 ms: the first has expired, the second has not.
  CHECK_FALSE(store->get(column::cache, "old", 2000).value().has_value());
  CHECK(store->get(column::cache, "new", 2000).value() == "v");
}
