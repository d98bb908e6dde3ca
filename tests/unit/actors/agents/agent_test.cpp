// A tool call as an agent's worker runs it: PreToolUse hooks, the tool,
// PostToolUse hooks, with real hook processes and real files.

#include "actors/agents/agent.hpp"

#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>

#include "tests/support/scratch_dir.hpp"

using namespace troupe::agents;
using json = nlohmann::json;
namespace fs = std::filesystem;

namespace {

struct workspace_dir {
  workspace_dir() {
    fs::create_directories(fs::path(dir.path()) / ".claude");
    std::ofstream(fs::path(dir.path()) / "a.txt") << "apple\n";
    std::ofstream(fs::path(dir.path()) / "b.txt") << "banana\n";
  }
  void hooks(const json& by_event) const {
    std::ofstream(fs::path(dir.path()) / ".claude" / "settings.json")
        << json{{"hooks", by_event}}.dump();
  }
  [[nodiscard]] tool_done run(const std::string& tool, const json& input) const {
    return run_tool_job(tool_job{"agent-1", dir.path(), dir.path() + "/t.jsonl", "toolu_1", tool,
                                 input.dump(), false, node_hooks});
  }
  troupe::test::scratch_dir dir;
  /// The node's hooks file (agents.hooks_file), if any.
  std::string node_hooks;
};

json command_hook(const std::string& matcher, const std::string& command, int timeout_s = 30,
                  bool fail_closed = false) {
  json cmd{{"type", "command"}, {"command", command}, {"timeout", timeout_s}};
  if (fail_closed) {
    cmd["failClosed"] = true;
  }
  return json::array({{{"matcher", matcher}, {"hooks", json::array({cmd})}}});
}

}  // namespace

TEST_CASE("agent worker: a tool without hooks") {
  workspace_dir ws;
  auto done = ws.run("Read", {{"file_path", "a.txt"}});
  CHECK_FALSE(done.is_error);
  CHECK(done.id == "toolu_1");
  CHECK(done.content.find("apple") != std::string::npos);
  REQUIRE(done.read_paths.size() == 1);
  CHECK(done.read_paths[0].ends_with("/a.txt"));
  CHECK(done.hooks.empty());

  done = ws.run("Read", {{"file_path", "../../etc/passwd"}});
  CHECK(done.is_error);
  CHECK(done.content.find("outside the workspace") != std::string::npos);
}

TEST_CASE("agent worker: Bash output, exit status and timeout") {
  workspace_dir ws;
  auto done = ws.run("Bash", {{"command", "cat a.txt; echo oops >&2; exit 3"}});
  CHECK(done.is_error);
  CHECK(done.content == "apple\noops\n\n[exit status 3]");
  done = ws.run("Bash", {{"command", "pwd"}});
  CHECK_FALSE(done.is_error);
  REQUIRE(done.content.ends_with("\n"));
  CHECK(fs::equivalent(done.content.substr(0, done.content.size() - 1), ws.dir.path()));
  done = ws.run("Bash", {{"command", "sleep 20"}, {"timeout", 200}});
  CHECK(done.is_error);
  CHECK(done.content.find("timed out after 200 ms") != std::string::npos);
  done = ws.run("Bash", {{"command", ""}});
  CHECK(done.is_error);
  done = ws.run("Bash", {{"command", "true"}, {"timeout", 0}});
  CHECK(done.is_error);
  CHECK(done.content.find("timeout") != std::string::npos);
}

TEST_CASE("agent worker: PreToolUse hooks block, deny, rewrite, and fail open or closed") {
  workspace_dir ws;
  SECTION("exit 2 blocks with stderr as the reason") {
    ws.hooks({{"PreToolUse", command_hook("Read", "echo 'not that file' >&2; exit 2")}});
    auto done = ws.run("Read", {{"file_path", "a.txt"}});
    CHECK(done.is_error);
    CHECK(done.content.find("not that file") != std::string::npos);
    REQUIRE(done.hooks.size() == 1);
    CHECK(done.hooks[0].event == "PreToolUse");
    CHECK(done.hooks[0].verdict == "block");
  }
  SECTION("JSON deny, from python, only for the tool it matches") {
    ws.hooks({{"PreToolUse",
               command_hook("Bash",
                            "python3 -c \"import json; print(json.dumps({'hookSpecificOutput': "
                            "{'hookEventName': 'PreToolUse', 'permissionDecision': 'deny', "
                            "'permissionDecisionReason': 'no shell'}}))\"")}});
    auto done = ws.run("Bash", {{"command", "touch made"}});
    CHECK(done.is_error);
    CHECK(done.content.find("no shell") != std::string::npos);
    CHECK_FALSE(fs::exists(fs::path(ws.dir.path()) / "made"));
    done = ws.run("Read", {{"file_path", "a.txt"}});
    CHECK_FALSE(done.is_error);
    CHECK(done.hooks.empty());
  }
  SECTION("updatedInput changes what runs, and says so") {
    ws.hooks({{"PreToolUse",
               command_hook("Read",
                            "echo '{\"hookSpecificOutput\": {\"hookEventName\": \"PreToolUse\", "
                            "\"permissionDecision\": \"allow\", \"updatedInput\": "
                            "{\"file_path\": \"b.txt\"}}}'")}});
    auto done = ws.run("Read", {{"file_path", "a.txt"}});
    CHECK_FALSE(done.is_error);
    CHECK(done.content.find("banana") != std::string::npos);
    CHECK(json::parse(done.updated_input) == json{{"file_path", "b.txt"}});
    CHECK(done.hooks[0].verdict == "allow");
  }
  SECTION("a hook that crashes is an error that does not block") {
    ws.hooks({{"PreToolUse", command_hook("Read", "kill -SEGV $$")}});
    auto done = ws.run("Read", {{"file_path", "a.txt"}});
    CHECK_FALSE(done.is_error);
    REQUIRE(done.hooks.size() == 1);
    CHECK(done.hooks[0].verdict == "proceed");
    CHECK_FALSE(done.hooks[0].error.empty());
  }
  SECTION("a hung fail-closed hook is killed at its timeout and blocks") {
    ws.hooks({{"PreToolUse", command_hook("Read", "sleep 30", 1, true)}});
    auto done = ws.run("Read", {{"file_path", "a.txt"}});
    CHECK(done.is_error);
    CHECK(done.hooks[0].verdict == "block");
  }
  SECTION("continue: false stops the agent") {
    ws.hooks({{"PreToolUse",
               command_hook("*", "echo '{\"continue\": false, \"stopReason\": \"enough\"}'")}});
    auto done = ws.run("Glob", {{"pattern", "*.txt"}});
    CHECK(done.stop);
    CHECK(done.stop_reason == "enough");
  }
  SECTION("an ask runs nothing and hands the call to a person; approved, it runs") {
    ws.hooks({{"PreToolUse",
               command_hook("Read",
                            "echo '{\"hookSpecificOutput\": {\"hookEventName\": \"PreToolUse\", "
                            "\"permissionDecision\": \"ask\", \"permissionDecisionReason\": "
                            "\"sure?\"}}'")}});
    auto done = ws.run("Read", {{"file_path", "a.txt"}});
    CHECK(done.ask);
    CHECK(done.content == "sure?");
    CHECK(done.read_paths.empty());
    done = run_tool_job(tool_job{"agent-1", ws.dir.path(), "", "toolu_1", "Read",
                                 R"({"file_path":"a.txt"})", true, ""});
    CHECK_FALSE(done.ask);
    CHECK(done.hooks.empty());  // approved: PreToolUse does not ask again
    CHECK(done.content.find("apple") != std::string::npos);
  }
}

TEST_CASE("agent worker: PostToolUse sees the result and adds to it") {
  workspace_dir ws;
  ws.hooks(
      {{"PostToolUse", command_hook("Read",
                                    "python3 -c \"import json,sys; e=json.load(sys.stdin); "
                                    "print(json.dumps({'decision': 'block', 'reason': 'saw ' + "
                                    "str(len(e['tool_response']['content'])) + ' bytes'}))\"")}});
  auto done = ws.run("Read", {{"file_path", "a.txt"}});
  CHECK_FALSE(done.is_error);
  CHECK(done.content.find("apple") != std::string::npos);
  CHECK(done.content.find("[PostToolUse hook: saw ") != std::string::npos);
  CHECK(done.hooks[0].event == "PostToolUse");
}

TEST_CASE("agent worker: an unknown tool and a workspace that went away") {
  workspace_dir ws;
  auto done = ws.run("Teleport", json::object());
  CHECK(done.is_error);
  done = run_tool_job(
      tool_job{"a", "/nonexistent/ws", "", "t", "Read", R"({"file_path":"x"})", false, ""});
  CHECK(done.is_error);
  CHECK(done.content.find("workspace") != std::string::npos);
}

TEST_CASE("agent worker: event hooks (UserPromptSubmit, Stop) and what they decide") {
  workspace_dir ws;
  ws.hooks(
      {{"UserPromptSubmit",
        json::array({{{"hooks", json::array({{{"type", "command"},
                                              {"command", "echo 'Today is a holiday.'"}}})}}})},
       {"Stop",
        json::array(
            {{{"hooks",
               json::array({{{"type", "command"},
                             {"command",
                              "python3 -c \"import json,sys; e=json.load(sys.stdin); "
                              "print(json.dumps({} if e['stop_hook_active'] else "
                              "{'decision': 'block', 'reason': 'run the tests'}))\""}}})}}})}});
  auto job = [&](const char* event, const json& fields) {
    return run_hook_job(hook_job{"agent-1", ws.dir.path(), "", event, "", fields.dump(), 7, ""});
  };
  auto done = job("UserPromptSubmit", {{"prompt", "hi"}});
  CHECK(done.ticket == 7);
  CHECK(done.verdict == "proceed");
  CHECK(done.additional_context.find("Today is a holiday.") != std::string::npos);
  REQUIRE(done.hooks.size() == 1);
  CHECK(done.hooks[0].event == "UserPromptSubmit");

  done = job("Stop", {{"stop_hook_active", false}});
  CHECK(done.verdict == "block");
  CHECK(done.reason == "run the tests");
  done = job("Stop", {{"stop_hook_active", true}});
  CHECK(done.verdict == "proceed");

  // An event without hooks decides nothing; an unknown one neither.
  CHECK(job("PreCompact", {{"trigger", "auto"}}).hooks.empty());
  CHECK(job("NoSuchEvent", json::object()).verdict == "proceed");
}

TEST_CASE("agent worker: the node's hooks apply before the workspace's") {
  workspace_dir ws;
  troupe::test::scratch_dir node;
  ws.node_hooks = node.path() + "/settings.json";
  std::ofstream(ws.node_hooks)
      << json{{"hooks",
               {{"PreToolUse", command_hook("Bash", "echo 'not on this node' >&2; exit 2")}}}}
             .dump();
  auto done = ws.run("Bash", {{"command", "touch made"}});
  CHECK(done.is_error);
  CHECK(done.content.find("not on this node") != std::string::npos);
  CHECK_FALSE(fs::exists(fs::path(ws.dir.path()) / "made"));
  // A workspace that allows it does not override the node's block.
  ws.hooks({{"PreToolUse", command_hook("Bash",
                                        "echo '{\"hookSpecificOutput\": {\"hookEventName\": "
                                        "\"PreToolUse\", \"permissionDecision\": \"allow\"}}'")}});
  done = ws.run("Bash", {{"command", "touch made"}});
  CHECK(done.is_error);
  CHECK(done.hooks.size() == 2);
}
