// The store against a real RocksDB in a temp dir.

#include "storage/db.hpp"

#include <catch2/catch.hpp>

#include <filesystem>
#include <random>

#include <rocksdb/db.h>

using namespace troupe;

namespace {

class temp_store_dir {
 public:
  temp_store_dir() {
    std::random_device rd;
    path_ =
        (std::filesystem::temp_directory_path() / ("troupe-db-" + std::to_string(rd()))).string();
  }
  ~temp_store_dir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  [[nodiscard]] const std::string& path() const { return path_; }

 private:
  std::string path_;
};

std::unique_ptr<db> open_store(const std::string& path) {
  auto store = db::open(storage_options{path, false});
  if (!store) {
    FAIL(store.err().message);
  }
  return std::move(store).value();
}

constexpr uint64_t now_ms = 1'800'000'000'000;

}  // namespace

TEST_CASE("values round-trip per column, including empty keys and values") {
  temp_store_dir dir;
  auto store = open_store(dir.path());
  REQUIRE(store->put(column::cache, "k", "v").has_value());
  REQUIRE(store->put(column::sessions, "k", "other").has_value());
  REQUIRE(store->put(column::cache, "", "").has_value());
  CHECK(store->get(column::cache, "k", now_ms).value() == std::optional<std::string>("v"));
  CHECK(store->get(column::sessions, "k", now_ms).value() == std::optional<std::string>("other"));
  CHECK(store->get(column::cache, "", now_ms).value() == std::optional<std::string>(""));
  CHECK(store->get(column::cache, "absent", now_ms).value() == std::nullopt);
  REQUIRE(store->remove(column::cache, "k").has_value());
  CHECK(store->get(column::cache, "k", now_ms).value() == std::nullopt);
}

TEST_CASE("an expired value is never returned, and a sweep removes only expired ones") {
  temp_store_dir dir;
  auto store = open_store(dir.path());
  REQUIRE(store->put(column::cache, "short", "a", now_ms + 1000).has_value());
  REQUIRE(store->put(column::cache, "long", "b", now_ms + 60000).has_value());
  REQUIRE(store->put(column::cache, "forever", "c").has_value());
  CHECK(store->get(column::cache, "short", now_ms + 999).value() ==
        std::optional<std::string>("a"));
  CHECK(store->get(column::cache, "short", now_ms + 1000).value() == std::nullopt);
  auto swept = store->sweep_expired(column::cache, now_ms + 1000, 100);
  REQUIRE(swept.has_value());
  CHECK(*swept == 1);
  CHECK(store->get(column::cache, "long", now_ms + 1000).value() ==
        std::optional<std::string>("b"));
  CHECK(store->get(column::cache, "forever", UINT64_MAX).value() ==
        std::optional<std::string>("c"));
}

TEST_CASE("a sweep is bounded by its limit") {
  temp_store_dir dir;
  auto store = open_store(dir.path());
  for (int i = 0; i < 10; ++i) {
    REQUIRE(store->put(column::cache, "k" + std::to_string(i), "v", now_ms).has_value());
  }
  CHECK(store->sweep_expired(column::cache, now_ms, 4).value() == 4);
  CHECK(store->sweep_expired(column::cache, now_ms, 100).value() == 6);
}

TEST_CASE("values survive closing and reopening, boots are counted") {
  temp_store_dir dir;
  {
    auto store = open_store(dir.path());
    CHECK(store->boot_count() == 1);
    REQUIRE(store->put(column::transcripts, "agent-1", "hello").has_value());
  }
  auto again = open_store(dir.path());
  CHECK(again->boot_count() == 2);
  CHECK(again->get(column::transcripts, "agent-1", now_ms).value() ==
        std::optional<std::string>("hello"));
}

TEST_CASE("a second node cannot open a store in use, and says why") {
  temp_store_dir dir;
  auto store = open_store(dir.path());
  auto second = db::open(storage_options{dir.path(), false});
  REQUIRE_FALSE(second.has_value());
  CHECK(second.err().message.find("cannot open store at " + dir.path()) != std::string::npos);
  CHECK(second.err().message.find("lock") != std::string::npos);
}

TEST_CASE("foreign or damaged values are reported as corrupt, not misread") {
  temp_store_dir dir;
  {
    // Write raw bytes behind the store's back, as another program might.
    auto store = open_store(dir.path());
  }
  {
    rocksdb::DB* raw = nullptr;
    std::vector<std::string> names;
    REQUIRE(rocksdb::DB::ListColumnFamilies(rocksdb::DBOptions(), dir.path(), &names).ok());
    std::vector<rocksdb::ColumnFamilyDescriptor> descriptors;
    for (const auto& n : names) {
      descriptors.emplace_back(n, rocksdb::ColumnFamilyOptions());
    }
    std::vector<rocksdb::ColumnFamilyHandle*> handles;
    REQUIRE(rocksdb::DB::Open(rocksdb::DBOptions(), dir.path(), descriptors, &handles, &raw).ok());
    for (size_t i = 0; i < names.size(); ++i) {
      if (names[i] == "cache") {
        REQUIRE(raw->Put(rocksdb::WriteOptions(), handles[i], "foreign", "plain text").ok());
      }
    }
    for (auto* h : handles) {
      raw->DestroyColumnFamilyHandle(h);
    }
    delete raw;
  }
  auto store = open_store(dir.path());
  auto read = store->get(column::cache, "foreign", now_ms);
  REQUIRE_FALSE(read.has_value());
  CHECK(read.err().code == errc::corrupt);
  CHECK(read.err().message ==
        "value in cache is unreadable: not a troupe value (foreign or damaged bytes)");
  // Other entries still work.
  REQUIRE(store->put(column::cache, "ok", "v").has_value());
  CHECK(store->get(column::cache, "ok", now_ms).value() == std::optional<std::string>("v"));
}

TEST_CASE("the stored form pins magic, version and expiry") {
  auto bytes = encode_stored("xy", 0x0102030405060708ULL);
  REQUIRE(bytes.size() == 12);
  CHECK(static_cast<uint8_t>(bytes[0]) == 0x54);
  CHECK(static_cast<uint8_t>(bytes[1]) == value_format_version);
  CHECK(static_cast<uint8_t>(bytes[2]) == 0x08);  // little endian
  auto back = decode_stored(bytes);
  REQUIRE(back.has_value());
  CHECK(back->payload == "xy");
  CHECK(back->expires_at_ms == 0x0102030405060708ULL);
  bytes[1] = 9;
  auto newer = decode_stored(bytes);
  REQUIRE_FALSE(newer.has_value());
  CHECK(newer.err().message == "value format 9 is not the format this build reads (1)");
}
