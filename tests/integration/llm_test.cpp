// The LLM gateway through a real node in front of the mock Anthropic
// upstream (real HTTP on loopback, the API's JSON and SSE wire format,
// scripted faults): streamed and whole answers, the response cache,
// retries, breakers and the fallback chain, the limiter, the budget, the
// ledger and bad client input.

#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <catch2/catch.hpp>

#include <atomic>
#include <cerrno>
#include <filesystem>
#include <fstream>
#include <optional>
#include <thread>

#include <nlohmann/json.hpp>

#include "client/http_client.hpp"
#include "tests/integration/node_process.hpp"
#include "tests/support/wait.hpp"

using namespace troupe;
using namespace troupe::test;
using json = nlohmann::json;

namespace {

using env_map = std::map<std::string, std::string>;

/// No Catch assertion in here: tests make clients on threads of their own,
/// and Catch's assertions are not thread-safe (TSan reports them). The URLs
/// come from node_process and the mock, which print valid ones.
http_client client_for(const std::string& url, const std::string& token) {
  return http_client(*parse_node_url(url), token, 30000);
}

/// A node whose Anthropic upstream is a fresh mock.
struct gateway_fixture {
  explicit gateway_fixture(std::map<std::string, std::string> env = {},
                           std::vector<std::string> mock_args = {})
      : mock(std::move(mock_args)), node({{}, with_upstream(std::move(env)), {}}) {
    REQUIRE(mock.started());
    REQUIRE(node.started());
  }

  std::map<std::string, std::string> with_upstream(std::map<std::string, std::string> env) {
    REQUIRE(mock.started());
    env.emplace("TROUPE_ANTHROPIC_BASE_URL", mock.url());
    env.emplace("ANTHROPIC_API_KEY", "sk-ant-test-key");
    return env;
  }

  /// POST /v1/messages the way the official SDKs do.
  http_response messages(const json& body, http_client::headers extra = {}) {
    extra.emplace_back("x-api-key", node.token());
    extra.emplace_back("anthropic-version", "2023-06-01");
    auto http = client_for(node.url(), "");
    auto r = http.request("POST", "/v1/messages", body.dump(), "application/json", extra);
    if (!r) {
      FAIL("request failed: " << r.err().message);
    }
    return std::move(r).value();
  }

  json mock_stats() {
    auto http = client_for(mock.url(), "");
    auto r = http.request("GET", "/mock/stats");
    REQUIRE(r);
    return json::parse(r->body);
  }

  void mock_faults(const json& script) {
    auto http = client_for(mock.url(), "");
    auto r = http.request("POST", "/mock/faults", script.dump());
    REQUIRE(r);
    REQUIRE(r->status == 200);
  }

  /// The answer reaches the client before the cache has stored it (the
  /// store is asynchronous): wait until `count` answers were stored.
  void wait_cached(int count) {
    auto http = client_for(node.url(), node.token());
    REQUIRE(wait_until([&] {
      auto r = http.request("GET", "/v1/cache");
      return r && r->status == 200 && json::parse(r->body)["puts"].get<int>() >= count;
    }));
  }

  json usage() {
    auto http = client_for(node.url(), node.token());
    auto r = http.request("GET", "/v1/usage");
    REQUIRE(r);
    REQUIRE(r->status == 200);
    return json::parse(r->body);
  }

  /// The value of one series in the node's /metrics.
  double metric(const std::string& series) {
    auto metrics = client_for(node.url(), "").request("GET", "/metrics");
    REQUIRE(metrics);
    // At a line's start: "# HELP <name> ..." names the series too.
    const auto at = metrics->body.find("\n" + series + " ");
    REQUIRE(at != std::string::npos);
    return std::stod(metrics->body.substr(at + series.size() + 2));
  }

  mock_upstream_process mock;
  node_process node;
};

json question(const std::string& text, bool stream = false, std::string model = "claude-test") {
  return json{{"model", std::move(model)},
              {"max_tokens", 256},
              {"temperature", 0},
              {"stream", stream},
              {"messages", json::array({{{"role", "user"}, {"content", text}}})}};
}

/// A streamed question sent on a raw socket, so that the test reads the
/// answer itself, at its own pace; -1 when it could not be sent.
int send_raw_stream(gateway_fixture& gw, const std::string& text, const std::string& extra_header) {
  const int fd = connect_loopback(gw.node.url());
  if (fd < 0) {
    return -1;
  }
  const std::string body = question(text, true).dump();
  const std::string request =
      "POST /v1/messages HTTP/1.1\r\nHost: x\r\nx-api-key: " + gw.node.token() +
      "\r\nanthropic-version: 2023-06-01\r\ncontent-type: "
      "application/json\r\n" +
      extra_header + "\r\ncontent-length: " + std::to_string(body.size()) + "\r\n\r\n" + body;
  if (::send(fd, request.data(), request.size(), MSG_NOSIGNAL) !=
      static_cast<ssize_t>(request.size())) {
    ::close(fd);
    return -1;
  }
  return fd;
}

std::string header(const http_response& r, std::string_view name) {
  return std::string(find_header(r, name));
}

/// The SSE events of a body as (event, data JSON) pairs.
std::vector<std::pair<std::string, json>> events_of(const std::string& body) {
  std::vector<std::pair<std::string, json>> out;
  size_t at = 0;
  while ((at = body.find("event: ", at)) != std::string::npos) {
    const auto name_end = body.find('\n', at);
    const auto data_at = body.find("data: ", name_end);
    const auto data_end = body.find('\n', data_at);
    out.emplace_back(body.substr(at + 7, name_end - at - 7),
                     json::parse(body.substr(data_at + 6, data_end - data_at - 6)));
    at = data_end;
  }
  return out;
}

std::string text_of(const json& message) {
  std::string text;
  for (const auto& block : message["content"]) {
    if (block["type"] == "text") {
      text += block["text"].get<std::string>();
    }
  }
  return text;
}

}  // namespace

TEST_CASE("llm: a whole answer passes through, and the repeat comes from cache") {
  gateway_fixture gw;
  auto first = gw.messages(question("explain supervision trees"));
  REQUIRE(first.status == 200);
  CHECK(header(first, "x-troupe-cache") == "miss");
  CHECK(header(first, "x-troupe-upstream") == "anthropic/claude-test");
  CHECK_FALSE(header(first, "request-id").empty());
  const auto message = json::parse(first.body);
  CHECK(message["type"] == "message");
  CHECK(text_of(message).find("explain supervision trees") != std::string::npos);
  gw.wait_cached(1);

  // Same question, other key order, other metadata, stream field spelled
  // out: the same canonical request.
  json again = json::parse(R"({"messages":[{"role":"user","content":"explain supervision trees"}],
      "metadata":{"user_id":"someone-else"},"temperature":0,"max_tokens":256,"model":"claude-test"})");
  auto second = gw.messages(again);
  REQUIRE(second.status == 200);
  CHECK(header(second, "x-troupe-cache") == "hit");
  CHECK(second.body == first.body);  // byte for byte what the upstream sent
  CHECK(gw.mock_stats()["requests"] == 1);

  // A different question is a miss.
  CHECK(header(gw.messages(question("something else")), "x-troupe-cache") == "miss");
  CHECK(gw.mock_stats()["requests"] == 2);

  // The ledger saw one hit and the tokens it saved.
  const auto usage = gw.usage();
  CHECK(usage["total"]["requests"] == 3);
  CHECK(usage["total"]["cache_hits"] == 1);
  CHECK(usage["total"]["served_tokens"] ==
        message["usage"]["input_tokens"].get<int>() + message["usage"]["output_tokens"].get<int>());
  CHECK(usage["total"]["input_tokens"] == gw.mock_stats()["input_tokens"]);
  CHECK(usage["by_model"]["claude-test"]["requests"] == 3);

  // troupectl usage shows it to people.
  auto ctl = run_process(
      {troupectl_binary(), "--url", gw.node.url(), "--token", gw.node.token(), "usage"});
  CHECK(ctl.exit_code == 0);
  CHECK(ctl.out.find("total") != std::string::npos);
  CHECK(ctl.out.find("model claude-test") != std::string::npos);
}

TEST_CASE("llm: /v1/usage is troupe's own route and answers errors in troupe's shape") {
  gateway_fixture gw;
  auto error_code = [](const expected<http_response>& r) {
    REQUIRE(r);
    return json::parse(r->body)["error"]["code"].get<std::string>();
  };
  auto post = client_for(gw.node.url(), gw.node.token()).request("POST", "/v1/usage", "{}");
  CHECK(post->status == 405);
  CHECK(error_code(post) == "method_not_allowed");
  auto anonymous = client_for(gw.node.url(), "").request("GET", "/v1/usage");
  CHECK(anonymous->status == 401);
  CHECK(error_code(anonymous) == "unauthorized");
  // The Anthropic routes keep the API's shape.
  auto messages = client_for(gw.node.url(), "").request("POST", "/v1/messages", "{}");
  REQUIRE(messages);
  CHECK(messages->status == 401);
  CHECK(json::parse(messages->body)["error"]["type"] == "authentication_error");
}

TEST_CASE("llm: a stream is forwarded as SSE and replayed event for event") {
  gateway_fixture gw;
  auto live = gw.messages(question("stream a long answer about mailboxes and actors", true));
  REQUIRE(live.status == 200);
  CHECK(live.content_type.find("text/event-stream") != std::string::npos);
  CHECK(header(live, "x-troupe-cache") == "miss");
  const auto events = events_of(live.body);
  REQUIRE(events.size() >= 6);
  CHECK(events.front().first == "message_start");
  CHECK(events.back().first == "message_stop");
  gw.wait_cached(1);

  auto replay = gw.messages(question("stream a long answer about mailboxes and actors", true));
  CHECK(header(replay, "x-troupe-cache") == "hit");
  CHECK(replay.body == live.body);

  // A non-streaming client gets the message assembled from the events.
  auto whole = gw.messages(question("stream a long answer about mailboxes and actors", false));
  CHECK(header(whole, "x-troupe-cache") == "hit");
  std::string streamed_text;
  for (const auto& [name, data] : events) {
    if (name == "content_block_delta") {
      streamed_text += data["delta"]["text"].get<std::string>();
    }
  }
  CHECK(text_of(json::parse(whole.body)) == streamed_text);
  CHECK(gw.mock_stats()["requests"] == 1);

  // And a whole cached answer streams to a streaming client.
  REQUIRE(gw.messages(question("whole first")).status == 200);
  gw.wait_cached(2);
  auto synthesized = gw.messages(question("whole first", true));
  CHECK(header(synthesized, "x-troupe-cache") == "hit");
  const auto synthesized_events = events_of(synthesized.body);
  REQUIRE_FALSE(synthesized_events.empty());
  CHECK(synthesized_events.back().first == "message_stop");
}

TEST_CASE("llm: cache control headers, sampling and file dependencies") {
  gateway_fixture gw;
  temp_dir dir;
  const auto file = dir.path() + "/main.cpp";
  std::ofstream(file) << "int main() {}";
  const http_client::headers depends{{"x-troupe-depends-on", file}};

  CHECK(header(gw.messages(question("review main.cpp"), depends), "x-troupe-cache") == "miss");
  gw.wait_cached(1);
  CHECK(header(gw.messages(question("review main.cpp"), depends), "x-troupe-cache") == "hit");
  std::ofstream(file, std::ios::app) << "\n// edited";
  CHECK(header(gw.messages(question("review main.cpp"), depends), "x-troupe-cache") == "miss");
  CHECK(gw.mock_stats()["requests"] == 2);

  CHECK(header(gw.messages(question("review main.cpp"), {{"x-troupe-cache", "bypass"}}),
               "x-troupe-cache") == "bypass");
  CHECK(header(gw.messages(question("review main.cpp"), {{"x-troupe-cache", "refresh"}}),
               "x-troupe-cache") == "miss");
  CHECK(gw.mock_stats()["requests"] == 4);

  // A cached answer is a valid sample of its request: temperature > 0 is
  // cached too, by default.
  auto sampled = question("write a poem");
  sampled["temperature"] = 0.7;
  CHECK(header(gw.messages(sampled), "x-troupe-cache") == "miss");
  // Until the shard has stored the answer its flight still holds it, so a
  // repeat sent at once may be served from there; after that, a hit.
  const auto repeat = header(gw.messages(sampled), "x-troupe-cache");
  CHECK((repeat == "hit" || repeat == "coalesced"));
  CHECK(wait_until([&] { return header(gw.messages(sampled), "x-troupe-cache") == "hit"; }));
  CHECK(gw.mock_stats()["requests"] == 5);
}

TEST_CASE("llm: llm.cache_sampled = false sends every sampled request upstream") {
  gateway_fixture gw(env_map{{"TROUPE_LLM_CACHE_SAMPLED", "false"}});
  auto sampled = question("write a poem");
  sampled["temperature"] = 0.7;
  CHECK(header(gw.messages(sampled), "x-troupe-cache") == "miss");
  CHECK(header(gw.messages(sampled), "x-troupe-cache") == "miss");
  CHECK(gw.mock_stats()["requests"] == 2);
}

namespace {

/// `n` sentences: a prompt long enough for the provider's prompt cache.
std::string long_text(const std::string& topic, int n) {
  std::string text;
  for (int i = 0; i < n; ++i) {
    text += "Rule " + std::to_string(i) + " about " + topic + ": keep the answer short. ";
  }
  return text;
}

/// A request as the official SDK sends one: no temperature, no
/// cache_control, a long system prompt and a tool list.
json sdk_request(const std::string& text, bool stream) {
  return json{{"model", "claude-sonnet-4-5"},
              {"max_tokens", 1024},
              {"stream", stream},
              {"system", long_text("style", 200)},
              {"tools", json::array({{{"name", "Read"},
                                      {"description", long_text("reading files", 100)},
                                      {"input_schema", {{"type", "object"}}}}})},
              {"messages", json::array({{{"role", "user"}, {"content", text}}})}};
}

const http_client::headers sdk_headers{{"user-agent", "Anthropic/JS 0.68.0"},
                                       {"x-stainless-lang", "js"},
                                       {"x-stainless-retry-count", "0"}};

}  // namespace

TEST_CASE("llm: with the shipped defaults a real client's repeat is served from the cache") {
  gateway_fixture gw;
  for (const bool stream : {false, true}) {
    const auto text = std::string("summarise the design, streamed: ") + (stream ? "yes" : "no");
    auto first = gw.messages(sdk_request(text, stream), sdk_headers);
    REQUIRE(first.status == 200);
    CHECK(header(first, "x-troupe-cache") == "miss");
    // No wait for the store: a repeat right after the answer is a hit (or
    // shares the answer still being stored).
    auto again = gw.messages(sdk_request(text, stream), sdk_headers);
    REQUIRE(again.status == 200);
    const auto label = header(again, "x-troupe-cache");
    CHECK((label == "hit" || label == "coalesced"));
    CHECK(again.body == first.body);
  }
  CHECK(gw.mock_stats()["requests"] == 2);

  // Claude Code marks its own breakpoints and sends a beta header and
  // metadata: its repeat is a hit all the same.
  auto claude_code = sdk_request("fix the failing test", true);
  claude_code["temperature"] = 1;
  claude_code["metadata"] = {{"user_id", "user_abc_account_def_session_1"}};
  claude_code["system"] = json::array({{{"type", "text"},
                                        {"text", long_text("agents", 300)},
                                        {"cache_control", {{"type", "ephemeral"}}}}});
  const http_client::headers beta{{"anthropic-beta", "claude-code-20250219"}};
  REQUIRE(header(gw.messages(claude_code, beta), "x-troupe-cache") == "miss");
  claude_code["metadata"]["user_id"] = "user_abc_account_def_session_2";
  const auto label = header(gw.messages(claude_code, beta), "x-troupe-cache");
  CHECK((label == "hit" || label == "coalesced"));
  CHECK(gw.mock_stats()["requests"] == 3);
}

TEST_CASE("llm: breakpoints are added by default and every saved token is counted") {
  gateway_fixture gw;
  // Two questions with the same long prefix: the second reads the prefix
  // from the provider's cache.
  auto first = json::parse(gw.messages(sdk_request("first question", false)).body);
  CHECK(first["usage"]["cache_creation_input_tokens"].get<int>() > 1024);
  auto second = json::parse(gw.messages(sdk_request("second question", false)).body);
  CHECK(second["usage"]["cache_read_input_tokens"].get<int>() > 1024);
  CHECK(second["usage"]["cache_creation_input_tokens"] == 0);
  // A short request gets no breakpoint: the provider would not cache it.
  auto short_answer = json::parse(gw.messages(question("short")).body);
  CHECK(short_answer["usage"]["cache_creation_input_tokens"] == 0);

  // The repeat of the first: the response cache avoided all its input.
  REQUIRE(header(gw.messages(sdk_request("first question", false)), "x-troupe-cache") == "hit");
  const auto u = first["usage"];
  const auto usage = gw.usage()["total"];
  CHECK(usage["served_input_tokens"] == u["input_tokens"].get<int>() +
                                            u["cache_creation_input_tokens"].get<int>() +
                                            u["cache_read_input_tokens"].get<int>());
  CHECK(usage["served_output_tokens"] == u["output_tokens"]);
  // The upstream's own counts and the ledger's agree.
  const auto stats = gw.mock_stats();
  CHECK(usage["input_tokens"] == stats["input_tokens"]);
  CHECK(usage["cache_read_input_tokens"] == stats["cache_read_input_tokens"]);
  CHECK(usage["cache_creation_input_tokens"] == stats["cache_creation_input_tokens"]);
  // Prompt caching saved full-price input: reads cost a tenth, writes 1.25.
  const double reads = usage["cache_read_input_tokens"].get<double>();
  const double writes = usage["cache_creation_input_tokens"].get<double>();
  CHECK(usage["prompt_cache_saved_tokens"].get<double>() ==
        Approx(0.9 * reads - 0.25 * writes).margin(1));
  CHECK(usage["prompt_cache_saved_tokens"].get<double>() > 0);
}

namespace {

/// `n` clients send `body` at once; their answers in arrival order.
std::vector<http_response> at_once(gateway_fixture& gw, const json& body, int n) {
  std::vector<std::optional<http_response>> answers(static_cast<size_t>(n));
  std::vector<std::thread> clients;
  for (int i = 0; i < n; ++i) {
    clients.emplace_back([&, i] {
      auto http = client_for(gw.node.url(), gw.node.token());
      auto r = http.request("POST", "/v1/messages", body.dump());
      if (r) {
        answers[static_cast<size_t>(i)] = std::move(*r);
      }
    });
  }
  for (auto& c : clients) {
    c.join();
  }
  std::vector<http_response> out;
  for (auto& a : answers) {
    REQUIRE(a.has_value());
    out.push_back(std::move(*a));
  }
  return out;
}

}  // namespace

TEST_CASE("llm: identical requests at once make one upstream call") {
  // Each upstream answer takes 400 ms, so the 50 requests overlap.
  gateway_fixture gw({}, {"--delay-ms", "400"});
  for (const bool stream : {false, true}) {
    const auto answers =
        at_once(gw, question(stream ? "one stream for all" : "one call for all", stream), 50);
    int shared = 0;
    for (const auto& r : answers) {
      CHECK(r.status == 200);
      CHECK(r.body == answers.front().body);  // a stream is replayed from its start
      const auto label = header(r, "x-troupe-cache");
      shared += label == "coalesced" || label == "hit" ? 1 : 0;
    }
    CHECK(shared == 49);
  }
  CHECK(gw.mock_stats()["requests"] == 2);
  CHECK(gw.usage()["total"]["coalesced"].get<int>() >= 1);

  // A failure of the one call reaches every one of them.
  gw.mock_faults({{"faults", {{{"kind", "overloaded"}}}}, {"mode", "always"}});
  const auto failed = at_once(gw, question("one failure for all"), 10);
  for (const auto& r : failed) {
    CHECK(r.status == 529);
  }
  CHECK(gw.mock_stats()["errors"] == 1);
}

TEST_CASE("llm: a waiting client that leaves does not cancel the shared call") {
  gateway_fixture gw({}, {"--delay-ms", "1500"});
  // The first client streams and leaves after 300 ms, before any byte.
  auto leaver = std::thread([&] {
    run_process({"/usr/bin/curl", "-s", "-N", "-m", "0.3", "-H", "x-api-key: " + gw.node.token(),
                 "-H", "anthropic-version: 2023-06-01", "-H", "content-type: application/json",
                 "-d", question("shared and left", true).dump(), gw.node.url() + "/v1/messages"});
  });
  // The node's call is open at the mock (beside this stats request's own).
  REQUIRE(wait_until([&] { return gw.mock_stats()["connections"]["open"].get<int>() >= 2; }));
  auto stayed = gw.messages(question("shared and left", false));
  leaver.join();
  CHECK(stayed.status == 200);
  CHECK(header(stayed, "x-troupe-cache") == "coalesced");
  CHECK(text_of(json::parse(stayed.body)).find("shared and left") != std::string::npos);
  CHECK(gw.mock_stats()["requests"] == 1);
}

TEST_CASE("llm: retries after 429 with retry-after and after 500, never after a spend limit") {
  gateway_fixture gw(env_map{{"TROUPE_LLM_RETRY_BACKOFF_MIN_MS", "10"}});
  gw.mock_faults(
      {{"faults", {{{"kind", "rate_limit"}, {"retry_after_s", 0}}, {{"kind", "server_error"}}}}});
  auto r = gw.messages(question("retry me"));
  CHECK(r.status == 200);
  auto stats = gw.mock_stats();
  CHECK(stats["requests"] == 1);
  CHECK(stats["errors"] == 2);
  CHECK(gw.usage()["total"]["retries"] == 2);

  gw.mock_faults({{"faults", {{{"kind", "spend_limit"}}}}});
  auto spent = gw.messages(question("over the limit"));
  CHECK(spent.status == 429);
  CHECK(json::parse(spent.body)["error"]["type"] == "rate_limit_error");
  CHECK(gw.mock_stats()["errors"] == 3);  // exactly one more call: no retry

  // Retries are bounded: three 500s in a row (1 + retries_max) give up.
  gw.mock_faults({{"faults", {{{"kind", "server_error"}}}}, {"mode", "always"}});
  auto failed = gw.messages(question("always failing"));
  CHECK(failed.status == 500);
  CHECK(json::parse(failed.body)["error"]["type"] == "api_error");
  CHECK(gw.mock_stats()["errors"] == 6);
}

TEST_CASE("llm: a retry-after pauses only the model that said it, and no longer than the cap") {
  gateway_fixture gw(env_map{{"TROUPE_LLM_RETRY_AFTER_MAX_MS", "60000"}});
  gw.mock_faults(
      {{"faults", {{{"kind", "rate_limit"}, {"retry_after_s", 86400}, {"model", "claude-a"}}}}});
  auto limited = gw.messages(question("first", false, "claude-a"));
  CHECK(limited.status == 429);
  const auto paused = gw.usage()["paused"];
  REQUIRE(paused.contains("anthropic/claude-a"));
  CHECK(paused["anthropic/claude-a"].get<int>() <= 60000);
  CHECK(paused["anthropic/claude-a"].get<int>() > 0);
  // Another model is not held back at all.
  auto other = gw.messages(question("second", false, "claude-b"));
  CHECK(other.status == 200);
  CHECK(gw.mock_stats()["by_model"]["claude-b"]["requests"] == 1);
  CHECK(gw.metric("troupe_llm_upstream_pauses_total") == 1);
}

TEST_CASE("llm: 529 opens the model's breaker and the fallback chain answers") {
  gateway_fixture gw(env_map{{"TROUPE_LLM_FALLBACK_MODELS", "claude-backup"},
                             {"TROUPE_BREAKER_FAILURES_MAX", "2"},
                             {"TROUPE_BREAKER_OPEN_MS", "60000"},
                             {"TROUPE_BREAKER_OPEN_MS_MAX", "60000"}});
  gw.mock_faults(
      {{"faults", {{{"kind", "overloaded"}, {"model", "claude-test"}}}}, {"mode", "always"}});
  for (int i = 0; i < 3; ++i) {
    auto r = gw.messages(question("question " + std::to_string(i)));
    REQUIRE(r.status == 200);
    CHECK(header(r, "x-troupe-upstream") == "anthropic/claude-backup");
    CHECK(json::parse(r.body)["model"] == "claude-backup");
  }
  // Two 529s opened claude-test's breaker: the third request skipped it.
  const auto stats = gw.mock_stats();
  CHECK(stats["errors"] == 2);
  CHECK(stats["by_model"]["claude-backup"]["requests"] == 3);
  CHECK(gw.usage()["total"]["fallbacks"] == 3);

  auto metrics = client_for(gw.node.url(), "").request("GET", "/metrics");
  REQUIRE(metrics);
  CHECK(metrics->body.find("troupe_breaker_transitions_total{target=\"llm/anthropic/claude-test\","
                           "to=\"open\"} 1") != std::string::npos);
  // /readyz names the open breaker, asked of the provider that owns it; the
  // node still serves (the chain, the cache), so it stays ready.
  auto ready = client_for(gw.node.url(), "").request("GET", "/readyz");
  REQUIRE(ready);
  CHECK(ready->status == 200);
  const auto doc = json::parse(ready->body);
  CHECK(doc["status"] == "ready");
  CHECK(doc["upstreams"]["anthropic"]["breakers"]["claude-test"] == "open");
  CHECK(doc["upstreams"]["anthropic"]["breakers"].size() == 1);
  CHECK(doc["storage"]["ok"] == true);
  CHECK(doc["storage"]["failed_writes"] == 0);
}

TEST_CASE("llm: a long stream is not a slow call: the breaker judges how soon it started") {
  // Two calls in the window, and any call over 100 ms slow: two slow calls
  // open the breaker.
  gateway_fixture gw(env_map{{"TROUPE_BREAKER_WINDOW_CALLS", "2"},
                             {"TROUPE_BREAKER_CALLS_MIN", "2"},
                             {"TROUPE_BREAKER_SLOW_CALL_MS", "100"},
                             {"TROUPE_BREAKER_OPEN_MS", "60000"},
                             {"TROUPE_BREAKER_OPEN_MS_MAX", "60000"}});
  // Each stream starts at once and takes about a second to write.
  gw.mock_faults({{"faults", {{{"kind", "slow"}, {"delay_ms", 0}, {"interval_ms", 100}}}},
                  {"mode", "always"}});
  for (int i = 0; i < 3; ++i) {
    auto r = gw.messages(question("a long answer " + std::to_string(i), true));
    REQUIRE(r.status == 200);
    CHECK(events_of(r.body).back().first == "message_stop");
  }
  CHECK(gw.mock_stats()["requests"] == 3);
  auto metrics = client_for(gw.node.url(), "").request("GET", "/metrics");
  REQUIRE(metrics);
  CHECK(metrics->body.find("troupe_breaker_transitions_total{target=\"llm/anthropic/claude-test\","
                           "to=\"open\"}") == std::string::npos);
  SECTION("a stream that is slow to start still counts as slow") {
    gw.mock_faults({{"faults", {{{"kind", "slow"}, {"delay_ms", 300}}}}, {"mode", "always"}});
    for (int i = 0; i < 2; ++i) {
      REQUIRE(gw.messages(question("a late answer " + std::to_string(i), true)).status == 200);
    }
    CHECK(gw.messages(question("refused by the open breaker", true)).status == 529);
  }
}

TEST_CASE("llm: an OpenAI-compatible local server and then a stale answer are the last resorts") {
  std::optional<mock_upstream_process> local(std::in_place);
  REQUIRE(local->started());
  gateway_fixture gw(env_map{{"TROUPE_LLM_LOCAL_BASE_URL", local->url()},
                             {"TROUPE_LLM_LOCAL_MODEL", "llama-local"}});
  REQUIRE(gw.messages(question("cached before the outage")).status == 200);
  gw.wait_cached(1);

  gw.mock_faults({{"faults", {{{"kind", "overloaded"}}}}, {"mode", "always"}});
  auto r = gw.messages(question("during the outage", true));
  REQUIRE(r.status == 200);
  CHECK(header(r, "x-troupe-upstream") == "local/llama-local");
  const auto events = events_of(r.body);
  REQUIRE_FALSE(events.empty());
  CHECK(events.back().first == "message_stop");

  // The local server goes away too: the refreshed question gets the stale
  // copy of its earlier answer, marked as such.
  local.reset();
  auto stale = gw.messages(question("cached before the outage"), {{"x-troupe-cache", "refresh"}});
  REQUIRE(stale.status == 200);
  CHECK(header(stale, "x-troupe-cache") == "stale");
  CHECK(gw.usage()["total"]["stale_served"] == 1);

  // Nothing cached and nothing up: a clear overloaded error.
  auto none = gw.messages(question("never asked before"));
  CHECK(none.status == 529);
  CHECK(json::parse(none.body)["error"]["type"] == "overloaded_error");
  // Every step of the chain says why it failed, not only the last one.
  const auto why = json::parse(none.body)["error"]["message"].get<std::string>();
  CHECK(why.find("anthropic/") != std::string::npos);
  CHECK(why.find("local/llama-local") != std::string::npos);
}

TEST_CASE("llm: a paced stream reaches the client event by event, as it arrives") {
  gateway_fixture gw;
  // Every event 200 ms after the one before: about ten events over 2 s.
  gw.mock_faults({{"faults", {{{"kind", "slow"}, {"delay_ms", 0}, {"interval_ms", 200}}}}});
  const int fd = send_raw_stream(gw, "tell me slowly", "connection: close");
  REQUIRE(fd >= 0);
  // When the first and the last event came: far apart if each was passed
  // on as it arrived, together if the node held the stream back.
  std::string seen;
  std::optional<std::chrono::steady_clock::time_point> first;
  std::optional<std::chrono::steady_clock::time_point> last;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  char buf[4096];
  while (!last && std::chrono::steady_clock::now() < deadline) {
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, 100) <= 0) {
      continue;
    }
    const auto n = ::read(fd, buf, sizeof buf);
    if (n <= 0) {
      break;
    }
    seen.append(buf, static_cast<size_t>(n));
    if (!first && seen.find("event: message_start") != std::string::npos) {
      first = std::chrono::steady_clock::now();
    }
    if (seen.find("event: message_stop") != std::string::npos) {
      last = std::chrono::steady_clock::now();
    }
  }
  ::close(fd);
  REQUIRE(first.has_value());
  REQUIRE(last.has_value());
  CHECK(*last - *first >= std::chrono::milliseconds(1000));
}

TEST_CASE("llm: a client that stops reading its stream is dropped, and the node serves on") {
  // 4 MiB of text: about 34 MiB of events, more than the node holds for a
  // client (8 MiB behind a write in flight) plus what the sockets buffer.
  gateway_fixture gw({}, {"--answer-bytes", std::to_string(4 << 20)});
  const int fd = send_raw_stream(gw, "tell me everything", "x-troupe-cache: bypass");
  REQUIRE(fd >= 0);
  // The client reads nothing more: the node gives up on it.
  REQUIRE(wait_until(
      [&] {
        return gw.node.stderr_text().find("dropping a client that does not read its stream") !=
               std::string::npos;
      },
      std::chrono::seconds(60)));
  // Its connection is closed: what was sent drains, then the end (a read
  // that waits 30 s for either fails the test).
  timeval wait{30, 0};
  REQUIRE(::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &wait, sizeof wait) == 0);
  std::string seen;
  char buf[1 << 16];
  ssize_t n = 0;
  while ((n = ::read(fd, buf, sizeof buf)) > 0) {
    seen.append(buf, static_cast<size_t>(n));
  }
  const bool ended = n == 0 || errno == ECONNRESET;
  ::close(fd);
  CHECK(ended);
  CHECK(seen.starts_with("HTTP/1.1 200"));
  CHECK(seen.find("event: message_stop") == std::string::npos);
  // Everyone else is still served.
  auto r = gw.messages(question("and you?"));
  CHECK(r.status == 200);
  // And the dropped request is not left counted in flight: the node
  // drains at once when told to stop.
  CHECK(gw.node.stop(SIGTERM) == 0);
  CHECK(gw.node.stderr_text().find("requests still in flight") == std::string::npos);
}

TEST_CASE("llm: a client that leaves between a stream's events is let go at once") {
  gateway_fixture gw;
  // Every event 200 ms after the one before: the client leaves while no
  // write is in flight.
  gw.mock_faults({{"faults", {{{"kind", "slow"}, {"delay_ms", 0}, {"interval_ms", 200}}}}});
  const int fd = send_raw_stream(gw, "tell me slowly", "x-troupe-cache: bypass");
  REQUIRE(fd >= 0);
  timeval wait{30, 0};  // a read that waits longer fails the test
  REQUIRE(::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &wait, sizeof wait) == 0);
  std::string seen;
  char buf[4096];
  while (seen.find("event: message_start") == std::string::npos) {
    const auto n = ::read(fd, buf, sizeof buf);
    REQUIRE(n > 0);
    seen.append(buf, static_cast<size_t>(n));
  }
  ::close(fd);
  // The node notices, stops the upstream call and counts the request done:
  // told to stop, it has nothing in flight to wait for.
  CHECK(gw.node.stop(SIGTERM) == 0);
  CHECK(gw.node.stderr_text().find("requests still in flight") == std::string::npos);
}

TEST_CASE("llm: errors inside a stream reach the client and are not cached") {
  gateway_fixture gw;
  gw.mock_faults({{"faults", {{{"kind", "midstream_error"}}, {{"kind", "cut"}}}}});
  auto broken = gw.messages(question("break mid-stream", true));
  REQUIRE(broken.status == 200);
  auto events = events_of(broken.body);
  REQUIRE_FALSE(events.empty());
  CHECK(events.back().first == "error");
  CHECK(events.back().second["error"]["type"] == "overloaded_error");

  auto cut = gw.messages(question("cut mid-stream", true));
  REQUIRE(cut.status == 200);
  events = events_of(cut.body);
  REQUIRE_FALSE(events.empty());
  CHECK(events.back().first == "error");
  CHECK(events.back().second["error"]["message"].get<std::string>().find("broke off") !=
        std::string::npos);

  // Neither was cached: asking again reaches the upstream.
  CHECK(header(gw.messages(question("break mid-stream", true)), "x-troupe-cache") == "miss");
}

TEST_CASE("llm: a malformed or slow upstream is an upstream failure, not a crash") {
  gateway_fixture gw(env_map{{"TROUPE_LLM_TIMEOUT_MS", "300"}, {"TROUPE_LLM_RETRIES_MAX", "0"}});
  gw.mock_faults({{"faults", {{{"kind", "malformed"}}}}});
  auto malformed = gw.messages(question("malformed"));
  CHECK(malformed.status == 529);
  CHECK(json::parse(malformed.body)["error"]["message"].get<std::string>().find("not JSON") !=
        std::string::npos);

  gw.mock_faults({{"faults", {{{"kind", "slow"}, {"delay_ms", 2000}}}}});
  auto slow = gw.messages(question("slow"));
  CHECK(slow.status == 529);
  CHECK(json::parse(slow.body)["error"]["message"].get<std::string>().find("timed out") !=
        std::string::npos);
  CHECK(gw.messages(question("fine again")).status == 200);
}

TEST_CASE("llm: bad client input is answered like the Anthropic API would") {
  gateway_fixture gw(env_map{{"TROUPE_GATEWAY_BODY_BYTES_MAX", "65536"}});
  auto http = client_for(gw.node.url(), "");
  auto post = [&](std::string body, http_client::headers h) {
    auto r = http.request("POST", "/v1/messages", std::move(body), "application/json", h);
    REQUIRE(r);
    return std::move(r).value();
  };
  const http_client::headers auth{{"x-api-key", gw.node.token()}};

  auto no_key = post(question("x").dump(), {});
  CHECK(no_key.status == 401);
  CHECK(json::parse(no_key.body)["error"]["type"] == "authentication_error");

  auto not_json = post("{not json", auth);
  CHECK(not_json.status == 400);
  CHECK(json::parse(not_json.body)["type"] == "error");
  CHECK(json::parse(not_json.body)["error"]["type"] == "invalid_request_error");

  auto missing = question("x");
  missing.erase("max_tokens");
  auto no_max = post(missing.dump(), auth);
  CHECK(no_max.status == 400);
  CHECK(json::parse(no_max.body)["error"]["message"] == "max_tokens: Field required");

  auto huge = post(question(std::string(100000, 'a')).dump(), auth);
  CHECK(huge.status == 413);
  CHECK(json::parse(huge.body)["error"]["type"] == "request_too_large");

  auto deep = post(std::string(10000, '[') + std::string(10000, ']'), auth);
  CHECK(deep.status == 400);
  CHECK(json::parse(deep.body)["error"]["message"].get<std::string>().find(
            "nests deeper than 128 levels") != std::string::npos);
  auto broken = post(R"({"model": "claude-x", "max_tokens": )", auth);
  CHECK(broken.status == 400);
  // Where the parse failed, not just that it did.
  CHECK(json::parse(broken.body)["error"]["message"].get<std::string>().find("not valid JSON: ") !=
        std::string::npos);

  // A number no double holds is a bad request on every route that takes
  // JSON, and the router is not restarted by it.
  auto overflow = post(R"({"model":"claude-test","max_tokens":5,"temperature":1e400,
      "messages":[{"role":"user","content":"x"}]})",
                       auth);
  CHECK(overflow.status == 400);
  CHECK(json::parse(overflow.body)["error"]["message"].get<std::string>().find("number overflow") !=
        std::string::npos);
  auto counted = http.request("POST", "/v1/messages/count_tokens", R"({"a": 1e400})",
                              "application/json", auth);
  REQUIRE(counted);
  CHECK(counted->status == 400);
  auto control = client_for(gw.node.url(), gw.node.token());
  for (const char* target : {"/v1/actors/sys/messages", "/v1/cache/invalidate"}) {
    auto r = control.request("POST", target, R"({"type": "sys.echo", "x": -1e400})");
    REQUIRE(r);
    CHECK(r->status == 400);
    CHECK(json::parse(r->body)["error"]["code"] == "bad_request");
  }
  auto tree = control.request("GET", "/v1/actors");
  REQUIRE(tree);
  CHECK(tree->body.find("\"restarts\":1") == std::string::npos);

  // The model name ends up in headers and metric labels: bounded, no spaces.
  auto odd_model = question("x");
  odd_model["model"] = "claude\r\nx-injected: 1";
  CHECK(post(odd_model.dump(), auth).status == 400);
  odd_model["model"] = std::string(300, 'm');
  CHECK(post(odd_model.dump(), auth).status == 400);

  // Checked here as the API checks it; the upstream is not bothered.
  auto wrong = question("x");
  wrong["messages"][0]["role"] = "robot";
  CHECK(post(wrong.dump(), auth).status == 400);
  CHECK(gw.mock_stats()["requests"] == 0);

  // The node is still serving.
  CHECK(gw.messages(question("still here")).status == 200);
}

TEST_CASE("llm: the limiter queues instead of refusing, within its bounds") {
  gateway_fixture gw(env_map{{"TROUPE_LLM_REQUESTS_PER_MINUTE", "2"},
                             {"TROUPE_LLM_QUEUE_MAX", "1"},
                             {"TROUPE_LLM_QUEUE_TIMEOUT_MS", "1500"}});
  CHECK(gw.messages(question("one")).status == 200);
  CHECK(gw.messages(question("two")).status == 200);
  gw.wait_cached(2);

  // The bucket is empty: the next request waits in the queue (and times
  // out there), while one more finds the queue full.
  std::optional<http_response> waited;
  std::thread waiter([&] { waited = gw.messages(question("three")); });
  REQUIRE(wait_until([&] {
    auto m = client_for(gw.node.url(), "").request("GET", "/metrics");
    return m && m->body.find("troupe_llm_queue_waiting 1") != std::string::npos;
  }));
  auto full = gw.messages(question("four"));
  CHECK(full.status == 429);
  CHECK(json::parse(full.body)["error"]["message"].get<std::string>().find("queue is full") !=
        std::string::npos);
  waiter.join();
  REQUIRE(waited);
  CHECK(waited->status == 429);
  CHECK(json::parse(waited->body)["error"]["message"].get<std::string>().find("waited") !=
        std::string::npos);
  // Cached answers never wait.
  CHECK(header(gw.messages(question("one")), "x-troupe-cache") == "hit");
  CHECK(gw.mock_stats()["requests"] == 2);
}

TEST_CASE("llm: a spent budget stops upstream calls with a clear error, the cache still answers") {
  gateway_fixture gw(env_map{{"TROUPE_LLM_BUDGET_TOKENS", "10"}});
  REQUIRE(gw.messages(question("the first question spends the budget")).status == 200);
  gw.wait_cached(1);
  auto stopped = gw.messages(question("one more"));
  CHECK(stopped.status == 429);
  CHECK(header(stopped, "x-should-retry") == "false");
  CHECK(json::parse(stopped.body)["error"]["message"].get<std::string>().find("budget") !=
        std::string::npos);
  CHECK(header(gw.messages(question("the first question spends the budget")), "x-troupe-cache") ==
        "hit");
  auto metrics = client_for(gw.node.url(), "").request("GET", "/metrics");
  REQUIRE(metrics);
  CHECK(metrics->body.find("troupe_llm_budget_alerts_total 1") != std::string::npos);
}

TEST_CASE("llm: count_tokens is passed through, the ledger survives a restart") {
  temp_dir data;
  mock_upstream_process mock;
  REQUIRE(mock.started());
  const std::map<std::string, std::string> env{{"TROUPE_ANTHROPIC_BASE_URL", mock.url()},
                                               {"ANTHROPIC_API_KEY", "sk-ant-test"}};
  {
    node_process node({{}, env, data.path()});
    REQUIRE(node.started());
    auto http = client_for(node.url(), node.token());
    auto body = question("count me");
    body.erase("max_tokens");
    auto counted = http.request("POST", "/v1/messages/count_tokens", body.dump());
    REQUIRE(counted);
    CHECK(counted->status == 200);
    CHECK(json::parse(counted->body)["input_tokens"].get<int>() > 0);
    REQUIRE(http.request("POST", "/v1/messages", question("booked").dump()));
    CHECK(node.stop(SIGTERM) == 0);
  }
  node_process again({{}, env, data.path()});
  REQUIRE(again.started());
  auto http = client_for(again.url(), again.token());
  auto usage = http.request("GET", "/v1/usage");
  REQUIRE(usage);
  // count_tokens and the message: both booked before the restart.
  CHECK(json::parse(usage->body)["total"]["requests"] == 2);
  CHECK(json::parse(usage->body)["total"]["output_tokens"].get<int>() > 0);
}

TEST_CASE("llm: a provider crashing under a stream still ends the client's stream") {
  gateway_fixture gw(env_map{{"TROUPE_CHAOS_ENABLED", "true"}});
  // Events paced 150 ms apart: the crash comes once the client has the
  // stream's first event (curl writes what arrives as it arrives).
  gw.mock_faults({{"faults", {{{"kind", "slow"}, {"delay_ms", 0}, {"interval_ms", 150}}}}});
  temp_dir dir;
  const auto out = dir.path() + "/stream.txt";
  std::optional<process_result> streamed;
  std::thread client([&] {
    streamed = run_process({"/usr/bin/curl", "-s", "-N", "-o", out, "-w", "%{http_code}", "-H",
                            "x-api-key: " + gw.node.token(), "-H", "anthropic-version: 2023-06-01",
                            "-H", "content-type: application/json", "-d",
                            question("a slow stream", true).dump(), gw.node.url() + "/v1/messages"});
  });
  const auto received = [&out] {
    std::ifstream in(out);
    return std::string(std::istreambuf_iterator<char>(in), {});
  };
  REQUIRE(wait_until([&] { return received().find("event: message_start") != std::string::npos; }));
  auto http = client_for(gw.node.url(), gw.node.token());
  auto killed = http.request("POST", "/v1/actors/llm/anthropic/kill");
  REQUIRE(killed);
  CHECK(killed->status == 200);
  client.join();
  REQUIRE(streamed);
  CHECK(streamed->out == "200");
  const auto events = events_of(received());
  REQUIRE_FALSE(events.empty());
  CHECK(events.back().first == "error");
  // The provider is back and serves the next request; nothing was cached.
  REQUIRE(wait_until([&] { return gw.messages(question("after the crash")).status == 200; }));
  CHECK(header(gw.messages(question("a slow stream", true)), "x-troupe-cache") == "miss");
}

TEST_CASE("llm: calls beyond llm.connections_max wait for a connection, in order") {
  // Every answer takes 300 ms upstream; six at once through two connections.
  gateway_fixture gw(env_map{{"TROUPE_LLM_CONNECTIONS_MAX", "2"}}, {"--delay-ms", "300"});
  std::atomic<int> answered{0};
  const auto t0 = std::chrono::steady_clock::now();
  std::vector<std::thread> clients;
  for (int i = 0; i < 6; ++i) {
    clients.emplace_back([&gw, &answered, i] {
      if (gw.messages(question("question number " + std::to_string(i))).status == 200) {
        ++answered;
      }
    });
  }
  for (auto& c : clients) {
    c.join();
  }
  const auto took = std::chrono::steady_clock::now() - t0;
  CHECK(answered == 6);
  // Three rounds of two: no less than 3 x 300 ms.
  CHECK(took >= std::chrono::milliseconds(900));
  // The peak counts this stats request's own connection too.
  CHECK(gw.mock_stats()["connections"]["peak"].get<int>() <= 2 + 1);
  // Operators see the pool in /metrics, as of the provider's last look at
  // it (a call's end reaches the provider just after its client's answer).
  CHECK(wait_until(
      [&] { return gw.metric(R"(troupe_llm_upstream_waiting{provider="anthropic"})") == 0; }));
  const double open = gw.metric(R"(troupe_llm_upstream_connections{provider="anthropic"})");
  CHECK(open >= 1);
  CHECK(open <= 2);
}

TEST_CASE("llm: a call that waits longer than its timeout for a connection fails clearly") {
  // Retries allowed (the default 2): a wait for a connection is not retried.
  gateway_fixture gw(
      env_map{{"TROUPE_LLM_CONNECTIONS_MAX", "1"}, {"TROUPE_LLM_TIMEOUT_MS", "1000"}});
  // A stream paced 400 ms an event holds the one connection for seconds
  // without ever being silent for the 1 s timeout.
  gw.mock_faults({{"faults", {{{"kind", "slow"}, {"delay_ms", 0}, {"interval_ms", 400}}}}});
  std::optional<http_response> streamed;
  std::thread holder([&] {
    streamed = gw.messages(question("a slow stream that holds the only connection", true));
  });
  // Once the provider has sent the holder's call, the pool has it in
  // flight (the provider sends calls in order), so the next one must wait.
  REQUIRE(wait_until(
      [&] { return gw.metric(R"(troupe_llm_upstream_calls_total{provider="anthropic"})") >= 1; }));
  auto waited = gw.messages(question("a question that finds no connection"));
  holder.join();
  CHECK(waited.status != 200);
  CHECK(waited.body.find("llm.connections_max") != std::string::npos);
  REQUIRE(streamed);
  CHECK(streamed->status == 200);
  // The wait was this node's, not the upstream's: no failure, no retry.
  CHECK(gw.metric(R"(troupe_llm_upstream_failures_total{provider="anthropic"})") == 0);
  CHECK(gw.metric(R"(troupe_llm_retries_total{provider="anthropic"})") == 0);
}

TEST_CASE("llm: large bodies are parsed off the router: a small request is not held up by them") {
  gateway_fixture g;
  // ~0.5 MB of 15,000 one-letter blocks: the parse and checks cost far more
  // than the bytes. Each is different, so none joins another's flight.
  auto big = [](int n) {
    auto messages = json::array();
    for (int i = 0; i < 1'501; ++i) {
      auto blocks = json::array();
      for (int b = 0; b < 10; ++b) {
        blocks.push_back({{"type", "text"}, {"text", i == 0 && b == 0 ? std::to_string(n) : "x"}});
      }
      messages.push_back({{"role", i % 2 == 0 ? "user" : "assistant"}, {"content", blocks}});
    }
    return json{{"model", "claude-test"}, {"max_tokens", 16}, {"messages", messages}};
  };
  constexpr int bigs = 4;
  std::vector<std::string> bodies;
  for (int n = 0; n < bigs; ++n) {
    bodies.push_back(big(n).dump());
  }
  std::atomic<int> bigs_answered{0};
  std::atomic<int> bigs_ok{0};
  std::vector<std::thread> senders;
  for (const auto& body : bodies) {
    senders.emplace_back([&] {
      auto http = client_for(g.node.url(), "");
      auto r = http.request("POST", "/v1/messages", body, "application/json",
                            {{"x-api-key", g.node.token()}, {"anthropic-version", "2023-06-01"}});
      bigs_ok += r && r->status == 200 ? 1 : 0;
      ++bigs_answered;
    });
  }
  // One client's large bodies are parsed one at a time, the rest wait their
  // turn; meanwhile the router goes on with everything else.
  REQUIRE(wait_until([&] { return g.metric("troupe_llm_parse_waiting") >= 1; },
                     std::chrono::seconds(30)));
  auto small = g.messages(question("a small question"));
  CHECK(small.status == 200);
  CHECK(bigs_answered.load() < bigs);
  for (auto& t : senders) {
    t.join();
  }
  CHECK(bigs_ok.load() == bigs);
  CHECK(g.metric("troupe_llm_parsing") == 0);
  CHECK(g.metric("troupe_llm_parse_waiting") == 0);
}
