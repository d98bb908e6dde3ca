#include "actors/agents/transcript.hpp"

#include <algorithm>
#include <cmath>

namespace troupe::agents {

namespace {

using json = nlohmann::json;

const std::string& string_or_empty(const json& object, const char* key) {
  static const std::string empty;
  const auto it = object.find(key);
  return it != object.end() && it->is_string() ? it->get_ref<const std::string&>() : empty;
}

json schema(json properties, std::vector<std::string> required) {
  return json{{"type", "object"}, {"properties", std::move(properties)}, {"required", required}};
}

json definition(std::string_view name) {
  const json str{{"type", "string"}};
  const json num{{"type", "integer"}};
  if (name == "Bash") {
    return {{"name", "Bash"},
            {"description",
             "Runs a shell command in the workspace and returns its output and exit status."},
            {"input_schema",
             schema({{"command", str}, {"timeout", num}, {"description", str}}, {"command"})}};
  }
  if (name == "Read") {
    return {{"name", "Read"},
            {"description",
             "Reads a file of the workspace, with line numbers; offset and limit in lines."},
            {"input_schema",
             schema({{"file_path", str}, {"offset", num}, {"limit", num}}, {"file_path"})}};
  }
  if (name == "Write") {
    return {
        {"name", "Write"},
        {"description", "Writes a file of the workspace, replacing its content."},
        {"input_schema", schema({{"file_path", str}, {"content", str}}, {"file_path", "content"})}};
  }
  if (name == "Edit") {
    return {{"name", "Edit"},
            {"description",
             "Replaces old_string by new_string in a file; old_string must be unique unless "
             "replace_all."},
            {"input_schema", schema({{"file_path", str},
                                     {"old_string", str},
                                     {"new_string", str},
                                     {"replace_all", {{"type", "boolean"}}}},
                                    {"file_path", "old_string", "new_string"})}};
  }
  if (name == "Glob") {
    return {{"name", "Glob"},
            {"description", "Lists the workspace's files that match a glob pattern."},
            {"input_schema", schema({{"pattern", str}, {"path", str}}, {"pattern"})}};
  }
  if (name == "Task") {
    return {{"name", "Task"},
            {"description",
             "Starts a sub-agent with a persona (subagent_type) on a task; its final answer is "
             "the result."},
            {"input_schema", schema({{"description", str}, {"prompt", str}, {"subagent_type", str}},
                                    {"description", "prompt"})}};
  }
  if (name == "SendMessage") {
    return {{"name", "SendMessage"},
            {"description",
             "Sends a message to another agent of this node, by name; its answer is the result."},
            {"input_schema", schema({{"to", str}, {"message", str}}, {"to", "message"})}};
  }
  return {{"name", "Grep"},
          {"description", "Searches the workspace's files for a regular expression."},
          {"input_schema", schema({{"pattern", str},
                                   {"path", str},
                                   {"glob", str},
                                   {"output_mode", str},
                                   {"-i", {{"type", "boolean"}}},
                                   {"head_limit", num}},
                                  {"pattern"})}};
}

/// The user message that holds tool results after the last answer.
json& results_message(conversation& c) {
  if (c.messages.empty() || c.messages.back().value("role", "") != "user" ||
      !c.messages.back()["content"].is_array() || c.messages.back()["content"].empty() ||
      c.messages.back()["content"].back().value("type", "") != "tool_result") {
    c.messages.push_back(json{{"role", "user"}, {"content", json::array()}});
  }
  return c.messages.back()["content"];
}

void resolve_pending(conversation& c, const std::string& id) {
  auto& p = c.pending;
  for (auto it = p.begin(); it != p.end(); ++it) {
    if (string_or_empty(*it, "id") == id) {
      p.erase(it);
      return;
    }
  }
}

void add_result(conversation& c, const std::string& id, json content, bool is_error) {
  json block{{"type", "tool_result"}, {"tool_use_id", id}, {"content", std::move(content)}};
  if (is_error) {
    block["is_error"] = true;
  }
  results_message(c).push_back(std::move(block));
  resolve_pending(c, id);
}

/// The current turn's prompt as it was given: its message's blocks, less
/// an earlier summary that was put with it.
json prompt_blocks(const conversation& c) {
  json out = json::array();
  if (c.turn_start < 0 || static_cast<size_t>(c.turn_start) >= c.messages.size()) {
    return out;
  }
  const auto& content = c.messages[static_cast<size_t>(c.turn_start)]["content"];
  if (!content.is_array()) {
    return out;
  }
  for (const auto& block : content) {
    if (!string_or_empty(block, "text").starts_with(summary_heading)) {
      out.push_back(block);
    }
  }
  return out;
}

/// A summary replaces messages [0, upto): see summary_plan.
void apply_summary(conversation& c, const json& entry) {
  const auto upto = entry.value("upto", size_t{0});
  if (upto == 0 || upto > c.messages.size()) {
    return;
  }
  const bool keep_prompt = entry.value("keep_prompt", false) && c.turn_start >= 0 &&
                           static_cast<size_t>(c.turn_start) < upto;
  json content = keep_prompt ? prompt_blocks(c) : json::array();
  content.push_back({{"type", "text"},
                     {"text", std::string(summary_heading) + string_or_empty(entry, "summary")}});
  json messages = json::array({json{{"role", "user"}, {"content", std::move(content)}}});
  for (size_t i = upto; i < c.messages.size(); ++i) {
    messages.push_back(std::move(c.messages[i]));
  }
  c.messages = std::move(messages);
  if (keep_prompt) {
    c.turn_start = 0;
  } else if (c.turn_start >= static_cast<int64_t>(upto)) {
    c.turn_start -= static_cast<int64_t>(upto) - 1;
  } else {
    c.turn_start = -1;
  }
}

}  // namespace

json tool_definitions(const std::vector<std::string>& names) {
  json out = json::array();
  for (const auto& name : names) {
    out.push_back(definition(name));
  }
  return out;
}

std::string elided_note(std::string_view tool, size_t bytes) {
  return "[troupe elided this " + std::string(tool.empty() ? "tool" : tool) + " result (" +
         std::to_string(bytes) + " bytes) to keep the conversation within its context budget]";
}

void apply_entry(conversation& c, const json& entry) {
  if (!entry.is_object()) {
    return;
  }
  const auto& kind = string_or_empty(entry, "kind");
  if (kind == "prompt") {
    json content = json::array({{{"type", "text"}, {"text", string_or_empty(entry, "text")}}});
    // What UserPromptSubmit hooks added, as Claude Code adds it: more text.
    if (const auto& context = string_or_empty(entry, "context"); !context.empty()) {
      content.push_back({{"type", "text"}, {"text", context}});
    }
    c.turn_start = static_cast<int64_t>(c.messages.size());
    c.messages.push_back(json{{"role", "user"}, {"content", std::move(content)}});
    c.in_turn = true;
    c.pending = json::array();
    c.turn_calls = 0;
  } else if (kind == "assistant") {
    const auto content = entry.value("content", json::array());
    c.messages.push_back(json{{"role", "assistant"}, {"content", content}});
    c.pending = json::array();
    for (const auto& block : content) {
      if (block.is_object() && string_or_empty(block, "type") == "tool_use") {
        c.pending.push_back(json{{"id", string_or_empty(block, "id")},
                                 {"name", string_or_empty(block, "name")},
                                 {"input", block.value("input", json::object())}});
      }
    }
    ++c.turn_calls;
  } else if (kind == "continue") {
    // A Stop hook kept the turn going: its reason is the model's next cue.
    c.messages.push_back(json{
        {"role", "user"},
        {"content", json::array({{{"type", "text"}, {"text", string_or_empty(entry, "text")}}})}});
  } else if (kind == "approval" || kind == "approval_decision") {
    for (auto& call : c.pending) {
      if (string_or_empty(call, "id") != string_or_empty(entry, "id")) {
        continue;
      }
      if (kind == "approval") {
        // Nothing ran: the call waits for a person.
        call["started"] = false;
        call["awaiting"] = true;
      } else {
        call["awaiting"] = false;
        call["started"] = string_or_empty(entry, "decision") == "approved";
      }
    }
  } else if (kind == "tool_call") {
    // Started: if no result follows, it may have run (see interrupted).
    for (auto& call : c.pending) {
      if (string_or_empty(call, "id") == string_or_empty(entry, "id")) {
        call["started"] = true;
      }
    }
  } else if (kind == "tool_result") {
    add_result(c, string_or_empty(entry, "id"), entry.value("content", json("")),
               entry.value("is_error", false));
    for (const auto& path : entry.value("read_paths", json::array())) {
      if (path.is_string() && std::find(c.read_paths.begin(), c.read_paths.end(),
                                        path.get<std::string>()) == c.read_paths.end()) {
        c.read_paths.push_back(path.get<std::string>());
      }
    }
  } else if (kind == "interrupted") {
    add_result(c, string_or_empty(entry, "id"), json(std::string(interrupted_text)), true);
  } else if (kind == "compaction" && entry.contains("summary")) {
    apply_summary(c, entry);
  } else if (kind == "calibration") {
    const auto factor = entry.value("factor", 0.0);
    if (factor > 0) {
      c.calibration = factor;
      c.calibrated_at = entry.value("estimated", int64_t{0});
    }
  } else if (kind == "compaction") {
    const auto ids = entry.value("elided", json::array());
    for (auto& message : c.messages) {
      if (message.value("role", "") != "user" || !message["content"].is_array()) {
        continue;
      }
      for (auto& block : message["content"]) {
        if (string_or_empty(block, "type") != "tool_result" || block.value("elided", false)) {
          continue;
        }
        const auto& id = string_or_empty(block, "tool_use_id");
        if (std::find(ids.begin(), ids.end(), json(id)) == ids.end()) {
          continue;
        }
        const auto bytes = block["content"].is_string()
                               ? block["content"].get_ref<const std::string&>().size()
                               : block["content"].dump().size();
        block["content"] = elided_note("", bytes);
      }
    }
  } else if (kind == "turn_end") {
    c.in_turn = false;
    c.pending = json::array();
  }
}

bool ready_for_model(const conversation& c) {
  if (c.messages.empty() || !c.pending.empty()) {
    return false;
  }
  return c.messages.back().value("role", "") == "user";
}

int64_t estimate_tokens(const json& request, double calibration) {
  return estimate_tokens_of(request.dump().size(), calibration);
}

int64_t estimate_tokens_of(size_t json_bytes, double calibration) {
  return static_cast<int64_t>(std::ceil(static_cast<double>(json_bytes) / 4.0 * calibration));
}

/// What every elided_note begins with ("[troupe elided this ").
constexpr size_t elided_prefix_bytes = 20;

std::vector<std::string> plan_elision(const json& request, int64_t budget, double calibration,
                                      size_t keep_messages) {
  std::vector<std::string> ids;
  int64_t estimate = estimate_tokens(request, calibration);
  if (estimate <= budget || !request.contains("messages")) {
    return ids;
  }
  const auto& messages = request["messages"];
  const size_t end = messages.size() > keep_messages ? messages.size() - keep_messages : 0;
  for (size_t i = 0; i < end && estimate > budget; ++i) {
    const auto& message = messages[i];
    if (message.value("role", "") != "user" || !message.contains("content") ||
        !message["content"].is_array()) {
      continue;
    }
    for (const auto& block : message["content"]) {
      if (string_or_empty(block, "type") != "tool_result") {
        continue;
      }
      const auto& content = block.contains("content") ? block["content"] : json("");
      const auto bytes = content.is_string() ? content.get_ref<const std::string&>().size()
                                             : content.dump().size();
      const auto note = elided_note("", bytes).size();
      if (bytes <= note ||
          (content.is_string() && content.get_ref<const std::string&>().starts_with(
                                      elided_note("", 0).substr(0, elided_prefix_bytes)))) {
        continue;  // small, or elided already
      }
      ids.push_back(string_or_empty(block, "tool_use_id"));
      estimate -=
          static_cast<int64_t>(std::floor(static_cast<double>(bytes - note) / 4.0 * calibration));
      if (estimate <= budget) {
        break;
      }
    }
  }
  return ids;
}

std::optional<summary_plan> plan_summary(const conversation& c, const summary_budget& b,
                                         size_t keep_messages) {
  const auto& messages = c.messages;
  const size_t n = messages.size();
  if (n <= keep_messages + 1) {
    return std::nullopt;
  }
  // Each message's estimate; from[k]: the messages from k on. As the
  // summary call reads them (JSON inside a JSON string: quotes escaped),
  // they weigh more: before[k], the messages before k.
  std::vector<int64_t> from(n + 1, 0);
  std::vector<int64_t> before(n + 1, 0);
  for (size_t i = n; i-- > 0;) {
    const auto text = messages[i].dump();
    from[i] = from[i + 1] + estimate_tokens_of(text.size() + 1, c.calibration);
  }
  for (size_t i = 0; i < n; ++i) {
    before[i + 1] =
        before[i] + estimate_tokens_of(json(messages[i].dump()).dump().size() - 1, c.calibration);
  }
  const int64_t prompt = estimate_tokens_of(
      json{{"role", "user"}, {"content", prompt_blocks(c)}}.dump().size(), c.calibration);
  const auto keeps_prompt = [&](size_t k) {
    return c.turn_start >= 0 && static_cast<size_t>(c.turn_start) < k && prompt <= b.context / 4;
  };
  const auto after = [&](size_t k) {
    return b.fixed + b.summary + (keeps_prompt(k) ? prompt : 0) + from[k] + 16;
  };
  // What the summary call reads: the messages before k, with instructions.
  constexpr int64_t instructions = 256;
  const auto reads = [&](size_t k) { return before[k] + instructions + 16; };
  std::optional<size_t> cut;
  std::optional<size_t> fits;
  for (size_t k = 1; k + keep_messages <= n; ++k) {
    if (string_or_empty(messages[k], "role") != "assistant") {
      continue;
    }
    if (after(k) <= b.context) {
      fits = k;  // the largest so far
      if (!cut && after(k) * 5 <= b.context * 3) {
        cut = k;
      }
    }
  }
  if (!cut) {
    cut = fits;
  }
  if (!cut) {
    return std::nullopt;
  }
  // No more than one call can read: less now, the rest in another round.
  while (reads(*cut) > b.request) {
    size_t k = *cut - 1;
    while (k > 0 && string_or_empty(messages[k], "role") != "assistant") {
      --k;
    }
    if (k == 0) {
      return std::nullopt;
    }
    cut = k;
  }
  return summary_plan{*cut, keeps_prompt(*cut)};
}

json summary_request(const conversation& c, const summary_plan& plan, const std::string& model,
                     int64_t max_tokens) {
  json older = json::array();
  for (size_t i = 0; i < plan.upto && i < c.messages.size(); ++i) {
    older.push_back(c.messages[i]);
  }
  std::string ask =
      "Summarise the conversation below, an AI agent's work so far (Messages API JSON), so "
      "that the agent can go on from your summary alone";
  ask += plan.keep_prompt ? " (the task it was given stays with it word for word)" : "";
  ask +=
      ". Keep the task and the instructions it was given, what it did and found (files, "
      "commands, results that matter), decisions and their reasons, and what remains to do. "
      "Be specific and brief.\n\n";
  ask += older.dump();
  return json{
      {"model", model},
      {"max_tokens", max_tokens},
      {"system",
       "You write the summaries that let an AI agent continue a long task within its context "
       "budget. You answer with the summary only, in plain text; you do not call tools."},
      {"messages", json::array({{{"role", "user"},
                                 {"content", json::array({{{"type", "text"}, {"text", ask}}})}}})}};
}

}  // namespace troupe::agents
