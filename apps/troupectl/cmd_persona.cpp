// troupectl persona: the personas a node (or a workspace on it) has, one
// persona in full, and which one a prompt would activate, and why.

#include "apps/troupectl/commands.hpp"

namespace troupe::ctl {

namespace {

struct persona_args {
  std::string workspace;
  std::string agent;
  std::string name;
  std::string prompt;
};

/// `--workspace DIR`, resolved here (the node's working directory is not
/// the user's), or `--agent NAME`'s workspace, as the node has it; "" for
/// neither.
expected<std::string> workspace_of(const context& ctx, const persona_args& args) {
  if (!args.agent.empty()) {
    if (!args.workspace.empty()) {
      return make_error(errc::bad_request, "give --agent or --workspace, not both");
    }
    auto client = ctx.make_client();
    const auto shown = call(client, "GET", "/v1/agents/" + percent_encode(args.agent));
    if (shown.failed) {
      return make_error(errc::not_found, shown.failed->message);
    }
    const auto doc = parse_json(shown.reply.body);
    if (!doc || !doc->is_object() || !doc->contains("spec")) {
      return make_error(errc::internal, bad_reply("GET /v1/agents/" + args.agent).message);
    }
    return field_text((*doc)["spec"], "workspace");
  }
  if (args.workspace.empty()) {
    return std::string();
  }
  return absolute_dir(args.workspace);
}

std::string list_text(const json& list) {
  std::string out;
  if (list.is_array()) {
    for (const auto& item : list) {
      out += (out.empty() ? "" : ", ") + (item.is_string() ? item.get<std::string>() : item.dump());
    }
  }
  return out;
}

void add_workspace_option(CLI::App& sub, persona_args& args) {
  sub.add_option("--workspace", args.workspace,
                 "a workspace whose .claude/agents/ adds to the node's personas");
  sub.add_option("--agent", args.agent, "the personas this agent sees (its workspace's)");
}

// ---- persona ls

int run_persona_ls(const context& ctx, const persona_args& args) {
  auto workspace = workspace_of(ctx, args);
  if (!workspace) {
    return usage_error((args.agent.empty() ? "--workspace: " : "--agent: ") +
                       workspace.err().message);
  }
  auto client = ctx.make_client();
  const auto target =
      "/v1/personas" +
      (workspace->empty() ? std::string() : "?workspace=" + percent_encode(*workspace));
  const auto listed = call(client, "GET", target);
  if (listed.failed) {
    return fail(*listed.failed);
  }
  if (ctx.json_output) {
    print_raw(listed.reply.body);
    return exit_ok;
  }
  const auto doc = parse_json(listed.reply.body);
  if (!doc || !doc->is_object() || !doc->contains("personas") || !(*doc)["personas"].is_array()) {
    return fail(bad_reply("GET /v1/personas"));
  }
  std::vector<table_row> rows{{"NAME", "PRIORITY", "MODEL", "TOOLS", "SOURCE"}};
  for (const auto& p : (*doc)["personas"]) {
    rows.push_back({field_text(p, "name"), field_text(p, "priority"), field_text(p, "model"),
                    p.contains("tools") && p["tools"].is_array() ? list_text(p["tools"]) : "all",
                    field_text(p, "source")});
  }
  constexpr std::array<bool, 5> right_aligned{false, true, false, false, false};
  print_table(rows, right_aligned);
  if (doc->contains("problems") && (*doc)["problems"].is_array()) {
    for (const auto& problem : (*doc)["problems"]) {
      std::cerr << "skipped: " << one_line(field_text(problem, "message")) << "\n";
    }
  }
  return exit_ok;
}

std::function<int(const context&)> add_persona_ls(CLI::App& sub) {
  auto args = std::make_shared<persona_args>();
  add_workspace_option(sub, *args);
  return [args](const context& ctx) { return run_persona_ls(ctx, *args); };
}

// ---- persona show

int run_persona_show(const context& ctx, const persona_args& args) {
  auto workspace = workspace_of(ctx, args);
  if (!workspace) {
    return usage_error((args.agent.empty() ? "--workspace: " : "--agent: ") +
                       workspace.err().message);
  }
  auto client = ctx.make_client();
  const auto target =
      "/v1/personas/" + percent_encode(args.name) +
      (workspace->empty() ? std::string() : "?workspace=" + percent_encode(*workspace));
  const auto shown = call(client, "GET", target);
  if (shown.failed) {
    return fail(*shown.failed);
  }
  if (ctx.json_output) {
    print_raw(shown.reply.body);
    return exit_ok;
  }
  const auto p = parse_json(shown.reply.body);
  if (!p || !p->is_object()) {
    return fail(bad_reply("GET /v1/personas/" + args.name));
  }
  std::cout << "name:        " << field_text(*p, "name") << "\n"
            << "description: " << one_line(field_text(*p, "description")) << "\n"
            << "model:       " << field_text(*p, "model") << "\n"
            << "priority:    " << field_text(*p, "priority") << "\n"
            << "tools:       "
            << (p->contains("tools") && (*p)["tools"].is_array() ? list_text((*p)["tools"]) : "all")
            << "\n";
  if (p->contains("disallowed_tools") && !(*p)["disallowed_tools"].empty()) {
    std::cout << "disallowed:  " << list_text((*p)["disallowed_tools"]) << "\n";
  }
  if (p->contains("triggers") && (*p)["triggers"].is_object()) {
    for (const char* kind : {"keywords", "regex", "files"}) {
      const auto& t = (*p)["triggers"];
      if (t.contains(kind) && !t[kind].empty()) {
        std::cout << "triggers:    " << kind << ": " << list_text(t[kind]) << "\n";
      }
    }
  }
  std::cout << "source:      " << field_text(*p, "source") << "\n\n"
            << field_text(*p, "prompt") << "\n";
  return exit_ok;
}

std::function<int(const context&)> add_persona_show(CLI::App& sub) {
  auto args = std::make_shared<persona_args>();
  sub.add_option("name", args->name, "persona name")->required();
  add_workspace_option(sub, *args);
  return [args](const context& ctx) { return run_persona_show(ctx, *args); };
}

// ---- persona match

int run_persona_match(const context& ctx, const persona_args& args) {
  auto workspace = workspace_of(ctx, args);
  if (!workspace) {
    return usage_error((args.agent.empty() ? "--workspace: " : "--agent: ") +
                       workspace.err().message);
  }
  json body{{"prompt", args.prompt}};
  if (!workspace->empty()) {
    body["workspace"] = *workspace;
  }
  auto client = ctx.make_client();
  const auto matched = call(client, "POST", "/v1/personas/match", body.dump());
  if (matched.failed) {
    return fail(*matched.failed);
  }
  if (ctx.json_output) {
    print_raw(matched.reply.body);
    return exit_ok;
  }
  const auto doc = parse_json(matched.reply.body);
  if (!doc || !doc->is_object() || !doc->contains("candidates") ||
      !(*doc)["candidates"].is_array()) {
    return fail(bad_reply("POST /v1/personas/match"));
  }
  const auto& chosen = (*doc)["chosen"];
  std::cout << "chosen: " << (chosen.is_string() ? chosen.get<std::string>() : "none") << "\n";
  for (const auto& c : (*doc)["candidates"]) {
    std::cout << "  " << field_text(c, "name") << " (priority " << field_text(c, "priority") << ", "
              << field_text(c, "score") << " matched)\n";
    if (c.contains("reasons") && c["reasons"].is_array()) {
      for (const auto& reason : c["reasons"]) {
        std::cout << "    " << (reason.is_string() ? reason.get<std::string>() : reason.dump())
                  << "\n";
      }
    }
  }
  std::cout << "rule: " << field_text(*doc, "rule") << "\n";
  return exit_ok;
}

std::function<int(const context&)> add_persona_match(CLI::App& sub) {
  auto args = std::make_shared<persona_args>();
  sub.add_option("prompt", args->prompt, "the prompt to match")->required();
  add_workspace_option(sub, *args);
  return [args](const context& ctx) { return run_persona_match(ctx, *args); };
}

constexpr std::array<command_entry, 3> persona_commands{{
    {"ls", "personas with priority, model, tools and file", add_persona_ls},
    {"show", "one persona in full, its prompt included", add_persona_show},
    {"match", "which persona a prompt activates, and why", add_persona_match},
}};

std::function<int(const context&)> add_persona(CLI::App& sub) {
  sub.require_subcommand(1);
  auto runs = std::make_shared<command_runs>(add_commands(sub, persona_commands));
  return [runs](const context& ctx) { return run_given(*runs, ctx); };
}

}  // namespace

run_fn add_persona_command(CLI::App& sub) {
  return add_persona(sub);
}

}  // namespace troupe::ctl
