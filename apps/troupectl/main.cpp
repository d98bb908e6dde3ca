// troupectl: the control CLI for a troupe node. Thin by design: parse the
// arguments, make one or two HTTP calls, print. Each subcommand is one
// `add_<name>` function registering its arguments and returning the function
// that runs it; `commands` below lists them all, so a new subcommand (cache,
// usage, session) is one function and one row.
//
// Exit codes (API.md): 0 success, 1 an error reply or transport failure,
// 2 a usage error.

#include "apps/troupectl/commands.hpp"

namespace troupe::ctl {
namespace {

constexpr std::array<command_entry, 10> commands{{
    {"status", "node info and health", add_status_command},
    {"tree", "supervision tree with states and restart counts", add_tree_command},
    {"send", "send a message to any actor, print the reply", add_send_command},
    {"kill", "crash an actor (fault injection; needs chaos.enabled)", add_kill_command},
    {"metrics", "raw Prometheus text", add_metrics_command},
    {"cache", "cache entries: get, put, del, stats, invalidate", add_cache_command},
    {"usage", "token ledger: upstream tokens, tokens served from cache, saved share",
     add_usage_command},
    {"session", "PTY sessions: new, ls, attach, log, kill", add_session_command},
    {"persona", "personas: ls, show, match", add_persona_command},
    {"agent", "agents: new, ls, show, prompt, log, stop, approve, deny, kill", add_agent_command},
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
}  // namespace troupe::ctl

int main(int argc, char** argv) {
  // The last line of defence: a bug or bad_alloc still ends with one clear line.
  try {
    return troupe::ctl::run_main(argc, argv);
  } catch (const std::exception& e) {
    std::cerr << "error: internal: " << e.what() << "\n";
    return troupe::ctl::exit_failure;
  }
}
