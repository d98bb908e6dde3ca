// troupectl kill.

#include "apps/troupectl/commands.hpp"

namespace troupe::ctl {

namespace {


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

}  // namespace

run_fn add_kill_command(CLI::App& sub) {
  return add_kill(sub);
}

}  // namespace troupe::ctl
