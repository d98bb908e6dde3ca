// Hooks with real processes: Claude Code's settings read as they are, the
// commands run by /bin/sh (bash and python scripts among them) with the
// event on stdin, and Claude Code's rules for what their exit and output
// decide; troupe's fail-closed hooks; timeouts that kill the whole group.

#include "actors/agents/hooks.hpp"

#include <signal.h>

#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>

#include "tests/support/scratch_dir.hpp"
#include "tests/support/wait.hpp"

using namespace troupe;
using namespace troupe::agents;
using nlohmann::json;
namespace fs = std::filesystem;
using namespace std::chrono_literals;

namespace {

void write_file(const fs::path& path, const std::string& text) {
  fs::create_directories(path.parent_path());
  std::ofstream(path, std::ios::binary) << text;
}

hook_command command(std::string text, std::chrono::milliseconds timeout = 10s,
                     bool fail_closed = false) {
  hook_command c;
  c.command = std::move(text);
  c.timeout = timeout;
  c.fail_closed = fail_closed;
  return c;
}

hook_run run_in(const std::string& dir, const std::string& text, std::string_view input = {},
                std::chrono::milliseconds timeout = 10s) {
  return run_hook(command(text, timeout), input, dir, dir);
}

hook_run exited(int code, std::string out = {}, std::string err = {}) {
  hook_run r;
  r.exit_code = code;
  r.out = std::move(out);
  r.err = std::move(err);
  return r;
}

}  // namespace

TEST_CASE("hooks: Claude Code settings are read as they are, bad entries reported and skipped") {
  hook_settings s;
  add_hook_settings(s, json::parse(R"({
    "permissions": {"allow": []},
    "hooks": {
      "PreToolUse": [
        {"matcher": "Bash|Write", "hooks": [{"type": "command", "command": "a", "timeout": 5}]},
        {"matcher": "*", "hooks": [{"type": "command", "command": "b", "failClosed": true}]},
        {"hooks": [{"type": "command", "command": "c"}]},
        {"matcher": "(bad", "hooks": [{"type": "command", "command": "d"}]},
        {"matcher": "Read", "hooks": [{"type": "prompt", "prompt": "x"}, {"type": "command"}]}
      ],
      "UserPromptSubmit": [{"matcher": "ignored", "hooks": [{"type": "command", "command": "u"}]}],
      "Notification": [{"hooks": [{"type": "command", "command": "n"}]}]
    }})"),
                    "settings.json");
  // Events in name order (JSON objects are read sorted), entries in order.
  REQUIRE(s.problems.size() == 4);
  CHECK(s.problems[0] == "settings.json: hooks.Notification: not an event troupe runs");
  CHECK(s.problems[1].rfind("settings.json: hooks.PreToolUse[3].matcher: '(bad': ", 0) == 0);
  CHECK(s.problems[2] ==
        "settings.json: hooks.PreToolUse[4].hooks[0]: only \"type\": \"command\" hooks run here");
  CHECK(s.problems[3] == "settings.json: hooks.PreToolUse[4].hooks[1].command: a non-empty string");

  auto names = [&](hook_event e, std::string_view subject) {
    std::vector<std::string> out;
    for (const auto& h : hooks_for(s, e, subject)) {
      out.push_back(h.command);
    }
    return out;
  };
  CHECK(names(hook_event::pre_tool_use, "Bash") == std::vector<std::string>{"a", "b", "c"});
  CHECK(names(hook_event::pre_tool_use, "Read") == std::vector<std::string>{"b", "c"});
  // The whole name must match: "Bash" does not select "BashOutput".
  CHECK(names(hook_event::pre_tool_use, "BashOutput") == std::vector<std::string>{"b", "c"});
  CHECK(names(hook_event::user_prompt_submit, "") == std::vector<std::string>{"u"});
  CHECK(names(hook_event::stop, "").empty());

  const auto all = hooks_for(s, hook_event::pre_tool_use, "Write");
  CHECK(all[0].timeout == 5s);
  CHECK(all[0].source == "settings.json");
  CHECK(all[1].timeout == hook_timeout_default);
  CHECK(all[1].fail_closed);
}

TEST_CASE("hooks: a workspace's settings.json and settings.local.json add to the node's") {
  test::scratch_dir dir("hooks");
  const fs::path ws = dir.path();
  write_file(ws / ".claude/settings.json",
             R"({"hooks": {"Stop": [{"hooks": [{"type": "command", "command": "shared"}]}]}})");
  write_file(ws / ".claude/settings.local.json",
             R"({"hooks": {"Stop": [{"hooks": [{"type": "command", "command": "mine"}]}]}})");
  hook_settings node;
  add_hook_settings(
      node,
      json::parse(R"({"hooks": {"Stop": [{"hooks": [{"type": "command", "command": "node"}]}]}})"),
      "node");
  auto s = load_workspace_hooks(ws, node);
  std::vector<std::string> order;
  for (const auto& h : hooks_for(s, hook_event::stop, "")) {
    order.push_back(h.command);
  }
  CHECK(order == std::vector<std::string>{"node", "shared", "mine"});
  CHECK(s.problems.empty());

  write_file(ws / ".claude/settings.local.json", "{not json");
  s = load_workspace_hooks(ws, {});
  CHECK(s.problems == std::vector<std::string>{(ws / ".claude/settings.local.json").string() +
                                               ": not valid JSON"});
  CHECK(hooks_for(s, hook_event::stop, "").size() == 1);
}

TEST_CASE("hooks: a command gets the event on stdin, its cwd and CLAUDE_PROJECT_DIR") {
  test::scratch_dir dir("hooks");
  const std::string event = R"({"hook_event_name":"PreToolUse","tool_name":"Bash"})";
  auto r = run_in(dir.path(), "cat; printf ' %s %s' \"$CLAUDE_PROJECT_DIR\" \"$(pwd)\"", event);
  CHECK(r.exit_code == 0);
  CHECK(r.out == event + " " + dir.path() + " " + dir.path());
  CHECK_FALSE(r.timed_out);

  // A hook that never reads its stdin does not hurt the node (no SIGPIPE).
  r = run_in(dir.path(), "exit 0", std::string(4u << 20, 'x'));
  CHECK(r.exit_code == 0);

  r = run_in(dir.path(), "echo nope >&2; exit 2");
  CHECK(r.exit_code == 2);
  CHECK(r.err == "nope\n");

  r = run_hook(command("true"), "", (fs::path(dir.path()) / "missing").string(), dir.path());
  CHECK(r.failed_to_start);
  CHECK(r.out.find("missing") != std::string::npos);

  r = run_in(dir.path(), "kill -9 $$");
  CHECK(r.signalled);
  CHECK(r.exit_code == -SIGKILL);
}

TEST_CASE("hooks: a hung hook is killed at its timeout with everything it started") {
  test::scratch_dir dir("hooks");
  const auto pid_file = (fs::path(dir.path()) / "child.pid").string();
  const auto r = run_in(dir.path(), "sleep 60 & echo $! > " + pid_file + "; wait", {}, 300ms);
  CHECK(r.timed_out);
  CHECK(r.took < 10s);
  std::ifstream in(pid_file);
  pid_t child = 0;
  in >> child;
  REQUIRE(child > 0);
  // The background sleep went with the group (kill(pid, 0) fails once it
  // is gone; it may be a zombie of init's for a moment).
  CHECK(test::wait_until([&] {
    std::ifstream stat("/proc/" + std::to_string(child) + "/stat");
    std::string pid_text, name, state;
    return !(stat >> pid_text >> name >> state) || state == "Z";
  }));

  auto d = interpret(hook_event::pre_tool_use, r, false);
  CHECK(d.verdict == hook_verdict::proceed);
  CHECK(d.error.rfind("timed out after ", 0) == 0);
  d = interpret(hook_event::pre_tool_use, r, true);
  CHECK(d.verdict == hook_verdict::block);
  CHECK(d.reason.rfind("a fail-closed hook failed: timed out after ", 0) == 0);
}

TEST_CASE("hooks: exit codes and JSON output decide as in Claude Code") {
  const auto pre = hook_event::pre_tool_use;
  CHECK(interpret(pre, exited(0), false).verdict == hook_verdict::proceed);

  auto d = interpret(pre, exited(2, "", "rm -rf is not allowed\n"), false);
  CHECK(d.verdict == hook_verdict::block);
  CHECK(d.reason == "rm -rf is not allowed");

  d = interpret(pre, exited(1, "", "oops"), false);
  CHECK(d.verdict == hook_verdict::proceed);
  CHECK(d.error == "exited with status 1: oops");
  CHECK(interpret(pre, exited(1), true).verdict == hook_verdict::block);

  d = interpret(pre, exited(0, R"({"hookSpecificOutput": {"hookEventName": "PreToolUse",
      "permissionDecision": "deny", "permissionDecisionReason": "not on main"}})"),
                false);
  CHECK(d.verdict == hook_verdict::deny);
  CHECK(d.reason == "not on main");
  d = interpret(pre, exited(0, R"({"hookSpecificOutput": {"permissionDecision": "ask",
      "permissionDecisionReason": "touches prod"}})"),
                false);
  CHECK(d.verdict == hook_verdict::ask);
  d = interpret(pre, exited(0, R"({"hookSpecificOutput": {"permissionDecision": "allow",
      "updatedInput": {"command": "ls -la"}, "additionalContext": "listed"}})"),
                false);
  CHECK(d.verdict == hook_verdict::allow);
  REQUIRE(d.updated_input);
  CHECK(*d.updated_input == json{{"command", "ls -la"}});
  CHECK(d.additional_context == "listed");
  d = interpret(pre, exited(0, R"({"decision": "block", "reason": "old style"})"), false);
  CHECK(d.verdict == hook_verdict::deny);
  CHECK(d.reason == "old style");
  d = interpret(pre, exited(0, R"({"continue": false, "stopReason": "budget"})"), false);
  CHECK(d.verdict == hook_verdict::stop);
  CHECK(d.reason == "budget");

  d = interpret(hook_event::post_tool_use, exited(0, R"({"decision": "block", "reason": "lint"})"),
                false);
  CHECK(d.verdict == hook_verdict::block);
  d = interpret(hook_event::user_prompt_submit, exited(0, "today is Monday\n"), false);
  CHECK(d.verdict == hook_verdict::proceed);
  CHECK(d.additional_context == "today is Monday");
  // Plain text after a tool is no context (Claude Code shows it to the user only).
  CHECK(interpret(pre, exited(0, "hello"), false).additional_context.empty());

  d = interpret(pre, exited(0, "{broken"), false);
  CHECK(d.verdict == hook_verdict::proceed);
  CHECK(d.error == "printed output that is not a JSON object");
  CHECK(interpret(pre, exited(0, "{broken"), true).verdict == hook_verdict::block);
}

TEST_CASE("hooks: several hooks combine: stop, block and deny beat ask, ask beats allow") {
  hook_decision allow{hook_verdict::allow, "fine", json{{"command", "ls"}}, "ctx1", ""};
  hook_decision deny{hook_verdict::deny, "no", std::nullopt, "ctx2", ""};
  hook_decision ask{hook_verdict::ask, "maybe", std::nullopt, "", "warn"};
  auto c = combine({allow, ask, deny});
  CHECK(c.verdict == hook_verdict::deny);
  CHECK(c.reason == "no");
  CHECK(c.additional_context == "ctx1\nctx2");
  CHECK(c.error == "warn");
  REQUIRE(c.updated_input);
  CHECK(*c.updated_input == json{{"command", "ls"}});
  CHECK(combine({allow, ask}).verdict == hook_verdict::ask);
  CHECK(combine({}).verdict == hook_verdict::proceed);
}

TEST_CASE("hooks: real bash and python hooks, end to end") {
  test::scratch_dir dir("hooks");
  const fs::path ws = dir.path();
  write_file(ws / "guard.py", R"(import json, sys
event = json.load(sys.stdin)
cmd = event.get("tool_input", {}).get("command", "")
if "rm -rf" in cmd:
    print(json.dumps({"hookSpecificOutput": {"hookEventName": "PreToolUse",
        "permissionDecision": "deny", "permissionDecisionReason": "no rm -rf in " + event["cwd"]}}))
elif cmd.startswith("ls"):
    print(json.dumps({"hookSpecificOutput": {"permissionDecision": "allow",
        "updatedInput": {"command": cmd + " -la"}}}))
)");
  write_file(ws / "block.sh",
             "#!/bin/bash\nread -r line\necho \"blocked: ${#line} bytes\" >&2\nexit 2\n");
  hook_settings s;
  add_hook_settings(s, json::parse(R"({"hooks": {"PreToolUse": [
      {"matcher": "Bash", "hooks": [{"type": "command", "command": "python3 \"$CLAUDE_PROJECT_DIR/guard.py\""}]},
      {"matcher": "Write", "hooks": [{"type": "command", "command": "bash block.sh"}]}]}})"),
                    "settings.json");
  REQUIRE(s.problems.empty());

  auto decide = [&](const std::string& tool, const json& input) {
    const json event{{"session_id", "a1"},      {"transcript_path", (ws / "t.jsonl").string()},
                     {"cwd", ws.string()},      {"hook_event_name", "PreToolUse"},
                     {"tool_name", tool},       {"tool_input", input},
                     {"tool_use_id", "toolu_1"}};
    std::vector<hook_decision> all;
    for (const auto& h : hooks_for(s, hook_event::pre_tool_use, tool)) {
      all.push_back(interpret(hook_event::pre_tool_use,
                              run_hook(h, event.dump(), ws.string(), ws.string()), h.fail_closed));
    }
    return combine(all);
  };
  auto d = decide("Bash", {{"command", "rm -rf /"}});
  CHECK(d.verdict == hook_verdict::deny);
  CHECK(d.reason == "no rm -rf in " + ws.string());
  d = decide("Bash", {{"command", "ls"}});
  CHECK(d.verdict == hook_verdict::allow);
  REQUIRE(d.updated_input);
  CHECK(*d.updated_input == json{{"command", "ls -la"}});
  CHECK(decide("Bash", {{"command", "make"}}).verdict == hook_verdict::proceed);
  d = decide("Write", {{"file_path", "a"}, {"content", "b"}});
  CHECK(d.verdict == hook_verdict::block);
  CHECK(d.reason.rfind("blocked: ", 0) == 0);
  CHECK(decide("Read", {{"file_path", "a"}}).verdict == hook_verdict::proceed);
}

TEST_CASE("hooks: a timeout of a tiny fraction of a second is still a millisecond") {
  hook_settings s;
  add_hook_settings(
      s,
      json::parse(
          R"({"hooks": {"Stop": [{"hooks": [{"type": "command", "command": "x", "timeout": 1e-9}]}]}})"),
      "s");
  REQUIRE(s.problems.empty());
  const auto hooks = hooks_for(s, hook_event::stop, "");
  REQUIRE(hooks.size() == 1);
  CHECK(hooks[0].timeout == 1ms);
}
