// troupectl status.

#include "apps/troupectl/commands.hpp"

namespace troupe::ctl {

namespace {


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

void print_status_table(const json& node, bool ready, const std::string& ready_status,
                        const json& readiness) {
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
  if (readiness.contains("problems") && readiness["problems"].is_array()) {
    for (const auto& p : readiness["problems"]) {
      row("problem", p.is_string() ? p.get<std::string>() : p.dump());
    }
  }
  if (readiness.contains("storage") && readiness["storage"].is_object()) {
    const auto& st = readiness["storage"];
    row("storage", st.value("ok", false) ? "ok (" + field_text(st, "failed_writes") +
                                               " failed writes in all)"
                                         : "failing: " + field_text(st, "last_error"));
  }
  if (readiness.contains("upstreams") && readiness["upstreams"].is_object()) {
    for (const auto& [name, u] : readiness["upstreams"].items()) {
      std::string breakers;
      if (u.contains("breakers") && u["breakers"].is_object()) {
        for (const auto& [model, state] : u["breakers"].items()) {
          breakers += (breakers.empty() ? "" : ", ") + model + " " +
                      (state.is_string() ? state.get<std::string>() : state.dump());
        }
      }
      row("upstream", name + ": " + field_text(u, "connections") + " connections, " +
                          field_text(u, "waiting") + " waiting, " + field_text(u, "calls") +
                          " calls" + (breakers.empty() ? "" : "; breakers " + breakers));
    }
  }
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
  const auto ready_json = parse_json(ready->body);
  const json readiness = ready_json && ready_json->is_object() ? *ready_json : json::object();
  if (ctx.json_output) {
    std::cout << dump_json(json{{"node", *node_json}, {"ready", is_ready}, {"readiness", readiness}})
              << "\n";
    return exit_ok;
  }
  const auto ready_status = ready_json ? field_text(*ready_json, "status") : std::string();
  print_status_table(*node_json, is_ready, ready_status == "-" ? "" : ready_status, readiness);
  return exit_ok;
}

std::function<int(const context&)> add_status(CLI::App& /*sub*/) {
  return run_status;
}

}  // namespace

run_fn add_status_command(CLI::App& sub) {
  return add_status(sub);
}

}  // namespace troupe::ctl
