#pragma once

// An agent's conversation as its transcript tells it. The transcript is the
// truth (RocksDB, written before each step is acted upon); the messages sent
// to the model are derived from it by apply_entry(), the same way while the
// agent runs and when a new incarnation reads it back. Plain functions over
// JSON: the agent actor and the tests drive them directly.
//
// Entry kinds (each a JSON object with "kind"; docs/api.md has the fields):
//   prompt       {text, context}             a person's prompt: a user turn
//                                            (context: what hooks added)
//   persona      {name, rule, reasons}       which persona the turn follows
//   assistant    {content, stop_reason, usage, model}   a model answer
//   tool_call    {id, name, input}           written before the tool runs
//   hook         {event, tool, verdict, reason}
//   approval     {id, name, input, reason}   a hook asked a person
//   approval_decision {id, decision, reason} approved, denied, timed out
//   continue     {text}                      a Stop hook kept the turn going
//   tool_result  {id, name, content, is_error}
//   interrupted  {id, name}                  a tool call the node's stop cut
//   compaction   {elided, tokens_before, tokens_after}       old tool results elided
//   compaction   {summary, upto, keep_prompt, usage, tokens_before, tokens_after}
//                                            messages [0, upto) replaced by a
//                                            summary (keep_prompt: the turn's
//                                            prompt kept word for word)
//   calibration  {estimated, counted, factor}  count_tokens against the estimate
//   turn_end     {stop_reason, text, usage}
//   error        {message}

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

namespace troupe::agents {

/// Claude Code's tools that an agent has, in the order offered to the model.
inline constexpr std::string_view tool_names[] = {"Bash", "Read", "Write", "Edit",
                                                  "Glob", "Grep", "Task",  "SendMessage"};

/// The `tools` definitions (name, description, input_schema) for `names`.
[[nodiscard]] nlohmann::json tool_definitions(const std::vector<std::string>& names);

/// What an interrupted tool call answers the model.
inline constexpr std::string_view interrupted_text =
    "This tool call was interrupted: the agent stopped while it ran (a crash or a node "
    "restart). It was not run again; check its effects before repeating it.";

/// What replaces an elided tool result's content.
[[nodiscard]] std::string elided_note(std::string_view tool, size_t bytes);

struct conversation {
  /// The Messages API's `messages`.
  nlohmann::json messages = nlohmann::json::array();
  /// A prompt whose turn has not ended.
  bool in_turn = false;
  /// The last answer's tool calls that have no result yet (id, name, input).
  nlohmann::json pending = nlohmann::json::array();
  /// Absolute paths the conversation's tool results depend on.
  std::vector<std::string> read_paths;
  /// Model calls of the current turn.
  uint64_t turn_calls = 0;
  /// Where the current turn's prompt is in `messages` (-1: summarised away,
  /// or no turn yet).
  int64_t turn_start = -1;
  /// What the upstream counts per estimated token (see estimate_tokens),
  /// and the raw estimate it was measured at (0: never).
  double calibration = 1.0;
  int64_t calibrated_at = 0;
};

/// Adds one transcript entry to `c`. Entries it does not know change nothing
/// (a newer node's, read by an older one).
void apply_entry(conversation& c, const nlohmann::json& entry);

/// Whether `c`'s messages end where the model can be asked again: after a
/// prompt, or after a tool result for every call of the last answer.
[[nodiscard]] bool ready_for_model(const conversation& c);

/// An estimate of a request's input tokens: its JSON's bytes / 4, scaled by
/// `calibration` (what the upstream counted per estimated token; 1.0 until
/// measured).
[[nodiscard]] int64_t estimate_tokens(const nlohmann::json& request, double calibration = 1.0);
/// The same estimate from the size of the request's JSON text.
[[nodiscard]] int64_t estimate_tokens_of(size_t json_bytes, double calibration = 1.0);

/// The tool results to elide, oldest first, so that `request` (whose
/// messages are `c.messages`) estimates at or under `budget`: never one of
/// the last `keep_messages` messages, nor one already elided. Empty when it
/// already fits; every candidate when even that is not enough (the caller
/// estimates again and says so).
[[nodiscard]] std::vector<std::string> plan_elision(const nlohmann::json& request, int64_t budget,
                                                    double calibration, size_t keep_messages);

/// What the heading of a summary says to the model.
inline constexpr std::string_view summary_heading =
    "[troupe summarised the conversation up to this point to keep it within its context "
    "budget]\n";

/// Where to cut a conversation for a summary: messages [0, upto) become one
/// user message holding the summary (and the turn's prompt word for word
/// when `keep_prompt`), followed by messages [upto, end) unchanged.
struct summary_plan {
  size_t upto = 0;
  bool keep_prompt = false;
};

/// The budgets a summary is planned within, in tokens: `fixed` is what the
/// request holds besides its messages (system prompt, tools), `summary` the
/// summary's own bound (its call's max_tokens), `request` what the summary
/// call itself may send at most.
struct summary_budget {
  int64_t context = 0;
  int64_t fixed = 0;
  int64_t summary = 0;
  int64_t request = 0;
};

/// The cut for a summary of `c`: always at an assistant message (so every
/// tool_result kept has its tool_use), never within the last
/// `keep_messages`; the least summarised that leaves the request at 3/5 of
/// its budget, else the most that fits it, and no more than the summary
/// call can read within `b.request`. nullopt when no cut helps: the latest
/// turns alone are over the budget, or the oldest part cannot be read in
/// one call.
[[nodiscard]] std::optional<summary_plan> plan_summary(const conversation& c,
                                                       const summary_budget& b,
                                                       size_t keep_messages);

/// The summary call's request: the messages [0, plan.upto) of `c` as JSON
/// text, with instructions, for `model`, bounded by `max_tokens`.
[[nodiscard]] nlohmann::json summary_request(const conversation& c, const summary_plan& plan,
                                             const std::string& model, int64_t max_tokens);

}  // namespace troupe::agents
