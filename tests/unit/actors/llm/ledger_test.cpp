// The token ledger against a real RocksDB in a temp dir.

#include "actors/llm/ledger.hpp"

#include <catch2/catch.hpp>

#include <filesystem>
#include <random>

#include <nlohmann/json.hpp>

#include "storage/db.hpp"
#include "storage/writer.hpp"

using namespace troupe;
using namespace troupe::llm;

namespace {

struct temp_dir {
  temp_dir() {
    std::random_device rd;
    path = (std::filesystem::temp_directory_path() / ("troupe-ledger-" + std::to_string(rd())))
               .string();
  }
  ~temp_dir() {
    std::error_code ec;
    std::filesystem::remove_all(path, ec);
  }
  std::string path;
};

std::shared_ptr<db> open_store(const std::string& path) {
  auto store = db::open(storage_options{path, false});
  REQUIRE(store);
  return std::shared_ptr<db>(std::move(store).value());
}

ledger_entry upstream_call(std::string model, std::string client, uint64_t in, uint64_t out) {
  ledger_entry e{std::move(model), std::move(client), "reviewer", "code-review", {}};
  e.counts.requests = 1;
  e.counts.input_tokens = in;
  e.counts.output_tokens = out;
  return e;
}

ledger_entry cache_hit(std::string model, std::string client, uint64_t in, uint64_t out) {
  ledger_entry e{std::move(model), std::move(client), "", "", {}};
  e.counts.requests = 1;
  e.counts.cache_hits = 1;
  e.counts.served_input_tokens = in;
  e.counts.served_output_tokens = out;
  return e;
}

}  // namespace

TEST_CASE("ledger: books per model, client, agent and persona, and the saved share") {
  ledger book(nullptr, nullptr);
  book.book(upstream_call("claude-a", "t1", 100, 20));
  book.book(upstream_call("claude-b", "t2", 50, 10));
  book.book(cache_hit("claude-a", "t1", 100, 20));

  CHECK(book.total().requests == 3);
  CHECK(book.total().spent() == 180);
  CHECK(book.client("t1").spent() == 120);
  CHECK(book.client("t1").cache_hits == 1);
  CHECK(book.client("nobody").requests == 0);
  CHECK(book.total().saved_fraction() == Approx(120.0 / 300.0));

  const auto j = book.to_json();
  CHECK(j["total"]["served_tokens"] == 120);
  CHECK(j["by_model"]["claude-a"]["requests"] == 2);
  CHECK(j["by_model"]["claude-b"]["input_tokens"] == 50);
  CHECK(j["by_client"]["t2"]["output_tokens"] == 10);
  CHECK(j["by_agent"]["reviewer"]["requests"] == 2);
  CHECK_FALSE(j["by_agent"].contains(""));
  CHECK(j["by_persona"]["code-review"]["requests"] == 2);
  CHECK_FALSE(j["by_persona"].contains(""));
}

TEST_CASE("ledger: prompt-cache reads and writes are billed input at their own prices") {
  ledger book(nullptr, nullptr);
  auto e = upstream_call("claude-a", "t1", 100, 20);
  e.counts.cache_creation_input_tokens = 2000;  // billed 1.25 each
  e.counts.cache_read_input_tokens = 0;
  book.book(e);
  e.counts.cache_creation_input_tokens = 0;
  e.counts.cache_read_input_tokens = 2000;  // billed 0.1 each
  book.book(e);
  const auto& total = book.total();
  CHECK(total.billed_input_tokens() == Approx(200 + 2500 + 200));
  // Without prompt caching the 4000 cached tokens would have cost 4000.
  CHECK(total.prompt_cache_saved_tokens() == Approx(4200 - 2900));
  const auto j = book.to_json();
  CHECK(j["total"]["billed_input_tokens"] == 2900);
  CHECK(j["by_agent"]["reviewer"]["prompt_cache_saved_tokens"] == 1300);
  // Before a write is read back, prompt caching has cost more than it saved.
  ledger first(nullptr, nullptr);
  auto write = upstream_call("claude-a", "t1", 0, 0);
  write.counts.cache_creation_input_tokens = 1000;
  first.book(write);
  CHECK(first.to_json()["total"]["prompt_cache_saved_tokens"] == -250);
}

TEST_CASE("ledger: client-chosen names beyond the bound share one row") {
  ledger book(nullptr, nullptr);
  for (size_t i = 0; i < ledger::names_max + 50; ++i) {
    book.book(upstream_call("model-" + std::to_string(i), "t1", 1, 1));
  }
  const auto j = book.to_json();
  CHECK(j["by_model"].size() == ledger::names_max + 1);
  CHECK(j["by_model"]["other"]["requests"] == 50);
  CHECK(j["by_model"]["model-0"]["requests"] == 1);
  // A name that has its row keeps it.
  book.book(upstream_call("model-0", "t1", 1, 1));
  CHECK(book.to_json()["by_model"]["model-0"]["requests"] == 2);
  CHECK(j["total"]["requests"] == ledger::names_max + 50);
}

TEST_CASE("ledger: an empty ledger saves nothing and divides by nothing") {
  ledger book(nullptr, nullptr);
  CHECK(book.total().saved_fraction() == 0.0);
  CHECK(book.to_json()["total"]["requests"] == 0);
}

TEST_CASE("ledger: survives a restart through the store, writing only changed rows") {
  temp_dir dir;
  {
    auto store = open_store(dir.path);
    auto writer = std::make_shared<store_writer>(store, "test");
    ledger book(store, writer);
    REQUIRE(book.load());
    book.book(upstream_call("claude-a", "t1", 10, 5));
    CHECK(book.dirty());
    book.flush();
    CHECK_FALSE(book.dirty());
    book.book(cache_hit("claude-a", "t1", 10, 5));
    book.flush();
  }  // the writer applies what it was given before it goes
  auto store = open_store(dir.path);
  ledger again(store, nullptr);
  REQUIRE(again.load());
  CHECK(again.total().requests == 2);
  CHECK(again.total().served_output_tokens == 5);
  CHECK(again.client("t1").input_tokens == 10);
  // Rows with another prefix in the same column family are not ledger rows.
  REQUIRE(store->put(column::ledger, "answer/llm:abc", "Mxyz"));
  ledger third(store, nullptr);
  REQUIRE(third.load());
  CHECK(third.total().requests == 2);
}

TEST_CASE("ledger: a damaged row is reported, not guessed") {
  temp_dir dir;
  auto store = open_store(dir.path);
  REQUIRE(store->put(column::ledger, "model/x", "not json"));
  ledger book(store, nullptr);
  auto loaded = book.load();
  REQUIRE_FALSE(loaded);
  CHECK(loaded.err().code == errc::corrupt);
  CHECK(loaded.err().message.find("model/x") != std::string::npos);
}
