// The cache through a real node: HTTP routes, dependency invalidation on
// read, the cold tier across a SIGKILL, stats, limits, troupectl.

#include <signal.h>

#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>
#include <functional>

#include <nlohmann/json.hpp>

#include "client/http_client.hpp"
#include "storage/db.hpp"
#include "tests/integration/node_process.hpp"
#include "tests/support/wait.hpp"

using namespace troupe;
using namespace troupe::test;
using json = nlohmann::json;

namespace {

http_client client_of(const node_process& node) {
  auto url = parse_node_url(node.url());
  REQUIRE(url.has_value());
  return http_client(*url, node.token(), 10000);
}

http_response call(http_client& http, std::string_view method, const std::string& target,
                   std::string body = {}) {
  auto r = http.request(method, target, std::move(body), "application/octet-stream");
  if (!r) {
    FAIL("request failed: " << r.err().message);
  }
  return std::move(r).value();
}

std::string cache_header(const http_response& r) {
  return std::string(find_header(r, "X-Troupe-Cache"));
}

void write_file(const std::string& path, const std::string& text) {
  std::ofstream(path, std::ios::binary | std::ios::trunc) << text;
}

}  // namespace

TEST_CASE("put, hit, and a dependency edit turns the next get into a miss") {
  temp_dir dir;
  const auto dep = dir.path() + "/notes.txt";
  write_file(dep, "version one");
  node_process node({});
  REQUIRE(node.started());
  auto http = client_of(node);

  auto put = call(http, "PUT", "/v1/cache/answer?ttl=600&dep=" + dep, "42");
  REQUIRE(put.status == 200);
  CHECK(json::parse(put.body)["deps"] == 1);

  auto hit = call(http, "GET", "/v1/cache/answer");
  REQUIRE(hit.status == 200);
  CHECK(hit.body == "42");
  CHECK(cache_header(hit) == "hit-hot");

  SECTION("an edit with the same size and the same mtime is still caught") {
    const auto mtime = std::filesystem::last_write_time(dep);
    write_file(dep, "version two");  // same length
    std::filesystem::last_write_time(dep, mtime);
    auto miss = call(http, "GET", "/v1/cache/answer");
    CHECK(miss.status == 404);
    // Dropped at this read (stale) or already by the watcher (absent).
    CHECK((cache_header(miss) == "miss-stale" || cache_header(miss) == "miss-absent"));
  }
  SECTION("a deleted dependency is caught") {
    std::filesystem::remove(dep);
    CHECK(call(http, "GET", "/v1/cache/answer").status == 404);
  }
  // Either way the entry is gone for good.
  CHECK(cache_header(call(http, "GET", "/v1/cache/answer")) == "miss-absent");
  auto stats = json::parse(call(http, "GET", "/v1/cache").body);
  CHECK(stats["invalidations"] == 1);
  CHECK(stats["hits"]["hot"] == 1);
  // Counts are integers on the wire ("0", not "0.0").
  CHECK(stats["entries"].is_number_unsigned());
  CHECK(stats["bytes"].is_number_unsigned());
}

TEST_CASE("a directory dependency is invalidated by a change anywhere below it") {
  temp_dir dir;
  std::filesystem::create_directories(dir.path() + "/src/lib");
  write_file(dir.path() + "/src/lib/a.cpp", "int a;");
  node_process node({});
  REQUIRE(node.started());
  auto http = client_of(node);
  REQUIRE(call(http, "PUT", "/v1/cache/review?dep=" + dir.path() + "/src", "ok").status == 200);
  CHECK(call(http, "GET", "/v1/cache/review").status == 200);
  write_file(dir.path() + "/src/lib/b.cpp", "int b;");
  CHECK(call(http, "GET", "/v1/cache/review").status == 404);
}

TEST_CASE("cold entries survive a SIGKILL of the node") {
  temp_dir dir;
  node_process::options o;
  o.data_dir = dir.path() + "/data";
  {
    node_process node(o);
    REQUIRE(node.started());
    auto http = client_of(node);
    REQUIRE(call(http, "PUT", "/v1/cache/durable", "still here").status == 200);
    CHECK(node.stop(SIGKILL) == 128 + SIGKILL);
  }
  node_process again(o);
  REQUIRE(again.started());
  auto http = client_of(again);
  auto hit = call(http, "GET", "/v1/cache/durable");
  INFO(hit.body);
  REQUIRE(hit.status == 200);
  CHECK(hit.body == "still here");
  CHECK(cache_header(hit) == "hit-cold");
  CHECK(cache_header(call(http, "GET", "/v1/cache/durable")) == "hit-hot");  // promoted
}

TEST_CASE("empty values work, empty keys, oversized values and bad dependencies are refused") {
  node_process::options o;
  o.env["TROUPE_CACHE_VALUE_BYTES_MAX"] = "1000";
  node_process node(o);
  REQUIRE(node.started());
  auto http = client_of(node);
  for (const char* method : {"PUT", "GET", "DELETE"}) {
    auto no_key = call(http, method, "/v1/cache/", "");
    CHECK(no_key.status == 400);
    CHECK(json::parse(no_key.body)["error"]["message"].get<std::string>().find("empty") !=
          std::string::npos);
  }
  REQUIRE(call(http, "PUT", "/v1/cache/nothing", "").status == 200);
  auto empty = call(http, "GET", "/v1/cache/nothing");
  CHECK(empty.status == 200);
  CHECK(empty.body.empty());
  REQUIRE(call(http, "PUT", "/v1/cache/max", std::string(1000, 'x')).status == 200);
  auto big = call(http, "PUT", "/v1/cache/big", std::string(1001, 'x'));
  CHECK(big.status == 413);
  CHECK(json::parse(big.body)["error"]["code"] == "too_large");
  temp_dir dir;
  const auto absent = dir.path() + "/no/such/file";
  auto missing = call(http, "PUT", "/v1/cache/k?dep=" + absent, "v");
  CHECK(missing.status == 404);
  CHECK(json::parse(missing.body)["error"]["message"].get<std::string>().find(absent) !=
        std::string::npos);
  CHECK(call(http, "DELETE", "/v1/cache/max").status == 200);
  CHECK(call(http, "GET", "/v1/cache/max").status == 404);
  CHECK(call(http, "GET", "/v1/cache/%zz").status == 400);
}

TEST_CASE("troupectl cache put, get and stats against a node") {
  temp_dir dir;
  const auto dep = dir.path() + "/f";
  write_file(dep, "x");
  node_process node({});
  REQUIRE(node.started());
  auto ctl = [&](std::vector<std::string> args, const std::string& input = {}) {
    std::vector<std::string> argv{troupectl_binary(), "--url", node.url(), "--token", node.token()};
    argv.insert(argv.end(), args.begin(), args.end());
    return run_process(argv, {}, input);
  };
  CHECK(ctl({"cache", "put", "k", "v", "--dep", dep}).exit_code == 0);
  auto got = ctl({"cache", "get", "k"});
  CHECK(got.exit_code == 0);
  CHECK(got.out == "v");
  CHECK(ctl({"cache", "put", "s"}, "from stdin").exit_code == 0);
  CHECK(ctl({"cache", "get", "s"}).out == "from stdin");
  write_file(dep, "y");
  auto stale = ctl({"cache", "get", "k"});
  CHECK(stale.exit_code == 1);
  CHECK(stale.err.find("not_found") != std::string::npos);
  auto stats = ctl({"--json", "cache", "stats"});
  REQUIRE(stats.exit_code == 0);
  // Dropped once: by the watcher or at that read, whichever came first.
  CHECK(json::parse(stats.out)["invalidations"] == 1);
  // del says whether there was something to delete; both are successes.
  auto del = ctl({"cache", "del", "s"});
  CHECK(del.exit_code == 0);
  CHECK(del.out == "deleted s\n");
  auto again = ctl({"cache", "del", "s"});
  CHECK(again.exit_code == 0);
  CHECK(again.out == "s was not in the cache\n");
}

TEST_CASE("explicit invalidation by path (file, directory above, below) and by key") {
  temp_dir dir;
  std::filesystem::create_directories(dir.path() + "/proj/src");
  write_file(dir.path() + "/proj/src/a.cpp", "a");
  write_file(dir.path() + "/proj/README", "r");
  node_process node({});
  REQUIRE(node.started());
  auto http = client_of(node);
  REQUIRE(
      call(http, "PUT", "/v1/cache/on-file?dep=" + dir.path() + "/proj/src/a.cpp", "1").status ==
      200);
  REQUIRE(call(http, "PUT", "/v1/cache/on-dir?dep=" + dir.path() + "/proj", "2").status == 200);
  REQUIRE(call(http, "PUT", "/v1/cache/on-readme?dep=" + dir.path() + "/proj/README", "3").status ==
          200);
  REQUIRE(call(http, "PUT", "/v1/cache/plain", "4").status == 200);

  // The file itself and the directory above it depend on src/a.cpp.
  auto by_path = http.request("POST", "/v1/cache/invalidate",
                              json{{"paths", {dir.path() + "/proj/src/a.cpp"}}}.dump());
  REQUIRE(by_path.has_value());
  REQUIRE(by_path->status == 200);
  CHECK(json::parse(by_path->body)["invalidated"] == 2);
  CHECK(call(http, "GET", "/v1/cache/on-file").status == 404);
  CHECK(call(http, "GET", "/v1/cache/on-dir").status == 404);
  CHECK(call(http, "GET", "/v1/cache/on-readme").status == 200);

  auto by_key = http.request("POST", "/v1/cache/invalidate", R"({"keys": ["plain", "nope"]})");
  REQUIRE(by_key.has_value());
  CHECK(json::parse(by_key->body)["invalidated"] == 1);
  CHECK(call(http, "GET", "/v1/cache/plain").status == 404);

  auto bad = http.request("POST", "/v1/cache/invalidate", R"({"paths": "not a list"})");
  REQUIRE(bad.has_value());
  CHECK(bad->status == 400);

  auto ctl = run_process({troupectl_binary(), "--url", node.url(), "--token", node.token(), "cache",
                          "invalidate", dir.path() + "/proj"});
  CHECK(ctl.exit_code == 0);
  CHECK(ctl.out.find("invalidated 1 entries") != std::string::npos);  // on-readme
}

TEST_CASE("dependencies must be absolute and inside cache.dependency_roots") {
  temp_dir root;
  temp_dir elsewhere;
  write_file(root.path() + "/in.txt", "inside");
  write_file(elsewhere.path() + "/out.txt", "outside");
  std::filesystem::create_symlink(elsewhere.path() + "/out.txt", root.path() + "/link.txt");
  node_process::options o;
  o.env["TROUPE_CACHE_DEPENDENCY_ROOTS"] = root.path();
  node_process node(o);
  REQUIRE(node.started());
  auto http = client_of(node);
  CHECK(call(http, "PUT", "/v1/cache/a?dep=" + root.path() + "/in.txt", "v").status == 200);
  for (const auto& dep :
       {elsewhere.path() + "/out.txt", root.path() + "/link.txt",
        root.path() + "/../" + std::filesystem::path(elsewhere.path()).filename().string() +
            "/out.txt",
        std::string("in.txt"), std::string("/etc/passwd")}) {
    INFO(dep);
    auto refused = call(http, "PUT", "/v1/cache/b?dep=" + dep, "v");
    CHECK(refused.status == 400);
    CHECK(json::parse(refused.body)["error"]["message"].get<std::string>().find(
              dep.front() == '/' ? "cache.dependency_roots" : "absolute") != std::string::npos);
  }
  // Whether a file outside exists is not told either: the same refusal.
  CHECK(call(http, "PUT", "/v1/cache/b?dep=/no/such/file", "v").status == 400);
  auto relative = http.request("POST", "/v1/cache/invalidate", R"({"paths": ["in.txt"]})");
  REQUIRE(relative);
  CHECK(relative->status == 400);
}

TEST_CASE("values up to cache.value_bytes_max are stored, whatever the message bound") {
  node_process node({});  // defaults: 4 MiB values, 1 MiB ordinary messages
  REQUIRE(node.started());
  auto http = client_of(node);
  const std::string value(3u << 20, 'v');
  auto put = call(http, "PUT", "/v1/cache/large", value);
  INFO(put.body);
  REQUIRE(put.status == 200);
  auto got = call(http, "GET", "/v1/cache/large");
  CHECK(got.status == 200);
  CHECK(got.body == value);
  auto over = call(http, "PUT", "/v1/cache/larger", std::string((4u << 20) + 1, 'v'));
  CHECK(over.status == 413);
  CHECK(json::parse(over.body)["error"]["message"].get<std::string>().find(
            "cache.value_bytes_max") != std::string::npos);
}

TEST_CASE("while the cache supervisor restarts, its keys answer 503 restarting, never 404") {
  node_process::options o;
  o.env["TROUPE_CHAOS_ENABLED"] = "true";
  node_process node(o);
  REQUIRE(node.started());
  auto http = client_of(node);
  REQUIRE(call(http, "PUT", "/v1/cache/kept", "across a crash").status == 200);
  REQUIRE(http.request("POST", "/v1/actors/cache/kill", "").value().status == 200);
  // Until the shards are back: served, or refused as restarting with a hint.
  REQUIRE(wait_until([&] {
    auto r = call(http, "GET", "/v1/cache/kept");
    if (r.status == 503) {
      // restarting, or breaker_open once enough of those came in a row
      const auto code = json::parse(r.body)["error"]["code"].get<std::string>();
      CHECK((code == "restarting" || code == "breaker_open"));
      CHECK_FALSE(find_header(r, "retry-after").empty());
      return false;
    }
    CHECK(r.status == 200);
    return r.status == 200;
  }));
}

TEST_CASE("a crashed shard is restarted and finds its entries in the cold tier") {
  node_process::options o;
  o.env["TROUPE_CHAOS_ENABLED"] = "true";
  o.env["TROUPE_CACHE_SHARDS"] = "1";
  node_process node(o);
  REQUIRE(node.started());
  auto http = client_of(node);
  REQUIRE(call(http, "PUT", "/v1/cache/kept", "across a crash").status == 200);
  REQUIRE(call(http, "PUT", "/v1/cache/unread", "not read until the end").status == 200);
  REQUIRE(http.request("POST", "/v1/actors/cache/shard-0/kill", "").value().status == 200);
  // Served throughout: stashed while the shard restarts, or from memory.
  auto during = call(http, "GET", "/v1/cache/kept");
  REQUIRE(during.status == 200);
  CHECK(during.body == "across a crash");
  // Once the new incarnation runs, its memory is empty: an entry not read
  // since comes from the cold tier.
  std::function<const json*(const json&)> find_shard = [&](const json& n) -> const json* {
    if (n.value("path", "") == "cache/shard-0") {
      return &n;
    }
    if (!n.contains("children")) {
      return nullptr;
    }
    for (const auto& child : n["children"]) {
      if (const auto* found = find_shard(child)) {
        return found;
      }
    }
    return nullptr;
  };
  REQUIRE(wait_until([&] {
    const auto tree = json::parse(call(http, "GET", "/v1/actors").body);
    const auto* shard = find_shard(tree);
    return shard != nullptr && (*shard)["restarts"] == 1 && (*shard)["state"] == "running";
  }));
  auto hit = call(http, "GET", "/v1/cache/unread");
  REQUIRE(hit.status == 200);
  CHECK(hit.body == "not read until the end");
  CHECK(cache_header(hit) == "hit-cold");
}

TEST_CASE("a flood of puts stays within the memory budget by evicting to the cold tier") {
  node_process::options o;
  o.env["TROUPE_CACHE_SHARDS"] = "2";
  o.env["TROUPE_CACHE_MEMORY_BUDGET_BYTES"] = std::to_string(2 << 20);  // 2 MiB
  node_process node(o);
  REQUIRE(node.started());
  auto http = client_of(node);
  const std::string value(64 << 10, 'x');  // 64 KiB x 200 = 12.5 MiB
  for (int i = 0; i < 200; ++i) {
    REQUIRE(call(http, "PUT", "/v1/cache/flood-" + std::to_string(i), value).status == 200);
  }
  auto stats = json::parse(call(http, "GET", "/v1/cache").body);
  CHECK(stats["bytes"].get<double>() <= 2 << 20);
  CHECK(stats["evictions"].get<uint64_t>() > 150);
  // Evicted entries are still served, from disk.
  auto first = call(http, "GET", "/v1/cache/flood-0");
  CHECK(first.status == 200);
  CHECK(cache_header(first) == "hit-cold");
  CHECK(first.body.size() == value.size());
}

TEST_CASE("the watcher drops an entry as soon as a dependency changes, before any read") {
  temp_dir dir;
  std::filesystem::create_directories(dir.path() + "/tree/deep");
  write_file(dir.path() + "/file.txt", "one");
  write_file(dir.path() + "/tree/deep/x.txt", "x");
  node_process node({});
  REQUIRE(node.started());
  auto http = client_of(node);
  REQUIRE(call(http, "PUT", "/v1/cache/f?dep=" + dir.path() + "/file.txt", "1").status == 200);
  REQUIRE(call(http, "PUT", "/v1/cache/t?dep=" + dir.path() + "/tree", "2").status == 200);
  auto invalidations = [&] {
    return json::parse(call(http, "GET", "/v1/cache").body)["invalidations"].get<uint64_t>();
  };
  CHECK(invalidations() == 0);
  write_file(dir.path() + "/file.txt", "two");
  CHECK(wait_until([&] { return invalidations() == 1; }));
  write_file(dir.path() + "/tree/deep/x.txt", "changed deep inside");
  CHECK(wait_until([&] { return invalidations() == 2; }));
  // No read happened in between: the watcher did it.
  CHECK(cache_header(call(http, "GET", "/v1/cache/f")) == "miss-absent");
  CHECK(cache_header(call(http, "GET", "/v1/cache/t")) == "miss-absent");
}

TEST_CASE("an empty invalidation path or an absurd ttl is refused and the cache keeps serving") {
  node_process node({});
  REQUIRE(node.started());
  auto http = client_of(node);
  REQUIRE(call(http, "PUT", "/v1/cache/k", "v").status == 200);
  auto empty = http.request("POST", "/v1/cache/invalidate", R"({"paths": [""]})");
  REQUIRE(empty.has_value());
  CHECK(empty->status == 400);
  auto ttl = call(http, "PUT", "/v1/cache/k2?ttl=18446744073709551", "v");
  CHECK(ttl.status == 400);
  CHECK(call(http, "GET", "/v1/cache/k").status == 200);
  auto tree = json::parse(http.request("GET", "/v1/actors").value().body);
  for (const auto& child : tree["children"]) {
    CHECK(child["restarts"] == 0);  // nothing crashed
  }
}

TEST_CASE("deleted and invalidated entries leave no rows in the dependency index") {
  temp_dir dir;
  write_file(dir.path() + "/a", "a");
  write_file(dir.path() + "/b", "b");
  node_process::options o;
  o.data_dir = dir.path() + "/data";
  {
    node_process node(o);
    REQUIRE(node.started());
    auto http = client_of(node);
    REQUIRE(call(http, "PUT", "/v1/cache/one?dep=" + dir.path() + "/a", "1").status == 200);
    REQUIRE(call(http, "PUT", "/v1/cache/two?dep=" + dir.path() + "/b", "2").status == 200);
    REQUIRE(call(http, "PUT", "/v1/cache/three?dep=" + dir.path() + "/b", "3").status == 200);
    CHECK(json::parse(call(http, "DELETE", "/v1/cache/one").body)["deleted"] == true);
    auto all = http.request("POST", "/v1/cache/invalidate", R"({"paths": ["/"]})");
    REQUIRE(all.has_value());
    CHECK(json::parse(all->body)["invalidated"] == 2);  // "/" covers everything
    CHECK(node.stop(SIGTERM) == 0);
  }
  auto store = db::open(storage_options{dir.path() + "/data/store", false});
  REQUIRE(store.has_value());
  auto rows = (*store)->scan_prefix(column::deps, "", 1, 100);
  REQUIRE(rows.has_value());
  CHECK(rows->empty());
}

TEST_CASE("an entry depending on other keys goes with them, through every shard") {
  temp_dir dir;
  const auto file = dir.path() + "/spec.md";
  write_file(file, "spec v1");
  node_process::options o;
  o.env["TROUPE_CACHE_SHARDS"] = "4";  // so a chain crosses shards
  node_process node(o);
  REQUIRE(node.started());
  auto http = client_of(node);
  auto stats = [&] { return json::parse(call(http, "GET", "/v1/cache").body); };

  // spec <- summary <- review-N: each review depends on the summary, which
  // depends on the spec, which depends on a file.
  REQUIRE(call(http, "PUT", "/v1/cache/spec?dep=" + file, "S").status == 200);
  auto summary = call(http, "PUT", "/v1/cache/summary?dep_key=spec", "s");
  REQUIRE(summary.status == 200);
  CHECK(json::parse(summary.body)["dep_keys"] == 1);
  CHECK(json::parse(summary.body)["deps"] == 1);  // the spec's file, inherited
  for (int i = 0; i < 8; ++i) {
    auto review = call(http, "PUT", "/v1/cache/review-" + std::to_string(i) + "?dep_key=summary",
                       "r" + std::to_string(i));
    REQUIRE(review.status == 200);
    CHECK(json::parse(review.body)["dep_keys"] == 2);  // summary, and spec through it
  }
  for (int i = 0; i < 8; ++i) {
    CHECK(call(http, "GET", "/v1/cache/review-" + std::to_string(i)).status == 200);
  }

  SECTION("invalidating a key drops everything that depends on it") {
    auto r = http.request("POST", "/v1/cache/invalidate", R"({"keys": ["spec"]})");
    REQUIRE(r.has_value());
    const auto body = json::parse(r->body);
    CHECK(body["cascaded"] == 9);
    CHECK(body["invalidated"] == 10);
    CHECK(body["cascade_stopped"] == false);
    // Dependents on other shards are handed over before the reply is sent.
    CHECK(wait_until([&] { return stats()["invalidations"] == 10; }));
    for (int i = 0; i < 8; ++i) {
      CHECK(cache_header(call(http, "GET", "/v1/cache/review-" + std::to_string(i))) ==
            "miss-absent");
    }
  }
  SECTION("replacing a key's value drops its dependents, not the key") {
    auto put = call(http, "PUT", "/v1/cache/summary?dep_key=spec", "s2");
    REQUIRE(put.status == 200);
    CHECK(json::parse(put.body)["cascaded"] == 8);
    CHECK(call(http, "GET", "/v1/cache/summary").body == "s2");
    CHECK(call(http, "GET", "/v1/cache/review-3").status == 404);
    CHECK(call(http, "GET", "/v1/cache/spec").status == 200);
  }
  SECTION("deleting a key drops its dependents") {
    auto del = call(http, "DELETE", "/v1/cache/summary");
    CHECK(json::parse(del.body)["cascaded"] == 8);
    CHECK(call(http, "GET", "/v1/cache/review-5").status == 404);
    CHECK(call(http, "GET", "/v1/cache/spec").status == 200);
  }
  SECTION("an edit of a file two keys away makes the dependents stale") {
    write_file(file, "spec v2");
    CHECK(call(http, "GET", "/v1/cache/review-0").status == 404);
    CHECK(wait_until([&] {
      return call(http, "GET", "/v1/cache/review-7").status == 404 &&
             call(http, "GET", "/v1/cache/spec").status == 404;
    }));
  }
}

TEST_CASE("key dependencies that cannot hold are refused") {
  node_process node({});
  REQUIRE(node.started());
  auto http = client_of(node);
  REQUIRE(call(http, "PUT", "/v1/cache/a", "a").status == 200);
  REQUIRE(call(http, "PUT", "/v1/cache/b?dep_key=a", "b").status == 200);

  auto missing = call(http, "PUT", "/v1/cache/c?dep_key=nowhere", "c");
  CHECK(missing.status == 404);
  CHECK(missing.body.find("dependency key 'nowhere' is not in the cache") != std::string::npos);
  auto self = call(http, "PUT", "/v1/cache/a?dep_key=a", "a");
  CHECK(self.status == 400);
  auto cycle = call(http, "PUT", "/v1/cache/a?dep_key=b", "a2");
  CHECK(cycle.status == 400);
  CHECK(cycle.body.find("dependency cycle") != std::string::npos);
  // Nothing was lost by the refusals.
  CHECK(call(http, "GET", "/v1/cache/a").body == "a");
  CHECK(call(http, "GET", "/v1/cache/b").body == "b");
  CHECK(call(http, "GET", "/v1/cache/c").status == 404);
}

TEST_CASE("a runaway cascade is cut, the breaker opens, and what it missed is refused on read") {
  node_process::options o;
  o.env["TROUPE_CACHE_CASCADE_MAX"] = "5";
  o.env["TROUPE_BREAKER_FAILURES_MAX"] = "2";
  o.env["TROUPE_BREAKER_OPEN_MS"] = "30000";
  node_process node(o);
  REQUIRE(node.started());
  auto http = client_of(node);
  auto fan_out = [&](const std::string& root, int n) {
    REQUIRE(call(http, "PUT", "/v1/cache/" + root, "root").status == 200);
    for (int i = 0; i < n; ++i) {
      REQUIRE(call(http, "PUT",
                   "/v1/cache/" + root + "-dep-" + std::to_string(i) + "?dep_key=" + root, "x")
                  .status == 200);
    }
  };
  auto invalidate = [&](const std::string& key) {
    auto r = http.request("POST", "/v1/cache/invalidate", json{{"keys", {key}}}.dump());
    REQUIRE(r.has_value());
    REQUIRE(r->status == 200);
    return json::parse(r->body);
  };

  fan_out("small", 3);
  auto small = invalidate("small");
  CHECK(small["cascaded"] == 3);
  CHECK(small["cascade_stopped"] == false);

  fan_out("big", 20);
  auto big = invalidate("big");
  CHECK(big["cascade_stopped"] == true);
  CHECK(big["cascaded"] == 5);
  CHECK(big["invalidated"] == 6);
  // The dependents the cascade did not reach are still never served.
  for (int i = 0; i < 20; ++i) {
    CHECK(call(http, "GET", "/v1/cache/big-dep-" + std::to_string(i)).status == 404);
  }

  // A second cut opens the breaker: the next cascade is not even tried.
  fan_out("huge", 12);
  CHECK(invalidate("huge")["cascade_stopped"] == true);
  fan_out("after", 2);
  auto after = invalidate("after");
  CHECK(after["cascade_stopped"] == true);
  CHECK(after["cascaded"] == 0);
  CHECK(call(http, "GET", "/v1/cache/after-dep-1").status == 404);
  auto stats = json::parse(call(http, "GET", "/v1/cache").body);
  CHECK(stats["cascades_stopped"] == 3);
  CHECK(node.stderr_text().find("cascade breaker open") != std::string::npos);
}
