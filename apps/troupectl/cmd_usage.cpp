// troupectl usage.

#include "apps/troupectl/commands.hpp"

namespace troupe::ctl {

namespace {


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

}  // namespace

run_fn add_usage_command(CLI::App& sub) {
  return add_usage(sub);
}

}  // namespace troupe::ctl
