// troupectl: the control CLI for a troupe node. Thin by design: parse the
// arguments, make one or two HTTP calls, print. Each subcommand is one
// `add_<name>` function registering its arguments and returning the function
// that runs it; `commands` below lists them all, so a new subcommand (cache,
// usage, session) is one function and one row.
//
// Exit codes (API.md): 0 success, 1 an error reply or transport failure,
// 2 a usage error.

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

namespace troupe {
namespace {

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

// ---------------------------------------------------------------------------
// Shared plumbing

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

int fail(const failure& f) {
  std::cerr << "error: " << f.code << ": " << f.message << "\n";
  return exit_failure;
}

int usage_error(std::string_view message) {
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

command_runs add_commands(CLI::App& parent, std::span<const command_entry> entries) {
  command_runs runs;
  for (const auto& entry : entries) {
    auto* sub = parent.add_subcommand(std::string(entry.name), std::string(entry.help));
    runs.emplace_back(sub, entry.add(*sub));
  }
  return runs;
}

int run_given(const command_runs& runs, const context& ctx) {
  for (const auto& [sub, run] : runs) {
    if (sub->parsed()) {
      return run(ctx);
    }
  }
  return usage_error("no subcommand given");
}

// Invalid UTF-8 from the node or the user must not abort printing.
std::string dump_json(const json& value, int indent = -1) {
  return value.dump(indent, ' ', false, json::error_handler_t::replace);
}

std::optional<json> parse_json(std::string_view text) {
  auto value = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (value.is_discarded()) {
    return std::nullopt;
  }
  return value;
}

// A field as text for a table: strings as they are, numbers as numbers, absent or null as "-".
std::string field_text(const json& object, const char* key) {
  if (!object.is_object() || !object.contains(key) || object[key].is_null()) {
    return "-";
  }
  const auto& value = object[key];
  return value.is_string() ? value.get<std::string>() : dump_json(value);
}

double field_number(const json& object, const char* key) {
  if (!object.is_object() || !object.contains(key) || !object[key].is_number()) {
    return 0;
  }
  return object[key].get<double>();
}

failure from_error(const error& e) {
  return {std::string(to_string(e.code)), e.message};
}

// Reads `{"error": {"code", "message"}}`; a reply of another shape (a proxy's
// HTML page, say) is reported by its status and the start of its body.
failure from_reply(const http_response& reply) {
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

outcome call(http_client& client, std::string_view method, std::string_view target,
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

failure bad_reply(std::string_view target) {
  return {"bad_reply", "the node's reply to " + std::string(target) + " is not the expected JSON"};
}

void print_raw(std::string_view body) {
  std::cout << body;
  if (!body.empty() && !body.ends_with('\n')) {
    std::cout << '\n';
  }
}

// RFC 3986's unreserved set; every other byte is percent-encoded. Spelled out
// rather than std::isalnum, whose answer depends on the locale.
bool is_unreserved(char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
         c == '.' || c == '_' || c == '~';
}

// `keep` names bytes beyond the unreserved set that pass through as they are.
std::string percent_encode(std::string_view text, std::string_view keep = {}) {
  static constexpr char hex[] = "0123456789ABCDEF";
  std::string out;
  out.reserve(text.size());
  for (const char c : text) {
    if (is_unreserved(c) || keep.find(c) != std::string_view::npos) {
      out += c;
      continue;
    }
    const auto byte = static_cast<unsigned char>(c);
    out += '%';
    out += hex[byte >> 4];
    out += hex[byte & 0xf];
  }
  return out;
}

// Actor paths go into the URL as they are, '/' included; anything outside the
// unreserved set is percent-encoded so a path cannot change the route.
std::string encode_path(std::string_view path) {
  return percent_encode(path, "/");
}

// "/cache/shard-0/" and "cache/shard-0" name the same actor.
std::string trim_slashes(std::string_view path) {
  while (path.starts_with('/')) {
    path.remove_prefix(1);
  }
  while (path.ends_with('/')) {
    path.remove_suffix(1);
  }
  return std::string(path);
}

std::string trim_space(std::string_view text) {
  const auto first = text.find_first_not_of(" \t\r\n");
  if (first == std::string_view::npos) {
    return {};
  }
  const auto last = text.find_last_not_of(" \t\r\n");
  return std::string(text.substr(first, last - first + 1));
}

// ---------------------------------------------------------------------------
// status

std::string format_uptime(double uptime_s) {
  auto left_s = static_cast<uint64_t>(std::max(uptime_s, 0.0));
  const uint64_t days = left_s / 86400;
  const uint64_t hours = left_s / 3600 % 24;
  const uint64_t minutes = left_s / 60 % 60;
  const uint64_t seconds = left_s % 60;
  std::ostringstream out;
  if (days > 0) {
    out << days << "d ";
  }
  if (days > 0 || hours > 0) {
    out << hours << "h ";
  }
  if (days > 0 || hours > 0 || minutes > 0) {
    out << minutes << "m ";
  }
  out << seconds << "s";
  return out.str();
}

void print_status_table(const json& node, bool ready, const std::string& ready_status) {
  const json actors = node.is_object() && node.contains("actors") ? node["actors"] : json();
  const auto row = [](std::string_view label, const std::string& value) {
    std::cout << std::left << std::setw(10) << label << value << "\n";
  };
  row("name", field_text(node, "name"));
  row("version", field_text(node, "version"));
  row("uptime", format_uptime(field_number(node, "uptime_s")));
  row("data dir", field_text(node, "data_dir"));
  row("listen", field_text(node, "listen"));
  row("actors", field_text(actors, "total") + " total, " + field_text(actors, "running") +
                    " running, " + field_text(actors, "restarting") + " restarting, " +
                    field_text(actors, "stopped") + " stopped");
  row("ready", ready ? "yes" : "no (" + (ready_status.empty() ? "not ready" : ready_status) + ")");
}

int run_status(const context& ctx) {
  auto client = ctx.make_client();
  const auto node = call(client, "GET", "/v1/node");
  if (node.failed) {
    return fail(*node.failed);
  }
  const auto node_json = parse_json(node.reply.body);
  if (!node_json || !node_json->is_object()) {
    return fail(bad_reply("GET /v1/node"));
  }
  // /readyz answers 503 while not ready: that is a state to show, not an error.
  const auto ready = client.request("GET", "/readyz");
  if (!ready) {
    return fail(from_error(ready.err()));
  }
  if (ready->status != 200 && ready->status != 503) {
    return fail(from_reply(*ready));
  }
  const bool is_ready = ready->status == 200;
  if (ctx.json_output) {
    std::cout << dump_json(json{{"node", *node_json}, {"ready", is_ready}}) << "\n";
    return exit_ok;
  }
  const auto ready_json = parse_json(ready->body);
  const auto ready_status = ready_json ? field_text(*ready_json, "status") : std::string();
  print_status_table(*node_json, is_ready, ready_status == "-" ? "" : ready_status);
  return exit_ok;
}

std::function<int(const context&)> add_status(CLI::App& /*sub*/) {
  return run_status;
}

// ---------------------------------------------------------------------------
// tree

struct tree_row {
  std::string label;
  // Terminal columns of `label`; the box-drawing glyphs take 3 bytes but 1 column.
  size_t label_columns = 0;
  std::string kind;
  std::string state;
  std::string restarts;
  std::string last_failure;
};

// A failure reason may span lines; a table row may not.
std::string one_line(std::string text) {
  std::replace_if(
      text.begin(), text.end(), [](char c) { return c == '\n' || c == '\r'; }, ' ');
  return text;
}

tree_row make_row(const json& actor, std::string label, size_t label_columns) {
  return {std::move(label),
          label_columns,
          field_text(actor, "kind"),
          field_text(actor, "state"),
          field_text(actor, "restarts"),
          one_line(field_text(actor, "last_failure"))};
}

// Rows for the children of `actor`, drawn like tree(1): `prefix` is the
// column of bars that the ancestors leave open.
void collect_children(const json& actor, const std::string& prefix, size_t prefix_columns,
                      size_t depth, std::vector<tree_row>& rows) {
  if (!actor.is_object() || !actor.contains("children") || !actor["children"].is_array()) {
    return;
  }
  const auto& children = actor["children"];
  if (depth >= tree_depth_max && !children.empty()) {
    rows.push_back({prefix + "└── …", prefix_columns + 5, "", "", "", ""});
    return;
  }
  for (size_t i = 0; i < children.size(); ++i) {
    const bool last = i + 1 == children.size();
    const auto path = field_text(children[i], "path");
    rows.push_back(make_row(children[i], prefix + (last ? "└── " : "├── ") + path,
                            prefix_columns + 4 + path.size()));
    collect_children(children[i], prefix + (last ? "    " : "│   "), prefix_columns + 4, depth + 1,
                     rows);
  }
}

void print_tree(const std::vector<tree_row>& rows) {
  tree_row header{"ACTOR", 5, "KIND", "STATE", "RESTARTS", "LAST FAILURE"};
  size_t label_width = header.label_columns;
  size_t kind_width = header.kind.size();
  size_t state_width = header.state.size();
  size_t restarts_width = header.restarts.size();
  for (const auto& row : rows) {
    label_width = std::max(label_width, row.label_columns);
    kind_width = std::max(kind_width, row.kind.size());
    state_width = std::max(state_width, row.state.size());
    restarts_width = std::max(restarts_width, row.restarts.size());
  }
  const auto print_row = [&](const tree_row& row) {
    std::cout << row.label << std::string(label_width - row.label_columns + 2, ' ') << std::left
              << std::setw(static_cast<int>(kind_width + 2)) << row.kind
              << std::setw(static_cast<int>(state_width + 2)) << row.state << std::right
              << std::setw(static_cast<int>(restarts_width)) << row.restarts << "  "
              << row.last_failure << "\n";
  };
  print_row(header);
  for (const auto& row : rows) {
    print_row(row);
  }
}

int run_tree(const context& ctx) {
  auto client = ctx.make_client();
  const auto tree = call(client, "GET", "/v1/actors");
  if (tree.failed) {
    return fail(*tree.failed);
  }
  if (ctx.json_output) {
    print_raw(tree.reply.body);
    return exit_ok;
  }
  const auto root = parse_json(tree.reply.body);
  if (!root || !root->is_object()) {
    return fail(bad_reply("GET /v1/actors"));
  }
  std::vector<tree_row> rows;
  const auto root_path = field_text(*root, "path");
  const auto label = root_path == "-" || root_path.empty() ? std::string("/") : root_path;
  rows.push_back(make_row(*root, label, label.size()));
  collect_children(*root, "", 0, 1, rows);
  print_tree(rows);
  return exit_ok;
}

std::function<int(const context&)> add_tree(CLI::App& /*sub*/) {
  return run_tree;
}

// ---------------------------------------------------------------------------
// send

struct send_args {
  std::string path;
  std::string type;
  std::string body;
};

std::optional<std::string> read_stdin() {
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

int run_send(const context& ctx, const send_args& args) {
  const auto path = trim_slashes(args.path);
  if (path.empty()) {
    return usage_error("PATH must name an actor, e.g. cache/shard-0");
  }
  json body = json::object();
  if (!args.body.empty()) {
    const auto text = args.body == "-" ? read_stdin() : std::optional(args.body);
    if (!text) {
      return usage_error("the body on stdin exceeds " + std::to_string(stdin_bytes_max >> 20) +
                         " MiB");
    }
    try {
      body = json::parse(*text);
    } catch (const json::parse_error& e) {
      return usage_error(std::string("the JSON argument is not valid JSON: ") + e.what());
    }
  }
  std::string target = "/v1/actors/" + encode_path(path) + "/messages";
  if (ctx.timeout_ms) {
    target += "?timeout_ms=" + std::to_string(*ctx.timeout_ms);
  }
  auto client = ctx.make_client(ctx.timeout_ms ? reply_grace_ms : 0);
  const auto sent = call(client, "POST", target, dump_json({{"type", args.type}, {"body", body}}));
  if (sent.failed) {
    return fail(*sent.failed);
  }
  const auto reply = ctx.json_output ? std::nullopt : parse_json(sent.reply.body);
  print_raw(reply ? dump_json(*reply, 2) : sent.reply.body);
  return exit_ok;
}

std::function<int(const context&)> add_send(CLI::App& sub) {
  auto args = std::make_shared<send_args>();
  sub.add_option("path", args->path, "actor path, e.g. cache/shard-0")->required();
  sub.add_option("type", args->type, "message type, e.g. cache.get")->required();
  sub.add_option("json", args->body, "message body as JSON ('-' reads stdin; default {})");
  return [args](const context& ctx) { return run_send(ctx, *args); };
}

// ---------------------------------------------------------------------------
// kill

int run_kill(const context& ctx, const std::string& raw_path) {
  const auto path = trim_slashes(raw_path);
  if (path.empty()) {
    return usage_error("PATH must name an actor; the root cannot be killed");
  }
  auto client = ctx.make_client();
  const auto killed = call(client, "POST", "/v1/actors/" + encode_path(path) + "/kill");
  if (killed.failed) {
    return fail(*killed.failed);
  }
  if (ctx.json_output) {
    print_raw(killed.reply.body);
    return exit_ok;
  }
  const auto reply = parse_json(killed.reply.body);
  const auto name = reply ? field_text(*reply, "killed") : std::string("-");
  std::cout << "killed " << (name == "-" ? path : name) << "\n";
  return exit_ok;
}

std::function<int(const context&)> add_kill(CLI::App& sub) {
  auto path = std::make_shared<std::string>();
  sub.add_option("path", *path, "actor path, e.g. cache/shard-0")->required();
  return [path](const context& ctx) { return run_kill(ctx, *path); };
}

// ---------------------------------------------------------------------------
// metrics

int run_metrics(const context& ctx) {
  auto client = ctx.make_client();
  const auto metrics = call(client, "GET", "/metrics");
  if (metrics.failed) {
    return fail(*metrics.failed);
  }
  // Prometheus text is already what scripts want; --json changes nothing here.
  std::cout << metrics.reply.body;
  return exit_ok;
}

std::function<int(const context&)> add_metrics(CLI::App& /*sub*/) {
  return run_metrics;
}

// ---------------------------------------------------------------------------
// cache

// A key is one path segment: '/' is encoded too, so any key names one entry.
std::string cache_target(std::string_view key) {
  return "/v1/cache/" + percent_encode(key);
}

// The node resolves a relative path against its own working directory, which
// is rarely the user's; resolving here makes `--dep src/a.cpp` name the file
// the user sees.
expected<std::vector<std::string>> absolute_paths(const std::vector<std::string>& paths) {
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

// The value's bytes exactly as stored, so `cache get k > file` round-trips;
// only a terminal gets a closing newline, to keep the prompt on its own line.
void print_value(std::string_view value) {
  std::cout.write(value.data(), static_cast<std::streamsize>(value.size()));
  if (::isatty(STDOUT_FILENO) == 1 && !value.empty() && !value.ends_with('\n')) {
    std::cout << '\n';
  }
}

int run_cache_get(const context& ctx, const std::string& key) {
  if (key.empty()) {
    return usage_error("KEY must not be empty");
  }
  auto client = ctx.make_client();
  const auto got = call(client, "GET", cache_target(key));
  if (got.failed) {
    return fail(*got.failed);
  }
  if (!ctx.json_output) {
    print_value(got.reply.body);
    return exit_ok;
  }
  // A value that is not UTF-8 cannot be a JSON string as it is; dump_json
  // replaces the bad bytes, so scripts wanting exact bytes use the raw form.
  const auto tier = find_header(got.reply, "X-Troupe-Cache");
  const json tier_json = tier.empty() ? json() : json(std::string(tier));
  std::cout << dump_json({{"key", key}, {"value", got.reply.body}, {"tier", tier_json}}) << "\n";
  return exit_ok;
}

std::function<int(const context&)> add_cache_get(CLI::App& sub) {
  auto key = std::make_shared<std::string>();
  sub.add_option("key", *key, "cache key")->required();
  return [key](const context& ctx) { return run_cache_get(ctx, *key); };
}

/// Says how many dependents a put or del dropped with it, if any.
void print_cascaded(const std::string& body, std::string_view of_what) {
  const auto reply = parse_json(body);
  if (reply && reply->is_object() && (*reply).value("cascaded", uint64_t{0}) > 0) {
    std::cout << "dropped " << (*reply)["cascaded"].get<uint64_t>() << " entries that depended on "
              << of_what << "\n";
  }
}

struct cache_put_args {
  std::string key;
  std::string value;
  uint64_t ttl_s = 0;
  std::vector<std::string> deps;
  std::vector<std::string> dep_keys;
  // Given or not: an empty VALUE is a value, while no VALUE means stdin.
  CLI::Option* value_option = nullptr;
  CLI::Option* ttl_option = nullptr;
};

std::string cache_put_target(const cache_put_args& args, const std::vector<std::string>& deps) {
  std::string target = cache_target(args.key);
  char separator = '?';
  const auto add_query = [&](std::string_view name, std::string_view value) {
    target += separator;
    target += name;
    target += '=';
    target += percent_encode(value);
    separator = '&';
  };
  if (args.ttl_option->count() > 0) {
    add_query("ttl", std::to_string(args.ttl_s));
  }
  for (const auto& dep : deps) {
    add_query("dep", dep);
  }
  for (const auto& dep_key : args.dep_keys) {
    add_query("dep_key", dep_key);
  }
  return target;
}

int run_cache_put(const context& ctx, const cache_put_args& args) {
  if (args.key.empty()) {
    return usage_error("KEY must not be empty");
  }
  const auto deps = absolute_paths(args.deps);
  if (!deps) {
    return usage_error("--dep: " + deps.err().message);
  }
  const bool from_stdin = args.value_option->count() == 0 || args.value == "-";
  auto value = from_stdin ? read_stdin() : std::optional(args.value);
  if (!value) {
    return usage_error("the value on stdin exceeds " + std::to_string(stdin_bytes_max >> 20) +
                       " MiB");
  }
  auto client = ctx.make_client();
  const auto target = cache_put_target(args, *deps);
  const auto put = call(client, "PUT", target, std::move(*value), "application/octet-stream");
  if (put.failed) {
    return fail(*put.failed);
  }
  if (ctx.json_output) {
    print_raw(put.reply.body);
    return exit_ok;
  }
  std::cout << "stored " << args.key << "\n";
  print_cascaded(put.reply.body, "the value it replaced");
  return exit_ok;
}

std::function<int(const context&)> add_cache_put(CLI::App& sub) {
  auto args = std::make_shared<cache_put_args>();
  sub.add_option("key", args->key, "cache key")->required();
  args->value_option = sub.add_option("value", args->value, "the value ('-' or none reads stdin)");
  args->ttl_option = sub.add_option("--ttl", args->ttl_s, "seconds the entry lives")
                         ->check(CLI::Range(uint64_t{1}, ttl_s_max));
  // One path per --dep, so `--dep a KEY` cannot swallow the key.
  sub.add_option("--dep", args->deps, "a file the value depends on (repeatable)")
      ->allow_extra_args(false);
  sub.add_option("--dep-key", args->dep_keys,
                 "another cache entry the value depends on (repeatable); dropping or "
                 "replacing it drops this one")
      ->allow_extra_args(false);
  return [args](const context& ctx) { return run_cache_put(ctx, *args); };
}

int run_cache_del(const context& ctx, const std::string& key) {
  if (key.empty()) {
    return usage_error("KEY must not be empty");
  }
  auto client = ctx.make_client();
  const auto deleted = call(client, "DELETE", cache_target(key));
  if (deleted.failed) {
    return fail(*deleted.failed);
  }
  if (ctx.json_output) {
    print_raw(deleted.reply.body);
    return exit_ok;
  }
  // Deleting is idempotent: a key that was not there is not an error, but
  // the message says which case it was.
  const auto reply = parse_json(deleted.reply.body);
  if (reply && reply->is_object() && !reply->value("deleted", true)) {
    std::cout << key << " was not in the cache\n";
  } else {
    std::cout << "deleted " << key << "\n";
  }
  print_cascaded(deleted.reply.body, "it");
  return exit_ok;
}

std::function<int(const context&)> add_cache_del(CLI::App& sub) {
  auto key = std::make_shared<std::string>();
  sub.add_option("key", *key, "cache key")->required();
  return [key](const context& ctx) { return run_cache_del(ctx, *key); };
}

// Integers as they are; a ratio to a few digits rather than all seventeen.
std::string number_text(const json& number) {
  if (!number.is_number_float()) {
    return dump_json(number);
  }
  std::ostringstream out;
  out << number.get<double>();
  return out.str();
}

// The numeric leaves of `value`, nested objects flattened as "a.b".
void collect_numbers(const json& value, const std::string& prefix, size_t depth,
                     std::vector<std::pair<std::string, std::string>>& rows) {
  if (!value.is_object() || depth >= stats_depth_max) {
    return;
  }
  for (const auto& [name, field] : value.items()) {
    const auto label = prefix.empty() ? name : prefix + "." + name;
    if (field.is_number()) {
      rows.emplace_back(label, number_text(field));
    } else {
      collect_numbers(field, label, depth + 1, rows);
    }
  }
}

void print_stats(const json& stats) {
  std::vector<std::pair<std::string, std::string>> rows;
  collect_numbers(stats, "", 0, rows);
  std::sort(rows.begin(), rows.end());
  size_t label_width = 0;
  size_t value_width = 0;
  for (const auto& [label, value] : rows) {
    label_width = std::max(label_width, label.size());
    value_width = std::max(value_width, value.size());
  }
  for (const auto& [label, value] : rows) {
    std::cout << std::left << std::setw(static_cast<int>(label_width + 2)) << label << std::right
              << std::setw(static_cast<int>(value_width)) << value << "\n";
  }
}

int run_cache_stats(const context& ctx) {
  auto client = ctx.make_client();
  const auto stats = call(client, "GET", "/v1/cache");
  if (stats.failed) {
    return fail(*stats.failed);
  }
  if (ctx.json_output) {
    print_raw(stats.reply.body);
    return exit_ok;
  }
  const auto stats_json = parse_json(stats.reply.body);
  if (!stats_json || !stats_json->is_object()) {
    return fail(bad_reply("GET /v1/cache"));
  }
  print_stats(*stats_json);
  return exit_ok;
}

std::function<int(const context&)> add_cache_stats(CLI::App& /*sub*/) {
  return run_cache_stats;
}

struct cache_invalidate_args {
  std::vector<std::string> paths;
  std::vector<std::string> keys;
};

int run_cache_invalidate(const context& ctx, const cache_invalidate_args& args) {
  if (args.paths.empty() && args.keys.empty()) {
    return usage_error("name at least one PATH or --key KEY");
  }
  const auto paths = absolute_paths(args.paths);
  if (!paths) {
    return usage_error("PATH: " + paths.err().message);
  }
  auto client = ctx.make_client();
  const auto done = call(client, "POST", "/v1/cache/invalidate",
                         dump_json({{"paths", *paths}, {"keys", args.keys}}));
  if (done.failed) {
    return fail(*done.failed);
  }
  if (ctx.json_output) {
    print_raw(done.reply.body);
    return exit_ok;
  }
  const auto reply = parse_json(done.reply.body);
  const bool counted = reply && reply->is_object() && reply->contains("invalidated") &&
                       (*reply)["invalidated"].is_number_unsigned();
  if (!counted) {
    return fail(bad_reply("POST /v1/cache/invalidate"));
  }
  std::cout << "invalidated " << (*reply)["invalidated"].get<uint64_t>() << " entries";
  if (const uint64_t cascaded = reply->value("cascaded", uint64_t{0}); cascaded > 0) {
    std::cout << " (" << cascaded << " of them because they depended on a named key)";
  }
  std::cout << "\n";
  if (reply->value("cascade_stopped", false)) {
    std::cout << "the cascade was cut short (cache.cascade_max or its breaker); the entries it "
                 "did not reach are refused when read\n";
  }
  return exit_ok;
}

std::function<int(const context&)> add_cache_invalidate(CLI::App& sub) {
  auto args = std::make_shared<cache_invalidate_args>();
  sub.add_option("paths", args->paths, "files or directories whose dependent entries go");
  sub.add_option("--key", args->keys, "a key to drop with its dependents (repeatable)")
      ->allow_extra_args(false);
  return [args](const context& ctx) { return run_cache_invalidate(ctx, *args); };
}

constexpr std::array<command_entry, 5> cache_commands{{
    {"get", "print an entry's value", add_cache_get},
    {"put", "store a value from an argument or stdin; --ttl, --dep PATH, --dep-key KEY",
     add_cache_put},
    {"del", "delete an entry", add_cache_del},
    {"stats", "entries, bytes, hits, misses, evictions, invalidations", add_cache_stats},
    {"invalidate", "drop the entries that depend on PATH... (or --key KEY)", add_cache_invalidate},
}};

std::function<int(const context&)> add_cache(CLI::App& sub) {
  sub.require_subcommand(1);
  auto runs = std::make_shared<command_runs>(add_commands(sub, cache_commands));
  return [runs](const context& ctx) { return run_given(*runs, ctx); };
}

// ---------------------------------------------------------------------------
// usage

/// One ledger row as a table line: requests, hits, upstream tokens, tokens
/// the response cache answered and their share of all tokens, and the
/// full-price input tokens that prompt caching saved.
void print_usage_row(const std::string& label, const json& row) {
  auto number = [&](const char* name) {
    return row.contains(name) && row[name].is_number() ? number_text(row[name]) : "-";
  };
  const double saved = row.contains("saved_fraction") && row["saved_fraction"].is_number()
                           ? row["saved_fraction"].get<double>() * 100
                           : 0.0;
  std::ostringstream percent;
  percent << std::fixed << std::setprecision(1) << saved << "%";
  std::cout << std::left << std::setw(34) << label << std::right << std::setw(9)
            << number("requests") << std::setw(9) << number("cache_hits") << std::setw(12)
            << number("upstream_tokens") << std::setw(12) << number("served_tokens") << std::setw(8)
            << percent.str() << std::setw(14) << number("prompt_cache_saved_tokens") << "\n";
}

int run_usage(const context& ctx) {
  auto client = ctx.make_client();
  const auto usage = call(client, "GET", "/v1/usage");
  if (usage.failed) {
    return fail(*usage.failed);
  }
  if (ctx.json_output) {
    print_raw(usage.reply.body);
    return exit_ok;
  }
  const auto ledger = parse_json(usage.reply.body);
  if (!ledger || !ledger->is_object() || !ledger->contains("total")) {
    return fail(bad_reply("GET /v1/usage"));
  }
  std::cout << std::left << std::setw(34) << "" << std::right << std::setw(9) << "requests"
            << std::setw(9) << "hits" << std::setw(12) << "upstream" << std::setw(12) << "served"
            << std::setw(8) << "saved" << std::setw(14) << "prompt-cache"
            << "\n";
  print_usage_row("total", (*ledger)["total"]);
  for (const char* group : {"by_model", "by_client", "by_agent"}) {
    if (!ledger->contains(group) || !(*ledger)[group].is_object()) {
      continue;
    }
    const std::string kind = std::string(group).substr(3);
    for (const auto& [name, row] : (*ledger)[group].items()) {
      print_usage_row(kind + " " + name, row);
    }
  }
  return exit_ok;
}

std::function<int(const context&)> add_usage(CLI::App& /*sub*/) {
  return run_usage;
}

// ---------------------------------------------------------------------------
// session

/// TIOCSWINSZ keeps a side in an unsigned short; the node applies its own policy.
constexpr uint32_t terminal_side_max = 65535;
/// The size a new session gets when neither flags nor a terminal say otherwise.
constexpr uint32_t default_cols = 80;
constexpr uint32_t default_rows = 24;

std::string session_target(std::string_view id) {
  return "/v1/sessions/" + percent_encode(id);
}

struct terminal_size {
  uint32_t cols = 0;
  uint32_t rows = 0;
};

// The size of the terminal on `fd`, when it is one and knows its size.
std::optional<terminal_size> read_terminal_size(int fd) {
  winsize size{};
  if (::ioctl(fd, TIOCGWINSZ, &size) != 0 || size.ws_col == 0 || size.ws_row == 0) {
    return std::nullopt;
  }
  return terminal_size{size.ws_col, size.ws_row};
}

// ---- session new

struct session_new_args {
  std::string name;
  std::string cwd;
  std::vector<std::string> env;
  bool persistent = false;
  uint32_t cols = 0;
  uint32_t rows = 0;
  std::vector<std::string> command;
  CLI::Option* name_option = nullptr;
  CLI::Option* cols_option = nullptr;
  CLI::Option* rows_option = nullptr;
};

// `--env K=V` pairs as a JSON object; the value may hold '=' itself.
expected<json> env_object(const std::vector<std::string>& pairs) {
  json env = json::object();
  for (const auto& pair : pairs) {
    const auto equals = pair.find('=');
    if (equals == std::string::npos || equals == 0) {
      return make_error(errc::bad_request, "--env wants NAME=VALUE, got '" + pair + "'");
    }
    env[pair.substr(0, equals)] = pair.substr(equals + 1);
  }
  return env;
}

// Flags first, then the terminal this command runs in (the one most likely
// to attach next), then the classic 80x24.
terminal_size new_session_size(const session_new_args& args) {
  const auto here = read_terminal_size(STDIN_FILENO);
  terminal_size size{here ? here->cols : default_cols, here ? here->rows : default_rows};
  if (args.cols_option->count() > 0) {
    size.cols = args.cols;
  }
  if (args.rows_option->count() > 0) {
    size.rows = args.rows;
  }
  return size;
}

// Resolved here, like `cache put --dep`: the node's working directory is not
// the user's. Normalised, so "." reaches the node as "/home/me", not "/home/me/.".
expected<std::string> absolute_dir(const std::string& dir) {
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

expected<json> session_new_body(const session_new_args& args) {
  json body = json::object();
  if (!args.command.empty()) {
    body["command"] = args.command;
  }
  if (!args.cwd.empty()) {
    auto cwd = absolute_dir(args.cwd);
    if (!cwd) {
      return make_error(errc::bad_request, "--cwd: " + cwd.err().message);
    }
    body["cwd"] = std::move(*cwd);
  }
  auto env = env_object(args.env);
  if (!env) {
    return std::move(env).err();
  }
  if (!env->empty()) {
    body["env"] = std::move(*env);
  }
  const auto size = new_session_size(args);
  body["cols"] = size.cols;
  body["rows"] = size.rows;
  if (args.name_option->count() > 0) {
    body["name"] = args.name;
  }
  body["persistent"] = args.persistent;
  return body;
}

int run_session_new(const context& ctx, const session_new_args& args) {
  const auto body = session_new_body(args);
  if (!body) {
    return usage_error(body.err().message);
  }
  auto client = ctx.make_client();
  const auto created = call(client, "POST", "/v1/sessions", dump_json(*body));
  if (created.failed) {
    return fail(*created.failed);
  }
  if (ctx.json_output) {
    print_raw(created.reply.body);
    return exit_ok;
  }
  const auto reply = parse_json(created.reply.body);
  const auto id = reply ? field_text(*reply, "id") : std::string("-");
  if (id == "-" || id.empty()) {
    return fail(bad_reply("POST /v1/sessions"));
  }
  std::cout << id << "\n";
  return exit_ok;
}

std::function<int(const context&)> add_session_new(CLI::App& sub) {
  auto args = std::make_shared<session_new_args>();
  args->name_option = sub.add_option("--name", args->name, "a name to find the session by");
  sub.add_option("--cwd", args->cwd, "working directory (default: the node's choice)");
  // One pair per --env, so `--env A=1 bash` cannot swallow the command.
  sub.add_option("--env", args->env, "NAME=VALUE for the session's environment (repeatable)")
      ->allow_extra_args(false);
  sub.add_flag("--persistent", args->persistent,
               "keep the session across node restarts (stored, restored with its scrollback)");
  args->cols_option =
      sub.add_option("--cols", args->cols, "columns (default: this terminal's, else 80)")
          ->check(CLI::Range(uint32_t{1}, terminal_side_max));
  args->rows_option =
      sub.add_option("--rows", args->rows, "rows (default: this terminal's, else 24)")
          ->check(CLI::Range(uint32_t{1}, terminal_side_max));
  sub.add_option("command", args->command,
                 "the command and its arguments, after -- (default: the node's shell)");
  return [args](const context& ctx) { return run_session_new(ctx, *args); };
}

// ---- session ls

// 1536 -> "1.5K": a table column, not an exact count (--json has that).
std::string format_bytes(double bytes) {
  constexpr std::array<const char*, 5> units{"B", "K", "M", "G", "T"};
  size_t unit = 0;
  while (bytes >= 1024 && unit + 1 < units.size()) {
    bytes /= 1024;
    ++unit;
  }
  std::ostringstream out;
  out << std::fixed << std::setprecision(unit == 0 || bytes >= 10 ? 0 : 1) << bytes << units[unit];
  return out.str();
}

// The two largest units: "45s", "3m12s", "2h05m", "1d03h".
std::string format_idle(double idle_ms) {
  const auto left_s = static_cast<uint64_t>(std::max(idle_ms, 0.0) / 1000);
  const auto two = [](uint64_t big, const char* big_unit, uint64_t small, const char* small_unit) {
    std::ostringstream out;
    out << big << big_unit << std::setw(2) << std::setfill('0') << small << small_unit;
    return out.str();
  };
  if (left_s >= 86400) {
    return two(left_s / 86400, "d", left_s / 3600 % 24, "h");
  }
  if (left_s >= 3600) {
    return two(left_s / 3600, "h", left_s / 60 % 60, "m");
  }
  if (left_s >= 60) {
    return two(left_s / 60, "m", left_s % 60, "s");
  }
  return std::to_string(left_s) + "s";
}

using table_row = std::vector<std::string>;

// Columns two spaces apart; `right_aligned[i]` for the number columns.
void print_table(const std::vector<table_row>& rows, std::span<const bool> right_aligned) {
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

table_row session_row(const json& session) {
  auto state = field_text(session, "state");
  if (const auto status = field_text(session, "exit_status"); status != "-") {
    state += "(" + status + ")";
  }
  auto name = one_line(field_text(session, "name"));
  return {field_text(session, "id"),
          name.empty() ? "-" : name,
          state,
          field_text(session, "pid"),
          field_text(session, "cols") + "x" + field_text(session, "rows"),
          format_bytes(field_number(session, "bytes_in")),
          format_bytes(field_number(session, "bytes_out")),
          format_idle(field_number(session, "idle_ms")),
          field_text(session, "restarts")};
}

int run_session_ls(const context& ctx) {
  auto client = ctx.make_client();
  const auto listed = call(client, "GET", "/v1/sessions");
  if (listed.failed) {
    return fail(*listed.failed);
  }
  if (ctx.json_output) {
    print_raw(listed.reply.body);
    return exit_ok;
  }
  const auto reply = parse_json(listed.reply.body);
  if (!reply || !reply->is_object() || !reply->contains("sessions") ||
      !(*reply)["sessions"].is_array()) {
    return fail(bad_reply("GET /v1/sessions"));
  }
  const auto& sessions = (*reply)["sessions"];
  if (sessions.empty()) {
    std::cout << "no sessions\n";
    return exit_ok;
  }
  std::vector<table_row> rows{
      {"ID", "NAME", "STATE", "PID", "SIZE", "IN", "OUT", "IDLE", "RESTARTS"}};
  for (const auto& session : sessions) {
    rows.push_back(session_row(session));
  }
  constexpr std::array<bool, 9> right_aligned{false, false, false, true, false,
                                              true,  true,  true,  true};
  print_table(rows, right_aligned);
  return exit_ok;
}

std::function<int(const context&)> add_session_ls(CLI::App& /*sub*/) {
  return run_session_ls;
}

// ---- session log, kill

struct session_log_args {
  std::string id;
  bool cast = false;
};

int run_session_log(const context& ctx, const session_log_args& args) {
  if (args.id.empty()) {
    return usage_error("ID must not be empty");
  }
  auto client = ctx.make_client();
  const auto log =
      call(client, "GET", session_target(args.id) + (args.cast ? "/cast" : "/scrollback"));
  if (log.failed) {
    return fail(*log.failed);
  }
  // Raw terminal bytes or an asciicast file are already what scripts want;
  // --json changes nothing here.
  print_value(log.reply.body);
  return exit_ok;
}

std::function<int(const context&)> add_session_log(CLI::App& sub) {
  auto args = std::make_shared<session_log_args>();
  sub.add_option("id", args->id, "session id")->required();
  sub.add_flag("--cast", args->cast, "asciicast v2 text (for asciinema play) instead of raw bytes");
  return [args](const context& ctx) { return run_session_log(ctx, *args); };
}

int run_session_kill(const context& ctx, const std::string& id) {
  if (id.empty()) {
    return usage_error("ID must not be empty");
  }
  auto client = ctx.make_client();
  const auto ended = call(client, "DELETE", session_target(id));
  if (ended.failed) {
    return fail(*ended.failed);
  }
  if (ctx.json_output) {
    print_raw(ended.reply.body);
    return exit_ok;
  }
  std::cout << "ended " << id << "\n";
  return exit_ok;
}

std::function<int(const context&)> add_session_kill(CLI::App& sub) {
  auto id = std::make_shared<std::string>();
  sub.add_option("id", *id, "session id")->required();
  return [id](const context& ctx) { return run_session_kill(ctx, *id); };
}

// ---- session attach
//
// One thread, no busy loop: ws_client::wait sleeps until a message arrives,
// stdin is readable, or a signal handler writes to a self-pipe; each event is
// handled in full before the next wait. The terminal goes back to its own
// settings on every way out: returns and exceptions through raw_terminal's
// destructor, SIGINT/SIGTERM/SIGHUP through the loop (first signal) or the
// handler itself (a second one, should the loop be stuck).

/// Ctrl-], as in telnet: a byte programs running in a session rarely need.
constexpr char detach_byte = 0x1d;
/// stdin is forwarded in reads of at most this many bytes, one frame each;
/// typing is a byte at a time, a paste is split.
constexpr size_t attach_chunk_bytes = 4096;
/// Signal bytes drained from the self-pipe per wake-up; more just wake again.
constexpr size_t signal_bytes_max = 64;
constexpr std::array<int, 4> attach_signals{SIGINT, SIGTERM, SIGHUP, SIGWINCH};

// State the signal handler reads. `saved_terminal` is written before
// `saved_terminal_valid` says it may be used; a signal fence keeps that order.
termios saved_terminal{};
volatile std::sig_atomic_t saved_terminal_valid = 0;
volatile std::sig_atomic_t signal_pipe_write_fd = -1;
volatile std::sig_atomic_t stop_signal = 0;

void on_attach_signal(int signal_number) {
  const int saved_errno = errno;
  if (signal_number != SIGWINCH) {
    if (stop_signal != 0) {
      // The loop has not acted on the first one (stuck writing to a dead
      // node, say): put the terminal back here and go. Only async-signal-safe calls.
      if (saved_terminal_valid != 0) {
        ::tcsetattr(STDIN_FILENO, TCSANOW, &saved_terminal);
      }
      constexpr std::string_view message = "\r\nerror: interrupted twice; exiting\n";
      [[maybe_unused]] const auto written = ::write(STDERR_FILENO, message.data(), message.size());
      ::_exit(exit_failure);
    }
    stop_signal = signal_number;
  }
  const char byte = static_cast<char>(signal_number);
  [[maybe_unused]] const auto written = ::write(signal_pipe_write_fd, &byte, 1);
  errno = saved_errno;
}

std::string signal_name(int signal_number) {
  switch (signal_number) {
    case SIGINT:
      return "SIGINT";
    case SIGTERM:
      return "SIGTERM";
    case SIGHUP:
      return "SIGHUP";
    default:
      return "signal " + std::to_string(signal_number);
  }
}

/// While alive, the attach signals wake the loop through a self-pipe instead
/// of killing the process with the terminal still raw; SIGPIPE is ignored so
/// a closed stdout is a write error the loop reports, not a silent death.
class signal_guard {
 public:
  signal_guard() {
    if (::pipe2(pipe_fds_.data(), O_NONBLOCK | O_CLOEXEC) != 0) {
      error_ = std::strerror(errno);
      return;
    }
    stop_signal = 0;
    signal_pipe_write_fd = pipe_fds_[1];
    struct sigaction action {};
    action.sa_handler = on_attach_signal;
    sigemptyset(&action.sa_mask);
    // Restart interrupted calls: the loop learns of signals from the pipe, not EINTR.
    action.sa_flags = SA_RESTART;
    for (size_t i = 0; i < attach_signals.size(); ++i) {
      ::sigaction(attach_signals[i], &action, &previous_[i]);
    }
    struct sigaction ignore {};
    ignore.sa_handler = SIG_IGN;
    sigemptyset(&ignore.sa_mask);
    ::sigaction(SIGPIPE, &ignore, &previous_pipe_);
    installed_ = true;
  }

  ~signal_guard() {
    if (installed_) {
      for (size_t i = 0; i < attach_signals.size(); ++i) {
        ::sigaction(attach_signals[i], &previous_[i], nullptr);
      }
      ::sigaction(SIGPIPE, &previous_pipe_, nullptr);
      signal_pipe_write_fd = -1;
    }
    for (const int fd : pipe_fds_) {
      if (fd >= 0) {
        ::close(fd);
      }
    }
  }

  signal_guard(const signal_guard&) = delete;
  signal_guard& operator=(const signal_guard&) = delete;

  [[nodiscard]] bool installed() const { return installed_; }
  [[nodiscard]] const std::string& error_text() const { return error_; }
  [[nodiscard]] int read_fd() const { return pipe_fds_[0]; }

 private:
  std::array<int, 2> pipe_fds_{-1, -1};
  std::array<struct sigaction, attach_signals.size()> previous_{};
  struct sigaction previous_pipe_ {};
  bool installed_ = false;
  std::string error_;
};

/// stdin's terminal in raw mode (cfmakeraw) while alive, like `tmux attach`:
/// every key, Ctrl-C included, goes to the session.
class raw_terminal {
 public:
  raw_terminal() {
    termios raw{};
    if (::tcgetattr(STDIN_FILENO, &saved_terminal) != 0) {
      error_ = std::strerror(errno);
      return;
    }
    raw = saved_terminal;
    ::cfmakeraw(&raw);
    std::atomic_signal_fence(std::memory_order_seq_cst);
    saved_terminal_valid = 1;
    if (::tcsetattr(STDIN_FILENO, TCSANOW, &raw) != 0) {
      error_ = std::strerror(errno);
      saved_terminal_valid = 0;
      return;
    }
    active_ = true;
  }

  ~raw_terminal() { restore(); }

  raw_terminal(const raw_terminal&) = delete;
  raw_terminal& operator=(const raw_terminal&) = delete;

  void restore() {
    if (!active_) {
      return;
    }
    ::tcsetattr(STDIN_FILENO, TCSANOW, &saved_terminal);
    saved_terminal_valid = 0;
    active_ = false;
  }

  [[nodiscard]] bool active() const { return active_; }
  [[nodiscard]] const std::string& error_text() const { return error_; }

 private:
  bool active_ = false;
  std::string error_;
};

struct attach_args {
  std::string id;
  bool readonly = false;
};

/// What one attach loop works with.
struct attach_session {
  explicit attach_session(ws_client& client) : ws(client) {}

  ws_client& ws;
  bool readonly = false;
  /// stdin is a terminal in raw mode: lines end "\r\n" and resizes are followed.
  bool raw = false;
  /// stdout and stderr are the same screen, so status lines share its cursor.
  bool shared_screen = false;
  int signal_fd = -1;
  bool stdin_open = true;
  /// The session's output left the cursor mid-line (at a prompt, say): a
  /// status line then starts on a line of its own.
  bool mid_line = false;
  /// The last `{"type":"error"}` the node sent; a close after it is a failure.
  std::optional<std::string> remote_error;
};

/// How an attach ended: a failure, or a line to print once the terminal is back.
struct attach_end {
  std::optional<failure> failed;
  std::string message;
};

// Status lines go to stderr, so stdout carries the session's bytes only.
void print_status_line(attach_session& s, std::string_view text) {
  const std::string_view newline = s.raw ? "\r\n" : "\n";
  std::cerr << (s.mid_line ? newline : "") << text << newline << std::flush;
  s.mid_line = false;
}

// The session's bytes as they come; a terminal may take them slowly.
std::optional<std::string> write_all(int fd, std::string_view bytes) {
  while (!bytes.empty()) {
    const auto written = ::write(fd, bytes.data(), bytes.size());
    if (written >= 0) {
      bytes.remove_prefix(static_cast<size_t>(written));
      continue;
    }
    if (errno == EAGAIN || errno == EWOULDBLOCK) {
      pollfd writable{fd, POLLOUT, 0};
      ::poll(&writable, 1, -1);
      continue;
    }
    if (errno != EINTR) {
      return std::strerror(errno);
    }
  }
  return std::nullopt;
}

std::optional<attach_end> send_resize(attach_session& s) {
  const auto size = read_terminal_size(STDIN_FILENO);
  if (!size) {
    return std::nullopt;
  }
  const json resize{{"type", "resize"}, {"cols", size->cols}, {"rows", size->rows}};
  if (auto failed = s.ws.write_text(dump_json(resize))) {
    return attach_end{from_error(*failed), {}};
  }
  return std::nullopt;
}

std::optional<attach_end> on_control(attach_session& s, std::string_view text) {
  const auto control = parse_json(text);
  if (!control || !control->is_object()) {
    print_status_line(s, "warning: ignored a control message that is not a JSON object");
    return std::nullopt;
  }
  const auto type = field_text(*control, "type");
  if (type == "notice") {
    print_status_line(s, "notice: " + one_line(field_text(*control, "message")));
  } else if (type == "error") {
    s.remote_error = one_line(field_text(*control, "message"));
    print_status_line(s, "error: " + *s.remote_error);
  } else if (type == "exit") {
    const auto status = field_text(*control, "status");
    return attach_end{std::nullopt, status == "-" ? std::string("session ended")
                                                  : "session ended (status " + status + ")"};
  }
  // Other types are for newer clients; ignoring them keeps this one working.
  return std::nullopt;
}

std::optional<attach_end> on_message(attach_session& s, const ws_message& message) {
  if (!message.binary) {
    return on_control(s, message.data);
  }
  if (auto failed = write_all(STDOUT_FILENO, message.data)) {
    return attach_end{failure{"io_error", "cannot write to stdout: " + *failed}, {}};
  }
  if (s.shared_screen && !message.data.empty()) {
    s.mid_line = message.data.back() != '\n';
  }
  return std::nullopt;
}

// Normal closes end the attach quietly; any other code, or a close after the
// node reported an error, is a failure (exit 1).
attach_end on_close(const attach_session& s, const ws_event& event) {
  constexpr uint16_t close_normal = 1000;
  constexpr uint16_t close_going_away = 1001;
  constexpr uint16_t close_no_status = 1005;
  const auto reason = event.close_reason.empty() ? std::string() : ": " + event.close_reason;
  if (s.remote_error) {
    return {failure{"session_error", *s.remote_error}, {}};
  }
  const auto code = event.close_code;
  if (code != 0 && code != close_normal && code != close_going_away && code != close_no_status) {
    return {failure{"closed",
                    "the node closed the connection with code " + std::to_string(code) + reason},
            {}};
  }
  return {std::nullopt, "connection closed by the node" + reason};
}

std::optional<attach_end> on_stdin(attach_session& s) {
  std::array<char, attach_chunk_bytes> chunk{};
  const auto count = ::read(STDIN_FILENO, chunk.data(), chunk.size());
  if (count < 0) {
    if (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK) {
      return std::nullopt;
    }
    return attach_end{
        failure{"io_error", std::string("cannot read stdin: ") + std::strerror(errno)}, {}};
  }
  if (count == 0) {
    // Piped input ran out: keep showing output until the session ends or a signal comes.
    s.stdin_open = false;
    return std::nullopt;
  }
  const std::string_view bytes(chunk.data(), static_cast<size_t>(count));
  const auto detach = bytes.find(detach_byte);
  const auto forward = bytes.substr(0, detach);
  if (!s.readonly && !forward.empty()) {
    if (auto failed = s.ws.write_binary(forward)) {
      return attach_end{from_error(*failed), {}};
    }
  }
  if (detach != std::string_view::npos) {
    return attach_end{std::nullopt, "detached"};
  }
  return std::nullopt;
}

std::optional<attach_end> on_signal_pipe(attach_session& s) {
  std::array<char, signal_bytes_max> bytes{};
  const auto count = ::read(s.signal_fd, bytes.data(), bytes.size());
  if (stop_signal != 0) {
    return attach_end{failure{"interrupted", "got " + signal_name(stop_signal) +
                                                 "; detached, the session keeps running"},
                      {}};
  }
  // Resizes come in bursts while a window is dragged; one update per wake-up does.
  const auto received = std::span(bytes.data(), static_cast<size_t>(std::max<ssize_t>(count, 0)));
  const bool resized =
      std::find(received.begin(), received.end(), static_cast<char>(SIGWINCH)) != received.end();
  if (resized && s.raw && !s.readonly) {
    return send_resize(s);
  }
  return std::nullopt;
}

attach_end attach_loop(attach_session& s) {
  for (;;) {
    // The signal pipe first: a stop beats more typing.
    const std::array<int, 2> fds{s.signal_fd, STDIN_FILENO};
    const auto event = s.ws.wait(std::span(fds.data(), s.stdin_open ? 2 : 1));
    if (!event) {
      return {from_error(event.err()), {}};
    }
    std::optional<attach_end> end;
    switch (event->what) {
      case ws_event::kind::message:
        end = on_message(s, event->message);
        break;
      case ws_event::kind::closed:
        end = on_close(s, *event);
        break;
      case ws_event::kind::fd_ready:
        end = event->fd == STDIN_FILENO ? on_stdin(s) : on_signal_pipe(s);
        break;
    }
    if (end) {
      return std::move(*end);
    }
  }
}

std::string attach_target(const attach_args& args) {
  return session_target(args.id) + "/attach" + (args.readonly ? "?readonly=1" : "");
}

// Runs once the node has accepted the attach: signals, then raw mode, then the
// loop; the terminal is back to normal before the last line is printed.
int run_attached(ws_client& ws, const attach_args& args) {
  const signal_guard signals;
  if (!signals.installed()) {
    return fail({"internal", "cannot set up signal handling: " + signals.error_text()});
  }
  std::cerr << "attached to " << args.id << "; detach with Ctrl-]\n";
  attach_session session(ws);
  session.readonly = args.readonly;
  session.raw = ::isatty(STDIN_FILENO) == 1;
  session.shared_screen = ::isatty(STDOUT_FILENO) == 1 && ::isatty(STDERR_FILENO) == 1;
  session.signal_fd = signals.read_fd();
  std::optional<raw_terminal> raw;
  if (session.raw) {
    raw.emplace();
    if (!raw->active()) {
      return fail({"io_error", "cannot put the terminal in raw mode: " + raw->error_text()});
    }
  }
  auto end = session.raw && !args.readonly ? send_resize(session) : std::nullopt;
  if (!end) {
    end = attach_loop(session);
  }
  ws.close();
  raw.reset();
  if (session.mid_line) {
    std::cerr << "\n";
  }
  if (end->failed) {
    return fail(*end->failed);
  }
  std::cerr << end->message << "\n";
  return exit_ok;
}

// Raw mode and signals are set up only once the node has accepted the
// attach, so a refusal (unknown id, bad token) prints like any other error.
int run_session_attach(const context& ctx, const attach_args& args) {
  if (args.id.empty()) {
    return usage_error("ID must not be empty");
  }
  ws_client ws;
  const auto timeout_ms = ctx.timeout_ms.value_or(default_timeout_ms);
  if (auto failed = ws.connect(ctx.url, attach_target(args), ctx.token, timeout_ms)) {
    return fail(ws.refusal() ? from_reply(*ws.refusal()) : from_error(*failed));
  }
  return run_attached(ws, args);
}

std::function<int(const context&)> add_session_attach(CLI::App& sub) {
  auto args = std::make_shared<attach_args>();
  sub.add_option("id", args->id, "session id")->required();
  sub.add_flag("--readonly", args->readonly,
               "watch only: keystrokes other than Ctrl-] are dropped");
  return [args](const context& ctx) { return run_session_attach(ctx, *args); };
}

constexpr std::array<command_entry, 5> session_commands{{
    {"new", "start a PTY session; prints its id", add_session_new},
    {"ls", "sessions with state, size, traffic and idle time", add_session_ls},
    {"attach", "attach this terminal to a session; detach with Ctrl-]", add_session_attach},
    {"log", "print a session's recorded output (--cast: asciicast v2)", add_session_log},
    {"kill", "end a session", add_session_kill},
}};

std::function<int(const context&)> add_session(CLI::App& sub) {
  sub.require_subcommand(1);
  auto runs = std::make_shared<command_runs>(add_commands(sub, session_commands));
  return [runs](const context& ctx) { return run_given(*runs, ctx); };
}

// ---------------------------------------------------------------------------
// Registration and main

constexpr std::array<command_entry, 8> commands{{
    {"status", "node info and health", add_status},
    {"tree", "supervision tree with states and restart counts", add_tree},
    {"send", "send a message to any actor, print the reply", add_send},
    {"kill", "crash an actor (fault injection; needs chaos.enabled)", add_kill},
    {"metrics", "raw Prometheus text", add_metrics},
    {"cache", "cache entries: get, put, del, stats, invalidate", add_cache},
    {"usage", "token ledger: upstream tokens, tokens served from cache, saved share", add_usage},
    {"session", "PTY sessions: new, ls, attach, log, kill", add_session},
}};

/// Flags as given; empty strings mean "not given".
struct global_flags {
  std::string url;
  std::string token;
  bool json_output = false;
  uint32_t timeout_ms = 0;
  CLI::Option* timeout_option = nullptr;
};

void add_global_options(CLI::App& app, global_flags& flags) {
  app.add_option("--url", flags.url, "node URL (default: $TROUPE_URL or http://127.0.0.1:7700)");
  app.add_option("--token", flags.token,
                 "API token (default: $TROUPE_TOKEN, else the contents of ./data/token)");
  app.add_flag("--json", flags.json_output, "print JSON for scripts instead of tables");
  flags.timeout_option =
      app.add_option("--timeout-ms", flags.timeout_ms,
                     "request timeout; for send also how long the node waits for the reply")
          ->check(CLI::Range(uint32_t{1}, timeout_ms_max));
}

std::string env_or_empty(const char* name) {
  const char* value = std::getenv(name);
  return value == nullptr ? std::string() : std::string(value);
}

// The node writes its generated token here; running from the node's directory
// then needs no flags at all.
std::string read_token_file() {
  std::ifstream in{std::string(token_file), std::ios::binary};
  if (!in) {
    return {};
  }
  std::string text(token_file_bytes_max, '\0');
  in.read(text.data(), static_cast<std::streamsize>(text.size()));
  text.resize(static_cast<size_t>(in.gcount()));
  return trim_space(text);
}

std::string resolve_token(const global_flags& flags) {
  if (!flags.token.empty()) {
    return flags.token;
  }
  if (auto token = trim_space(env_or_empty("TROUPE_TOKEN")); !token.empty()) {
    return token;
  }
  return read_token_file();
}

expected<context> resolve_context(const global_flags& flags) {
  auto url_text = flags.url;
  if (url_text.empty()) {
    url_text = env_or_empty("TROUPE_URL");
  }
  if (url_text.empty()) {
    url_text = default_url;
  }
  auto url = parse_node_url(url_text);
  if (!url) {
    return std::move(url).err();
  }
  context ctx;
  ctx.url = std::move(*url);
  ctx.token = resolve_token(flags);
  ctx.json_output = flags.json_output;
  if (flags.timeout_option->count() > 0) {
    ctx.timeout_ms = flags.timeout_ms;
  }
  return ctx;
}

int run_main(int argc, char** argv) {
  CLI::App app{"troupectl: control a troupe node", "troupectl"};
  global_flags flags;
  add_global_options(app, flags);
  app.require_subcommand(1);
  // Global flags may follow the subcommand: `troupectl tree --json`.
  app.fallthrough();
  const auto runs = add_commands(app, commands);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    // --help is a ParseError too, with exit code 0.
    return app.exit(e) == 0 ? exit_ok : exit_usage;
  }
  const auto ctx = resolve_context(flags);
  if (!ctx) {
    return usage_error("--url: " + ctx.err().message);
  }
  return run_given(runs, *ctx);
}

}  // namespace
}  // namespace troupe

int main(int argc, char** argv) {
  // The last line of defence: a bug or bad_alloc still ends with one clear line.
  try {
    return troupe::run_main(argc, argv);
  } catch (const std::exception& e) {
    std::cerr << "error: internal: " << e.what() << "\n";
    return troupe::exit_failure;
  }
}
