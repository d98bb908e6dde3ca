#include "runtime/config/node_config.hpp"

#include <catch2/catch.hpp>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>
#include <set>
#include <sstream>
#include <string>

namespace fs = std::filesystem;
using Catch::Matchers::Contains;
using Catch::Matchers::StartsWith;

namespace {

/// A fresh directory per test, removed with everything in it.
struct temp_dir {
  fs::path path;

  temp_dir() {
    std::random_device random;
    std::ostringstream name;
    name << "troupe-config-test-" << std::hex << random() << random();
    path = fs::temp_directory_path() / name.str();
    fs::create_directories(path);
  }
  ~temp_dir() {
    std::error_code ignored;
    fs::remove_all(path, ignored);
  }
  temp_dir(const temp_dir&) = delete;
  temp_dir& operator=(const temp_dir&) = delete;

  std::string write(const std::string& name, const std::string& content) const {
    const auto file = path / name;
    std::ofstream(file) << content;
    return file.string();
  }
};

fs::path repo_root() {
  // tests/unit/runtime/config/<this file> -> five levels up.
  return fs::path(__FILE__).parent_path().parent_path().parent_path().parent_path().parent_path();
}

troupe::node_config load_ok(const troupe::config_sources& sources) {
  auto result = troupe::load_config(sources);
  if (!result) {
    FAIL("unexpected error: " << result.err().message);
  }
  return std::move(result).value();
}

std::string load_error(const troupe::config_sources& sources) {
  auto result = troupe::load_config(sources);
  REQUIRE_FALSE(result.has_value());
  CHECK(result.err().code == troupe::errc::config_invalid);
  return result.err().message;
}

std::string file_error(const std::string& toml) {
  temp_dir dir;
  const auto path = dir.write("node.toml", toml);
  const auto message = load_error({path, {}, {}});
  // Every file error starts with the file's path.
  CHECK_THAT(message, StartsWith(path));
  return message.substr(path.size());
}

}  // namespace

TEST_CASE("no file, env or flags gives the embedded defaults", "[config]") {
  const auto config = load_ok({});
  CHECK(config.node.name == "troupe-1");
  CHECK(config.gateway.listen == "127.0.0.1:7700");
  CHECK(config.gateway.body_bytes_max == 8u << 20);
  CHECK(config.breaker.open_factor == 2.0);
  CHECK(troupe::describe(config) == troupe::describe(troupe::node_config{}));
}

TEST_CASE("shipped configs/node.toml equals the embedded defaults", "[config]") {
  const auto path = (repo_root() / "configs" / "node.toml").string();
  REQUIRE(fs::exists(path));
  const auto config = load_ok({path, {}, {}});
  CHECK(troupe::describe(config) == troupe::describe(troupe::node_config{}));
}

TEST_CASE("shipped configs/node.toml spells out every key", "[config]") {
  // Keys in the file, tracked per [section] by a plain text scan.
  std::ifstream file(repo_root() / "configs" / "node.toml");
  std::set<std::string> in_file;
  std::string section;
  for (std::string line; std::getline(file, line);) {
    if (line.starts_with("[")) {
      section = line.substr(1, line.find(']') - 1);
    } else if (!line.empty() && line[0] != '#' && line.find(" = ") != std::string::npos) {
      in_file.insert(section + "." + line.substr(0, line.find(" = ")));
    }
  }
  std::set<std::string> described;
  std::istringstream lines(troupe::describe(troupe::node_config{}));
  for (std::string line; std::getline(lines, line);) {
    described.insert(line.substr(0, line.find(" = ")));
  }
  CHECK(in_file == described);
}

TEST_CASE("file values override defaults, others stay", "[config]") {
  temp_dir dir;
  const auto path = dir.write("node.toml",
                              "[gateway]\nio_threads = 4\nlisten = \"0.0.0.0:0\"\n"
                              "[breaker]\nopen_factor = 3\njitter = 0.25\n"
                              "[chaos]\nenabled = true\n");
  const auto config = load_ok({path, {}, {}});
  CHECK(config.gateway.io_threads == 4);
  CHECK(config.gateway.listen == "0.0.0.0:0");
  CHECK(config.breaker.open_factor == 3.0);  // a TOML integer is fine for a float key
  CHECK(config.breaker.jitter == 0.25);
  CHECK(config.chaos.enabled);
  CHECK(config.node.scheduler_threads == 2);
}

TEST_CASE("env beats file, flags beat env", "[config]") {
  temp_dir dir;
  const auto path = dir.write("node.toml",
                              "[node]\nscheduler_threads = 3\nname = \"from-file\"\n"
                              "[gateway]\nlisten = \"127.0.0.1:1\"\n");
  troupe::config_sources sources{path, {}, {}};
  sources.env = {{"TROUPE_NODE_SCHEDULER_THREADS", "5"},
                 {"TROUPE_GATEWAY_LISTEN", "127.0.0.1:2"},
                 {"TROUPE_AUTH_TOKEN", "env-token"},
                 {"TROUPE_CHAOS_ENABLED", "true"},
                 {"TROUPE_URL", "http://ignored"},
                 {"TROUPE_TOKEN", "ignored-too"},
                 {"PATH", "/bin"}};
  sources.flags = {{"gateway.listen", "[::1]:3"}, {"breaker.jitter", "0.5"}};
  const auto config = load_ok(sources);
  CHECK(config.node.name == "from-file");
  CHECK(config.node.scheduler_threads == 5);
  CHECK(config.auth.token == "env-token");
  CHECK(config.chaos.enabled);
  CHECK(config.gateway.listen == "[::1]:3");
  CHECK(config.breaker.jitter == 0.5);
}

TEST_CASE("a missing file is named with the reason", "[config]") {
  temp_dir dir;
  const auto path = (dir.path / "absent.toml").string();
  CHECK(load_error({path, {}, {}}) == path + ": cannot open: No such file or directory");
}

TEST_CASE("file errors name the file, key and reason", "[config]") {
  SECTION("syntax error with line and column") {
    CHECK_THAT(file_error("[node]\nname = \"a\"\nscheduler_threads = = 2\n"),
               StartsWith(":3:") && Contains("TOML syntax error"));
  }
  SECTION("a character outside ASCII outside strings and comments, before toml++ sees it") {
    // U+00A1 where a key goes: toml++ 3.x would reach __builtin_unreachable.
    CHECK_THAT(file_error("[gateway]\nlisten\xc2\xa1 = \"127.0.0.1:1\"\n"),
               StartsWith(":2:7:") && Contains("outside ASCII"));
    // In strings and comments it is text like any other (the file gets as
    // far as the check of node.name's value).
    CHECK_THAT(file_error("# caf\xc3\xa9\n[node]\nname = \"caf\xc3\xa9\"\nwhat = '''\xc2\xa1'''\n"),
               !Contains("outside ASCII") && Contains("node.name: may only contain"));
  }
  SECTION("unknown key with a suggestion") {
    CHECK(file_error("[gateway]\nio_thread = 2\n") ==
          ": gateway.io_thread: unknown key (did you mean gateway.io_threads?)");
  }
  SECTION("a key in the wrong section points at the right one") {
    CHECK(file_error("[gateway]\nname = \"x\"\n") ==
          ": gateway.name: unknown key (did you mean node.name?)");
  }
  SECTION("unknown key without a close match") {
    CHECK(file_error("[node]\nflux_capacitor = 1\n") == ": node.flux_capacitor: unknown key");
  }
  SECTION("unknown section with a suggestion") {
    CHECK(file_error("[gatway]\nlisten = \"127.0.0.1:1\"\n") ==
          ": gatway: unknown section (did you mean [gateway]?)");
  }
  SECTION("a key outside any section") {
    CHECK(file_error("listen = \"127.0.0.1:1\"\n") ==
          ": listen: keys belong in a [section] (did you mean gateway.listen?)");
  }
  SECTION("wrong type") {
    CHECK(file_error("[gateway]\nio_threads = \"4\"\n") ==
          ": gateway.io_threads: expected an integer, got a string");
    CHECK(file_error("[chaos]\nenabled = 1\n") ==
          ": chaos.enabled: expected a boolean, got an integer");
    CHECK(file_error("[node]\nname = [1]\n") == ": node.name: expected a string, got an array");
    CHECK(file_error("[node]\nscheduler_threads = 2.5\n") ==
          ": node.scheduler_threads: expected an integer, got a float");
  }
  SECTION("out of range") {
    CHECK(file_error("[gateway]\nio_threads = 0\n") ==
          ": gateway.io_threads: must be between 1 and 64 (got 0)");
    // Every kind of I/O has threads of its own: none can be 0 (shared).
    CHECK(file_error("[llm]\nio_threads = 0\n") ==
          ": llm.io_threads: must be between 1 and 64 (got 0)");
    CHECK(file_error("[sessions]\nio_threads = 65\n") ==
          ": sessions.io_threads: must be between 1 and 64 (got 65)");
    CHECK(file_error("[gateway]\nbody_bytes_max = -1\n") ==
          ": gateway.body_bytes_max: must be between 1024 and 1073741824 (got -1)");
    CHECK(file_error("[breaker]\nfailure_rate_max = 0.0\n") ==
          ": breaker.failure_rate_max: must be in (0, 1] (got 0)");
    CHECK(file_error("[supervisor]\nbackoff_jitter = 1.0\n") ==
          ": supervisor.backoff_jitter: must be in [0, 1) (got 1)");
    CHECK(file_error("[breaker]\nopen_factor = nan\n") ==
          ": breaker.open_factor: must be between 1 and 100 (got nan)");
  }
  SECTION("bad listen") {
    CHECK(file_error("[gateway]\nlisten = \"localhost\"\n") ==
          ": gateway.listen: must be HOST:PORT (got 'localhost')");
    CHECK(file_error("[gateway]\nlisten = \"127.0.0.1:70000\"\n") ==
          ": gateway.listen: port must be between 0 and 65535 (got '127.0.0.1:70000')");
    CHECK(file_error("[gateway]\nlisten = \":80\"\n") ==
          ": gateway.listen: host must not be empty (got ':80')");
    CHECK(file_error("[gateway]\nlisten = \"::1:80\"\n") ==
          ": gateway.listen: an IPv6 host must be in brackets, e.g. [::1]:7700 (got '::1:80')");
    // A name would pass a syntax check and then fail at bind time.
    CHECK(file_error("[gateway]\nlisten = \"example.com:80\"\n") ==
          ": gateway.listen: host must be an IP address (127.0.0.1, [::1]) or localhost: the "
          "gateway binds it, it does not look names up (got 'example.com:80')");
    CHECK(file_error("[gateway]\nlisten = \"[::g]:80\"\n") ==
          ": gateway.listen: malformed [IPv6] host (got '[::g]:80')");
    troupe::config_sources local;
    local.flags = {{"gateway.listen", "localhost:0"}};
    CHECK(load_ok(local).gateway.listen == "localhost:0");
  }
  SECTION("bad enum value") {
    CHECK(file_error("[log]\nlevel = \"verbose\"\n") ==
          ": log.level: must be one of trace, debug, info, warn, error, critical, off "
          "(got 'verbose')");
    CHECK(file_error("[log]\nformat = \"xml\"\n") ==
          ": log.format: must be one of text, json (got 'xml')");
  }
  SECTION("bad node name and data dir") {
    CHECK(file_error("[node]\nname = \"a b\"\n") ==
          ": node.name: may only contain letters, digits, '_', '.' and '-' (got 'a b')");
    CHECK(file_error("[node]\nname = \"\"\n") == ": node.name: must not be empty");
    CHECK(file_error("[node]\ndata_dir = \"\"\n") == ": node.data_dir: must not be empty");
  }
  SECTION("cross-field check names both keys") {
    CHECK(file_error("[breaker]\nopen_ms = 40000\n") ==
          ": breaker.open_ms: must be <= breaker.open_ms_max (got 40000 > 30000; "
          "breaker.open_ms_max from defaults)");
  }
}

TEST_CASE("cross-field errors blame the most recent source", "[config]") {
  temp_dir dir;
  const auto path = dir.write("node.toml", "[breaker]\ncalls_min = 10\n");
  troupe::config_sources sources{path, {{"TROUPE_BREAKER_WINDOW_CALLS", "5"}}, {}};
  CHECK(load_error(sources) ==
        "env TROUPE_BREAKER_WINDOW_CALLS: breaker.window_calls: must be >= breaker.calls_min "
        "(got 5 < 10; breaker.calls_min from " +
            path + ")");
  sources = {path, {}, {}};
  dir.write("node.toml", "[supervisor]\nbackoff_min_ms = 100\nbackoff_max_ms = 50\n");
  CHECK(load_error(sources) ==
        path +
            ": supervisor.backoff_min_ms: must be <= supervisor.backoff_max_ms "
            "(got 100 > 50; supervisor.backoff_max_ms from " +
            path + ")");
}

TEST_CASE("env errors name the variable, key and reason", "[config]") {
  using env_map = std::map<std::string, std::string>;
  const auto env_error = [](env_map env) { return load_error({std::nullopt, env, {}}); };
  CHECK(env_error({{"TROUPE_NODE_SCHEDULER_THREADS", "abc"}}) ==
        "env TROUPE_NODE_SCHEDULER_THREADS: node.scheduler_threads: not an unsigned integer: "
        "'abc'");
  CHECK(env_error({{"TROUPE_NODE_SCHEDULER_THREADS", "-1"}}) ==
        "env TROUPE_NODE_SCHEDULER_THREADS: node.scheduler_threads: not an unsigned integer: "
        "'-1'");
  CHECK(env_error({{"TROUPE_GATEWAY_IO_THREADS", "65"}}) ==
        "env TROUPE_GATEWAY_IO_THREADS: gateway.io_threads: must be between 1 and 64 (got 65)");
  CHECK(env_error({{"TROUPE_CHAOS_ENABLED", "yes"}}) ==
        "env TROUPE_CHAOS_ENABLED: chaos.enabled: not a boolean (true or false): 'yes'");
  CHECK(env_error({{"TROUPE_BREAKER_JITTER", "x"}}) ==
        "env TROUPE_BREAKER_JITTER: breaker.jitter: not a number: 'x'");
  CHECK(env_error({{"TROUPE_GATEWAY_IO_THREAD", "2"}}) ==
        "env TROUPE_GATEWAY_IO_THREAD: gateway.io_thread: unknown key "
        "(did you mean TROUPE_GATEWAY_IO_THREADS?)");
}

TEST_CASE("upstream URLs need a host and, if they name one, a real port", "[config]") {
  using env_map = std::map<std::string, std::string>;
  const auto env_error = [](env_map env) { return load_error({std::nullopt, env, {}}); };
  CHECK_THAT(env_error({{"TROUPE_LLM_LOCAL_BASE_URL", "https://h:"}}),
             Contains("has a port that is not a number from 1 to 65535"));
  CHECK_THAT(env_error({{"TROUPE_LLM_LOCAL_BASE_URL", "http://h:99999/v1"}}),
             Contains("has a port that is not a number from 1 to 65535"));
  CHECK_THAT(env_error({{"TROUPE_LLM_LOCAL_BASE_URL", "http://:8080"}}), Contains("has no host"));
  for (const auto* good : {"http://h:8080/v1", "https://h", "http://[::1]:8080", "http://[::1]"}) {
    INFO(good);
    CHECK(
        troupe::load_config({std::nullopt, {{"TROUPE_LLM_LOCAL_BASE_URL", good}}, {}}).has_value());
  }
}

TEST_CASE("flag errors name the flag, key and reason", "[config]") {
  using flag_map = std::map<std::string, std::string>;
  const auto flag_error = [](flag_map flags) { return load_error({std::nullopt, {}, flags}); };
  CHECK(flag_error({{"gateway.listen", "nowhere"}}) ==
        "flag --listen: gateway.listen: must be HOST:PORT (got 'nowhere')");
  CHECK(flag_error({{"gateway.io_threads", "0"}}) ==
        "flag gateway.io_threads: gateway.io_threads: must be between 1 and 64 (got 0)");
  CHECK(flag_error({{"gateway.lisen", "127.0.0.1:1"}}) ==
        "flag gateway.lisen: gateway.lisen: unknown key (did you mean gateway.listen?)");
}

TEST_CASE("describe masks the token and never prints it", "[config]") {
  troupe::node_config config;
  CHECK_THAT(troupe::describe(config), Contains("auth.token = (generated)\n"));
  config.auth.token = "s3cret-value";
  const auto text = troupe::describe(config);
  CHECK_THAT(text, Contains("auth.token = (set)\n"));
  CHECK_THAT(text, !Contains("s3cret"));
  CHECK_THAT(text, Contains("gateway.listen = \"127.0.0.1:7700\"\n"));
  CHECK_THAT(text, Contains("breaker.open_factor = 2\n"));
}

TEST_CASE("a bad token is refused without echoing it", "[config]") {
  const auto message = load_error({std::nullopt, {{"TROUPE_AUTH_TOKEN", "bad token"}}, {}});
  CHECK(message ==
        "env TROUPE_AUTH_TOKEN: auth.token: must be printable ASCII without spaces "
        "(value not shown)");
}

TEST_CASE("troupe_environment collects TROUPE_ variables and ANTHROPIC_API_KEY only", "[config]") {
  ::setenv("TROUPE_CONFIG_TEST_MARKER", "on", 1);
  const char* key_before = std::getenv("ANTHROPIC_API_KEY");
  const std::string kept = key_before == nullptr ? "" : key_before;
  ::setenv("ANTHROPIC_API_KEY", "sk-ant-from-env", 1);
  ::setenv("ANTHROPIC_BASE_URL", "http://not-ours", 1);
  const auto env = troupe::troupe_environment();
  ::unsetenv("TROUPE_CONFIG_TEST_MARKER");
  ::unsetenv("ANTHROPIC_BASE_URL");
  if (key_before == nullptr) {
    ::unsetenv("ANTHROPIC_API_KEY");
  } else {
    ::setenv("ANTHROPIC_API_KEY", kept.c_str(), 1);
  }
  CHECK(env.at("TROUPE_CONFIG_TEST_MARKER") == "on");
  CHECK(env.at("ANTHROPIC_API_KEY") == "sk-ant-from-env");
  for (const auto& [name, value] : env) {
    if (name != "ANTHROPIC_API_KEY") {
      CHECK_THAT(name, StartsWith("TROUPE_"));
    }
  }
}

TEST_CASE("ANTHROPIC_API_KEY fills the upstream key no source set", "[config]") {
  SECTION("alone") {
    const auto config = load_ok({std::nullopt, {{"ANTHROPIC_API_KEY", "sk-ant-env"}}, {}});
    CHECK(config.llm_anthropic.api_key == "sk-ant-env");
    CHECK(troupe::describe(config).find("sk-ant-env") == std::string::npos);
  }
  SECTION("the file, TROUPE_ANTHROPIC_API_KEY and the flag each win over it") {
    temp_dir dir;
    const auto path = dir.write("node.toml", "[llm.anthropic]\napi_key = \"sk-ant-file\"\n");
    CHECK(load_ok({path, {{"ANTHROPIC_API_KEY", "sk-ant-env"}}, {}}).llm_anthropic.api_key ==
          "sk-ant-file");
    CHECK(load_ok({std::nullopt,
                   {{"ANTHROPIC_API_KEY", "sk-ant-env"}, {"TROUPE_ANTHROPIC_API_KEY", "sk-ant-t"}},
                   {}})
              .llm_anthropic.api_key == "sk-ant-t");
  }
  SECTION("a bad one is refused by its name, without echoing it") {
    CHECK(load_error({std::nullopt, {{"ANTHROPIC_API_KEY", "sk ant"}}, {}}) ==
          "env ANTHROPIC_API_KEY: llm.anthropic.api_key: must be printable ASCII without spaces "
          "(value not shown)");
  }
}

TEST_CASE("TROUPE_* variables that are no config key are named, with a hint", "[config]") {
  auto ignored = troupe::ignored_environment({{"TROUPE_GATWAY_LISTEN", "127.0.0.1:1"},
                                              {"TROUPE_GATEWAY_LISTEN", "127.0.0.1:0"},
                                              {"TROUPE_URL", "http://127.0.0.1:7700"},
                                              {"TROUPE_TOKEN", "t"},
                                              {"TROUPE_ANTHROPIC_BASE_URL", "http://x"},
                                              {"TROUPE_PTY_VAR", "1"},
                                              {"HOME", "/root"}});
  REQUIRE(ignored.size() == 2);
  CHECK(ignored["TROUPE_GATWAY_LISTEN"] ==
        "ignored: no config section 'GATWAY' (did you mean TROUPE_GATEWAY_LISTEN?)");
  CHECK(ignored["TROUPE_PTY_VAR"] == "ignored: no config section 'PTY'");
}

TEST_CASE("list keys are TOML arrays, comma-separated in env and flags", "[config]") {
  temp_dir dir;
  const auto path = dir.write("node.toml", R"([llm]
fallback_models = ["claude-backup", "claude-haiku-4-5"]
model_aliases = ["fast=claude-haiku-4-5", "smart=claude-sonnet-4-5"]
[cache]
dependency_roots = []
)");
  auto config = load_ok({path, {}, {}});
  CHECK(config.llm.fallback_models ==
        std::vector<std::string>{"claude-backup", "claude-haiku-4-5"});
  CHECK(config.llm.model_aliases.size() == 2);
  CHECK(config.cache.dependency_roots.empty());
  // The environment beats the file; its lists are comma-separated.
  config = load_ok({path, {{"TROUPE_LLM_FALLBACK_MODELS", "a, b"}}, {}});
  CHECK(config.llm.fallback_models == std::vector<std::string>{"a", "b"});
  // A file written when lists were strings still loads.
  const auto old = dir.write("old.toml", "[llm]\nmodel_aliases = \"fast=m1, slow=m2\"\n");
  CHECK(load_ok({old, {}, {}}).llm.model_aliases == std::vector<std::string>{"fast=m1", "slow=m2"});
  // What describe() prints reads back as the same value.
  CHECK_THAT(troupe::describe(config), Contains("llm.fallback_models = [\"a\", \"b\"]\n"));
}

TEST_CASE("list items are checked one by one, the bad one named", "[config]") {
  CHECK_THAT(file_error("[llm]\nmodel_aliases = [\"fast=m\", \"nope\"]\n"),
             Contains("item 2: expected \"alias=model\" (got 'nope')"));
  CHECK_THAT(file_error("[cache]\ndependency_roots = [\"/srv\", \"relative\"]\n"),
             Contains("item 2: expected an absolute directory"));
  CHECK_THAT(file_error("[llm]\nfallback_models = [\"m\", 3]\n"),
             Contains("expected an array of strings, got an array"));
  CHECK_THAT(file_error("[llm]\nfallback_models = 3\n"),
             Contains("expected an array of strings, got an integer"));
  CHECK_THAT(load_error({std::nullopt, {{"TROUPE_LLM_MODEL_ALIASES", "=x"}}, {}}),
             Contains("item 1"));
}

TEST_CASE("closed sets are enums: named in files, env and flags, printed by name", "[config]") {
  temp_dir dir;
  const auto path =
      dir.write("node.toml", "[log]\nlevel = \"debug\"\n[cache]\nshard_policy = \"idle\"\n");
  troupe::config_sources sources{path, {}, {}};
  sources.env = {{"TROUPE_LOG_FORMAT", "json"}};
  sources.flags = {{"log.level", "error"}};
  const auto config = load_ok(sources);
  CHECK(config.log.level == troupe::log_level::error);
  CHECK(config.log.format == troupe::log_format::json);
  CHECK(config.cache.shard_policy == troupe::shard_policy::idle);
  const auto text = troupe::describe(config);
  CHECK_THAT(text, Contains("log.level = \"error\"\n"));
  CHECK_THAT(text, Contains("cache.shard_policy = \"idle\"\n"));

  troupe::config_sources bad;
  bad.env = {{"TROUPE_CACHE_SHARD_POLICY", "fast"}};
  auto refused = troupe::load_config(bad);
  REQUIRE_FALSE(refused);
  CHECK_THAT(refused.err().message, Contains("must be one of normal, idle (got 'fast')"));
  const auto number = dir.write("n.toml", "[log]\nlevel = 3\n");
  auto wrong_type = troupe::load_config({number, {}, {}});
  REQUIRE_FALSE(wrong_type);
  CHECK_THAT(wrong_type.err().message, Contains("log.level: expected a string, got an integer"));
}

TEST_CASE("agents.hooks_file must be a readable JSON object", "[config]") {
  temp_dir dir;
  const auto good = dir.write("hooks.json", R"({"hooks": {}})");
  CHECK(load_ok({std::nullopt, {}, {{"agents.hooks_file", good}}}).agents.hooks_file == good);
  const auto bad = dir.write("bad.json", "[1, 2");
  CHECK_THAT(load_error({std::nullopt, {}, {{"agents.hooks_file", bad}}}),
             Contains("is not a JSON object"));
  CHECK_THAT(load_error({std::nullopt, {}, {{"agents.hooks_file", "/no/such/file.json"}}}),
             Contains("cannot read"));
}
