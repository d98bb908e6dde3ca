// troupectl cache.

#include "apps/troupectl/commands.hpp"

namespace troupe::ctl {

namespace {


// A key is one path segment: '/' is encoded too, so any key names one entry.
std::string cache_target(std::string_view key) {
  return "/v1/cache/" + percent_encode(key);
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

}  // namespace

run_fn add_cache_command(CLI::App& sub) {
  return add_cache(sub);
}

}  // namespace troupe::ctl
