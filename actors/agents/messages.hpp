#pragma once

// Schema of the agents family's messages.
//
// The persona catalog, `agents/personas`. `workspace` is an absolute
// directory whose `.claude/agents/` adds to the node's personas and
// overrides them by name; empty: the node's personas alone.
//   persona.list  {workspace}         -> persona.list.reply {personas, problems}
//   persona.get   {name, workspace}   -> persona.get.reply (persona_info, with
//                                        its prompt) | not_found
//   persona.match {prompt, workspace} -> persona.match.reply {chosen,
//                                        candidates, rule}
//
// Agents. `agents/manager` creates, lists and deletes them:
//   agent.create     agent_spec            -> agent_info
//   agent.list       {}                    -> {agents: [agent_info]}
//   agent.get        {name}                -> agent_info (asked of the agent)
//   agent.delete     {name}                -> {deleted}
//   agent.transcript {name, after, limit}  -> {entries, next} (from the journal)
//   agent.personas   {name}                -> persona.list.reply for its workspace
// Each agent is `agents/live/<name>` and answers:
//   agent.prompt {prompt}  -> agent.prompt.reply {text, stop_reason, usage,
//                             events} once its turn ended; as an HTTP
//                             exchange (http.request, runtime/node/
//                             http_exchange.hpp) it streams the events (SSE)
//   agent.stop   {}        -> agent_info (the turn ends after its step)
//   agent.info   {}        -> agent_info
//   agent.approvals {}     -> {approvals: [approval_info]} (calls a hook asked
//                             a person about)
//   agent.decide {id, approve, reason} -> approval_info (the call runs, or
//                             is answered denied)
//   agent.end    {reason}  -> agent_info once its SessionEnd hooks ran (the
//                             manager asks before it deletes the agent)
// `agents/journal` keeps every agent's transcript in the store:
//   transcript.append {agent, entries}     -> {written}, once on disk
//   transcript.read   {agent, after, limit} -> {entries, next}
//   transcript.drop   {agent}              -> {dropped}

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "runtime/protocol/codec.hpp"

namespace troupe::agents {

inline constexpr const char* personas_path = "agents/personas";
inline constexpr const char* manager_path = "agents/manager";
inline constexpr const char* journal_path = "agents/journal";
inline constexpr const char* tools_path = "agents/tools";
inline constexpr const char* live_path = "agents/live";
inline constexpr const char* live_prefix = "agents/live/";

inline constexpr const char* persona_list_type = "persona.list";
inline constexpr const char* persona_get_type = "persona.get";
inline constexpr const char* persona_match_type = "persona.match";

struct persona_scope {
  std::string workspace;
  TROUPE_FIELDS(workspace)
};

struct persona_name {
  std::string name;
  std::string workspace;
  TROUPE_FIELDS(name, workspace)
};

struct match_request {
  std::string prompt;
  std::string workspace;
  TROUPE_FIELDS(prompt, workspace)
};

struct trigger_info {
  std::vector<std::string> keywords;
  std::vector<std::string> regex;
  std::vector<std::string> files;
  TROUPE_FIELDS(keywords, regex, files)
};

struct persona_info {
  std::string name;
  std::string description;
  /// Tool rules as written (`Bash(git diff *)`); absent: every tool.
  std::optional<std::vector<std::string>> tools;
  std::vector<std::string> disallowed_tools;
  std::string model;
  int64_t priority = 0;
  trigger_info triggers;
  /// The file it was read from.
  std::string source;
  /// The system prompt: in persona.get only.
  std::optional<std::string> prompt;
  /// Its context budget; 0: none of its own.
  int64_t context_tokens = 0;
  TROUPE_FIELDS(name, description, tools, disallowed_tools, model, priority, triggers, source,
                prompt, context_tokens)
};

struct problem_info {
  std::string source;
  /// `path:line: why`.
  std::string message;
  TROUPE_FIELDS(source, message)
};

struct persona_list {
  std::vector<persona_info> personas;
  /// Files skipped, and why.
  std::vector<problem_info> problems;
  TROUPE_FIELDS(personas, problems)
};

struct candidate_info {
  std::string name;
  int64_t priority = 0;
  int64_t score = 0;
  std::vector<std::string> reasons;
  TROUPE_FIELDS(name, priority, score, reasons)
};

struct match_reply {
  /// The persona that activates; absent when none matched.
  std::optional<std::string> chosen;
  /// Best first.
  std::vector<candidate_info> candidates;
  std::string rule;
  TROUPE_FIELDS(chosen, candidates, rule)
};

inline constexpr const char* agent_create_type = "agent.create";
inline constexpr const char* agent_list_type = "agent.list";
inline constexpr const char* agent_get_type = "agent.get";
inline constexpr const char* agent_delete_type = "agent.delete";
inline constexpr const char* agent_transcript_type = "agent.transcript";
inline constexpr const char* agent_personas_type = "agent.personas";
inline constexpr const char* agent_prompt_type = "agent.prompt";
inline constexpr const char* agent_stop_type = "agent.stop";
inline constexpr const char* agent_info_type = "agent.info";
inline constexpr const char* agent_approvals_type = "agent.approvals";
inline constexpr const char* agent_decide_type = "agent.decide";
inline constexpr const char* agent_end_type = "agent.end";
inline constexpr const char* transcript_append_type = "transcript.append";
inline constexpr const char* transcript_read_type = "transcript.read";
inline constexpr const char* transcript_drop_type = "transcript.drop";

/// What POST /v1/agents takes, and what the store keeps of an agent.
/// Numbers are read wide and range-checked by the manager.
struct agent_spec {
  /// 1-64 of [A-Za-z0-9._-], not starting with a dot.
  std::string name;
  /// An absolute directory: the agent's tools stay inside it.
  std::string workspace;
  /// A persona's name; empty: each prompt activates the best match.
  std::string persona;
  /// A model id or alias; empty: the persona's, else agents.model.
  std::string model;
  /// Most tokens one model call may send (0: agents.context_tokens).
  int64_t context_tokens = 0;
  /// Most tokens the agent may spend in all (input + output; 0: no limit).
  int64_t budget_tokens = 0;
  /// Model calls per prompt (0: agents.max_turns).
  int64_t max_turns = 0;
  /// max_tokens of each model call (0: agents.max_tokens).
  int64_t max_tokens = 0;
  /// A Task's sub-agent: the agent that made it, and how deep it nests.
  std::string parent;
  int64_t depth = 0;
  TROUPE_FIELDS(name, workspace, persona, model, context_tokens, budget_tokens, max_turns,
                max_tokens, parent, depth)
};

struct agent_name {
  std::string name;
  TROUPE_FIELDS(name)
};

struct usage_info {
  int64_t input_tokens = 0;
  int64_t output_tokens = 0;
  int64_t cache_creation_input_tokens = 0;
  int64_t cache_read_input_tokens = 0;
  TROUPE_FIELDS(input_tokens, output_tokens, cache_creation_input_tokens, cache_read_input_tokens)
};

struct agent_info {
  agent_spec spec;
  /// idle, running, stopping; restarting or failed (the tree's word) when
  /// the manager answers for an agent that is not running.
  std::string state;
  /// The persona of the last prompt.
  std::string persona;
  /// Transcript entries written.
  uint64_t entries = 0;
  /// Model calls made, in all.
  uint64_t calls = 0;
  /// What all its calls used.
  usage_info usage;
  /// Why its last turn ended (end_turn, max_turns, budget, context, stopped,
  /// error, hook).
  std::string last_stop;
  TROUPE_FIELDS(spec, state, persona, entries, calls, usage, last_stop)
};

struct agent_list {
  std::vector<agent_info> agents;
  TROUPE_FIELDS(agents)
};

struct agent_deleted {
  std::string deleted;
  TROUPE_FIELDS(deleted)
};

struct prompt_request {
  std::string prompt;
  TROUPE_FIELDS(prompt)
};

/// One transcript entry: `data` is its JSON object (`{"kind": ..., ...}`,
/// docs/api.md lists the kinds).
struct transcript_entry {
  uint64_t seq = 0;
  std::string data;
  TROUPE_FIELDS(seq, data)
};

struct prompt_reply {
  /// The text of the turn's last answer.
  std::string text;
  std::string stop_reason;
  /// What this turn's calls used.
  usage_info usage;
  /// The turn's transcript entries, in order.
  std::vector<transcript_entry> events;
  TROUPE_FIELDS(text, stop_reason, usage, events)
};

struct transcript_query {
  std::string name;
  /// Entries with seq > after.
  uint64_t after = 0;
  /// 0: transcript_page_max.
  uint64_t limit = 0;
  TROUPE_FIELDS(name, after, limit)
};

struct transcript_page {
  std::vector<transcript_entry> entries;
  /// The seq to ask after for more; 0 when there is no more.
  uint64_t next = 0;
  TROUPE_FIELDS(entries, next)
};

struct append_request {
  std::string agent;
  std::vector<transcript_entry> entries;
  TROUPE_FIELDS(agent, entries)
};

struct append_reply {
  uint64_t written = 0;
  TROUPE_FIELDS(written)
};

struct read_request {
  std::string agent;
  uint64_t after = 0;
  uint64_t limit = 0;
  TROUPE_FIELDS(agent, after, limit)
};

struct drop_reply {
  std::string dropped;
  TROUPE_FIELDS(dropped)
};

/// A call a PreToolUse hook asked a person about.
struct approval_info {
  /// The tool_use id.
  std::string id;
  std::string tool;
  /// The tool's input (JSON).
  std::string input;
  /// What the hook said.
  std::string reason;
  /// Milliseconds left before it is denied (in agent.approvals), or the
  /// decision: "approved" or "denied" (agent.decide's reply).
  uint64_t expires_in_ms = 0;
  std::string decision;
  TROUPE_FIELDS(id, tool, input, reason, expires_in_ms, decision)
};

struct approval_list {
  std::vector<approval_info> approvals;
  TROUPE_FIELDS(approvals)
};

struct end_request {
  /// SessionEnd's `reason`: "deleted" when the agent is deleted.
  std::string reason;
  TROUPE_FIELDS(reason)
};

struct decide_request {
  /// The tool_use id; empty: the only pending call.
  std::string id;
  bool approve = false;
  std::string reason;
  TROUPE_FIELDS(id, approve, reason)
};

/// A tool call for a worker thread to carry out (hooks, the tool, hooks),
/// and what came of it. Between an agent and its worker only: a request
/// to agents/tools, which hands it to an idle worker thread (or starts
/// one), whose answer goes straight back to the agent.
inline constexpr const char* tool_job_type = "agent.tool.job";
inline constexpr const char* tool_done_type = "agent.tool.done";

struct tool_job {
  std::string agent;
  std::string workspace;
  std::string transcript_path;
  std::string id;
  std::string name;
  /// The tool's input as JSON.
  std::string input;
  /// A person approved the call: PreToolUse hooks do not run again.
  bool approved = false;
  /// agents.hooks_file: the node's hooks, before the workspace's.
  std::string node_hooks;
  TROUPE_FIELDS(agent, workspace, transcript_path, id, name, input, approved, node_hooks)
};

/// An event's hooks for a worker to run (UserPromptSubmit, Stop,
/// PreCompact), and what they decided. Between an agent and its worker only.
inline constexpr const char* hook_job_type = "agent.hook.job";
inline constexpr const char* hooks_done_type = "agent.hooks.done";

struct hook_job {
  std::string agent;
  std::string workspace;
  std::string transcript_path;
  /// Claude Code's name of the event.
  std::string event;
  /// What the event's matchers test ("" for events without matchers).
  std::string subject;
  /// The event's own fields (JSON object), added to the common ones.
  std::string fields;
  /// Which of the agent's waits this answers.
  uint64_t ticket = 0;
  /// agents.hooks_file: the node's hooks, before the workspace's.
  std::string node_hooks;
  TROUPE_FIELDS(agent, workspace, transcript_path, event, subject, fields, ticket, node_hooks)
};

struct hook_note {
  std::string event;
  std::string verdict;
  std::string reason;
  /// A hook that failed without blocking (logged).
  std::string error;
  TROUPE_FIELDS(event, verdict, reason, error)
};

struct tool_done {
  std::string id;
  std::string name;
  std::string content;
  bool is_error = false;
  std::vector<std::string> read_paths;
  std::vector<std::string> written_paths;
  std::vector<hook_note> hooks;
  /// The input the tool ran with, when a hook changed it (JSON).
  std::string updated_input;
  /// A hook said `continue: false`: the agent stops, for `stop_reason`.
  bool stop = false;
  std::string stop_reason;
  /// A PreToolUse hook asked a person: the tool did not run; `content` is
  /// the hook's reason.
  bool ask = false;
  TROUPE_FIELDS(id, name, content, is_error, read_paths, written_paths, hooks, updated_input, stop,
                stop_reason, ask)
};

struct hooks_done {
  uint64_t ticket = 0;
  /// The combined verdict (hooks.hpp's names).
  std::string verdict;
  std::string reason;
  std::string additional_context;
  std::vector<hook_note> hooks;
  TROUPE_FIELDS(ticket, verdict, reason, additional_context, hooks)
};

/// Transcript entries one read returns at most.
inline constexpr uint64_t transcript_page_max = 1000;

}  // namespace troupe::agents
