#pragma once

// Hooks: Claude Code's hook configuration, read as it is (`hooks` in a
// workspace's .claude/settings.json and .claude/settings.local.json, and in
// the node's config), and run the way Claude Code runs them: the event as
// JSON on stdin, CLAUDE_PROJECT_DIR set; exit 0 -> stdout's JSON (or text)
// is read; exit 2 -> blocked, stderr goes to the model; any other exit -> a
// non-blocking error. troupe adds `"failClosed": true` on a command: then a
// crash or a timeout blocks instead of letting the call through.
//
//   {"hooks": {"PreToolUse": [{"matcher": "Bash|Write",
//                              "hooks": [{"type": "command",
//                                         "command": "python3 check.py",
//                                         "timeout": 30}]}]}}
//
// run_hook() blocks while its process runs (at most its timeout): callers
// run it off the scheduler threads.

#include <chrono>
#include <cstddef>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

namespace re2 {
class RE2;
}

namespace troupe::agents {

enum class hook_event : uint8_t {
  session_start,
  user_prompt_submit,
  pre_tool_use,
  post_tool_use,
  pre_compact,
  stop,
  subagent_stop,
  session_end,
};

/// Claude Code's name: "PreToolUse", ...
[[nodiscard]] std::string_view to_string(hook_event e);
[[nodiscard]] std::optional<hook_event> hook_event_named(std::string_view name);

/// Claude Code's default, and troupe's bounds on a hook's time and output.
inline constexpr std::chrono::seconds hook_timeout_default{60};
inline constexpr std::chrono::seconds hook_timeout_max{600};
inline constexpr size_t hook_output_bytes_max = 1u << 20;

struct hook_command {
  std::string command;
  std::chrono::milliseconds timeout = hook_timeout_default;
  /// A crash or timeout blocks (troupe's `failClosed`).
  bool fail_closed = false;
  /// The settings it came from.
  std::string source;
};

struct hook_matcher {
  /// As written; empty or "*" match every subject.
  std::string pattern;
  /// Compiled, anchored (Claude Code matches the whole tool name); null for
  /// the match-all patterns.
  std::shared_ptr<const re2::RE2> re;
  std::vector<hook_command> hooks;
};

struct hook_settings {
  std::map<hook_event, std::vector<hook_matcher>> by_event;
  /// What was skipped, and why ("<source>: hooks.PreToolUse[0].matcher: ...").
  std::vector<std::string> problems;
};

/// Adds the `hooks` of one settings document (a whole settings.json) to
/// `into`. Unknown events and hook types are reported and skipped; a bad
/// entry does not spoil the others.
void add_hook_settings(hook_settings& into, const nlohmann::json& settings,
                       const std::string& source);

/// Adds the `hooks` of the settings file at `path` to `into`; a file that
/// cannot be read or is not JSON is a problem.
void add_settings_file(hook_settings& into, const std::filesystem::path& path);

/// `base` (the node's hooks) plus those of `workspace`'s
/// .claude/settings.json and .claude/settings.local.json, in that order. A
/// file that is missing is fine; one that is not JSON is a problem.
[[nodiscard]] hook_settings load_workspace_hooks(const std::filesystem::path& workspace,
                                                 hook_settings base);

/// The commands an event runs, in order. `subject` is what matchers test:
/// the tool name for the tool events, the trigger or source for PreCompact
/// and SessionStart; events without matchers run every hook.
[[nodiscard]] std::vector<hook_command> hooks_for(const hook_settings& settings, hook_event e,
                                                  std::string_view subject);

/// One run of a hook's command.
struct hook_run {
  int exit_code = -1;
  bool timed_out = false;
  /// The command could not be started at all (`out` says why).
  bool failed_to_start = false;
  /// Ended by a signal (exit_code is -signal).
  bool signalled = false;
  std::string out;
  std::string err;
  std::chrono::microseconds took{0};
};

/// Runs `cmd.command` with `/bin/sh -c` in `cwd`, in a process group of its
/// own, `input` on stdin, CLAUDE_PROJECT_DIR=`project_dir` added to the
/// node's environment; at its timeout the whole group is killed. stdout and
/// stderr are kept up to hook_output_bytes_max each.
[[nodiscard]] hook_run run_hook(const hook_command& cmd, std::string_view input,
                                const std::string& cwd, const std::string& project_dir);

enum class hook_verdict : uint8_t {
  /// Nothing said: go on as without the hook.
  proceed,
  /// PreToolUse: allowed (skips an ask).
  allow,
  /// PreToolUse: refused; `reason` goes to the model.
  deny,
  /// PreToolUse: a person decides (a pending approval).
  ask,
  /// Exit 2, or `"decision": "block"`: the event's action does not happen
  /// (a tool call, a prompt, a stop); `reason` goes to the model.
  block,
  /// `"continue": false`: the agent stops; `reason` says why.
  stop,
};

[[nodiscard]] std::string_view to_string(hook_verdict v);

struct hook_decision {
  hook_verdict verdict = hook_verdict::proceed;
  std::string reason;
  /// PreToolUse: the tool input to use instead.
  std::optional<nlohmann::json> updated_input;
  /// Text for the model's context (additionalContext, or a
  /// UserPromptSubmit/SessionStart hook's plain stdout).
  std::string additional_context;
  /// A non-blocking error worth logging (any other exit, bad JSON).
  std::string error;
};

/// What one run decides for event `e`, Claude Code's rules applied; with
/// `fail_closed`, a timeout, a crash or a failed start blocks.
[[nodiscard]] hook_decision interpret(hook_event e, const hook_run& run, bool fail_closed);

/// The decisions of every hook of an event, as one: stop, then block and
/// deny, then ask, then allow win; reasons and contexts are joined, the
/// last updated input counts.
[[nodiscard]] hook_decision combine(const std::vector<hook_decision>& decisions);

}  // namespace troupe::agents
