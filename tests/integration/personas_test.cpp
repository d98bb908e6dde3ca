// Personas through a real node: the HTTP routes and `troupectl persona`,
// with the personas shipped in configs/personas and a workspace whose
// .claude/agents/ overrides one of them.

#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>

#include "client/http_client.hpp"
#include "runtime/net/percent.hpp"
#include "tests/integration/node_process.hpp"

using namespace troupe;
using namespace troupe::test;
using json = nlohmann::json;
namespace fs = std::filesystem;

namespace {

fs::path shipped_personas() {
  // tests/integration/<this file> -> three levels up.
  return fs::path(__FILE__).parent_path().parent_path().parent_path() / "configs" / "personas";
}

process_result ctl(const node_process& node, std::vector<std::string> args) {
  std::vector<std::string> argv{troupectl_binary(), "--url", node.url(), "--token", node.token()};
  argv.insert(argv.end(), args.begin(), args.end());
  return run_process(argv);
}

}  // namespace

TEST_CASE("personas: the shipped ones and a workspace's, over HTTP and troupectl") {
  temp_dir ws;
  const auto agents_dir = fs::path(ws.path()) / ".claude" / "agents";
  fs::create_directories(agents_dir);
  std::ofstream(agents_dir / "reviewer.md")
      << "---\nname: reviewer\ndescription: This project's reviewer.\ntools: Read\n"
         "priority: 50\ntriggers:\n  keywords: [review]\n---\nReview the way this project "
         "does.\n";
  std::ofstream(agents_dir / "broken.md") << "---\nname: broken\ndescription: [oops\n---\n";

  node_process::options opts;
  opts.env["TROUPE_AGENTS_PERSONAS_DIR"] = shipped_personas().string();
  node_process node(opts);
  REQUIRE(node.started());
  auto http = http_client(*parse_node_url(node.url()), node.token(), 10000);

  // The node's own.
  auto r = http.request("GET", "/v1/personas");
  REQUIRE(r);
  REQUIRE(r->status == 200);
  auto list = json::parse(r->body);
  std::vector<std::string> names;
  for (const auto& p : list["personas"]) {
    names.push_back(p["name"]);
  }
  CHECK(names == std::vector<std::string>{"debugger", "doc-writer", "reviewer"});
  CHECK(list["problems"].empty());

  // A workspace's override and its broken file.
  const auto query = "?workspace=" + percent_encode(ws.path());
  r = http.request("GET", "/v1/personas/reviewer" + query);
  REQUIRE(r);
  REQUIRE(r->status == 200);
  auto shown = json::parse(r->body);
  CHECK(shown["description"] == "This project's reviewer.");
  CHECK(shown["prompt"] == "Review the way this project does.");
  r = http.request("GET", "/v1/personas" + query);
  REQUIRE(r);
  list = json::parse(r->body);
  REQUIRE(list["problems"].size() == 1);
  INFO(list["problems"][0]["message"].get<std::string>());
  CHECK(list["problems"][0]["message"].get<std::string>().rfind(
            (agents_dir / "broken.md").string() + ":3:", 0) == 0);

  // Matching: a crash report goes to the debugger (priority 20 over 10).
  r = http.request(
      "POST", "/v1/personas/match",
      json{{"prompt", "please review: the tests crash with Segmentation fault"}}.dump());
  REQUIRE(r);
  REQUIRE(r->status == 200);
  auto matched = json::parse(r->body);
  CHECK(matched["chosen"] == "debugger");
  CHECK(matched["candidates"][1]["name"] == "reviewer");

  // Errors.
  r = http.request("GET", "/v1/personas/nobody");
  REQUIRE(r);
  CHECK(r->status == 404);
  r = http.request("GET", "/v1/personas?agent=a1");  // no such agent
  REQUIRE(r);
  CHECK(r->status == 404);
  r = http.request("GET", "/v1/personas/reviewer?agent=a1");
  REQUIRE(r);
  CHECK(r->status == 400);
  r = http.request("GET", "/v1/personas?workspace=relative");
  REQUIRE(r);
  CHECK(r->status == 400);
  r = http.request("POST", "/v1/personas/match", R"({"prompt": 7})");
  REQUIRE(r);
  CHECK(r->status == 400);
  r = http.request("DELETE", "/v1/personas");
  REQUIRE(r);
  CHECK(r->status == 405);

  // troupectl, the same.
  auto out = ctl(node, {"persona", "ls"});
  CHECK(out.exit_code == 0);
  CHECK(out.out.find("debugger") != std::string::npos);
  CHECK(out.out.find("NAME") == 0);
  out = ctl(node, {"persona", "ls", "--workspace", ws.path()});
  CHECK(out.exit_code == 0);
  CHECK(out.err.find("skipped: " + (agents_dir / "broken.md").string()) != std::string::npos);
  out = ctl(node, {"persona", "match", "--workspace", ws.path(), "review this change"});
  CHECK(out.exit_code == 0);
  CHECK(out.out.find("chosen: reviewer") == 0);
  CHECK(out.out.find("keyword 'review'") != std::string::npos);
  out = ctl(node, {"persona", "show", "reviewer", "--workspace", ws.path()});
  CHECK(out.exit_code == 0);
  CHECK(out.out.find("Review the way this project does.") != std::string::npos);
  out = ctl(node, {"persona", "show", "nobody"});
  CHECK(out.exit_code == 1);
  CHECK(out.err.find("no persona 'nobody'") != std::string::npos);
}
