// PTY sessions through a real node: real PTYs and shells, REST, restart
// after kill -9 with the same id and scrollback, crash-loop give-up that
// spares the siblings, ending a session.

#include <signal.h>

#include <catch2/catch.hpp>

#include <nlohmann/json.hpp>

#include "actors/gateway/http_client.hpp"
#include "tests/integration/node_process.hpp"
#include "tests/support/wait.hpp"

using namespace troupe;
using namespace troupe::test;
using json = nlohmann::json;

namespace {

struct node_fixture {
  explicit node_fixture(std::map<std::string, std::string> env = {})
      : node({{}, std::move(env), {}}) {
    REQUIRE(node.started());
  }
  http_response call(std::string_view method, const std::string& target, std::string body = {}) {
    auto http = http_client(*parse_url(node.url()), node.token(), 10000);
    auto r = http.request(method, target, std::move(body));
    if (!r) {
      FAIL("request failed: " << r.err().message);
    }
    return std::move(r).value();
  }
  json info(const std::string& id) { return json::parse(call("GET", "/v1/sessions/" + id).body); }
  std::string scrollback(const std::string& id) {
    return call("GET", "/v1/sessions/" + id + "/scrollback").body;
  }
  std::string create(const json& spec) {
    auto r = call("POST", "/v1/sessions", spec.dump());
    REQUIRE(r.status == 200);
    return json::parse(r.body)["id"];
  }
  node_process node;
};

}  // namespace

TEST_CASE("sessions: a real shell, its scrollback, kill -9 brings it back with the same id") {
  node_fixture n;
  const auto id = n.create(
      {{"command", {"/bin/sh", "-c", "echo hello from $((6*7)); exec sleep 60"}}, {"name", "t"}});
  REQUIRE(wait_until([&] { return n.scrollback(id).find("hello from 42") != std::string::npos; }));
  auto before = n.info(id);
  CHECK(before["name"] == "t");
  CHECK(before["pid"].get<int>() > 0);
  CHECK(before["restarts"] == 0);

  auto list = json::parse(n.call("GET", "/v1/sessions").body)["sessions"];
  REQUIRE(list.size() == 1);
  CHECK(list[0]["id"] == id);

  REQUIRE(::kill(before["pid"].get<pid_t>(), SIGKILL) == 0);
  REQUIRE(wait_until([&] {
    auto now = n.info(id);
    return now["restarts"] == 1 && now["pid"] != before["pid"] && now["pid"].get<int>() > 0;
  }));
  REQUIRE(wait_until([&] {
    const auto text = n.scrollback(id);
    return text.find("session restarted") != std::string::npos &&
           text.find("hello from 42") != text.rfind("hello from 42");
  }));

  // The recording is asciicast v2: a header line, then events.
  const auto cast = n.call("GET", "/v1/sessions/" + id + "/cast").body;
  const auto header = json::parse(cast.substr(0, cast.find('\n')));
  CHECK(header["version"] == 2);
  CHECK(cast.find("hello from 42") != std::string::npos);

  const auto pid = n.info(id)["pid"].get<pid_t>();
  auto ended = n.call("DELETE", "/v1/sessions/" + id);
  CHECK(ended.status == 200);
  CHECK(n.call("GET", "/v1/sessions/" + id).status == 404);
  CHECK(wait_until([&] { return ::kill(pid, 0) != 0; }));
}

TEST_CASE("sessions: a command that keeps dying is given up on; its siblings live on") {
  node_fixture n({{"TROUPE_SUPERVISOR_RESTARTS_MAX", "3"},
                  {"TROUPE_SUPERVISOR_BACKOFF_MIN_MS", "10"},
                  {"TROUPE_SUPERVISOR_BACKOFF_MAX_MS", "50"}});
  const auto steady = n.create({{"command", {"/bin/sh", "-c", "exec sleep 60"}}});
  const auto looping = n.create({{"command", {"/bin/sh", "-c", "echo dying; exit 3"}}});
  REQUIRE(wait_until([&] { return n.info(looping)["state"] == "failed"; }));
  CHECK(n.info(looping)["restarts"].get<int>() >= 3);
  CHECK(n.info(steady)["state"] != "failed");
  CHECK(n.info(steady)["restarts"] == 0);
  auto tree = run_process({troupectl_binary(), "--url", n.node.url(), "--token", n.node.token(),
                           "tree"});
  CHECK(tree.out.find("sessions/live/" + looping) != std::string::npos);
  CHECK(tree.out.find("failed") != std::string::npos);
}

TEST_CASE("sessions: bad requests get clear errors") {
  node_fixture n;
  CHECK(n.call("GET", "/v1/sessions/s-nope").status == 404);
  CHECK(n.call("POST", "/v1/sessions", "{not json").status == 400);
  auto bad_cwd = n.call("POST", "/v1/sessions", R"({"cwd": "/no/such/dir"})");
  CHECK(bad_cwd.status == 400);
  CHECK(json::parse(bad_cwd.body)["error"]["message"].get<std::string>().find("/no/such/dir") !=
        std::string::npos);
  CHECK(n.call("POST", "/v1/sessions", R"({"cols": 0})").status == 400);
  CHECK(n.call("PUT", "/v1/sessions").status == 405);
}
