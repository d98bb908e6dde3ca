// hook_spawn: what a PreToolUse hook that runs `true` costs an agent's tool
// call: run_hook (process group, pipes, the event JSON on stdin, poll on a
// pidfd, reading what it prints) and interpret(), from start to decision.
//
// Baseline, same run, alternated: the bare floor of the same work, a
// posix_spawn of `/bin/sh -c true` and its waitpid, with no pipes and no
// input. Reported: p50/p99 of each, and the ratio baseline p99 / hook p99.
// Bar (issue: agents): hook p99 <= 5 ms.
//
//   hook_spawn [--quick] [--runs N]

#include <spawn.h>
#include <sys/wait.h>

#include <chrono>
#include <cstdio>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "actors/agents/hooks.hpp"
#include "bench/bench_util.hpp"

extern char** environ;

namespace {

using namespace troupe;
using namespace troupe::agents;
using namespace troupe::bench;
using clock_type = std::chrono::steady_clock;

constexpr double bar_p99_ms = 5.0;

double micros_since(clock_type::time_point start) {
  return std::chrono::duration<double, std::micro>(clock_type::now() - start).count();
}

/// The floor: spawn the same shell and wait for it, nothing else.
bool bare_spawn() {
  std::string shell = "/bin/sh";
  std::string dash_c = "-c";
  std::string command = "true";
  char* argv[] = {shell.data(), dash_c.data(), command.data(), nullptr};
  pid_t pid = -1;
  if (posix_spawn(&pid, shell.c_str(), nullptr, nullptr, argv, environ) != 0) {
    return false;
  }
  int status = 0;
  return waitpid(pid, &status, 0) == pid && WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

}  // namespace

int main(int argc, char** argv) {
  const bool quick = has_flag(argc, argv, "--quick");
  const int runs = std::max(1, int_flag(argc, argv, "--runs", quick ? 50 : 2000));
  const std::string cwd = "/tmp";
  // A realistic event: a Bash call with a short command.
  const auto event = nlohmann::json{
      {"session_id", "a1"},
      {"transcript_path", "/tmp/a1.jsonl"},
      {"cwd", cwd},
      {"hook_event_name", "PreToolUse"},
      {"tool_name", "Bash"},
      {"tool_input", {{"command", "git diff --stat"}}},
      {"tool_use_id",
       "toolu_01"}}.dump();
  hook_command hook;
  hook.command = "true";
  hook.timeout = std::chrono::seconds(10);

  std::vector<double> hook_us;
  std::vector<double> bare_us;
  for (int i = 0; i < runs; ++i) {
    // Alternate which goes first.
    for (int side = 0; side < 2; ++side) {
      const bool hook_side = (side == 0) == (i % 2 == 0);
      const auto start = clock_type::now();
      if (hook_side) {
        const auto run = run_hook(hook, event, cwd, cwd);
        const auto decision = interpret(hook_event::pre_tool_use, run, false);
        hook_us.push_back(micros_since(start));
        if (run.exit_code != 0 || decision.verdict != hook_verdict::proceed) {
          std::fprintf(stderr, "hook_spawn: the hook failed (exit %d)\n", run.exit_code);
          return 1;
        }
      } else {
        if (!bare_spawn()) {
          std::fprintf(stderr, "hook_spawn: the bare spawn failed\n");
          return 1;
        }
        bare_us.push_back(micros_since(start));
      }
    }
  }
  const double hook_p50 = quantile(hook_us, 0.5);
  const double hook_p99 = quantile(hook_us, 0.99);
  const double bare_p50 = quantile(bare_us, 0.5);
  const double bare_p99 = quantile(bare_us, 0.99);
  std::printf("hook_spawn: %d runs a side, a PreToolUse hook running `true`\n", runs);
  std::printf("  hook:  p50 %8.1f us  p99 %8.1f us (bar p99 <= %.0f ms: %s)\n", hook_p50, hook_p99,
              bar_p99_ms, hook_p99 <= bar_p99_ms * 1000 ? "met" : "NOT met");
  std::printf("  bare spawn + wait:  p50 %8.1f us  p99 %8.1f us\n", bare_p50, bare_p99);
  print_json(
      {"hook_spawn", hook_p99, "us_p99", bare_p99, bare_p99 / hook_p99, hook_p50, hook_p99, runs});
  return 0;
}
