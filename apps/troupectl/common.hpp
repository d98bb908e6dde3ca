#pragma once

// What every troupectl command shares: the context a command runs with,
// failures and exit codes, registration, and small JSON, text and URL
// helpers (percent-encoding is runtime/net/percent).

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <array>
#include <atomic>
#include <cassert>
#include <cerrno>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iomanip>
#include <iostream>
#include <memory>
#include <optional>
#include <span>
#include <sstream>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

#include <fcntl.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <termios.h>
#include <unistd.h>

#include "client/http_client.hpp"
#include "client/ws_client.hpp"
#include "runtime/error.hpp"
#include "runtime/net/percent.hpp"

namespace troupe::ctl {

using json = nlohmann::json;

constexpr int exit_ok = 0;
constexpr int exit_failure = 1;
constexpr int exit_usage = 2;

constexpr std::string_view default_url = "http://127.0.0.1:7700";
constexpr std::string_view token_file = "./data/token";
/// A token is a short random string; anything bigger is not a token file.
constexpr size_t token_file_bytes_max = 4096;
/// Client-side bound on a request when --timeout-ms is not given.
constexpr uint32_t default_timeout_ms = 30000;
/// --timeout-ms above an hour is a typo, not a wish.
constexpr uint32_t timeout_ms_max = 3'600'000;
/// `send` waits this much longer than the node's own timeout, so that the
/// node's precise "timeout" reply arrives instead of a bare transport timeout.
constexpr uint32_t reply_grace_ms = 1000;
/// A message body read from stdin; the node's own body limit is lower.
constexpr size_t stdin_bytes_max = size_t{64} << 20;
/// Supervision trees are shallow; this only guards against a malformed reply.
constexpr size_t tree_depth_max = 64;
/// `cache put --ttl` above ten years is a typo; omit --ttl for the node's default.
constexpr uint64_t ttl_s_max = uint64_t{10} * 365 * 24 * 3600;
/// Cache stats nest a level or two; this only guards against a malformed reply.
constexpr size_t stats_depth_max = 8;

/// Options every subcommand sees, resolved from flags, environment and files.
struct context {
  base_url url;
  std::string token;
  bool json_output = false;
  std::optional<uint32_t> timeout_ms;

  [[nodiscard]] http_client make_client(uint32_t grace_ms = 0) const {
    return http_client(url, token, timeout_ms.value_or(default_timeout_ms) + grace_ms);
  }
};

/// What went wrong, as printed: the node's own code (which may be a family's
/// code this binary has never heard of) and its message.
struct failure {
  std::string code;
  std::string message;
};

/// A request's reply when it was 2xx, or why not.
struct outcome {
  http_response reply;
  std::optional<failure> failed;
};

inline int fail(const failure& f) {
  std::cerr << "error: " << f.code << ": " << f.message << "\n";
  return exit_failure;
}

inline int usage_error(std::string_view message) {
  std::cerr << "usage error: " << message << "\nRun with --help for more information.\n";
  return exit_usage;
}

using run_fn = std::function<int(const context&)>;

/// One subcommand: `add` declares its arguments on `sub` and returns what runs it.
struct command_entry {
  std::string_view name;
  std::string_view help;
  run_fn (*add)(CLI::App& sub);
};

/// Each subcommand's run function beside the CLI11 app that knows whether it was given.
using command_runs = std::vector<std::pair<CLI::App*, run_fn>>;

inline command_runs add_commands(CLI::App& parent, std::span<const command_entry> entries) {
  command_runs runs;
  for (const auto& entry : entries) {
    auto* sub = parent.add_subcommand(std::string(entry.name), std::string(entry.help));
    runs.emplace_back(sub, entry.add(*sub));
  }
  return runs;
}

inline int run_given(const command_runs& runs, const context& ctx) {
  for (const auto& [sub, run] : runs) {
    if (sub->parsed()) {
      return run(ctx);
    }
  }
  return usage_error("no subcommand given");
}

// Invalid UTF-8 from the node or the user must not abort printing.
inline std::string dump_json(const json& value, int indent = -1) {
  return value.dump(indent, ' ', false, json::error_handler_t::replace);
}

inline std::optional<json> parse_json(std::string_view text) {
  auto value = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (value.is_discarded()) {
    return std::nullopt;
  }
  return value;
}

// A field as text for a table: strings as they are, numbers as numbers, absent or null as "-".
inline std::string field_text(const json& object, const char* key) {
  if (!object.is_object() || !object.contains(key) || object[key].is_null()) {
    return "-";
  }
  const auto& value = object[key];
  return value.is_string() ? value.get<std::string>() : dump_json(value);
}

inline double field_number(const json& object, const char* key) {
  if (!object.is_object() || !object.contains(key) || !object[key].is_number()) {
    return 0;
  }
  return object[key].get<double>();
}

inline failure from_error(const error& e) {
  return {std::string(to_string(e.code)), e.message};
}

// Reads `{"error": {"code", "message"}}`; a reply of another shape (a proxy's
// HTML page, say) is reported by its status and the start of its body.
inline failure from_reply(const http_response& reply) {
  const auto body = parse_json(reply.body);
  if (body && body->is_object() && body->contains("error") && (*body)["error"].is_object()) {
    const auto& e = (*body)["error"];
    // troupe's errors carry a code; the Anthropic routes' errors a type.
    auto code = field_text(e, "code");
    if (code == "-") {
      code = field_text(e, "type");
    }
    return {code == "-" ? "http_" + std::to_string(reply.status) : code, field_text(e, "message")};
  }
  constexpr size_t excerpt_bytes_max = 200;
  return {"http_" + std::to_string(reply.status), reply.body.substr(0, excerpt_bytes_max)};
}

inline outcome call(http_client& client, std::string_view method, std::string_view target,
                    std::string body = {}, std::string content_type = "application/json") {
  auto reply = client.request(method, target, std::move(body), std::move(content_type));
  if (!reply) {
    return {{}, from_error(reply.err())};
  }
  if (reply->status < 200 || reply->status > 299) {
    return {{}, from_reply(*reply)};
  }
  return {std::move(*reply), std::nullopt};
}

inline failure bad_reply(std::string_view target) {
  return {"bad_reply", "the node's reply to " + std::string(target) + " is not the expected JSON"};
}

inline void print_raw(std::string_view body) {
  std::cout << body;
  if (!body.empty() && !body.ends_with('\n')) {
    std::cout << '\n';
  }
}

// Actor paths go into the URL as they are, '/' included; anything outside the
// unreserved set is percent-encoded so a path cannot change the route.
inline std::string encode_path(std::string_view path) {
  return percent_encode(path, "/");
}

// "/cache/shard-0/" and "cache/shard-0" name the same actor.
inline std::string trim_slashes(std::string_view path) {
  while (path.starts_with('/')) {
    path.remove_prefix(1);
  }
  while (path.ends_with('/')) {
    path.remove_suffix(1);
  }
  return std::string(path);
}

inline std::string trim_space(std::string_view text) {
  const auto first = text.find_first_not_of(" \t\r\n");
  if (first == std::string_view::npos) {
    return {};
  }
  const auto last = text.find_last_not_of(" \t\r\n");
  return std::string(text.substr(first, last - first + 1));
}

inline std::optional<std::string> read_stdin() {
  std::string text;
  std::array<char, 64 * 1024> chunk{};
  while (std::cin.read(chunk.data(), chunk.size()) || std::cin.gcount() > 0) {
    text.append(chunk.data(), static_cast<size_t>(std::cin.gcount()));
    if (text.size() > stdin_bytes_max) {
      return std::nullopt;
    }
  }
  return text;
}

// The node resolves a relative path against its own working directory, which
// is rarely the user's; resolving here makes `--dep src/a.cpp` name the file
// the user sees.
inline expected<std::vector<std::string>> absolute_paths(const std::vector<std::string>& paths) {
  std::vector<std::string> out;
  out.reserve(paths.size());
  for (const auto& path : paths) {
    std::error_code ec;
    auto resolved = path.empty() ? std::filesystem::path() : std::filesystem::absolute(path, ec);
    if (path.empty() || ec) {
      return make_error(errc::bad_request, "cannot make the path '" + path + "' absolute" +
                                               (ec ? ": " + ec.message() : std::string()));
    }
    out.push_back(resolved.string());
  }
  return out;
}

// Resolved here, like `cache put --dep`: the node's working directory is not
// the user's. Normalised, so "." reaches the node as "/home/me", not "/home/me/.".
inline expected<std::string> absolute_dir(const std::string& dir) {
  auto absolute = absolute_paths({dir});
  if (!absolute) {
    return std::move(absolute).err();
  }
  auto normal = std::filesystem::path(absolute->front()).lexically_normal();
  if (!normal.has_filename() && normal != normal.root_path()) {
    normal = normal.parent_path();
  }
  return normal.string();
}

using table_row = std::vector<std::string>;

// Columns two spaces apart; `right_aligned[i]` for the number columns.
inline void print_table(const std::vector<table_row>& rows, std::span<const bool> right_aligned) {
  std::vector<size_t> widths(right_aligned.size(), 0);
  for (const auto& row : rows) {
    assert(row.size() == widths.size());
    for (size_t i = 0; i < row.size(); ++i) {
      widths[i] = std::max(widths[i], row[i].size());
    }
  }
  for (const auto& row : rows) {
    std::string line;
    for (size_t i = 0; i < row.size(); ++i) {
      const std::string pad(widths[i] - row[i].size(), ' ');
      line += right_aligned[i] ? pad + row[i] : row[i] + (i + 1 < row.size() ? pad : "");
      line += i + 1 < row.size() ? "  " : "";
    }
    std::cout << line << "\n";
  }
}

// A failure reason may span lines; a table row may not.
inline std::string one_line(std::string text) {
  std::replace_if(
      text.begin(), text.end(), [](char c) { return c == '\n' || c == '\r'; }, ' ');
  return text;
}

// The value's bytes exactly as stored, so `cache get k > file` round-trips;
// only a terminal gets a closing newline, to keep the prompt on its own line.
inline void print_value(std::string_view value) {
  std::cout.write(value.data(), static_cast<std::streamsize>(value.size()));
  if (::isatty(STDOUT_FILENO) == 1 && !value.empty() && !value.ends_with('\n')) {
    std::cout << '\n';
  }
}

// Integers as they are; a ratio to a few digits rather than all seventeen.
inline std::string number_text(const json& number) {
  if (!number.is_number_float()) {
    return dump_json(number);
  }
  std::ostringstream out;
  out << number.get<double>();
  return out.str();
}

inline std::string session_target(std::string_view id) {
  return "/v1/sessions/" + percent_encode(id);
}

struct terminal_size {
  uint32_t cols = 0;
  uint32_t rows = 0;
};

// The size of the terminal on `fd`, when it is one and knows its size.
inline std::optional<terminal_size> read_terminal_size(int fd) {
  winsize size{};
  if (::ioctl(fd, TIOCGWINSZ, &size) != 0 || size.ws_col == 0 || size.ws_row == 0) {
    return std::nullopt;
  }
  return terminal_size{size.ws_col, size.ws_row};
}

}  // namespace troupe::ctl
