#pragma once

// Schema of the agents family's messages (so far: its persona catalog,
// `agents/personas`). `workspace` is an absolute directory whose
// `.claude/agents/` adds to the node's personas and overrides them by name;
// empty: the node's personas alone.
//   persona.list  {workspace}         -> persona.list.reply {personas, problems}
//   persona.get   {name, workspace}   -> persona.get.reply (persona_info, with
//                                        its prompt) | not_found
//   persona.match {prompt, workspace} -> persona.match.reply {chosen,
//                                        candidates, rule}

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "runtime/protocol/codec.hpp"

namespace troupe::agents {

inline constexpr const char* personas_path = "agents/personas";

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
  TROUPE_FIELDS(name, description, tools, disallowed_tools, model, priority, triggers, source,
                prompt)
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

}  // namespace troupe::agents
