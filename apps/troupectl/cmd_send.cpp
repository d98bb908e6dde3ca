// troupectl send.

#include "apps/troupectl/commands.hpp"

namespace troupe::ctl {

namespace {


struct send_args {
  std::string path;
  std::string type;
  std::string body;
};


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

}  // namespace

run_fn add_send_command(CLI::App& sub) {
  return add_send(sub);
}

}  // namespace troupe::ctl
