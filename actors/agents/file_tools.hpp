#pragma once

// The file tools an agent calls, with Claude Code's names and input shapes:
// Read {file_path, offset, limit}, Write {file_path, content}, Edit
// {file_path, old_string, new_string, replace_all}, Glob {pattern, path},
// Grep {pattern, path, glob, output_mode, -i, head_limit}. Each stays inside
// its agent's workspace: a path outside it, through `..` or a symlink, is a
// tool error the model reads (the agent goes on). Plain functions over the
// file system; they block, so the agent runs them off the scheduler.

#include <cstddef>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "runtime/error.hpp"

namespace troupe::agents {

/// Lines a Read returns when it names no limit, and the characters kept of
/// each (as Claude Code does).
inline constexpr size_t read_lines_default = 2000;
inline constexpr size_t read_line_chars_max = 2000;
/// What any tool's answer holds at most; more is cut with a note.
inline constexpr size_t tool_output_bytes_max = 256u << 10;
/// A file larger than this is not searched, edited or read whole.
inline constexpr size_t tool_file_bytes_max = 16u << 20;
/// Paths Glob returns and directory entries a Glob or Grep visits.
inline constexpr size_t glob_results_max = 1000;
inline constexpr size_t walk_entries_max = 200000;

/// What a tool answers the model, and what it touched.
struct tool_output {
  /// The tool_result's text.
  std::string content;
  /// The tool failed (the model sees the reason, is_error set).
  bool is_error = false;
  /// Files whose content the answer depends on (for the response cache).
  std::vector<std::string> read_paths;
  /// Files the tool changed.
  std::vector<std::string> written_paths;
};

/// An agent's working directory, resolved once (symlinks included).
class workspace {
 public:
  /// `dir` must be an absolute path to an existing directory.
  [[nodiscard]] static expected<workspace> open(const std::string& dir);

  [[nodiscard]] const std::filesystem::path& root() const { return root_; }

  /// `path` (absolute, or relative to the root) as a canonical path inside
  /// the workspace. For a path that does not exist yet (a file to write),
  /// what exists of it is resolved and the rest must stay inside too.
  [[nodiscard]] expected<std::filesystem::path> resolve(std::string_view path) const;

  /// `path` is the root or under it (both canonical).
  [[nodiscard]] bool contains(const std::filesystem::path& path) const;

 private:
  explicit workspace(std::filesystem::path root) : root_(std::move(root)) {}
  std::filesystem::path root_;
};

[[nodiscard]] tool_output read_tool(const workspace& ws, const nlohmann::json& input);
[[nodiscard]] tool_output write_tool(const workspace& ws, const nlohmann::json& input);
[[nodiscard]] tool_output edit_tool(const workspace& ws, const nlohmann::json& input);
[[nodiscard]] tool_output glob_tool(const workspace& ws, const nlohmann::json& input);
[[nodiscard]] tool_output grep_tool(const workspace& ws, const nlohmann::json& input);

/// A file's bytes (up to tool_file_bytes_max), opened through the kernel's
/// check that no step of `path` leaves the workspace, whatever resolve()
/// said a moment before: a directory swapped for a link out is refused,
/// and so is a last component that is a link. The tools read and write
/// this way.
[[nodiscard]] expected<std::string> read_beneath(const workspace& ws,
                                                 const std::filesystem::path& path);

/// A glob (`*`, `?`, `**` across directories, `{a,b}`, `[...]`) as an RE2
/// pattern over `/`-separated relative paths.
[[nodiscard]] std::string glob_to_regex(std::string_view glob);

}  // namespace troupe::agents
