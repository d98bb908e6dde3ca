// troupectl agent: create agents, list them, prompt one and watch its run,
// read its transcript, stop its turn, delete it.

#include "apps/troupectl/commands.hpp"

namespace troupe::ctl {

namespace {

struct agent_args {
  std::string name;
  std::string workspace;
  std::string persona;
  std::string model;
  int64_t context_tokens = 0;
  int64_t budget_tokens = 0;
  int64_t max_turns = 0;
  std::string prompt;
  uint64_t after = 0;
  std::string id;
  std::string reason;
};

std::string agent_target(const std::string& name, std::string_view rest = {}) {
  return "/v1/agents/" + percent_encode(name) + std::string(rest);
}

std::string excerpt(std::string text, size_t max = 160) {
  text = one_line(text);
  if (text.size() > max) {
    text.resize(max);
    text += "...";
  }
  return text;
}

/// One transcript entry as a person reads it (`agent prompt`, `agent log`).
/// `text_shown`: the answer's text was printed already, as it streamed.
void print_entry(const json& e, bool text_shown = false) {
  const auto kind = field_text(e, "kind");
  if (kind == "prompt") {
    std::cout << "> " << field_text(e, "text") << "\n";
  } else if (kind == "persona") {
    const auto name = field_text(e, "name");
    std::cout << "[persona " << (name.empty() ? "none" : name) << ": " << field_text(e, "rule")
              << "; model " << field_text(e, "model") << "]\n";
  } else if (kind == "assistant") {
    if (text_shown) {
      std::cout << "\n";
    } else if (e.contains("content") && e["content"].is_array()) {
      for (const auto& block : e["content"]) {
        if (field_text(block, "type") == "text") {
          std::cout << field_text(block, "text") << "\n";
        }
      }
    }
  } else if (kind == "tool_call") {
    std::cout << "-> " << field_text(e, "name") << " "
              << excerpt(e.contains("input") ? dump_json(e["input"]) : "{}") << "\n";
  } else if (kind == "hook") {
    std::cout << "[hook " << field_text(e, "event") << " " << field_text(e, "tool") << ": "
              << field_text(e, "verdict");
    if (const auto reason = field_text(e, "reason"); !reason.empty()) {
      std::cout << ": " << excerpt(reason);
    }
    std::cout << "]\n";
  } else if (kind == "tool_result") {
    const auto content = field_text(e, "content");
    std::cout << "<- " << field_text(e, "name") << (e.value("is_error", false) ? " (error)" : "")
              << ": " << excerpt(content) << " [" << content.size() << " bytes]\n";
  } else if (kind == "approval") {
    std::cout << "[waiting for a person: " << field_text(e, "name") << " "
              << excerpt(e.contains("input") ? dump_json(e["input"]) : "{}") << ": "
              << excerpt(field_text(e, "reason")) << "; troupectl agent approve|deny AGENT "
              << field_text(e, "id") << "]\n";
  } else if (kind == "approval_decision") {
    std::cout << "[" << field_text(e, "decision") << " by " << field_text(e, "by");
    if (const auto reason = field_text(e, "reason"); !reason.empty()) {
      std::cout << ": " << excerpt(reason);
    }
    std::cout << "]\n";
  } else if (kind == "continue") {
    std::cout << "[a Stop hook keeps the turn going: " << excerpt(field_text(e, "text")) << "]\n";
  } else if (kind == "interrupted") {
    std::cout << "<- " << field_text(e, "name") << ": interrupted (not run again)\n";
  } else if (kind == "compaction") {
    if (e.contains("summary")) {
      std::cout << "[compaction: the first " << field_text(e, "upto")
                << " message(s) summarised, about " << field_text(e, "tokens_before") << " -> "
                << field_text(e, "tokens_after") << " tokens: " << excerpt(field_text(e, "summary"))
                << "]\n";
    } else {
      const auto n = e.contains("elided") && e["elided"].is_array() ? e["elided"].size() : 0;
      std::cout << "[compaction: " << n << " old tool result(s) elided, about "
                << field_text(e, "tokens_before") << " -> " << field_text(e, "tokens_after")
                << " tokens]\n";
    }
  } else if (kind == "calibration") {
    std::cout << "[calibration: estimated " << field_text(e, "estimated")
              << " tokens, the upstream counted " << field_text(e, "counted") << "]\n";
  } else if (kind == "error") {
    std::cout << "[error: " << field_text(e, "message") << "]\n";
  } else if (kind == "turn_end") {
    const auto& u = e.contains("usage") ? e["usage"] : json::object();
    std::cout << "[turn ended: " << field_text(e, "stop_reason") << "; tokens in "
              << field_text(u, "input_tokens") << ", out " << field_text(u, "output_tokens")
              << ", cache read " << field_text(u, "cache_read_input_tokens") << "]\n";
  }
}

// ---- agent new

int run_agent_new(const context& ctx, const agent_args& args) {
  auto workspace = absolute_dir(args.workspace);
  if (!workspace) {
    return usage_error("--workspace: " + workspace.err().message);
  }
  json body{{"name", args.name}, {"workspace", *workspace}};
  if (!args.persona.empty()) {
    body["persona"] = args.persona;
  }
  if (!args.model.empty()) {
    body["model"] = args.model;
  }
  if (args.context_tokens != 0) {
    body["context_tokens"] = args.context_tokens;
  }
  if (args.budget_tokens != 0) {
    body["budget_tokens"] = args.budget_tokens;
  }
  if (args.max_turns != 0) {
    body["max_turns"] = args.max_turns;
  }
  auto client = ctx.make_client();
  const auto made = call(client, "POST", "/v1/agents", body.dump());
  if (made.failed) {
    return fail(*made.failed);
  }
  if (ctx.json_output) {
    print_raw(made.reply.body);
    return exit_ok;
  }
  std::cout << "agent " << args.name << " created in " << *workspace << "\n";
  return exit_ok;
}

std::function<int(const context&)> add_agent_new(CLI::App& sub) {
  auto args = std::make_shared<agent_args>();
  sub.add_option("name", args->name, "the agent's name")->required();
  sub.add_option("--workspace", args->workspace, "the directory its tools work in")->required();
  sub.add_option("--persona", args->persona, "a persona (default: the best match per prompt)");
  sub.add_option("--model", args->model, "a model id or alias");
  sub.add_option("--context-tokens", args->context_tokens, "most tokens one call may send");
  sub.add_option("--budget-tokens", args->budget_tokens, "most tokens it may spend in all");
  sub.add_option("--max-turns", args->max_turns, "model calls per prompt");
  return [args](const context& ctx) { return run_agent_new(ctx, *args); };
}

// ---- agent ls

int run_agent_ls(const context& ctx) {
  auto client = ctx.make_client();
  const auto listed = call(client, "GET", "/v1/agents");
  if (listed.failed) {
    return fail(*listed.failed);
  }
  if (ctx.json_output) {
    print_raw(listed.reply.body);
    return exit_ok;
  }
  const auto doc = parse_json(listed.reply.body);
  if (!doc || !doc->is_object() || !doc->contains("agents") || !(*doc)["agents"].is_array()) {
    return fail(bad_reply("GET /v1/agents"));
  }
  std::vector<table_row> rows{{"NAME", "STATE", "PERSONA", "CALLS", "TOKENS", "WORKSPACE"}};
  for (const auto& a : (*doc)["agents"]) {
    const auto& spec = a.contains("spec") ? a["spec"] : json::object();
    const auto& u = a.contains("usage") ? a["usage"] : json::object();
    const auto tokens =
        static_cast<int64_t>(field_number(u, "input_tokens") + field_number(u, "output_tokens") +
                             field_number(u, "cache_read_input_tokens") +
                             field_number(u, "cache_creation_input_tokens"));
    rows.push_back({field_text(spec, "name"), field_text(a, "state"), field_text(a, "persona"),
                    field_text(a, "calls"), std::to_string(tokens), field_text(spec, "workspace")});
  }
  constexpr std::array<bool, 6> right_aligned{false, false, false, true, true, false};
  print_table(rows, right_aligned);
  return exit_ok;
}

std::function<int(const context&)> add_agent_ls(CLI::App&) {
  return [](const context& ctx) { return run_agent_ls(ctx); };
}

// ---- agent show

int run_agent_show(const context& ctx, const agent_args& args) {
  auto client = ctx.make_client();
  const auto shown = call(client, "GET", agent_target(args.name));
  if (shown.failed) {
    return fail(*shown.failed);
  }
  if (ctx.json_output) {
    print_raw(shown.reply.body);
    return exit_ok;
  }
  const auto a = parse_json(shown.reply.body);
  if (!a || !a->is_object()) {
    return fail(bad_reply("GET " + agent_target(args.name)));
  }
  const auto& spec = a->contains("spec") ? (*a)["spec"] : json::object();
  const auto& u = a->contains("usage") ? (*a)["usage"] : json::object();
  std::cout << "name:       " << field_text(spec, "name") << "\n"
            << "state:      " << field_text(*a, "state") << "\n"
            << "workspace:  " << field_text(spec, "workspace") << "\n"
            << "persona:    " << field_text(spec, "persona")
            << " (last: " << field_text(*a, "persona") << ")\n"
            << "model:      " << field_text(spec, "model") << "\n"
            << "limits:     context " << field_text(spec, "context_tokens") << " tokens, "
            << field_text(spec, "max_turns") << " calls per prompt, budget "
            << field_text(spec, "budget_tokens") << "\n"
            << "calls:      " << field_text(*a, "calls") << "\n"
            << "tokens:     in " << field_text(u, "input_tokens") << ", out "
            << field_text(u, "output_tokens") << ", cache read "
            << field_text(u, "cache_read_input_tokens") << ", cache write "
            << field_text(u, "cache_creation_input_tokens") << "\n"
            << "transcript: " << field_text(*a, "entries") << " entries\n"
            << "last stop:  " << field_text(*a, "last_stop") << "\n";
  return exit_ok;
}

std::function<int(const context&)> add_agent_show(CLI::App& sub) {
  auto args = std::make_shared<agent_args>();
  sub.add_option("name", args->name, "the agent's name")->required();
  return [args](const context& ctx) { return run_agent_show(ctx, *args); };
}

// ---- agent prompt

/// A model call may take minutes: `prompt` waits this much longer for each
/// next event than for a reply.
constexpr uint32_t event_wait_grace_ms = 600'000;

int run_agent_prompt(const context& ctx, const agent_args& args) {
  auto client = ctx.make_client(event_wait_grace_ms);
  std::string pending;
  std::string stop_reason;
  bool text_shown = false;
  auto on_body = [&](std::string_view piece) {
    pending.append(piece);
    for (auto end = pending.find("\n\n"); end != std::string::npos; end = pending.find("\n\n")) {
      const auto event = pending.substr(0, end);
      pending.erase(0, end + 2);
      const auto data_at = event.find("data: ");
      if (data_at == std::string::npos) {
        continue;
      }
      const auto data = event.substr(data_at + 6, event.find('\n', data_at) - data_at - 6);
      if (ctx.json_output) {
        std::cout << data << "\n" << std::flush;
        continue;
      }
      if (auto e = parse_json(data)) {
        const auto kind = field_text(*e, "kind");
        if (kind == "text_delta") {
          // The answer's text as it streams; its `assistant` entry follows.
          std::cout << field_text(*e, "text") << std::flush;
          text_shown = true;
          continue;
        }
        if (kind == "turn_end") {
          stop_reason = field_text(*e, "stop_reason");
        }
        print_entry(*e, text_shown && kind == "assistant");
        if (kind == "assistant") {
          text_shown = false;
        }
        std::cout << std::flush;
      }
    }
  };
  auto reply = client.request_streamed("POST", agent_target(args.name, "/prompt"),
                                       json{{"prompt", args.prompt}}.dump(), on_body);
  if (!reply) {
    return fail(from_error(reply.err()));
  }
  if (reply->status < 200 || reply->status > 299) {
    return fail(from_reply(*reply));
  }
  return stop_reason == "error" ? exit_failure : exit_ok;
}

std::function<int(const context&)> add_agent_prompt(CLI::App& sub) {
  auto args = std::make_shared<agent_args>();
  sub.add_option("name", args->name, "the agent's name")->required();
  sub.add_option("prompt", args->prompt, "what to ask it")->required();
  return [args](const context& ctx) { return run_agent_prompt(ctx, *args); };
}

// ---- agent log

int run_agent_log(const context& ctx, const agent_args& args) {
  auto client = ctx.make_client();
  uint64_t after = args.after;
  for (;;) {
    const auto target = agent_target(args.name, "/transcript") + "?after=" + std::to_string(after);
    const auto page = call(client, "GET", target);
    if (page.failed) {
      return fail(*page.failed);
    }
    const auto doc = parse_json(page.reply.body);
    if (!doc || !doc->is_object() || !doc->contains("entries") || !(*doc)["entries"].is_array()) {
      return fail(bad_reply("GET " + target));
    }
    for (const auto& entry : (*doc)["entries"]) {
      const auto data = field_text(entry, "data");
      if (ctx.json_output) {
        std::cout << data << "\n";
      } else if (auto e = parse_json(data)) {
        print_entry(*e);
      }
    }
    after = static_cast<uint64_t>(field_number(*doc, "next"));
    if (after == 0) {
      return exit_ok;
    }
  }
}

std::function<int(const context&)> add_agent_log(CLI::App& sub) {
  auto args = std::make_shared<agent_args>();
  sub.add_option("name", args->name, "the agent's name")->required();
  sub.add_option("--after", args->after, "only entries after this seq");
  return [args](const context& ctx) { return run_agent_log(ctx, *args); };
}

// ---- agent stop, agent kill

int run_simple(const context& ctx, std::string_view method, const std::string& target,
               const std::string& done) {
  auto client = ctx.make_client();
  const auto result = call(client, method, target);
  if (result.failed) {
    return fail(*result.failed);
  }
  if (ctx.json_output) {
    print_raw(result.reply.body);
  } else {
    std::cout << done << "\n";
  }
  return exit_ok;
}

std::function<int(const context&)> add_agent_stop(CLI::App& sub) {
  auto args = std::make_shared<agent_args>();
  sub.add_option("name", args->name, "the agent's name")->required();
  return [args](const context& ctx) {
    return run_simple(ctx, "POST", agent_target(args->name, "/stop"),
                      "agent " + args->name + ": its turn ends after the step it is in");
  };
}

std::function<int(const context&)> add_agent_kill(CLI::App& sub) {
  auto args = std::make_shared<agent_args>();
  sub.add_option("name", args->name, "the agent's name")->required();
  return [args](const context& ctx) {
    return run_simple(ctx, "DELETE", agent_target(args->name),
                      "agent " + args->name + " deleted, with its transcript");
  };
}

// ---- agent approve, agent deny

int run_agent_decide(const context& ctx, const agent_args& args, bool approve) {
  auto client = ctx.make_client();
  json body{{"decision", approve ? "approve" : "deny"}};
  if (!args.reason.empty()) {
    body["reason"] = args.reason;
  }
  const auto decided =
      call(client, "POST", agent_target(args.name, "/approvals/" + percent_encode(args.id)),
           body.dump());
  if (decided.failed) {
    return fail(*decided.failed);
  }
  if (ctx.json_output) {
    print_raw(decided.reply.body);
    return exit_ok;
  }
  const auto doc = parse_json(decided.reply.body);
  if (!doc || !doc->is_object()) {
    return fail(bad_reply("POST " + agent_target(args.name, "/approvals/")));
  }
  std::cout << field_text(*doc, "tool") << " " << field_text(*doc, "id") << ": "
            << field_text(*doc, "decision") << "\n";
  return exit_ok;
}

std::function<int(const context&)> add_agent_decision(CLI::App& sub, bool approve) {
  auto args = std::make_shared<agent_args>();
  sub.add_option("name", args->name, "the agent's name")->required();
  sub.add_option("id", args->id, "the call's id (default: the one waiting)");
  sub.add_option("--reason", args->reason, "why (the model reads it)");
  return [args, approve](const context& ctx) { return run_agent_decide(ctx, *args, approve); };
}

std::function<int(const context&)> add_agent_approve(CLI::App& sub) {
  return add_agent_decision(sub, true);
}

std::function<int(const context&)> add_agent_deny(CLI::App& sub) {
  return add_agent_decision(sub, false);
}

constexpr std::array<command_entry, 9> agent_commands{{
    {"new", "create an agent in a workspace", add_agent_new},
    {"ls", "agents with state, persona, calls and tokens", add_agent_ls},
    {"show", "one agent: limits, usage, last stop", add_agent_show},
    {"prompt", "prompt an agent and print its run as it happens", add_agent_prompt},
    {"log", "an agent's transcript", add_agent_log},
    {"stop", "end an agent's turn after its current step", add_agent_stop},
    {"approve", "let a call a hook asked about run", add_agent_approve},
    {"deny", "refuse a call a hook asked about", add_agent_deny},
    {"kill", "delete an agent and its transcript", add_agent_kill},
}};

std::function<int(const context&)> add_agent(CLI::App& sub) {
  sub.require_subcommand(1);
  auto runs = std::make_shared<command_runs>(add_commands(sub, agent_commands));
  return [runs](const context& ctx) { return run_given(*runs, ctx); };
}

}  // namespace

run_fn add_agent_command(CLI::App& sub) {
  return add_agent(sub);
}

}  // namespace troupe::ctl
