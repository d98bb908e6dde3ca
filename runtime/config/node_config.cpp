#include "runtime/config/node_config.hpp"

#include <arpa/inet.h>  // inet_pton
#include <unistd.h>     // environ

#include <algorithm>
#include <array>
#include <cassert>
#include <cctype>
#include <cerrno>
#include <charconv>
#include <cstdio>
#include <cstring>
#include <limits>
#include <regex>
#include <string_view>
#include <variant>
#include <vector>

// Debian ships toml++ as a compiled shared library. Its CMake target passes
// these on the command line; a standalone compile needs them as well.
#ifndef TOML_HEADER_ONLY
#define TOML_HEADER_ONLY 0
#ifndef TOML_SHARED_LIB
#define TOML_SHARED_LIB 1
#endif
#endif
#include <toml++/toml.h>
#include <nlohmann/json.hpp>

#include "runtime/net/base_url.hpp"

namespace troupe {

namespace {

// ---------------------------------------------------------------------------
// The key table: every configuration key, once. File, env and flag parsing,
// validation and describe() are all driven from it.
// ---------------------------------------------------------------------------

/// A field of a closed set (an enum of one byte, runtime/config/choices.hpp):
/// its byte and the names of its values.
struct choice_ref {
  uint8_t* value;
  const std::string_view* names;
  size_t count;
};

/// Where a key's value lives in node_config; one alternative per value type.
using field_ref = std::variant<std::string*, uint32_t*, uint64_t*, double*, bool*,
                               std::vector<std::string>*, choice_ref>;
using field_fn = field_ref (*)(node_config&);

template <auto section, auto member>
field_ref field_of(node_config& config) {
  auto* field = &(config.*section.*member);
  using T = std::remove_pointer_t<decltype(field)>;
  if constexpr (std::is_enum_v<T>) {
    static_assert(sizeof(T) == 1, "a choice is an enum of one byte");
    // Read and written as its byte (unsigned char may alias any object).
    return choice_ref{reinterpret_cast<uint8_t*>(field), choice_names<T>::names.data(),
                      choice_names<T>::names.size()};
  } else {
    return field;
  }
}

/// Inclusive numeric bounds unless an end is open, e.g. rates live in (0, 1].
struct bounds {
  double lo = 0;
  double hi = 0;
  bool lo_open = false;
  bool hi_open = false;
};

constexpr bounds between(double lo, double hi) {
  return bounds{lo, hi, false, false};
}
/// A share of calls that trips something: 0 would trip on nothing.
constexpr bounds rate{0, 1, true, false};
/// A random +- spread: 1 would allow a zero or doubled period.
constexpr bounds fraction{0, 1, false, true};

/// Why a string value is not acceptable, or nullopt when it is.
using text_check = std::optional<std::string> (*)(std::string_view value);

struct key_name {
  std::string_view section;
  std::string_view key;
  field_fn field;
};

// The name is spelled once: it is both the TOML key and the struct member.
// clang-format off
#define TROUPE_KEY(s, k) \
  key_name { #s, #k, &field_of<&node_config::s, &s##_section::k> }
// A nested section: [llm.anthropic] lives in node_config::llm_anthropic.
#define TROUPE_SUBKEY(s, sub, k) \
  key_name { #s "." #sub, #k, &field_of<&node_config::s##_##sub, &s##_##sub##_section::k> }
// clang-format on

struct key_spec {
  key_name name;
  bounds range;                // numeric keys only
  text_check check = nullptr;  // string keys: a format rule; nullptr: any
  bool secret = false;         // never printed, not even in errors
  std::string_view doc;        // one line: what the key does, its unit
};

constexpr key_spec number(key_name name, bounds range, std::string_view doc) {
  return key_spec{name, range, nullptr, false, doc};
}
constexpr key_spec text(key_name name, text_check check, std::string_view doc) {
  return key_spec{name, {}, check, false, doc};
}
constexpr key_spec secret(key_name name, text_check check, std::string_view doc) {
  return key_spec{name, {}, check, true, doc};
}
constexpr key_spec boolean(key_name name, std::string_view doc) {
  return key_spec{name, {}, nullptr, false, doc};
}
/// One of a closed set: the field's enum names the values.
constexpr key_spec choice(key_name name, std::string_view doc) {
  return key_spec{name, {}, nullptr, false, doc};
}
/// A list of strings (a TOML array; in env and flags, comma-separated);
/// `check` applies to each item.
constexpr key_spec list(key_name name, text_check check, std::string_view doc) {
  return key_spec{name, {}, check, false, doc};
}

bool is_name_char(char c) {
  return std::isalnum(static_cast<unsigned char>(c)) != 0 || c == '_' || c == '.' || c == '-';
}

std::string quoted_text(std::string_view value) {
  return "'" + std::string(value) + "'";
}

std::optional<std::string> check_not_empty(std::string_view value) {
  if (value.empty()) {
    return "must not be empty";
  }
  return std::nullopt;
}

std::optional<std::string> check_node_name(std::string_view name) {
  constexpr size_t name_chars_max = 64;
  if (name.empty()) {
    return "must not be empty";
  }
  if (name.size() > name_chars_max) {
    return "must be at most 64 characters (got " + std::to_string(name.size()) + ")";
  }
  if (!std::all_of(name.begin(), name.end(), is_name_char)) {
    return "may only contain letters, digits, '_', '.' and '-' (got " + quoted_text(name) + ")";
  }
  return std::nullopt;
}

/// The gateway binds its host, it does not resolve it: an IP address or
/// "localhost".
std::optional<std::string> check_host(std::string_view host) {
  if (host.empty()) {
    return "host must not be empty";
  }
  if (host == "localhost") {
    return std::nullopt;
  }
  if (host.front() == '[') {
    // IPv6 literal: brackets keep its colons apart from the port's.
    const std::string inner(host.substr(1, host.size() >= 2 ? host.size() - 2 : 0));
    in6_addr v6{};
    const bool ok =
        host.size() > 2 && host.back() == ']' && inet_pton(AF_INET6, inner.c_str(), &v6) == 1;
    return ok ? std::nullopt : std::optional<std::string>("malformed [IPv6] host");
  }
  if (host.find(':') != std::string_view::npos) {
    return "an IPv6 host must be in brackets, e.g. [::1]:7700";
  }
  in_addr v4{};
  if (inet_pton(AF_INET, std::string(host).c_str(), &v4) != 1) {
    return "host must be an IP address (127.0.0.1, [::1]) or localhost: the gateway binds it, "
           "it does not look names up";
  }
  return std::nullopt;
}

std::optional<std::string> check_listen(std::string_view listen) {
  const std::string got = " (got " + quoted_text(listen) + ")";
  const auto colon = listen.rfind(':');
  if (colon == std::string_view::npos) {
    return "must be HOST:PORT" + got;
  }
  if (auto problem = check_host(listen.substr(0, colon))) {
    return *problem + got;
  }
  const auto port = listen.substr(colon + 1);
  unsigned value = 0;
  const auto [end, ec] = std::from_chars(port.data(), port.data() + port.size(), value);
  const bool digits_only =
      !port.empty() && port.size() <= 5 &&
      std::all_of(port.begin(), port.end(), [](char c) { return c >= '0' && c <= '9'; });
  if (!digits_only || ec != std::errc{} || end != port.data() + port.size() || value > 65535) {
    return "port must be between 0 and 65535" + got;
  }
  return std::nullopt;
}

// The token goes into an HTTP header: no spaces or control characters. The
// message never repeats the value.
std::optional<std::string> check_token(std::string_view token) {
  constexpr size_t token_chars_max = 4096;
  if (token.size() > token_chars_max) {
    return "must be at most 4096 characters (value not shown)";
  }
  const bool printable =
      std::all_of(token.begin(), token.end(), [](char c) { return c > ' ' && c <= '~'; });
  if (!printable) {
    return "must be printable ASCII without spaces (value not shown)";
  }
  return std::nullopt;
}

std::optional<std::string> check_url(std::string_view url) {
  auto parsed = parse_base_url(url);
  if (!parsed) {
    return parsed.err().message + " (got " + quoted_text(url) + ")";
  }
  return std::nullopt;
}

std::optional<std::string> check_url_or_empty(std::string_view url) {
  return url.empty() ? std::nullopt : check_url(url);
}

std::optional<std::string> check_token_or_empty(std::string_view token) {
  return token.empty() ? std::nullopt : check_token(token);
}

// One "alias=model": both sides non-empty.
std::optional<std::string> check_alias(std::string_view pair) {
  const auto eq = pair.find('=');
  if (eq == 0 || eq == std::string::npos || eq + 1 == pair.size()) {
    return "expected \"alias=model\" (got " + quoted_text(pair) + ")";
  }
  return std::nullopt;
}

std::optional<std::string> check_absolute(std::string_view path) {
  if (path.empty() || path.front() != '/') {
    return "expected an absolute directory (got " + quoted_text(path) + ")";
  }
  return std::nullopt;
}

/// Empty, or a readable JSON object (a settings file).
std::optional<std::string> check_settings_file(std::string_view path) {
  if (path.empty()) {
    return std::nullopt;
  }
  std::FILE* f = std::fopen(std::string(path).c_str(), "rbe");
  if (f == nullptr) {
    return "cannot read " + quoted_text(path) + ": " + std::strerror(errno);
  }
  std::string text;
  char buffer[4096];
  for (size_t n; (n = std::fread(buffer, 1, sizeof buffer, f)) > 0;) {
    text.append(buffer, n);
  }
  std::fclose(f);
  const auto doc = nlohmann::json::parse(text, nullptr, false);
  if (!doc.is_object()) {
    return quoted_text(path) + " is not a JSON object";
  }
  return std::nullopt;
}

std::optional<std::string> check_model(std::string_view model) {
  return model.empty() ? std::optional<std::string>("a model name must not be empty")
                       : std::nullopt;
}

std::optional<std::string> check_regex(std::string_view text) {
  try {
    std::regex compiled{std::string(text)};
  } catch (const std::regex_error& e) {
    return std::string("not a valid regular expression: ") + e.what();
  }
  return std::nullopt;
}

constexpr double hour_ms = 3'600'000;
constexpr double day_ms = 86'400'000;
constexpr double gib = 1u << 30;

constexpr std::array key_table{
    text(TROUPE_KEY(node, name), check_node_name, "name of this node in the cluster and logs"),
    text(TROUPE_KEY(node, data_dir), check_not_empty, "directory of RocksDB and the token"),
    number(TROUPE_KEY(node, scheduler_threads), between(1, 64), "CAF scheduler worker threads"),
    number(TROUPE_KEY(node, shutdown_timeout_ms), between(1, hour_ms), "graceful shutdown bound"),
    text(TROUPE_KEY(gateway, listen), check_listen, "HOST:PORT of HTTP; port 0: any free"),
    number(TROUPE_KEY(gateway, io_threads), between(1, 64), "Asio threads serving HTTP"),
    number(TROUPE_KEY(gateway, body_bytes_max), between(1024, gib), "largest body; beyond: 413"),
    number(TROUPE_KEY(gateway, header_bytes_max), between(1024, 1 << 20), "largest head; 431"),
    number(TROUPE_KEY(gateway, request_timeout_ms), between(1, hour_ms), "default call timeout"),
    number(TROUPE_KEY(gateway, request_timeout_max_ms), between(1, hour_ms), "largest timeout_ms"),
    number(TROUPE_KEY(gateway, connections_max), between(1, 1'000'000), "open connections bound"),
    number(TROUPE_KEY(gateway, idle_timeout_ms), between(1, day_ms), "idle connection lifetime"),
    secret(TROUPE_KEY(auth, token), check_token, "bearer token; empty: generated"),
    choice(TROUPE_KEY(log, level), "verbosity"),
    choice(TROUPE_KEY(log, format), "line format"),
    boolean(TROUPE_KEY(chaos, enabled), "allows fault injection"),
    number(TROUPE_KEY(supervisor, restarts_max), between(0, 10'000), "restarts per period"),
    number(TROUPE_KEY(supervisor, period_ms), between(1, day_ms), "restart intensity window"),
    number(TROUPE_KEY(supervisor, backoff_min_ms), between(1, hour_ms), "second restart delay"),
    number(TROUPE_KEY(supervisor, backoff_max_ms), between(1, hour_ms), "restart delay cap"),
    number(TROUPE_KEY(supervisor, backoff_jitter), fraction, "+- spread of restart delays"),
    number(TROUPE_KEY(supervisor, backoff_reset_ms), between(1, day_ms), "calm time that resets"),
    number(TROUPE_KEY(supervisor, stash_max), between(0, 1'000'000), "messages held on restart"),
    number(TROUPE_KEY(supervisor, shutdown_timeout_ms), between(1, hour_ms), "child stop bound"),
    number(TROUPE_KEY(breaker, failures_max), between(1, 10'000), "consecutive failures to open"),
    number(TROUPE_KEY(breaker, window_calls), between(1, 10'000), "calls in the rate window"),
    number(TROUPE_KEY(breaker, calls_min), between(1, 10'000), "calls before rates count"),
    number(TROUPE_KEY(breaker, failure_rate_max), rate, "failure rate that opens"),
    number(TROUPE_KEY(breaker, slow_call_ms), between(1, hour_ms), "slower calls count as slow"),
    number(TROUPE_KEY(breaker, slow_rate_max), rate, "slow-call rate that opens"),
    number(TROUPE_KEY(breaker, open_ms), between(1, hour_ms), "first open period"),
    number(TROUPE_KEY(breaker, open_ms_max), between(1, day_ms), "longest open period"),
    number(TROUPE_KEY(breaker, open_factor), between(1, 100), "open period growth per probe"),
    number(TROUPE_KEY(breaker, jitter), fraction, "+- spread of open periods"),
    number(TROUPE_KEY(breaker, half_open_probes), between(1, 1000), "probe calls when half-open"),
    number(TROUPE_KEY(limits, message_bytes_max), between(1024, gib), "largest actor message"),
    boolean(TROUPE_KEY(storage, sync_writes), "fsync the write-ahead log on every write"),
    number(TROUPE_KEY(cache, shards), between(0, 256), "cache shard actors; 0: one per core"),
    number(TROUPE_KEY(cache, memory_budget_bytes), between(1 << 20, 1024 * gib), "hot tier memory"),
    number(TROUPE_KEY(cache, hot_ttl_s), between(1, 365 * 86400), "default lifetime in memory"),
    number(TROUPE_KEY(cache, cold_ttl_s), between(1, 365 * 86400), "default lifetime on disk"),
    number(TROUPE_KEY(cache, key_bytes_max), between(1, 1 << 20), "largest cache key"),
    number(TROUPE_KEY(cache, value_bytes_max), between(1, gib), "largest cache value"),
    number(TROUPE_KEY(cache, cascade_max), between(1, 10000000),
           "dependents one invalidation drops"),
    number(TROUPE_KEY(cache, deps_max), between(1, 65536), "dependency records per entry"),
    choice(TROUPE_KEY(cache, shard_policy), "scheduling of the shard threads"),
    list(TROUPE_KEY(cache, dependency_roots), check_absolute,
         "directories dependencies must lie in"),
    number(TROUPE_KEY(llm, io_threads), between(1, 64), "Asio threads for upstream HTTP"),
    number(TROUPE_KEY(llm, timeout_ms), between(1, hour_ms), "upstream attempt timeout"),
    number(TROUPE_KEY(llm, retries_max), between(0, 10), "retries per provider"),
    number(TROUPE_KEY(llm, retry_backoff_min_ms), between(1, hour_ms), "first retry delay"),
    number(TROUPE_KEY(llm, retry_backoff_max_ms), between(1, hour_ms), "retry delay cap"),
    number(TROUPE_KEY(llm, retry_after_max_ms), between(0, hour_ms), "longest retry-after waited"),
    number(TROUPE_KEY(llm, connections_max), between(1, 100'000), "calls in flight per upstream"),
    list(TROUPE_KEY(llm, fallback_models), check_model, "models tried after the asked one"),
    text(TROUPE_KEY(llm, local_base_url), check_url_or_empty, "OpenAI-compatible fallback"),
    text(TROUPE_KEY(llm, local_model), check_not_empty, "model sent to the local fallback"),
    boolean(TROUPE_KEY(llm, stale_fallback), "serve a stale cached answer as last resort"),
    list(TROUPE_KEY(llm, model_aliases), check_alias, "\"alias=model\" items"),
    boolean(TROUPE_KEY(llm, cache_enabled), "response cache on /v1/messages"),
    boolean(TROUPE_KEY(llm, cache_sampled), "cache temperature > 0 requests too"),
    number(TROUPE_KEY(llm, cache_ttl_s), between(1, 365 * 86400), "cached answer lifetime"),
    boolean(TROUPE_KEY(llm, auto_cache_control), "add prompt-cache breakpoints"),
    number(TROUPE_KEY(llm, auto_cache_min_tokens), between(0, 1 << 24),
           "shortest prefix marked; 0: the model's minimum"),
    number(TROUPE_KEY(llm, messages_max), between(1, 1'000'000), "messages per request"),
    number(TROUPE_KEY(llm, content_blocks_max), between(1, 10'000'000),
           "content blocks per request"),
    number(TROUPE_KEY(llm, tools_max), between(0, 100'000), "tools per request"),
    // The limiter's exact integer buckets hold up to 50M per minute.
    number(TROUPE_KEY(llm, requests_per_minute), between(0, 5e7), "local limiter; 0: off"),
    number(TROUPE_KEY(llm, input_tokens_per_minute), between(0, 5e7), "local limiter; 0: off"),
    number(TROUPE_KEY(llm, output_tokens_per_minute), between(0, 5e7), "local limiter; 0: off"),
    number(TROUPE_KEY(llm, queue_max), between(1, 100'000), "requests waiting for the limiter"),
    number(TROUPE_KEY(llm, queue_timeout_ms), between(1, hour_ms), "longest wait in the queue"),
    number(TROUPE_KEY(llm, budget_tokens), between(0, 1e15), "tokens per client; 0: none"),
    number(TROUPE_KEY(llm, budget_alert_fraction), rate, "budget share that warns"),
    text(TROUPE_SUBKEY(llm, anthropic, base_url), check_url, "Anthropic API base URL"),
    secret(TROUPE_SUBKEY(llm, anthropic, api_key), check_token_or_empty, "upstream API key"),
    text(TROUPE_SUBKEY(llm, anthropic, version), check_not_empty, "default anthropic-version"),
    number(TROUPE_KEY(sessions, idle_timeout_s), between(0, 365 * 86400), "idle end; 0: never"),
    number(TROUPE_KEY(sessions, idle_after_ms), between(1, day_ms), "quiet time that is idle"),
    text(TROUPE_KEY(sessions, prompt_regex), check_regex, "cursor line of a waiting shell"),
    number(TROUPE_KEY(sessions, hangup_grace_ms), between(1, hour_ms), "SIGHUP to SIGKILL"),
    number(TROUPE_KEY(sessions, io_threads), between(1, 64),
           "Asio threads of the terminals: PTY reads, WebSocket viewers"),
    text(TROUPE_KEY(agents, personas_dir), check_not_empty, "the node's persona files"),
    text(TROUPE_KEY(agents, model), check_model, "an agent's model by default"),
    list(TROUPE_KEY(agents, model_aliases), check_alias, "persona model aliases"),
    number(TROUPE_KEY(agents, context_tokens), between(1000, 10'000'000),
           "most tokens one call of an agent sends"),
    number(TROUPE_KEY(agents, max_turns), between(1, 10'000), "model calls per prompt"),
    number(TROUPE_KEY(agents, max_tokens), between(1, 1'000'000), "max_tokens of agent calls"),
    number(TROUPE_KEY(agents, agents_max), between(1, 1'000'000), "agents one node holds"),
    number(TROUPE_KEY(agents, approval_timeout_s), between(1, 7 * 86400),
           "wait for a person's approval"),
    text(TROUPE_KEY(agents, hooks_file), check_settings_file, "every agent's hooks (JSON)"),
};

#undef TROUPE_KEY
#undef TROUPE_SUBKEY

/// Cross-field rules: `lower` must not exceed `upper` ("section.key" names).
struct order_rule {
  std::string_view lower;
  std::string_view upper;
};

constexpr std::array order_rules{
    order_rule{"gateway.request_timeout_ms", "gateway.request_timeout_max_ms"},
    order_rule{"supervisor.backoff_min_ms", "supervisor.backoff_max_ms"},
    order_rule{"breaker.calls_min", "breaker.window_calls"},
    order_rule{"breaker.open_ms", "breaker.open_ms_max"},
    order_rule{"llm.retry_backoff_min_ms", "llm.retry_backoff_max_ms"},
};

/// troupe-node's dedicated flags (API.md); other keys arrive as "section.key".
constexpr std::array<std::pair<std::string_view, std::string_view>, 3> flag_aliases{{
    {"node.name", "--name"},
    {"node.data_dir", "--data-dir"},
    {"gateway.listen", "--listen"},
}};

/// A config file larger than this is surely not a config file.
constexpr size_t config_file_bytes_max = 1u << 20;

// ---------------------------------------------------------------------------
// Values: a source's value before it is checked against its key.
// ---------------------------------------------------------------------------

using raw_value = std::variant<std::string, int64_t, double, bool, std::vector<std::string>>;

template <class... fs>
struct overloaded : fs... {
  using fs::operator()...;
};
// Clang 14 does not deduce aggregate templates without a guide.
template <class... fs>
overloaded(fs...) -> overloaded<fs...>;

std::string full_name(const key_spec& spec) {
  return std::string(spec.name.section) + "." + std::string(spec.name.key);
}

size_t index_of(const key_spec& spec) {
  return static_cast<size_t>(&spec - key_table.data());
}

std::string format_double(double value) {
  std::array<char, 32> buffer{};
  const auto result = std::to_chars(buffer.data(), buffer.data() + buffer.size(), value);
  return std::string(buffer.data(), result.ptr);
}

/// A value as a message or describe() prints it; strings in quotes.
std::string format_raw(const raw_value& raw) {
  return std::visit(overloaded{
                        [](const std::string& v) { return "\"" + v + "\""; },
                        [](int64_t v) { return std::to_string(v); },
                        [](double v) { return format_double(v); },
                        [](bool v) { return std::string(v ? "true" : "false"); },
                        [](const std::vector<std::string>& v) {
                          std::string out = "[";
                          for (const auto& item : v) {
                            out += (out.size() > 1 ? ", \"" : "\"") + item + "\"";
                          }
                          return out + "]";
                        },
                    },
                    raw);
}

std::string_view raw_type_name(const raw_value& raw) {
  constexpr std::array<std::string_view, 5> names{"a string", "an integer", "a float", "a boolean",
                                                  "an array of strings"};
  return names[raw.index()];
}

/// What a key's field holds, as "expected X" says it.
std::string_view kind_name(field_ref field) {
  constexpr std::array<std::string_view, 7> names{"a string", "an integer", "an integer",
                                                  "a number", "a boolean",  "an array of strings",
                                                  "a string"};
  return names[field.index()];
}

/// The current value of a field, in the form sources deliver values.
raw_value raw_of(field_ref field) {
  return std::visit(overloaded{
                        [](std::string* f) { return raw_value{*f}; },
                        [](uint32_t* f) { return raw_value{static_cast<int64_t>(*f)}; },
                        [](uint64_t* f) { return raw_value{static_cast<int64_t>(*f)}; },
                        [](double* f) { return raw_value{*f}; },
                        [](bool* f) { return raw_value{*f}; },
                        [](std::vector<std::string>* f) { return raw_value{*f}; },
                        [](choice_ref f) { return raw_value{std::string(f.names[*f.value])}; },
                    },
                    field);
}

std::string format_bound(double bound, bool integral) {
  return integral ? std::to_string(static_cast<int64_t>(bound)) : format_double(bound);
}

std::optional<std::string> check_range(const bounds& range, double value, bool integral,
                                       const std::string& got) {
  const bool lo_ok = range.lo_open ? value > range.lo : value >= range.lo;
  const bool hi_ok = range.hi_open ? value < range.hi : value <= range.hi;
  if (lo_ok && hi_ok) {  // false for NaN, as it should be
    return std::nullopt;
  }
  const auto lo = format_bound(range.lo, integral);
  const auto hi = format_bound(range.hi, integral);
  if (!range.lo_open && !range.hi_open) {
    return "must be between " + lo + " and " + hi + " (got " + got + ")";
  }
  return std::string("must be in ") + (range.lo_open ? "(" : "[") + lo + ", " + hi +
         (range.hi_open ? ")" : "]") + " (got " + got + ")";
}

/// Stores the value `raw` names, or says which names there are.
std::optional<std::string> assign_choice(const raw_value& raw, choice_ref field) {
  const auto* value = std::get_if<std::string>(&raw);
  if (value == nullptr) {
    return "expected a string, got " + std::string(raw_type_name(raw));
  }
  for (size_t i = 0; i < field.count; ++i) {
    if (field.names[i] == *value) {
      *field.value = static_cast<uint8_t>(i);
      return std::nullopt;
    }
  }
  std::string list;
  for (size_t i = 0; i < field.count; ++i) {
    list += (list.empty() ? "" : ", ") + std::string(field.names[i]);
  }
  return "must be one of " + list + " (got " + quoted_text(*value) + ")";
}

std::string mismatch(field_ref field, const raw_value& raw) {
  return "expected " + std::string(kind_name(field)) + ", got " + std::string(raw_type_name(raw));
}

template <class T>
std::optional<std::string> assign_integer(const key_spec& spec, const raw_value& raw, T* field) {
  const auto* value = std::get_if<int64_t>(&raw);
  if (value == nullptr) {
    return mismatch(field, raw);
  }
  // The table's bounds keep every accepted value inside T.
  assert(spec.range.hi <= static_cast<double>(std::numeric_limits<T>::max()));
  if (auto problem =
          check_range(spec.range, static_cast<double>(*value), true, std::to_string(*value))) {
    return problem;
  }
  *field = static_cast<T>(*value);
  return std::nullopt;
}

std::optional<std::string> assign_double(const key_spec& spec, const raw_value& raw,
                                         double* field) {
  const auto* integer = std::get_if<int64_t>(&raw);
  const auto* floating = std::get_if<double>(&raw);
  if (integer == nullptr && floating == nullptr) {
    return mismatch(field, raw);
  }
  // `open_factor = 2` is a float to anyone but a TOML parser.
  const double value = floating != nullptr ? *floating : static_cast<double>(*integer);
  if (auto problem = check_range(spec.range, value, false, format_double(value))) {
    return problem;
  }
  *field = value;
  return std::nullopt;
}

std::optional<std::string> assign_string(const key_spec& spec, const raw_value& raw,
                                         std::string* field) {
  const auto* value = std::get_if<std::string>(&raw);
  if (value == nullptr) {
    return mismatch(field, raw);
  }
  if (spec.check != nullptr) {
    if (auto problem = spec.check(*value)) {
      return problem;
    }
  }
  *field = *value;
  return std::nullopt;
}

/// A list: an array of strings, or (for configs written before lists were
/// arrays) one string of comma-separated items. Each item is checked.
std::optional<std::string> assign_list(const key_spec& spec, const raw_value& raw,
                                       std::vector<std::string>* field) {
  std::vector<std::string> items;
  if (const auto* array = std::get_if<std::vector<std::string>>(&raw)) {
    items = *array;
  } else if (const auto* text = std::get_if<std::string>(&raw)) {
    items = split_list(*text);
  } else {
    return mismatch(field, raw);
  }
  for (size_t i = 0; i < items.size(); ++i) {
    if (spec.check != nullptr) {
      if (auto problem = spec.check(items[i])) {
        return "item " + std::to_string(i + 1) + ": " + *problem;
      }
    }
  }
  *field = std::move(items);
  return std::nullopt;
}

/// Checks `raw` against the key's type and rules and stores it; the reason
/// it was refused otherwise.
std::optional<std::string> assign(const key_spec& spec, const raw_value& raw, node_config& config) {
  return std::visit(overloaded{
                        [&](std::string* f) { return assign_string(spec, raw, f); },
                        [&](uint32_t* f) { return assign_integer(spec, raw, f); },
                        [&](uint64_t* f) { return assign_integer(spec, raw, f); },
                        [&](double* f) { return assign_double(spec, raw, f); },
                        [&](bool* f) -> std::optional<std::string> {
                          const auto* value = std::get_if<bool>(&raw);
                          if (value == nullptr) {
                            return mismatch(f, raw);
                          }
                          *f = *value;
                          return std::nullopt;
                        },
                        [&](std::vector<std::string>* f) { return assign_list(spec, raw, f); },
                        [&](choice_ref f) { return assign_choice(raw, f); },
                    },
                    spec.name.field(config));
}

std::optional<raw_value> parse_unsigned(std::string_view text) {
  int64_t value = 0;
  const auto* end = text.data() + text.size();
  const bool digit_first = !text.empty() && text.front() >= '0' && text.front() <= '9';
  const auto result = std::from_chars(text.data(), end, value);
  if (!digit_first || result.ec != std::errc{} || result.ptr != end) {
    return std::nullopt;
  }
  return raw_value{value};
}

std::optional<raw_value> parse_number(std::string_view text) {
  double value = 0;
  const auto* end = text.data() + text.size();
  const auto result = std::from_chars(text.data(), end, value);
  if (text.empty() || result.ec != std::errc{} || result.ptr != end) {
    return std::nullopt;
  }
  return raw_value{value};
}

/// Env and flag values are text; this turns one into the key's type.
std::optional<raw_value> parse_text(field_ref field, std::string_view text) {
  return std::visit(
      overloaded{
          [&](std::string*) { return std::optional(raw_value{std::string(text)}); },
          [&](uint32_t*) { return parse_unsigned(text); },
          [&](uint64_t*) { return parse_unsigned(text); },
          [&](double*) { return parse_number(text); },
          [&](bool*) -> std::optional<raw_value> {
            if (text == "true" || text == "false") {
              return raw_value{text == "true"};
            }
            return std::nullopt;
          },
          [&](std::vector<std::string>*) { return std::optional(raw_value{split_list(text)}); },
          [&](choice_ref) { return std::optional(raw_value{std::string(text)}); },
      },
      field);
}

std::string parse_text_problem(field_ref field, std::string_view text) {
  constexpr std::array<std::string_view, 7> names{
      "", "an unsigned integer", "an unsigned integer", "a number", "a boolean (true or false)", "",
      ""};
  return "not " + std::string(names[field.index()]) + ": " + quoted_text(text);
}

// ---------------------------------------------------------------------------
// Lookup and "did you mean".
// ---------------------------------------------------------------------------

const key_spec* find_key(std::string_view section, std::string_view key) {
  const auto* it = std::find_if(key_table.begin(), key_table.end(), [&](const key_spec& spec) {
    return spec.name.section == section && spec.name.key == key;
  });
  return it == key_table.end() ? nullptr : it;
}

const key_spec* find_key(std::string_view dotted) {
  const auto dot = dotted.rfind('.');
  if (dot == std::string_view::npos) {
    return nullptr;
  }
  return find_key(dotted.substr(0, dot), dotted.substr(dot + 1));
}

bool known_section(std::string_view section) {
  return std::any_of(key_table.begin(), key_table.end(),
                     [&](const key_spec& spec) { return spec.name.section == section; });
}

size_t edit_distance(std::string_view a, std::string_view b) {
  std::vector<size_t> previous(b.size() + 1);
  std::vector<size_t> current(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) {
    previous[j] = j;
  }
  for (size_t i = 1; i <= a.size(); ++i) {
    current[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      const size_t substitute = previous[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1);
      current[j] = std::min({previous[j] + 1, current[j - 1] + 1, substitute});
    }
    std::swap(previous, current);
  }
  return previous[b.size()];
}

/// Typos worth a suggestion: one edit in a short name, two in a longer one.
size_t typo_distance_max(std::string_view name) {
  return name.size() <= 4 ? 1 : 2;
}
/// Longer names are no typo; also bounds the quadratic distance.
constexpr size_t typo_chars_max = 64;

/// The key an unknown `section.key` most likely meant: a near miss in the
/// same section, or the same key in another section.
const key_spec* closest_key(std::string_view section, std::string_view key) {
  const key_spec* best = nullptr;
  size_t best_distance = typo_distance_max(key) + 1;
  if (key.size() > typo_chars_max) {
    return nullptr;
  }
  for (const auto& spec : key_table) {
    size_t distance = best_distance;
    if (spec.name.section == section) {
      distance = edit_distance(spec.name.key, key);
    } else if (spec.name.key == key) {
      distance = 1;
    }
    if (distance < best_distance) {
      best = &spec;
      best_distance = distance;
    }
  }
  return best;
}

std::optional<std::string_view> closest_section(std::string_view section) {
  std::optional<std::string_view> best;
  size_t best_distance = typo_distance_max(section) + 1;
  if (section.size() > typo_chars_max) {
    return best;
  }
  for (const auto& spec : key_table) {
    const size_t distance = edit_distance(spec.name.section, section);
    if (distance < best_distance) {
      best = spec.name.section;
      best_distance = distance;
    }
  }
  return best;
}

std::string unknown_key_reason(std::string_view section, std::string_view key) {
  const auto* near = closest_key(section, key);
  return near == nullptr ? "unknown key" : "unknown key (did you mean " + full_name(*near) + "?)";
}

std::string env_name(const key_spec& spec) {
  std::string name = "TROUPE_" + std::string(spec.name.section) + "_" + std::string(spec.name.key);
  std::transform(name.begin(), name.end(), name.begin(), [](unsigned char c) {
    return c == '.' ? '_' : static_cast<char>(std::toupper(c));
  });
  return name;
}

std::string lowered(std::string_view text) {
  std::string out(text);
  std::transform(out.begin(), out.end(), out.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return out;
}

// ---------------------------------------------------------------------------
// Loading: defaults < file < env < flags, each value checked as it arrives.
// ---------------------------------------------------------------------------

/// Who set a key last; `rank` orders sources (defaults 0 .. flags 3).
struct origin {
  int rank = 0;
  std::string label = "defaults";
};

struct load_state {
  node_config config;
  std::array<origin, key_table.size()> origins;
};

error fail(std::string_view label, std::string_view name, std::string_view reason) {
  return make_error(errc::config_invalid,
                    std::string(label) + ": " + std::string(name) + ": " + std::string(reason));
}

std::optional<error> set_value(load_state& state, const key_spec& spec, const raw_value& raw,
                               origin from) {
  if (auto problem = assign(spec, raw, state.config)) {
    return fail(from.label, full_name(spec), *problem);
  }
  state.origins[index_of(spec)] = std::move(from);
  return std::nullopt;
}

/// Embedded defaults pass the same checks as every source; a failure here is
/// a bug in node_config.hpp or the table.
std::optional<error> check_defaults(load_state& state) {
  for (const auto& spec : key_table) {
    if (auto err = set_value(state, spec, raw_of(spec.name.field(state.config)), origin{})) {
      return err;
    }
  }
  return std::nullopt;
}

expected<std::string> read_file(const std::string& path) {
  std::FILE* file = std::fopen(path.c_str(), "rb");
  if (file == nullptr) {
    return make_error(errc::config_invalid, path + ": cannot open: " + std::strerror(errno));
  }
  std::string content;
  std::array<char, 4096> buffer{};
  size_t n = 0;
  while ((n = std::fread(buffer.data(), 1, buffer.size(), file)) > 0 &&
         content.size() <= config_file_bytes_max) {
    content.append(buffer.data(), n);
  }
  const int read_errno = std::ferror(file) != 0 ? errno : 0;
  std::fclose(file);
  if (read_errno != 0) {
    return make_error(errc::config_invalid, path + ": cannot read: " + std::strerror(read_errno));
  }
  if (content.size() > config_file_bytes_max) {
    return make_error(errc::config_invalid,
                      path + ": larger than " + std::to_string(config_file_bytes_max) + " bytes");
  }
  return content;
}

error syntax_error(const std::string& path, const toml::source_region& where,
                   std::string_view description) {
  return make_error(errc::config_invalid, path + ":" + std::to_string(where.begin.line) + ":" +
                                              std::to_string(where.begin.column) +
                                              ": TOML syntax error: " + std::string(description));
}

/// Where a byte outside ASCII stands outside a string and a comment, if
/// anywhere (line and column from 1). TOML allows none there, and toml++
/// 3.x reaches __builtin_unreachable on some (U+00A1 where it looks for
/// whitespace, found by fuzz_config), so such text is refused before it.
std::optional<std::pair<size_t, size_t>> stray_non_ascii(std::string_view text) {
  size_t line = 1;
  size_t line_start = 0;
  size_t i = 0;
  // Past the end of a string or comment that starts before i.
  auto skip_to = [&](std::string_view end, bool escapes) {
    while (i < text.size() && text.substr(i, end.size()) != end) {
      if (text[i] == '\\' && escapes) {
        ++i;
      } else if (text[i] == '\n') {
        if (end.size() == 1) {
          return;  // a one-line string or a comment ends with its line
        }
        ++line;
        line_start = i + 1;
      }
      ++i;
    }
    if (i < text.size() && end != "\n") {
      i += end.size();
    }
  };
  while (i < text.size()) {
    const char c = text[i];
    const auto three = text.substr(i, 3);
    if (c == '#') {
      skip_to("\n", false);
    } else if (three == R"(""")" || three == "'''") {
      i += 3;
      skip_to(three, three[0] == '"');
    } else if (c == '"' || c == '\'') {
      ++i;
      skip_to(std::string_view(&text[i - 1], 1), c == '"');
    } else if (static_cast<unsigned char>(c) >= 0x80) {
      return std::pair{line, i - line_start + 1};
    } else {
      if (c == '\n') {
        ++line;
        line_start = i + 1;
      }
      ++i;
    }
  }
  return std::nullopt;
}

expected<toml::table> parse_toml(const std::string& path, const std::string& content) {
  if (auto at = stray_non_ascii(content)) {
    return make_error(errc::config_invalid,
                      path + ":" + std::to_string(at->first) + ":" + std::to_string(at->second) +
                          ": TOML syntax error: a character outside ASCII outside a string or "
                          "a comment");
  }
#if TOML_EXCEPTIONS
  try {
    return toml::parse(content, path);
  } catch (const toml::parse_error& e) {
    return syntax_error(path, e.source(), e.description());
  }
#else
  auto result = toml::parse(content, path);
  if (!result) {
    return syntax_error(path, result.error().source(), result.error().description());
  }
  return std::move(result).table();
#endif
}

std::optional<raw_value> raw_of_toml(const toml::node& node) {
  switch (node.type()) {
    case toml::node_type::string:
      return raw_value{node.as_string()->get()};
    case toml::node_type::integer:
      return raw_value{node.as_integer()->get()};
    case toml::node_type::floating_point:
      return raw_value{node.as_floating_point()->get()};
    case toml::node_type::boolean:
      return raw_value{node.as_boolean()->get()};
    case toml::node_type::array: {
      std::vector<std::string> items;
      for (const auto& item : *node.as_array()) {
        if (!item.is_string()) {
          return std::nullopt;  // "expected an array of strings, got an array"
        }
        items.push_back(item.as_string()->get());
      }
      return raw_value{std::move(items)};
    }
    default:
      return std::nullopt;
  }
}

std::string toml_type_name(toml::node_type type) {
  switch (type) {
    case toml::node_type::table:
      return "a table";
    case toml::node_type::array:
      return "an array";
    case toml::node_type::date:
      return "a date";
    case toml::node_type::time:
      return "a time";
    case toml::node_type::date_time:
      return "a date-time";
    default:
      return "an unsupported value";
  }
}

std::optional<error> apply_file_key(const std::string& path, std::string_view section,
                                    std::string_view key, const toml::node& node,
                                    load_state& state) {
  const auto* spec = find_key(section, key);
  const auto name = std::string(section) + "." + std::string(key);
  if (spec == nullptr) {
    return fail(path, name, unknown_key_reason(section, key));
  }
  const auto raw = raw_of_toml(node);
  if (!raw) {
    return fail(path, name,
                "expected " + std::string(kind_name(spec->name.field(state.config))) + ", got " +
                    toml_type_name(node.type()));
  }
  return set_value(state, *spec, *raw, origin{1, path});
}

std::optional<error> apply_file_section(const std::string& path, std::string_view section,
                                        const toml::node& node, load_state& state) {
  const auto* table = node.as_table();
  if (table == nullptr) {
    // A key above every [section]: point at the section it belongs in.
    const auto* near = closest_key({}, section);
    const auto hint = near == nullptr ? "" : " (did you mean " + full_name(*near) + "?)";
    return fail(path, section, "keys belong in a [section]" + hint);
  }
  if (!known_section(section)) {
    const auto near = closest_section(section);
    const auto hint = near ? " (did you mean [" + std::string(*near) + "]?)" : "";
    return fail(path, section, "unknown section" + hint);
  }
  for (const auto& [key, value] : *table) {
    // [llm.anthropic] arrives as the table `anthropic` inside [llm].
    const auto nested = std::string(section) + "." + std::string(key.str());
    if (value.is_table() && known_section(nested)) {
      if (auto err = apply_file_section(path, nested, value, state)) {
        return err;
      }
      continue;
    }
    if (auto err = apply_file_key(path, section, key.str(), value, state)) {
      return err;
    }
  }
  return std::nullopt;
}

std::optional<error> apply_file(const std::string& path, load_state& state) {
  auto content = read_file(path);
  if (!content) {
    return std::move(content).err();
  }
  auto root = parse_toml(path, *content);
  if (!root) {
    return std::move(root).err();
  }
  for (const auto& [section, node] : *root) {
    if (auto err = apply_file_section(path, section.str(), node, state)) {
      return err;
    }
  }
  return std::nullopt;
}

/// "LLM_ANTHROPIC_" for "llm.anthropic".
std::string env_prefix(std::string_view section) {
  std::string out;
  for (char c : section) {
    out += c == '.' ? '_' : static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  }
  return out + "_";
}

/// The section a TROUPE_ variable (without the prefix) names: the longest
/// known section whose prefix it starts with, so TROUPE_LLM_ANTHROPIC_X is
/// [llm.anthropic] and TROUPE_LLM_X is [llm]; "" when none.
std::string env_section(std::string_view rest) {
  std::string best;
  for (const auto& spec : key_table) {
    const auto section = std::string(spec.name.section);
    const auto prefix = env_prefix(section);
    if (rest.starts_with(prefix) && rest.size() > prefix.size() &&
        prefix.size() > env_prefix(best).size()) {
      best = section;
    }
  }
  return best;
}

/// TROUPE_<SECTION>_<KEY> with a known section is config; an unknown key there
/// is a typo. Other TROUPE_* variables (TROUPE_URL, TROUPE_TOKEN) belong to
/// the CLI and are left alone.
/// What follows TROUPE_ in `name`, in its long form (TROUPE_ANTHROPIC_* is
/// the documented short form of TROUPE_LLM_ANTHROPIC_*); "" when `name` does
/// not start with TROUPE_.
std::string env_rest(std::string_view name) {
  constexpr std::string_view prefix = "TROUPE_";
  if (!name.starts_with(prefix)) {
    return {};
  }
  name.remove_prefix(prefix.size());
  return name.starts_with("ANTHROPIC_") ? "LLM_" + std::string(name) : std::string(name);
}

std::optional<error> apply_env_var(const std::string& name, const std::string& value,
                                   load_state& state) {
  const auto rest = env_rest(name);
  const auto section = env_section(rest);
  if (section.empty()) {
    return std::nullopt;
  }
  const auto key = lowered(rest.substr(env_prefix(section).size()));
  const auto label = "env " + name;
  const auto* spec = find_key(section, key);
  if (spec == nullptr) {
    const auto* near = closest_key(section, key);
    const auto hint = near == nullptr ? "" : " (did you mean " + env_name(*near) + "?)";
    return fail(label, section + "." + key, "unknown key" + hint);
  }
  const auto field = spec->name.field(state.config);
  const auto raw = parse_text(field, value);
  if (!raw) {
    return fail(label, full_name(*spec), parse_text_problem(field, value));
  }
  return set_value(state, *spec, *raw, origin{2, label});
}

std::string flag_label(std::string_view name) {
  for (const auto& [key, flag] : flag_aliases) {
    if (key == name) {
      return "flag " + std::string(flag);
    }
  }
  return "flag " + std::string(name);
}

std::optional<error> apply_flag(const std::string& name, const std::string& value,
                                load_state& state) {
  const auto label = flag_label(name);
  const auto* spec = find_key(name);
  if (spec == nullptr) {
    const auto dot = std::min(name.find('.'), name.size());
    const auto section = std::string_view(name).substr(0, dot);
    const auto key = std::string_view(name).substr(std::min(dot + 1, name.size()));
    return fail(label, name, unknown_key_reason(section, key));
  }
  const auto field = spec->name.field(state.config);
  const auto raw = parse_text(field, value);
  if (!raw) {
    return fail(label, name, parse_text_problem(field, value));
  }
  return set_value(state, *spec, *raw, origin{3, label});
}

double numeric_value(const raw_value& raw) {
  if (const auto* integer = std::get_if<int64_t>(&raw)) {
    return static_cast<double>(*integer);
  }
  assert(std::holds_alternative<double>(raw));  // order rules name numeric keys only
  return std::get<double>(raw);
}

/// Blames the key whose source ranks higher (the one most recently changed),
/// and names the other key and where its value came from.
std::optional<error> check_order(load_state& state, const order_rule& rule) {
  const auto* lower = find_key(rule.lower);
  const auto* upper = find_key(rule.upper);
  assert(lower != nullptr && upper != nullptr);
  const auto lower_raw = raw_of(lower->name.field(state.config));
  const auto upper_raw = raw_of(upper->name.field(state.config));
  if (numeric_value(lower_raw) <= numeric_value(upper_raw)) {
    return std::nullopt;
  }
  const auto& lower_origin = state.origins[index_of(*lower)];
  const auto& upper_origin = state.origins[index_of(*upper)];
  const auto lower_text = format_raw(lower_raw);
  const auto upper_text = format_raw(upper_raw);
  if (upper_origin.rank > lower_origin.rank) {
    return fail(upper_origin.label, rule.upper,
                "must be >= " + std::string(rule.lower) + " (got " + upper_text + " < " +
                    lower_text + "; " + std::string(rule.lower) + " from " + lower_origin.label +
                    ")");
  }
  return fail(lower_origin.label, rule.lower,
              "must be <= " + std::string(rule.upper) + " (got " + lower_text + " > " + upper_text +
                  "; " + std::string(rule.upper) + " from " + upper_origin.label + ")");
}

}  // namespace

expected<node_config> load_config(const config_sources& sources) {
  load_state state;
  if (auto err = check_defaults(state)) {
    return std::move(*err);
  }
  if (sources.file) {
    if (auto err = apply_file(*sources.file, state)) {
      return std::move(*err);
    }
  }
  for (const auto& [name, value] : sources.env) {
    if (auto err = apply_env_var(name, value, state)) {
      return std::move(*err);
    }
  }
  // The variable every Anthropic client reads fills a key no source set.
  if (const auto standard = sources.env.find(anthropic_key_variable);
      standard != sources.env.end() && state.config.llm_anthropic.api_key.empty()) {
    const auto* spec = find_key("llm.anthropic.api_key");
    assert(spec != nullptr);
    const auto raw = parse_text(spec->name.field(state.config), standard->second);
    if (!raw) {
      return fail(std::string("env ") + anthropic_key_variable, full_name(*spec),
                  parse_text_problem(spec->name.field(state.config), standard->second));
    }
    if (auto err = set_value(state, *spec, *raw,
                             origin{2, std::string("env ") + anthropic_key_variable})) {
      return std::move(*err);
    }
  }
  for (const auto& [name, value] : sources.flags) {
    if (auto err = apply_flag(name, value, state)) {
      return std::move(*err);
    }
  }
  for (const auto& rule : order_rules) {
    if (auto err = check_order(state, rule)) {
      return std::move(*err);
    }
  }
  return std::move(state.config);
}

std::map<std::string, std::string> troupe_environment() {
  std::map<std::string, std::string> out;
  for (char** entry = environ; entry != nullptr && *entry != nullptr; ++entry) {
    const std::string_view variable(*entry);
    const auto equals = variable.find('=');
    if (equals == std::string_view::npos ||
        !(variable.starts_with("TROUPE_") ||
          variable.substr(0, equals) == anthropic_key_variable)) {
      continue;
    }
    out.emplace(variable.substr(0, equals), variable.substr(equals + 1));
  }
  return out;
}

std::map<std::string, std::string> ignored_environment(
    const std::map<std::string, std::string>& env) {
  std::map<std::string, std::string> out;
  for (const auto& [name, value] : env) {
    const auto rest = env_rest(name);
    if (rest.empty() || rest == "URL" || rest == "TOKEN" || !env_section(rest).empty()) {
      continue;  // not ours, troupectl's, or config (checked when applied)
    }
    // The nearest config variable, by the whole name.
    const key_spec* near = nullptr;
    size_t near_distance = typo_distance_max(rest) + 1;
    if (rest.size() <= typo_chars_max) {
      for (const auto& spec : key_table) {
        const auto distance = edit_distance(env_name(spec), name);
        if (distance < near_distance) {
          near = &spec;
          near_distance = distance;
        }
      }
    }
    const auto section = rest.substr(0, rest.find('_'));
    out[name] = "ignored: no config section '" + section + "'" +
                (near == nullptr ? "" : " (did you mean " + env_name(*near) + "?)");
  }
  return out;
}

std::string describe(const node_config& config) {
  node_config copy = config;  // the table's accessors hand out mutable fields
  std::string out;
  for (const auto& spec : key_table) {
    const auto raw = raw_of(spec.name.field(copy));
    std::string value = format_raw(raw);
    if (spec.secret) {
      value = std::get<std::string>(raw).empty() ? "(generated)" : "(set)";
    }
    out += full_name(spec) + " = " + value + "\n";
  }
  return out;
}

std::vector<std::string> split_list(std::string_view text) {
  std::vector<std::string> out;
  while (!text.empty()) {
    const auto comma = text.find(',');
    auto item = text.substr(0, comma);
    text = comma == std::string_view::npos ? std::string_view{} : text.substr(comma + 1);
    while (!item.empty() && item.front() == ' ') {
      item.remove_prefix(1);
    }
    while (!item.empty() && item.back() == ' ') {
      item.remove_suffix(1);
    }
    if (!item.empty()) {
      out.emplace_back(item);
    }
  }
  return out;
}

}  // namespace troupe
