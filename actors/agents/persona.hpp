#pragma once

// Personas: Claude Code subagent files read as they are. A file is Markdown
// with YAML front matter between two `---` lines; the body is the system
// prompt. Keys read: `name`, `description`, `tools`, `disallowedTools`,
// `model` (Claude Code's), `triggers`, `priority` and `context_tokens`
// (troupe's); any other key is ignored. Plain values and functions, no I/O but load_personas().
//
//   ---
//   name: reviewer
//   description: Reviews a change for bugs before it lands.
//   tools: Read, Grep, Glob, Bash(git diff *)
//   model: sonnet
//   triggers:
//     keywords: [review, "pull request"]
//     regex: ['\bPR ?#\d+']
//     files: ["*.diff", "*.patch"]
//   priority: 10
//   context_tokens: 50000
//   ---
//   You review changes. ...

#include <cstddef>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "runtime/error.hpp"

namespace re2 {
class RE2;
}

namespace troupe::agents {

/// A persona file larger than this is refused (a system prompt, not a book).
inline constexpr size_t persona_file_bytes_max = 256u << 10;
/// Triggers per persona, and the length of each.
inline constexpr size_t persona_triggers_max = 64;
inline constexpr size_t persona_trigger_bytes_max = 512;
/// What of a prompt the triggers look at.
inline constexpr size_t match_prompt_bytes_max = 64u << 10;

/// One entry of `tools` or `disallowedTools`: a tool, or a tool restricted
/// to the inputs its pattern matches, as in `Bash(git diff *)`.
struct tool_rule {
  std::string tool;
  /// Empty: every use of the tool. `*` matches any run of characters; a
  /// trailing `:*` (Claude Code's older form) matches any continuation.
  std::string pattern;

  /// `Bash(git diff *)`, or the bare tool name.
  [[nodiscard]] std::string text() const;
};

/// `Bash(git diff *)` or `Read` as a rule; an error says what is wrong.
[[nodiscard]] expected<tool_rule> parse_tool_rule(std::string_view text);

struct persona_triggers {
  /// Case-insensitive, as whole words.
  std::vector<std::string> keywords;
  /// RE2 syntax (linear time, whatever the prompt), searched anywhere.
  std::vector<std::string> regex;
  /// Globs matched against the paths the prompt mentions.
  std::vector<std::string> files;

  [[nodiscard]] bool empty() const { return keywords.empty() && regex.empty() && files.empty(); }
};

struct persona {
  std::string name;
  std::string description;
  /// Present in the file: only these tools (each maybe restricted).
  /// Absent: every tool the agent has.
  std::optional<std::vector<tool_rule>> tools;
  std::vector<tool_rule> disallowed;
  /// An alias (`sonnet`, `opus`, `haiku`), a full model id, or `inherit`
  /// (also when absent): the agent's own model.
  std::string model = "inherit";
  /// The body: the system prompt.
  std::string prompt;
  persona_triggers triggers;
  /// Higher wins when several personas match a prompt.
  int priority = 0;
  /// The context budget of an agent that follows it, if it sets one (the
  /// agent's own still bounds it); 0: none.
  int64_t context_tokens = 0;
  /// The file it was read from.
  std::string source;
  /// The triggers' regexes, compiled once (same order as triggers.regex).
  std::vector<std::shared_ptr<const re2::RE2>> compiled;
};

/// Reads one persona file's text. An error says `source:LINE: why` (the
/// line in the file, counting from 1).
[[nodiscard]] expected<persona> parse_persona(std::string_view text, const std::string& source);

/// Whether `p` lets its agent call `tool` with `input` (Claude Code's input
/// shape), and why not. A matching `disallowedTools` rule denies; when the
/// persona lists `tools`, one of them must match. A pattern is checked
/// against `command` for Bash, `file_path` for Read, Write and Edit, `path`
/// (or `pattern`) for Glob and Grep; a pattern on any other tool cannot be
/// checked, so it never allows, and a deny rule with one denies the tool.
struct tool_verdict {
  bool allowed = true;
  std::string reason;
};
[[nodiscard]] tool_verdict check_tool(const persona& p, std::string_view tool,
                                      const nlohmann::json& input);

/// One persona's fit for a prompt.
struct persona_candidate {
  std::string name;
  int priority = 0;
  /// Triggers that matched.
  int score = 0;
  /// One line per matched trigger: "keyword 'review'", "regex '...'",
  /// "file 'src/a.py' matches '*.py'".
  std::vector<std::string> reasons;
};

struct persona_choice {
  /// The persona that activates; none when no trigger matched.
  std::optional<std::string> chosen;
  /// Every persona with at least one matched trigger, best first.
  std::vector<persona_candidate> candidates;
  /// How the choice was settled, in words.
  std::string rule;
};

/// The order of the candidates: higher priority first, then more triggers
/// matched, then the name in byte order (so the choice never depends on
/// load order).
inline constexpr const char* persona_choice_rule =
    "highest priority, then most triggers matched, then name in byte order";

[[nodiscard]] persona_choice match_personas(const std::vector<persona>& personas,
                                            std::string_view prompt);

/// The paths a prompt mentions: words with a `/` or a file extension.
[[nodiscard]] std::vector<std::string> mentioned_paths(std::string_view prompt);

/// A file that could not be read as a persona, and was skipped.
struct persona_problem {
  std::string source;
  std::string message;
};

struct persona_catalog {
  /// By name; a later directory's persona replaces an earlier one's.
  std::vector<persona> personas;
  std::vector<persona_problem> problems;

  [[nodiscard]] const persona* find(std::string_view name) const;
};

/// Reads every `*.md` file in `dirs`, in order (a directory that does not
/// exist is skipped): typically the node's `configs/personas/`, then a
/// workspace's `.claude/agents/`, which overrides it by name, as a
/// project's agents override a user's in Claude Code. Within a directory
/// files are read in name order, and a second file with a name already
/// taken there is a problem.
[[nodiscard]] persona_catalog load_personas(const std::vector<std::filesystem::path>& dirs);

}  // namespace troupe::agents
