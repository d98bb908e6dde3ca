#pragma once

// One agent as an actor: `agents/live/<name>`. It owns its conversation and
// runs Claude's tool-use loop: prompt -> model -> tool calls -> tool results
// -> model ... until the model ends its turn, the turn limit, the context or
// the spend budget is reached, a hook stops it or a person does.
//
// - Model calls go to `llm/router` as HTTP exchanges (the same path as
//   POST /v1/messages: cache, limiter, breakers, fallback, ledger), marked
//   with the agent's name and the files its tool results read.
// - Every step is written to the transcript (agents/journal) before it is
//   acted upon; a new incarnation reads it back and carries on. A tool call
//   that was running when the agent died is answered "interrupted", never
//   run again.
// - Tools and hooks block, so each tool call runs on a thread of its own
//   (a detached worker) that answers with a message.

#include <memory>

#include "actors/agents/messages.hpp"
#include "runtime/supervisor/supervisor.hpp"

namespace caf {
class actor_system;
}

namespace troupe {
struct node_context;
}

namespace troupe::agents {

/// A prompt's size limit, and the tool results' (the file tools' own bound).
inline constexpr size_t prompt_bytes_max = 1u << 20;
/// Events a prompt's reply carries at most (the transcript has them all).
inline constexpr size_t reply_events_max = 2000;
/// How long a journal write may take before the step fails.
inline constexpr std::chrono::seconds journal_timeout{30};

/// The agent's child under agents/live (permanent: a crash restarts it, a
/// DELETE stops it through its supervisor).
[[nodiscard]] child_spec agent_child(std::shared_ptr<node_context> ctx, agent_spec spec);

/// What a worker thread reaches the node through. Bash runs in the agent's
/// terminal session (actors/agents/shell.hpp) when the node has a sessions
/// family; without one (no `system`, or no sessions/manager in the tree, as
/// when the agents family runs alone) it runs as a plain process group in
/// the workspace.
struct worker_env {
  caf::actor_system* system = nullptr;
  std::shared_ptr<const node_context> ctx;
};

/// Runs one tool call as a worker does (hooks, the tool, hooks); blocks.
[[nodiscard]] tool_done run_tool_job(const tool_job& job, const worker_env& env = {});

/// Runs one event's hooks as a worker does (UserPromptSubmit, Stop,
/// PreCompact); blocks.
[[nodiscard]] hooks_done run_hook_job(const hook_job& job);

/// A worker's answer to a job message (agent.tool.job or agent.hook.job):
/// agent.tool.done or agent.hooks.done; blocks.
[[nodiscard]] envelope run_worker_job(const std::string& type, const std::string& body,
                                      const worker_env& env = {});

/// Where the JSONL copy of an agent's transcript lives (for hooks'
/// transcript_path): <data_dir>/transcripts/<name>.jsonl.
[[nodiscard]] std::string transcript_file(const node_context& ctx, const std::string& name);

}  // namespace troupe::agents
