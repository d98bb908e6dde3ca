// troupectl session.

#include "apps/troupectl/commands.hpp"

namespace troupe::ctl {

namespace {

/// TIOCSWINSZ keeps a side in an unsigned short; the node applies its own policy.
constexpr uint32_t terminal_side_max = 65535;
/// The size a new session gets when neither flags nor a terminal say otherwise.
constexpr uint32_t default_cols = 80;
constexpr uint32_t default_rows = 24;

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

constexpr std::array<command_entry, 5> session_commands{{
    {"new", "start a PTY session; prints its id", add_session_new},
    {"ls", "sessions with state, size, traffic and idle time", add_session_ls},
    {"attach", "attach this terminal to a session; detach with Ctrl-]", add_session_attach_command},
    {"log", "print a session's recorded output (--cast: asciicast v2)", add_session_log},
    {"kill", "end a session", add_session_kill},
}};

std::function<int(const context&)> add_session(CLI::App& sub) {
  sub.require_subcommand(1);
  auto runs = std::make_shared<command_runs>(add_commands(sub, session_commands));
  return [runs](const context& ctx) { return run_given(*runs, ctx); };
}

}  // namespace

run_fn add_session_command(CLI::App& sub) {
  return add_session(sub);
}

}  // namespace troupe::ctl
