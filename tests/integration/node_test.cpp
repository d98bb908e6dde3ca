// A real troupe-node process, driven over HTTP and with troupectl.

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>

#include "client/http_client.hpp"
#include "tests/integration/node_process.hpp"
#include "tests/support/wait.hpp"

using namespace troupe;
using namespace troupe::test;
using json = nlohmann::json;

namespace {

http_client client_for(const node_process& node, std::string token) {
  auto url = parse_node_url(node.url());
  REQUIRE(url.has_value());
  return http_client(*url, std::move(token), 10000);
}

http_response must(expected<http_response> r) {
  if (!r) {
    FAIL("request failed: " << r.err().message);
  }
  return std::move(r).value();
}

json body_json(const http_response& r) {
  return json::parse(r.body);
}

std::string send_body(std::string_view type, const json& body) {
  return json{{"type", type}, {"body", body}}.dump();
}

/// troupectl against `node`, with its URL and token.
process_result ctl(const node_process& node, std::vector<std::string> args,
                   const std::string& input = {}) {
  std::vector<std::string> argv{troupectl_binary(), "--url", node.url(), "--token", node.token()};
  argv.insert(argv.end(), args.begin(), args.end());
  return run_process(argv, {}, input);
}

/// Sends `bytes` on a fresh connection to `node` and returns all it
/// answers until it closes the connection (or 5 s pass).
std::string raw_exchange(const node_process& node, const std::string& bytes) {
  const int fd = connect_loopback(node.url());
  REQUIRE(fd >= 0);
  REQUIRE(send(fd, bytes.data(), bytes.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(bytes.size()));
  auto answer = read_until(fd);
  close(fd);
  return answer;
}

node_process::options chaos_on() {
  node_process::options o;
  o.env["TROUPE_CHAOS_ENABLED"] = "true";
  return o;
}

}  // namespace

TEST_CASE("a node starts on a free port, is healthy and ready, and exits 0 on SIGTERM") {
  node_process node({});
  REQUIRE(node.started());
  auto http = client_for(node, "");
  auto health = must(http.request("GET", "/healthz"));
  CHECK(health.status == 200);
  CHECK(body_json(health)["status"] == "ok");
  REQUIRE(wait_until([&] { return must(http.request("GET", "/readyz")).status == 200; }));
  CHECK(node.stop(SIGTERM) == 0);
  CHECK(node.stderr_text().find("stopped") != std::string::npos);
}

TEST_CASE("/v1 routes need the node's token, health and metrics do not") {
  node_process node({});
  REQUIRE(node.started());
  auto anonymous = client_for(node, "");
  auto denied = must(anonymous.request("GET", "/v1/node"));
  CHECK(denied.status == 401);
  CHECK(body_json(denied)["error"]["code"] == "unauthorized");
  auto wrong = client_for(node, "not-the-token");
  CHECK(must(wrong.request("GET", "/v1/node")).status == 401);
  CHECK(must(anonymous.request("GET", "/metrics")).status == 200);

  auto http = client_for(node, node.token());
  auto info = must(http.request("GET", "/v1/node"));
  CHECK(info.status == 200);
  CHECK(body_json(info)["name"] == "troupe-1");
  auto by_key = must(
      anonymous.request("GET", "/v1/node", {}, "application/json", {{"x-api-key", node.token()}}));
  CHECK(by_key.status == 200);
}

TEST_CASE("the token file is made once, mode 0600, and reused on restart") {
  temp_dir dir;
  node_process::options o;
  o.data_dir = dir.path() + "/data";
  std::string first;
  {
    node_process node(o);
    REQUIRE(node.started());
    first = node.token();
    CHECK(first.size() == 64);
    struct stat st {};
    REQUIRE(::stat((*o.data_dir + "/token").c_str(), &st) == 0);
    CHECK((st.st_mode & 0777) == 0600);
    CHECK(node.stop(SIGTERM) == 0);
  }
  node_process again(o);
  REQUIRE(again.started());
  CHECK(again.token() == first);
  // What the node made is its user's alone: the data dir and the store.
  struct stat st {};
  REQUIRE(::stat(o.data_dir->c_str(), &st) == 0);
  CHECK((st.st_mode & 0777) == 0700);
  for (const auto& file : std::filesystem::recursive_directory_iterator(*o.data_dir + "/store")) {
    if (file.is_regular_file()) {
      INFO(file.path());
      REQUIRE(::stat(file.path().c_str(), &st) == 0);
      CHECK((st.st_mode & 077) == 0);
    }
  }
}

TEST_CASE("a token file open to other users is refused with the fix") {
  temp_dir dir;
  const auto data = dir.path() + "/data";
  std::filesystem::create_directories(data);
  std::ofstream(data + "/token") << "0123456789abcdef0123456789abcdef\n";
  ::chmod((data + "/token").c_str(), 0644);
  auto r = run_process({node_binary(), "--data-dir", data});
  CHECK(r.exit_code == 1);
  CHECK(r.err.find("chmod 600 '" + data + "/token'") != std::string::npos);
  CHECK(r.err.find("0644") != std::string::npos);
}

TEST_CASE("the sys actor answers echo, ping and info in JSON and msgpack") {
  node_process node({});
  REQUIRE(node.started());
  auto http = client_for(node, node.token());
  auto echo = must(
      http.request("POST", "/v1/actors/sys/messages", send_body("sys.echo", {{"text", "hello"}})));
  REQUIRE(echo.status == 200);
  CHECK(body_json(echo) == json{{"type", "sys.echo.reply"}, {"body", {{"text", "hello"}}}});

  auto ping =
      must(http.request("POST", "/v1/actors/sys/messages", send_body("sys.ping", json::object())));
  REQUIRE(ping.status == 200);
  CHECK(body_json(ping)["body"]["node"] == "troupe-1");

  auto info = must(
      http.request("POST", "/v1/actors/sys/messages?timeout_ms=2000", R"({"type":"sys.info"})"));
  REQUIRE(info.status == 200);
  CHECK(body_json(info)["body"]["actors_running"].get<int>() >= 7);

  auto packed = json::to_msgpack(json{{"type", "sys.echo"}, {"body", {{"text", "bin"}}}});
  auto mp = must(http.request("POST", "/v1/actors/sys/messages",
                              std::string(packed.begin(), packed.end()), "application/msgpack"));
  REQUIRE(mp.status == 200);
  CHECK(mp.content_type == "application/msgpack");
  auto decoded = json::from_msgpack(mp.body);
  CHECK(decoded["body"]["text"] == "bin");
}

TEST_CASE("bad input gets a precise error and the node keeps serving") {
  node_process::options o;
  o.env["TROUPE_GATEWAY_BODY_BYTES_MAX"] = "4096";
  node_process node(o);
  REQUIRE(node.started());
  auto http = client_for(node, node.token());
  auto expect_error = [&](const std::string& target, const std::string& body, int status,
                          const std::string& code,
                          const std::string& content_type = "application/json") {
    auto r = must(http.request("POST", target, body, content_type));
    INFO(r.body);
    CHECK(r.status == status);
    CHECK(body_json(r)["error"]["code"] == code);
    return body_json(r)["error"]["message"].get<std::string>();
  };
  const std::string sys = "/v1/actors/sys/messages";
  CHECK(expect_error(sys, "{\"type\":", 400, "bad_request").find("not valid JSON") !=
        std::string::npos);
  expect_error(sys, "[1,2]", 400, "bad_request");
  expect_error(sys, R"({"type":"sys.echo","body":[1]})", 400, "bad_request");
  CHECK(expect_error(sys, send_body("sys.echo", {{"text", 5}}), 400, "bad_body") ==
        "field 'text' has the wrong type (int)");
  CHECK(expect_error(sys, send_body("sys.nope", json::object()), 400, "unknown_type")
            .find("it handles: health, sys.echo, sys.info, sys.ping") != std::string::npos);
  expect_error("/v1/actors/nobody/messages", send_body("sys.echo", json::object()), 404,
               "unknown_actor");
  expect_error("/v1/actors/bad%20path!/messages", send_body("sys.echo", json::object()), 400,
               "bad_request");
  expect_error(sys + "?timeout_ms=abc", send_body("sys.ping", json::object()), 400, "bad_request");
  expect_error(sys, std::string("\x82\xa4type\xc1", 7), 400, "bad_body", "application/msgpack");
  expect_error(sys, std::string(3000, '['), 413, "too_large");
  expect_error(sys, std::string(5000, ' '), 413, "too_large");
  CHECK(must(http.request("GET", "/v1/nothing")).status == 404);
  CHECK(must(http.request("GET", "/v1/actors/sys/messages")).status == 405);

  auto still = must(http.request("POST", sys, send_body("sys.echo", {{"text", "alive"}})));
  CHECK(still.status == 200);
  CHECK(node.stop(SIGTERM) == 0);
}

TEST_CASE("Expect: 100-continue is answered before the body is sent") {
  node_process node({});
  REQUIRE(node.started());
  const int fd = connect_loopback(node.url());
  REQUIRE(fd >= 0);
  const std::string body = R"({"type":"sys.echo","body":{"text":"after continue"}})";
  const std::string head =
      "POST /v1/actors/sys/messages HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + node.token() +
      "\r\nContent-Type: application/json\r\nContent-Length: " + std::to_string(body.size()) +
      "\r\nExpect: 100-continue\r\n\r\n";
  REQUIRE(send(fd, head.data(), head.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(head.size()));
  // Only the head has gone: the node answers 100 before it gets any body.
  CHECK(read_until(fd, "\r\n\r\n").starts_with("HTTP/1.1 100 Continue\r\n"));
  REQUIRE(send(fd, body.data(), body.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(body.size()));
  const auto answer = read_until(fd, "after continue");
  CHECK(answer.starts_with("HTTP/1.1 200"));
  CHECK(answer.find("after continue") != std::string::npos);
  close(fd);
  SECTION("a body over the limit by its Content-Length is refused without a 100") {
    const std::string big =
        "POST /v1/actors/sys/messages HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " +
        node.token() + "\r\nContent-Length: 999999999999\r\nExpect: 100-continue\r\n\r\n";
    const auto refused = raw_exchange(node, big);
    CHECK(refused.starts_with("HTTP/1.1 413"));
    CHECK(refused.find("100 Continue") == std::string::npos);
  }
}

TEST_CASE("framing other than a lone chunked is refused and closes the connection") {
  node_process node({});
  REQUIRE(node.started());
  // Each head hides a second, authenticated request in what it calls a body.
  const std::string smuggled =
      "GET /v1/actors HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + node.token() + "\r\n\r\n";
  for (const std::string coding :
       {"gzip", "identity", "xchunked", "chunked, identity", "gzip, chunked"}) {
    INFO(coding);
    const auto answer = raw_exchange(
        node, "POST /v1/actors/sys/messages HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: " + coding +
                  "\r\n\r\n" + smuggled);
    CHECK(answer.starts_with("HTTP/1.1 400"));
    CHECK(count_of(answer, "HTTP/1.1 ") == 1);  // the hidden request was never read
  }
  const auto both = raw_exchange(node,
                                 "POST /v1/actors/sys/messages HTTP/1.1\r\nHost: x\r\n"
                                 "Transfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n"
                                 "0\r\n\r\n" +
                                     smuggled);
  CHECK(both.starts_with("HTTP/1.1 400"));
  CHECK(count_of(both, "HTTP/1.1 ") == 1);
  // A lone chunked body is read as such, and an absolute-form target works.
  const std::string echo = R"({"type":"sys.echo","body":{"text":"chunks"}})";
  char size[16];
  std::snprintf(size, sizeof size, "%zx", echo.size());
  const auto chunked = raw_exchange(
      node,
      "POST http://127.0.0.1/v1/actors/sys/messages HTTP/1.1\r\nHost: x\r\n"
      "Authorization: Bearer " +
          node.token() + "\r\nConnection: close\r\nTransfer-Encoding: chunked\r\n\r\n" + size +
          "\r\n" + echo + "\r\n0\r\n\r\n");
  CHECK(chunked.starts_with("HTTP/1.1 200"));
  CHECK(chunked.find("chunks") != std::string::npos);
}

uint64_t metric_value(http_client& http, const std::string& name) {
  const auto text = must(http.request("GET", "/metrics")).body;
  const auto at = text.find("\n" + name + " ");
  return at == std::string::npos ? 0 : std::stoull(text.substr(at + name.size() + 2));
}

TEST_CASE("out of file descriptors, the accept loop backs off, counts, logs and serves again") {
  node_process node({});
  REQUIRE(node.started());
  // Opened before the squeeze, so it stays usable to watch the node.
  auto http = client_for(node, node.token());
  REQUIRE(metric_value(http, "troupe_http_accept_failures_total") == 0);
  auto url = parse_node_url(node.url());
  REQUIRE(url.has_value());
  // More waiting connections than a descriptor or two the node may free
  // meanwhile (a store file closing) can take.
  constexpr int waiting = 8;
  std::vector<int> fds;
  {
    fd_limit_squeeze squeeze(node.pid());
    REQUIRE(squeeze.applied());
    // The kernel completes the handshakes; the node cannot accept them.
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(url->port);
    inet_pton(AF_INET, "127.0.0.1", &addr.sin_addr);
    const std::string request = "GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    for (int i = 0; i < waiting; ++i) {
      const int fd = socket(AF_INET, SOCK_STREAM, 0);
      REQUIRE(fd >= 0);
      fds.push_back(fd);
      REQUIRE(connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
      REQUIRE(send(fd, request.data(), request.size(), MSG_NOSIGNAL) ==
              static_cast<ssize_t>(request.size()));
    }
    // Retries back off (10 ms doubling to 1 s) instead of spinning: a few
    // failures, counted, and one log line, while the node still answers on
    // the connection it has.
    const bool counted =
        wait_until([&] { return metric_value(http, "troupe_http_accept_failures_total") >= 4; });
    const auto log = node.stderr_text();
    INFO("node stderr: " << log.substr(log.size() > 3000 ? log.size() - 3000 : 0));
    REQUIRE(counted);
    CHECK(must(http.request("GET", "/healthz")).status == 200);
    CHECK(log.find("accepting a connection failed: Too many open files") != std::string::npos);
  }
  // With descriptors again every waiting connection is served, within the
  // longest back-off.
  for (const int fd : fds) {
    std::string answer;
    char buf[4096];
    while (answer.find("\r\n\r\n") == std::string::npos) {
      pollfd p{fd, POLLIN, 0};
      REQUIRE(poll(&p, 1, 5000 * static_cast<int>(slowdown())) == 1);
      const auto n = read(fd, buf, sizeof buf);
      REQUIRE(n > 0);
      answer.append(buf, static_cast<size_t>(n));
    }
    close(fd);
    CHECK(answer.rfind("HTTP/1.1 200", 0) == 0);
  }
  CHECK(must(client_for(node, "").request("GET", "/healthz")).status == 200);
  // A spinning loop would have failed thousands of times by now.
  CHECK(metric_value(http, "troupe_http_accept_failures_total") < 50);
}

TEST_CASE("the kill route is forbidden unless chaos is enabled") {
  node_process node({});
  REQUIRE(node.started());
  auto http = client_for(node, node.token());
  auto r = must(http.request("POST", "/v1/actors/sys/kill"));
  CHECK(r.status == 403);
  CHECK(body_json(r)["error"]["code"] == "forbidden");
}

TEST_CASE("a killed actor is restarted, the tree shows it and it serves again") {
  node_process node(chaos_on());
  REQUIRE(node.started());
  auto http = client_for(node, node.token());
  REQUIRE(wait_until([&] { return must(http.request("GET", "/readyz")).status == 200; }));
  // gateway/http is the listener of the very connection that asks: it is
  // crashed once the answer is written, and its next incarnation listens on
  // the same address.
  for (const char* path : {"sys", "cache", "gateway/calls", "gateway/http"}) {
    auto r = must(http.request("POST", std::string("/v1/actors/") + path + "/kill"));
    CHECK(r.status == 200);
    CHECK(body_json(r)["killed"] == path);
  }
  auto find = [](const json& node, const std::string& path, const auto& self) -> json {
    if (node.value("path", "") == path) {
      return node;
    }
    for (const auto& child : node.value("children", json::array())) {
      if (auto found = self(child, path, self); !found.is_null()) {
        return found;
      }
    }
    return nullptr;
  };
  auto restarted = [&](const json& tree, const std::string& path) {
    auto child = find(tree, path, find);
    return !child.is_null() && child["restarts"] == 1 && child["state"] == "running" &&
           child["last_failure"] == "killed by chaos";
  };
  REQUIRE(wait_until([&] {
    // Refused while the listener is between incarnations.
    auto r = http.request("GET", "/v1/actors");
    if (!r || r->status != 200) {
      return false;
    }
    auto tree = body_json(*r);
    return restarted(tree, "sys") && restarted(tree, "cache") && restarted(tree, "gateway/calls") &&
           restarted(tree, "gateway/http");
  }));
  auto echo = must(
      http.request("POST", "/v1/actors/sys/messages", send_body("sys.echo", {{"text", "back"}})));
  CHECK(echo.status == 200);
  auto metrics = must(http.request("GET", "/metrics")).body;
  CHECK(metrics.find("troupe_actor_restarts_total{path=\"sys\"} 1") != std::string::npos);
  CHECK(node.stop(SIGTERM) == 0);
}

TEST_CASE("troupectl status, tree, send, kill and metrics against a node") {
  node_process node(chaos_on());
  REQUIRE(node.started());

  auto status = ctl(node, {"status"});
  CHECK(status.exit_code == 0);
  CHECK(status.out.find("troupe-1") != std::string::npos);

  auto status_json = ctl(node, {"--json", "status"});
  REQUIRE(status_json.exit_code == 0);
  CHECK(json::parse(status_json.out)["node"]["name"] == "troupe-1");

  auto tree = ctl(node, {"tree"});
  CHECK(tree.exit_code == 0);
  CHECK(tree.out.find("sessions") != std::string::npos);

  auto echo = ctl(node, {"--json", "send", "sys", "sys.echo", R"({"text":"cli"})"});
  REQUIRE(echo.exit_code == 0);
  CHECK(json::parse(echo.out)["body"]["text"] == "cli");

  auto from_stdin = ctl(node, {"--json", "send", "sys", "sys.echo", "-"}, R"({"text":"stdin"})");
  REQUIRE(from_stdin.exit_code == 0);
  CHECK(json::parse(from_stdin.out)["body"]["text"] == "stdin");

  auto unknown = ctl(node, {"send", "nobody", "sys.echo"});
  CHECK(unknown.exit_code == 1);
  CHECK(unknown.err.find("unknown_actor") != std::string::npos);

  auto usage = ctl(node, {"send", "sys", "sys.echo", "{not json"});
  CHECK(usage.exit_code == 2);

  auto killed = ctl(node, {"kill", "sys"});
  CHECK(killed.exit_code == 0);
  REQUIRE(wait_until([&] {
    auto t = ctl(node, {"--json", "tree"});
    auto doc = json::parse(t.out);
    for (const auto& child : doc["children"]) {
      if (child["path"] == "sys") {
        return child["restarts"] == 1 && child["state"] == "running";
      }
    }
    return false;
  }));

  auto metrics = ctl(node, {"metrics"});
  CHECK(metrics.exit_code == 0);
  CHECK(metrics.out.find("# TYPE troupe_actor_restarts_total counter") != std::string::npos);

  auto unreachable = run_process({troupectl_binary(), "--url", "http://127.0.0.1:1", "status"});
  CHECK(unreachable.exit_code == 1);
  CHECK(unreachable.err.find("cannot reach") != std::string::npos);
}

TEST_CASE("a bad config stops start-up naming the file, key and reason") {
  temp_dir dir;
  const auto config = dir.path() + "/bad.toml";
  std::ofstream(config) << "[gateway]\nio_threads = 0\n";
  auto r = run_process({node_binary(), "--config", config, "--data-dir", dir.path() + "/data"});
  CHECK(r.exit_code == 1);
  CHECK(r.err.find(config + ": gateway.io_threads: must be between 1 and 64 (got 0)") !=
        std::string::npos);

  auto typo = run_process({node_binary(), "--data-dir", dir.path() + "/data"},
                          {{"TROUPE_GATEWAY_LISTN", "x"}});
  CHECK(typo.exit_code == 1);
  CHECK(typo.err.find("TROUPE_GATEWAY_LISTN") != std::string::npos);
}

TEST_CASE("a port in use stops start-up with a clear error") {
  node_process first({});
  REQUIRE(first.started());
  auto port = first.url().substr(first.url().rfind(':') + 1);
  temp_dir dir;
  auto r = run_process(
      {node_binary(), "--listen", "127.0.0.1:" + port, "--data-dir", dir.path() + "/data"});
  CHECK(r.exit_code == 1);
  CHECK(r.err.find("cannot listen on 127.0.0.1:" + port) != std::string::npos);
}

TEST_CASE("a node killed with SIGKILL starts again on the same data dir") {
  temp_dir dir;
  node_process::options o;
  o.data_dir = dir.path() + "/data";
  {
    node_process node(o);
    REQUIRE(node.started());
    CHECK(node.stop(SIGKILL) == 128 + SIGKILL);
  }
  node_process again(o);
  REQUIRE(again.started());
  CHECK(again.stderr_text().find("(boot #2)") != std::string::npos);
  auto http = client_for(again, again.token());
  CHECK(must(http.request("GET", "/v1/node")).status == 200);
  CHECK(again.stop(SIGTERM) == 0);
}
