// Agents through a real node and the mock upstream, which scripts the
// model's side of a tool conversation ("mock-script:" in the first prompt):
// real files in a temporary workspace, real hook processes, the real store,
// and a node killed with SIGKILL mid-tool.

#include <signal.h>
#include <unistd.h>

#include <catch2/catch.hpp>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include <nlohmann/json.hpp>

#include "client/http_client.hpp"
#include "tests/integration/node_process.hpp"
#include "tests/support/wait.hpp"

using namespace troupe;
using namespace troupe::test;
using json = nlohmann::json;
namespace fs = std::filesystem;

namespace {

http_client client_for(const std::string& url, const std::string& token) {
  return http_client(*parse_node_url(url), token, 30000);
}

node_process::options with_mock(const mock_upstream_process& mock) {
  node_process::options opts;
  opts.env["TROUPE_ANTHROPIC_BASE_URL"] = mock.url();
  opts.env["ANTHROPIC_API_KEY"] = "sk-ant-test-key";
  return opts;
}

std::string script(const json& steps) {
  return "mock-script: " + steps.dump();
}

json post_json(http_client& http, const std::string& target, const json& body) {
  auto r = http.request("POST", target, body.dump(), "application/json",
                        {{"Accept", "application/json"}});
  REQUIRE(r);
  INFO(r->body);
  REQUIRE(r->status == 200);
  return json::parse(r->body);
}

json get_json(http_client& http, const std::string& target) {
  auto r = http.request("GET", target);
  REQUIRE(r);
  INFO(r->body);
  REQUIRE(r->status == 200);
  return json::parse(r->body);
}

std::vector<std::string> kinds_of(const json& events) {
  std::vector<std::string> out;
  for (const auto& e : events) {
    out.push_back(e["kind"]);
  }
  return out;
}

/// The events of one kind, in order.
std::vector<json> of_kind(const json& events, const std::string& kind) {
  std::vector<json> out;
  for (const auto& e : events) {
    if (e["kind"] == kind) {
      out.push_back(e);
    }
  }
  return out;
}

std::vector<json> transcript(http_client& http, const std::string& name) {
  std::vector<json> out;
  const auto page = get_json(http, "/v1/agents/" + name + "/transcript");
  for (const auto& e : page["entries"]) {
    out.push_back(json::parse(e["data"].get<std::string>()));
  }
  return out;
}

process_result ctl(const node_process& node, std::vector<std::string> args) {
  std::vector<std::string> argv{troupectl_binary(), "--url", node.url(), "--token", node.token()};
  argv.insert(argv.end(), args.begin(), args.end());
  return run_process(argv);
}

}  // namespace

TEST_CASE("agents: a scripted tool conversation over HTTP, troupectl and the transcript") {
  mock_upstream_process mock;
  REQUIRE(mock.started());
  node_process node(with_mock(mock));
  REQUIRE(node.started());
  temp_dir ws;
  std::ofstream(fs::path(ws.path()) / "notes.txt") << "alpha\nbeta\n";
  auto http = client_for(node.url(), node.token());

  auto made = post_json(http, "/v1/agents", {{"name", "a1"}, {"workspace", ws.path()}});
  CHECK(made["spec"]["name"] == "a1");
  CHECK(made["spec"]["max_turns"] == 50);  // the node's default filled in

  // Bad input is refused and creates nothing.
  auto r =
      http.request("POST", "/v1/agents", json{{"name", "a1"}, {"workspace", ws.path()}}.dump());
  REQUIRE(r);
  CHECK(r->status == 409);
  r = http.request("POST", "/v1/agents", json{{"name", "../x"}, {"workspace", ws.path()}}.dump());
  REQUIRE(r);
  CHECK(r->status == 400);
  r = http.request("POST", "/v1/agents", json{{"name", "b"}, {"workspace", "relative"}}.dump());
  REQUIRE(r);
  CHECK(r->status == 400);
  r = http.request("POST", "/v1/agents/nobody/prompt", json{{"prompt", "hi"}}.dump());
  REQUIRE(r);
  CHECK(r->status == 404);

  const json steps = json::array({
      {{"tool", "Read"}, {"input", {{"file_path", "notes.txt"}}}},
      {{"tool", "Write"}, {"input", {{"file_path", "out/result.txt"}, {"content", "done\n"}}}},
      {{"tool", "Read"}, {"input", {{"file_path", "/etc/passwd"}}}},
      {{"tool", "Teleport"}, {"input", json::object()}},
      {{"text", "all done"}},
  });
  auto turn = post_json(http, "/v1/agents/a1/prompt", {{"prompt", script(steps)}});
  CHECK(turn["text"] == "all done");
  CHECK(turn["stop_reason"] == "end_turn");
  const auto kinds = kinds_of(turn["events"]);
  CHECK(kinds == std::vector<std::string>{"prompt", "persona", "assistant", "tool_call",
                                          "tool_result", "assistant", "tool_call", "tool_result",
                                          "assistant", "tool_call", "tool_result", "assistant",
                                          "tool_result", "assistant", "turn_end"});
  const auto& events = turn["events"];
  CHECK(events[4]["content"].get<std::string>().find("alpha") != std::string::npos);
  CHECK(events[4]["is_error"] == false);
  // The file was written, the path outside the workspace refused, the
  // unknown tool answered as an error, and the agent went on each time.
  std::ifstream written(fs::path(ws.path()) / "out" / "result.txt");
  std::stringstream content;
  content << written.rdbuf();
  CHECK(content.str() == "done\n");
  CHECK(events[10]["is_error"] == true);
  CHECK(events[10]["content"].get<std::string>().find("outside") != std::string::npos);
  CHECK(events[12]["is_error"] == true);
  CHECK(events[12]["content"].get<std::string>().find("no tool 'Teleport'") != std::string::npos);
  CHECK(turn["usage"]["output_tokens"].get<int>() > 0);

  // The agent's report, its transcript (and its JSONL copy) and the ledger.
  auto info = get_json(http, "/v1/agents/a1");
  CHECK(info["state"] == "idle");
  CHECK(info["calls"] == 5);
  CHECK(info["last_stop"] == "end_turn");
  CHECK(info["entries"] == 15);
  const auto entries = transcript(http, "a1");
  REQUIRE(entries.size() == 15);
  CHECK(entries.front()["seq"] == 1);
  CHECK(entries.back()["kind"] == "turn_end");
  std::ifstream jsonl(fs::path(node.data_dir()) / "transcripts" / "a1.jsonl");
  size_t lines = 0;
  for (std::string line; std::getline(jsonl, line);) {
    ++lines;
  }
  CHECK(lines == 15);
  auto usage = get_json(http, "/v1/usage");
  CHECK(usage["by_agent"].contains("a1"));

  // troupectl: a second prompt (past the script: "mock script done"),
  // printed as it happens, the list and the log.
  auto out = ctl(node, {"agent", "prompt", "a1", "and now?"});
  INFO(out.out << out.err);
  CHECK(out.exit_code == 0);
  CHECK(out.out.find("mock script done") != std::string::npos);
  CHECK(out.out.find("[turn ended: end_turn") != std::string::npos);
  out = ctl(node, {"agent", "ls"});
  CHECK(out.exit_code == 0);
  CHECK(out.out.find("a1") != std::string::npos);
  out = ctl(node, {"agent", "log", "a1"});
  CHECK(out.exit_code == 0);
  CHECK(out.out.find("-> Write") != std::string::npos);
  CHECK(out.out.find("> and now?") != std::string::npos);

  // Deleted: gone from the list, its transcript gone with it.
  out = ctl(node, {"agent", "kill", "a1"});
  CHECK(out.exit_code == 0);
  r = http.request("GET", "/v1/agents/a1");
  REQUIRE(r);
  CHECK(r->status == 404);
  CHECK(get_json(http, "/v1/agents")["agents"].empty());
  CHECK_FALSE(fs::exists(fs::path(node.data_dir()) / "transcripts" / "a1.jsonl"));
  // The name is free again (once the old actor has left the tree), with an
  // empty transcript.
  CHECK(wait_until([&] {
    auto again =
        http.request("POST", "/v1/agents", json{{"name", "a1"}, {"workspace", ws.path()}}.dump());
    return again && again->status == 200;
  }));
  CHECK(transcript(http, "a1").empty());
}

TEST_CASE("agents: hooks decide, a persona restricts, SSE streams the run") {
  mock_upstream_process mock;
  REQUIRE(mock.started());
  temp_dir personas;
  std::ofstream(fs::path(personas.path()) / "reader.md")
      << "---\nname: reader\ndescription: Reads only.\ntools: Read, Bash(ls *)\n---\n"
         "You read.\n";
  auto opts = with_mock(mock);
  opts.env["TROUPE_AGENTS_PERSONAS_DIR"] = personas.path();
  node_process node(opts);
  REQUIRE(node.started());
  temp_dir ws;
  fs::create_directories(fs::path(ws.path()) / ".claude");
  // A shell hook that denies `ls -la` by JSON, a python one that rewrites
  // Read's path, and one that fails without blocking.
  std::ofstream(fs::path(ws.path()) / ".claude" / "settings.json") << json{
      {"hooks",
       {{"PreToolUse",
         json::array({
             {{"matcher", "Bash"},
              {"hooks",
               json::array({{{"type", "command"},
                             {"command",
                              "grep -q -- '-la' && echo '{\"hookSpecificOutput\":{"
                              "\"hookEventName\":\"PreToolUse\",\"permissionDecision\":\"deny\","
                              "\"permissionDecisionReason\":\"no long listings\"}}' || true"}}})}},
             {{"matcher", "Read"},
              {"hooks",
               json::array({{{"type", "command"},
                             {"command",
                              "python3 -c \"import json,sys; e=json.load(sys.stdin); "
                              "print(json.dumps({'hookSpecificOutput': {'hookEventName': "
                              "'PreToolUse', 'permissionDecision': 'allow', 'updatedInput': "
                              "{'file_path': 'real.txt'}}}))\""}}})}},
         })}}}}.dump();
  std::ofstream(fs::path(ws.path()) / "real.txt") << "the real one\n";
  auto http = client_for(node.url(), node.token());
  post_json(http, "/v1/agents", {{"name", "r"}, {"workspace", ws.path()}, {"persona", "reader"}});

  const json steps = json::array({
      {{"tool", "Bash"}, {"input", {{"command", "ls -la"}}}},
      {{"tool", "Bash"}, {"input", {{"command", "rm -rf x"}}}},
      {{"tool", "Read"}, {"input", {{"file_path", "decoy.txt"}}}},
      {{"tool", "Write"}, {"input", {{"file_path", "w.txt"}, {"content", "x"}}}},
      {{"text", "finished, as the hooks and the persona allowed"}},
  });
  // SSE by default: the events arrive as they are written.
  std::string body;
  auto streamed =
      http.request_streamed("POST", "/v1/agents/r/prompt", json{{"prompt", script(steps)}}.dump(),
                            [&body](std::string_view piece) { body.append(piece); });
  REQUIRE(streamed);
  CHECK(streamed->status == 200);
  CHECK(find_header(*streamed, "content-type") == "text/event-stream");
  CHECK(body.find("event: turn_end") != std::string::npos);
  // The model's text comes in deltas as it streams, before its `assistant`
  // entry; the transcript has the whole answer.
  std::string said;
  size_t deltas = 0;
  for (auto at = body.find("event: text_delta\ndata: "); at != std::string::npos;
       at = body.find("event: text_delta\ndata: ", at + 1)) {
    const auto from = at + std::string("event: text_delta\ndata: ").size();
    said += json::parse(body.substr(from, body.find('\n', from) - from))["text"].get<std::string>();
    ++deltas;
  }
  CHECK(said == "finished, as the hooks and the persona allowed");
  CHECK(deltas >= 2);
  CHECK(body.find("event: text_delta") < body.rfind("event: assistant"));
  const auto entries = transcript(http, "r");
  std::vector<json> results;
  std::vector<json> hooks;
  for (const auto& e : entries) {
    if (e["kind"] == "tool_result") {
      results.push_back(e);
    } else if (e["kind"] == "hook") {
      hooks.push_back(e);
    }
  }
  REQUIRE(results.size() == 4);
  // The hook denied `ls -la`, by its JSON.
  CHECK(results[0]["is_error"] == true);
  CHECK(results[0]["content"].get<std::string>().find("no long listings") != std::string::npos);
  // The persona allows Bash(ls *) only.
  CHECK(results[1]["is_error"] == true);
  CHECK(results[1]["content"].get<std::string>().find("persona 'reader'") != std::string::npos);
  // The python hook rewrote the path.
  CHECK(results[2]["is_error"] == false);
  CHECK(results[2]["content"].get<std::string>().find("the real one") != std::string::npos);
  CHECK(results[2]["updated_input"]["file_path"] == "real.txt");
  // Write is not among the persona's tools.
  CHECK(results[3]["is_error"] == true);
  CHECK_FALSE(fs::exists(fs::path(ws.path()) / "w.txt"));
  REQUIRE(hooks.size() >= 2);
  CHECK(hooks[0]["verdict"] == "deny");
  CHECK(entries[1]["kind"] == "persona");
  CHECK(entries[1]["name"] == "reader");

  // Its calls are booked under its persona too.
  CHECK(get_json(http, "/v1/usage")["by_persona"].contains("reader"));
  // Every decision is in the metrics as well.
  auto metrics = http.request("GET", "/metrics");
  REQUIRE(metrics);
  CHECK(metrics->body.find(
            R"(troupe_agent_hook_decisions_total{event="PreToolUse",verdict="deny"} 1)") !=
        std::string::npos);
  CHECK(metrics->body.find(R"(troupe_agent_tool_calls_total{result="error",tool="Bash"} 2)") !=
        std::string::npos);
  CHECK(metrics->body.find(R"(troupe_agent_tool_calls_total{result="ok",tool="Read"} 1)") !=
        std::string::npos);
  CHECK(metrics->body.find(R"(troupe_agent_turns_total{stop_reason="end_turn"} 1)") !=
        std::string::npos);
  CHECK(metrics->body.find("troupe_agents 1") != std::string::npos);

  // GET /v1/personas?agent= is what the agent sees.
  auto seen = get_json(http, "/v1/personas?agent=r");
  REQUIRE(seen["personas"].size() == 1);
  CHECK(seen["personas"][0]["name"] == "reader");
}

TEST_CASE("agents: a node killed mid-tool comes back and reports the call interrupted") {
  mock_upstream_process mock;
  REQUIRE(mock.started());
  temp_dir data;
  temp_dir ws;
  auto opts = with_mock(mock);
  opts.data_dir = data.path();
  const json steps = json::array({
      {{"tool", "Bash"}, {"input", {{"command", "echo ran >> runs.txt; sleep 30"}}}},
      {{"text", "recovered"}},
  });
  {
    node_process node(opts);
    REQUIRE(node.started());
    auto http = client_for(node.url(), node.token());
    post_json(http, "/v1/agents", {{"name", "d"}, {"workspace", ws.path()}});
    // The prompt's client goes away at once; the turn goes on without it.
    const int fd = connect_loopback(node.url());
    REQUIRE(fd >= 0);
    const auto body = json{{"prompt", script(steps)}}.dump();
    const auto request =
        "POST /v1/agents/d/prompt HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + node.token() +
        "\r\nContent-Type: application/json\r\nContent-Length: " + std::to_string(body.size()) +
        "\r\n\r\n" + body;
    REQUIRE(::write(fd, request.data(), request.size()) == static_cast<ssize_t>(request.size()));
    ::close(fd);
    REQUIRE(wait_until([&] { return fs::exists(fs::path(ws.path()) / "runs.txt"); },
                       std::chrono::seconds(20)));
    CHECK(node.stop(SIGKILL) != -1);
  }
  node_process node(opts);
  REQUIRE(node.started());
  auto http = client_for(node.url(), node.token());
  REQUIRE(wait_until(
      [&] {
        auto r = http.request("GET", "/v1/agents/d");
        return r && r->status == 200 && json::parse(r->body)["last_stop"] == "end_turn";
      },
      std::chrono::seconds(20)));
  const auto entries = transcript(http, "d");
  std::vector<std::string> kinds;
  for (const auto& e : entries) {
    kinds.push_back(e["kind"]);
  }
  CHECK(kinds == std::vector<std::string>{"prompt", "persona", "assistant", "tool_call",
                                          "interrupted", "assistant", "turn_end"});
  CHECK(entries.back()["text"] == "recovered");
  // Run once, never again.
  std::ifstream runs(fs::path(ws.path()) / "runs.txt");
  std::stringstream ran;
  ran << runs.rdbuf();
  CHECK(ran.str() == "ran\n");
}

/// Whether a process whose command line is `cmdline` (NULs as spaces) runs.
bool process_runs(const std::string& cmdline) {
  for (const auto& entry : fs::directory_iterator("/proc")) {
    std::ifstream in(entry.path() / "cmdline");
    std::string line((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    std::replace(line.begin(), line.end(), '\0', ' ');
    if (line == cmdline + " ") {
      return true;
    }
  }
  return false;
}

TEST_CASE("agents: Bash runs in the agent's own terminal session, which a person can watch") {
  mock_upstream_process mock;
  REQUIRE(mock.started());
  node_process node(with_mock(mock));
  REQUIRE(node.started());
  temp_dir ws;
  auto http = client_for(node.url(), node.token());
  post_json(http, "/v1/agents", {{"name", "sh1"}, {"workspace", ws.path()}});
  const json steps = json::array({
      {{"tool", "Bash"}, {"input", {{"command", "mkdir sub && cd sub && pwd"}}}},
      {{"tool", "Bash"}, {"input", {{"command", "pwd; echo oops >&2; exit 3"}}}},
      {{"tool", "Bash"}, {"input", {{"command", "sleep 31.5"}, {"timeout", 300}}}},
      {{"tool", "Bash"}, {"input", {{"command", "echo \"unterminated"}}}},
      {{"tool", "Bash"}, {"input", {{"command", "printf 'a\\nb' | tr a-z A-Z"}}}},
      {{"text", "ok"}},
  });
  auto turn = post_json(http, "/v1/agents/sh1/prompt", {{"prompt", script(steps)}});
  CHECK(turn["text"] == "ok");
  const auto results = of_kind(turn["events"], "tool_result");
  REQUIRE(results.size() == 5);
  const auto sub = fs::canonical(ws.path()).string() + "/sub";
  // One shell: the first command's `cd` holds for the next; `exit` ends the
  // command, not the shell; stderr is in the output.
  CHECK(results[0]["content"] == sub + "\n");
  CHECK(results[0]["is_error"] == false);
  CHECK(results[1]["content"] == sub + "\noops\n\n[exit status 3]");
  CHECK(results[1]["is_error"] == true);
  CHECK(results[2]["is_error"] == true);
  CHECK(results[2]["content"].get<std::string>().find("timed out after 300 ms") !=
        std::string::npos);
  CHECK(results[3]["is_error"] == true);
  CHECK(results[3]["content"].get<std::string>().find("unexpected EOF") != std::string::npos);
  CHECK(results[4]["content"] == "A\nB");
  // The timed-out command's process group was killed.
  CHECK(wait_until([] { return !process_runs("sleep 31.5"); }));

  // The session is the agent's, in the sessions family: a person sees what
  // ran there.
  const auto sessions = get_json(http, "/v1/sessions")["sessions"];
  std::string id;
  for (const auto& s : sessions) {
    if (s["name"] == "agent:sh1") {
      id = s["id"];
      CHECK(s["cwd"] == ws.path());
    }
  }
  REQUIRE_FALSE(id.empty());
  auto r = http.request("GET", "/v1/sessions/" + id + "/scrollback");
  REQUIRE(r);
  CHECK(r->status == 200);
  CHECK(r->body.find("mkdir sub && cd sub && pwd") != std::string::npos);
  CHECK(r->body.find("oops") != std::string::npos);

  // Deleting the agent ends its session.
  r = http.request("DELETE", "/v1/agents/sh1");
  REQUIRE(r);
  CHECK(r->status == 200);
  CHECK(wait_until([&] {
    auto got = http.request("GET", "/v1/sessions/" + id);
    return got && got->status == 404;
  }));
}

TEST_CASE("agents: a conversation three times its context budget never sends more") {
  mock_upstream_process mock;
  REQUIRE(mock.started());
  node_process node(with_mock(mock));
  REQUIRE(node.started());
  temp_dir ws;
  // Each Read answers about 1,300 tokens (line numbers included).
  std::ofstream big(fs::path(ws.path()) / "big.txt");
  for (int i = 0; i < 100; ++i) {
    big << std::string(40, static_cast<char>('a' + i % 26)) << "\n";
  }
  big.close();
  constexpr int budget = 4000;
  // The budget is its persona's (a workspace persona file): the agent's own
  // is the node's default, 100,000.
  fs::create_directories(fs::path(ws.path()) / ".claude" / "agents");
  std::ofstream(fs::path(ws.path()) / ".claude" / "agents" / "small.md")
      << "---\nname: small\ndescription: Works in a small context.\ncontext_tokens: " << budget
      << "\n---\nYou read files.\n";
  auto http = client_for(node.url(), node.token());
  post_json(http, "/v1/agents", {{"name", "c"}, {"workspace", ws.path()}, {"persona", "small"}});
  json steps = json::array();
  for (int i = 0; i < 12; ++i) {
    steps.push_back({{"tool", "Read"}, {"input", {{"file_path", "big.txt"}}}});
  }
  steps.push_back({{"text", "read it all"}});
  auto turn = post_json(http, "/v1/agents/c/prompt", {{"prompt", script(steps)}});
  CHECK(turn["stop_reason"] == "end_turn");
  CHECK(turn["text"] == "read it all");
  int compactions = 0;
  int64_t read_bytes = 0;
  std::string last_read_id;
  for (const auto& e : turn["events"]) {
    if (e["kind"] == "assistant") {
      // What the upstream counted of each request it was sent.
      const auto& u = e["usage"];
      CHECK(u["input_tokens"].get<int64_t>() + u["cache_read_input_tokens"].get<int64_t>() +
                u["cache_creation_input_tokens"].get<int64_t>() <=
            budget);
    } else if (e["kind"] == "compaction") {
      ++compactions;
      CHECK(e["tokens_after"].get<int64_t>() <= budget);
      // The latest result is never elided.
      for (const auto& id : e["elided"]) {
        CHECK(id != last_read_id);
      }
    } else if (e["kind"] == "tool_result") {
      read_bytes += static_cast<int64_t>(e["content"].get<std::string>().size());
      last_read_id = e["id"];
    }
  }
  CHECK(read_bytes / 4 > 3 * budget);  // the conversation outgrew its budget three times
  CHECK(compactions >= 2);
}

TEST_CASE("agents: with nothing left to elide, the oldest turns are summarised") {
  mock_upstream_process mock;
  REQUIRE(mock.started());
  node_process node(with_mock(mock));
  REQUIRE(node.started());
  temp_dir ws;
  constexpr int budget = 4000;
  auto http = client_for(node.url(), node.token());
  post_json(http, "/v1/agents",
            {{"name", "s"}, {"workspace", ws.path()}, {"context_tokens", budget}});
  // Each Write carries about 1,200 tokens in the model's own call, which
  // elision never touches: only a summary makes room.
  constexpr int writes = 12;
  json steps = json::array();
  for (int i = 0; i < writes; ++i) {
    steps.push_back({{"tool", "Write"},
                     {"input",
                      {{"file_path", "w" + std::to_string(i) + ".txt"},
                       {"content", std::string(1, static_cast<char>('a' + i))}}},
                     {"fill", {{"content", 4800}}}});
  }
  steps.push_back({{"text", "wrote them all"}});
  auto turn = post_json(http, "/v1/agents/s/prompt", {{"prompt", script(steps)}});
  CHECK(turn["stop_reason"] == "end_turn");
  CHECK(turn["text"] == "wrote them all");
  const auto sent = [](const json& u) {
    return u["input_tokens"].get<int64_t>() + u["cache_read_input_tokens"].get<int64_t>() +
           u["cache_creation_input_tokens"].get<int64_t>();
  };
  int summaries = 0;
  for (const auto& e : turn["events"]) {
    if (e["kind"] == "assistant") {
      CHECK(sent(e["usage"]) <= budget);  // what the upstream counted
    } else if (e["kind"] == "compaction" && e.contains("summary")) {
      ++summaries;
      CHECK(sent(e["usage"]) <= budget);  // the summary call's own request
      CHECK(e["tokens_before"].get<int64_t>() > budget);
      CHECK(e["tokens_after"].get<int64_t>() <= budget);
      CHECK(e["keep_prompt"] == true);
      CHECK_FALSE(e["summary"].get<std::string>().empty());
    }
  }
  CHECK(summaries >= 1);
  // The estimate was checked against the upstream's count near the budget.
  CHECK_FALSE(of_kind(turn["events"], "calibration").empty());
  // Every step ran once, in order: after each summary the model still had
  // the latest call and its result whole, and the task word for word.
  const auto calls = of_kind(turn["events"], "tool_call");
  REQUIRE(calls.size() == writes);
  for (int i = 0; i < writes; ++i) {
    CHECK(calls[static_cast<size_t>(i)]["input"]["file_path"] == "w" + std::to_string(i) + ".txt");
    CHECK(fs::file_size(fs::path(ws.path()) / ("w" + std::to_string(i) + ".txt")) == 4800);
  }
  // The conversation goes on from the summary: the next prompt's step is
  // the one after the script's last.
  auto next = post_json(http, "/v1/agents/s/prompt", {{"prompt", "and now?"}});
  CHECK(next["text"] == "mock script done");
  for (const auto& e : of_kind(next["events"], "assistant")) {
    CHECK(sent(e["usage"]) <= budget);
  }
}

TEST_CASE("agents: a person answers what a hook asks, and Stop and UserPromptSubmit hooks") {
  mock_upstream_process mock;
  REQUIRE(mock.started());
  node_process node(with_mock(mock));
  REQUIRE(node.started());
  temp_dir ws;
  fs::create_directories(fs::path(ws.path()) / ".claude");
  const json ask_hook{
      {"type", "command"},
      {"command",
       "echo '{\"hookSpecificOutput\":{\"hookEventName\":\"PreToolUse\","
       "\"permissionDecision\":\"ask\",\"permissionDecisionReason\":\"a shell command\"}}'"}};
  const json prompt_hook{{"type", "command"},
                         {"command",
                          "if grep -q forbidden; then echo 'no forbidden words' >&2; exit 2; "
                          "else echo 'Context: be brief.'; fi"}};
  const json stop_hook{
      {"type", "command"},
      {"command",
       "python3 -c \"import json,sys; e=json.load(sys.stdin); print(json.dumps({} if "
       "e['stop_hook_active'] else {'decision': 'block', 'reason': 'check once more'}))\""}};
  const json start_hook{{"type", "command"}, {"command", "echo 'Session context.'"}};
  const json end_hook{{"type", "command"}, {"command", "cat > \"$CLAUDE_PROJECT_DIR/ended.json\""}};
  std::ofstream(fs::path(ws.path()) / ".claude" / "settings.json") << json{
      {"hooks",
       {{"PreToolUse", json::array({{{"matcher", "Bash"}, {"hooks", {ask_hook}}}})},
        {"UserPromptSubmit", json::array({{{"hooks", {prompt_hook}}}})},
        {"Stop", json::array({{{"hooks", {stop_hook}}}})},
        {"SessionStart", json::array({{{"matcher", "startup"}, {"hooks", {start_hook}}}})},
        {"SessionEnd", json::array({{{"hooks", {end_hook}}}})}}}}.dump();
  auto http = client_for(node.url(), node.token());
  post_json(http, "/v1/agents", {{"name", "p"}, {"workspace", ws.path()}});

  const json steps = json::array({
      {{"tool", "Bash"}, {"input", {{"command", "echo yes > approved.txt"}}}},
      {{"tool", "Bash"}, {"input", {{"command", "echo no > denied.txt"}}}},
      {{"text", "first done"}},
      {{"text", "second done"}},
  });
  json turn;
  std::thread prompter([&] {
    auto c = client_for(node.url(), node.token());
    auto r = c.request("POST", "/v1/agents/p/prompt", json{{"prompt", script(steps)}}.dump(),
                       "application/json", {{"Accept", "application/json"}});
    if (r && r->status == 200) {
      turn = json::parse(r->body);
    }
  });
  auto waiting = [&](const std::string& tool_input) {
    return wait_until(
        [&] {
          auto r = http.request("GET", "/v1/agents/p/approvals");
          if (!r || r->status != 200) {
            return false;
          }
          const auto list = json::parse(r->body);
          return list["approvals"].size() == 1 &&
                 list["approvals"][0]["input"].get<std::string>().find(tool_input) !=
                     std::string::npos;
        },
        std::chrono::seconds(20));
  };
  const bool asked = waiting("approved.txt");
  if (!asked) {
    for (const auto& e : transcript(http, "p")) {
      UNSCOPED_INFO(e.dump());
    }
  }
  REQUIRE(asked);
  CHECK(get_json(http, "/v1/agents/p")["state"] == "awaiting_approval");
  auto out = ctl(node, {"agent", "approve", "p"});
  INFO(out.out << out.err);
  CHECK(out.exit_code == 0);
  CHECK(out.out.find("approved") != std::string::npos);
  REQUIRE(waiting("denied.txt"));
  auto r = http.request("POST", "/v1/agents/p/approvals/nosuch", R"({"decision":"approve"})");
  REQUIRE(r);
  CHECK(r->status == 404);
  r = http.request("POST", "/v1/agents/p/approvals/", R"({"decision":"maybe"})");
  REQUIRE(r);
  CHECK(r->status == 400);
  const auto pending = json::parse(http.request("GET", "/v1/agents/p/approvals")->body);
  const auto id = pending["approvals"][0]["id"].get<std::string>();
  r = http.request("POST", "/v1/agents/p/approvals/" + id,
                   R"({"decision":"deny","reason":"not today"})");
  REQUIRE(r);
  CHECK(r->status == 200);
  prompter.join();

  REQUIRE(turn.is_object());
  CHECK(turn["text"] == "second done");
  CHECK(turn["stop_reason"] == "end_turn");
  CHECK(fs::exists(fs::path(ws.path()) / "approved.txt"));
  CHECK_FALSE(fs::exists(fs::path(ws.path()) / "denied.txt"));
  const auto entries = transcript(http, "p");
  std::vector<std::string> decisions;
  bool denied_told = false;
  bool continued = false;
  for (const auto& e : entries) {
    if (e["kind"] == "approval_decision") {
      decisions.push_back(e["decision"]);
    } else if (e["kind"] == "tool_result" &&
               e["content"].get<std::string>().find("not today") != std::string::npos) {
      denied_told = true;
    } else if (e["kind"] == "continue") {
      continued = e["text"] == "check once more";
    }
  }
  CHECK(decisions == std::vector<std::string>{"approved", "denied"});
  CHECK(denied_told);
  CHECK(continued);
  // SessionStart's context and UserPromptSubmit's go with the first prompt.
  std::string context;
  for (const auto& e : entries) {
    if (e["kind"] == "prompt") {
      context = e["context"];
      break;
    }
  }
  CHECK(context.find("Session context.") != std::string::npos);
  CHECK(context.find("be brief") != std::string::npos);

  // A prompt the UserPromptSubmit hook blocks is recorded and not answered.
  auto blocked = post_json(http, "/v1/agents/p/prompt", {{"prompt", "a forbidden thing"}});
  CHECK(blocked["stop_reason"] == "hook");
  CHECK(blocked["text"].get<std::string>().find("no forbidden words") != std::string::npos);
  CHECK(get_json(http, "/v1/agents/p")["calls"] == 4);  // no model call for it

  // Deleted: its SessionEnd hooks ran first.
  r = http.request("DELETE", "/v1/agents/p");
  REQUIRE(r);
  CHECK(r->status == 200);
  std::ifstream ended(fs::path(ws.path()) / "ended.json");
  const auto end_event = json::parse(ended, nullptr, false);
  REQUIRE(end_event.is_object());
  CHECK(end_event["hook_event_name"] == "SessionEnd");
  CHECK(end_event["reason"] == "deleted");
}

TEST_CASE("agents: Task runs a sub-agent, SendMessage asks another agent") {
  mock_upstream_process mock;
  REQUIRE(mock.started());
  temp_dir personas;
  std::ofstream(fs::path(personas.path()) / "writer.md")
      << "---\nname: writer\ndescription: Writes files.\ntools: Write\n---\nYou write.\n";
  auto opts = with_mock(mock);
  opts.env["TROUPE_AGENTS_PERSONAS_DIR"] = personas.path();
  node_process node(opts);
  REQUIRE(node.started());
  temp_dir ws;
  auto http = client_for(node.url(), node.token());
  post_json(http, "/v1/agents", {{"name", "lead"}, {"workspace", ws.path()}});
  post_json(http, "/v1/agents", {{"name", "peer"}, {"workspace", ws.path()}});

  // The sub-agent's prompt scripts the sub-agent's side, and the message
  // to the peer scripts the peer's.
  const json sub_steps = json::array({
      {{"tool", "Write"}, {"input", {{"file_path", "by-sub.txt"}, {"content", "sub\n"}}}},
      {{"text", "the sub-agent wrote it"}},
  });
  const json steps = json::array({
      {{"tool", "Task"},
       {"input",
        {{"description", "write a file"},
         {"prompt", script(sub_steps)},
         {"subagent_type", "writer"}}}},
      {{"tool", "SendMessage"},
       {"input", {{"to", "peer"}, {"message", script(json::array({{{"text", "peer says hi"}}}))}}}},
      {{"tool", "SendMessage"}, {"input", {{"to", "nobody"}, {"message", "hello?"}}}},
      {{"tool", "Task"}, {"input", {{"prompt", "x"}, {"subagent_type", "no-such-persona"}}}},
      {{"text", "lead done"}},
  });
  auto turn = post_json(http, "/v1/agents/lead/prompt", {{"prompt", script(steps)}});
  CHECK(turn["text"] == "lead done");
  const auto results = of_kind(turn["events"], "tool_result");
  REQUIRE(results.size() == 4);
  CHECK(results[0]["content"] == "the sub-agent wrote it");
  CHECK(results[0]["is_error"] == false);
  CHECK(fs::exists(fs::path(ws.path()) / "by-sub.txt"));
  CHECK(results[1]["content"] == "peer says hi");
  CHECK(results[2]["is_error"] == true);
  CHECK(results[3]["is_error"] == true);
  CHECK(results[3]["content"].get<std::string>().find("no-such-persona") != std::string::npos);

  // The sub-agent is an agent of its own, with its parent, its persona and
  // its transcript; the peer's transcript has the message.
  const auto agents = get_json(http, "/v1/agents")["agents"];
  std::string sub_name;
  for (const auto& a : agents) {
    if (a["spec"]["parent"] == "lead") {
      sub_name = a["spec"]["name"];
      CHECK(a["spec"]["depth"] == 1);
      CHECK(a["persona"] == "writer");
    }
  }
  REQUIRE(sub_name.rfind("lead.task-", 0) == 0);
  const auto peer = transcript(http, "peer");
  REQUIRE_FALSE(peer.empty());
  CHECK(peer[0]["text"].get<std::string>().rfind("Message from agent 'lead':", 0) == 0);

  // Deleting the lead deletes its sub-agent too; the peer stays.
  auto r = http.request("DELETE", "/v1/agents/lead");
  REQUIRE(r);
  CHECK(r->status == 200);
  r = http.request("GET", "/v1/agents/" + sub_name);
  REQUIRE(r);
  CHECK(r->status == 404);
  CHECK(get_json(http, "/v1/agents")["agents"].size() == 1);
}
