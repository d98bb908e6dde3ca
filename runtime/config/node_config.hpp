#pragma once

// The node's whole configuration, one struct per TOML section. Defaults here
// are the embedded defaults `make run` starts with; configs/node.toml documents
// every key. Units are last in every name.

#include <algorithm>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "runtime/config/choices.hpp"
#include "runtime/error.hpp"

namespace troupe {

struct node_section {
  /// Name of this node in the cluster and in logs.
  std::string name = "troupe-1";
  /// Where RocksDB, the token file and other durable state live.
  std::string data_dir = "./data";
  /// CAF scheduler worker threads (CAF's own default is 4 even on 2 cores).
  uint32_t scheduler_threads = 2;
  /// Upper bound for a graceful shutdown before the node exits anyway.
  uint32_t shutdown_timeout_ms = 10000;
};

struct gateway_section {
  /// HOST:PORT the HTTP/WebSocket server binds; port 0 picks a free port.
  std::string listen = "127.0.0.1:7700";
  /// Asio threads serving HTTP.
  uint32_t io_threads = 1;
  /// Largest request body accepted; larger ones get 413.
  uint64_t body_bytes_max = 8u << 20;
  /// Largest request head (request line + headers); larger ones get 431.
  uint32_t header_bytes_max = 16u << 10;
  /// Default timeout of a message sent through the control plane.
  uint32_t request_timeout_ms = 5000;
  /// Largest `?timeout_ms=` a caller may ask for.
  uint32_t request_timeout_max_ms = 60000;
  /// Open connections beyond this are closed at accept.
  uint32_t connections_max = 10000;
  /// A connection idle this long is closed.
  uint32_t idle_timeout_ms = 60000;
};

struct auth_section {
  /// Bearer token for /v1 routes; empty: generated once into <data_dir>/token.
  std::string token;
};

struct log_section {
  log_level level = log_level::info;
  log_format format = log_format::text;
};

struct chaos_section {
  /// Enables fault injection (POST /v1/actors/{path}/kill).
  bool enabled = false;
};

struct supervisor_section {
  /// Restart intensity: more than this many restarts within period_ms and
  /// the supervisor gives up and escalates to its parent.
  uint32_t restarts_max = 10;
  uint32_t period_ms = 10000;
  /// Restart backoff: the first restart is immediate, the k-th waits
  /// min(backoff_max_ms, backoff_min_ms * 2^(k-2)) with +-jitter.
  uint32_t backoff_min_ms = 10;
  uint32_t backoff_max_ms = 5000;
  double backoff_jitter = 0.2;
  /// After this long without a failure the backoff starts over.
  uint32_t backoff_reset_ms = 30000;
  /// Messages held for a child while it restarts; overflow gets `restarting`.
  uint32_t stash_max = 1024;
  /// Time a child gets to stop before it is killed.
  uint32_t shutdown_timeout_ms = 5000;
};

struct breaker_section {
  /// Opens after this many consecutive failures.
  uint32_t failures_max = 5;
  /// Sliding window of the last N calls for the rate checks.
  uint32_t window_calls = 20;
  /// Rates are only judged once the window holds this many calls.
  uint32_t calls_min = 10;
  /// Opens when the failure rate in the window reaches this (0..1].
  double failure_rate_max = 0.5;
  /// A call slower than this counts as slow.
  uint32_t slow_call_ms = 2000;
  /// Opens when the slow-call rate in the window reaches this (0..1].
  double slow_rate_max = 1.0;
  /// First open period; each failed probe multiplies it by open_factor up to open_ms_max.
  uint32_t open_ms = 1000;
  uint32_t open_ms_max = 30000;
  double open_factor = 2.0;
  /// +- fraction of random spread on each open period.
  double jitter = 0.1;
  /// Calls let through while half-open; all must succeed to close.
  uint32_t half_open_probes = 1;
};

struct limits_section {
  /// Largest msgpack message body an actor accepts.
  uint64_t message_bytes_max = 1u << 20;
};

struct storage_section {
  /// fsync the RocksDB write-ahead log on every write. Off: a killed node
  /// loses nothing (the OS holds the log); a power loss may lose the last
  /// writes.
  bool sync_writes = false;
};

struct cache_section {
  /// Shard actors; 0: one per core.
  uint32_t shards = 0;
  /// Memory of the cache as a whole: the store's RocksDB takes
  /// `store_memory_bytes` of it, the shards' hot tiers the rest, evenly.
  uint64_t memory_budget_bytes = 1ull << 30;
  /// Default lifetime of an entry in memory and on disk.
  uint32_t hot_ttl_s = 4 * 3600;
  uint32_t cold_ttl_s = 24 * 3600;
  /// Largest key and value accepted.
  uint32_t key_bytes_max = 4096;
  uint64_t value_bytes_max = 4u << 20;
  /// Most dependents one invalidation drops eagerly; a larger cascade is cut
  /// there (the rest are refused when read) and counts against the cascade
  /// breaker, which stops cascading while open.
  uint32_t cascade_max = 10000;
  /// Dependency records one entry may carry (its own and those copied from
  /// the keys it depends on).
  uint32_t deps_max = 1024;
  /// Scheduling of the shards' threads: "normal", or "idle" (SCHED_IDLE:
  /// their disk reads and hashing only use CPU no other thread wants).
  troupe::shard_policy shard_policy = troupe::shard_policy::normal;
  /// Absolute directories a dependency path must lie in (symlinks
  /// resolved); empty: the node's working directory and its data dir. The
  /// node reads what a dependency names, so it must not name any file the
  /// node can read.
  std::vector<std::string> dependency_roots;
};

/// How cache.memory_budget_bytes is spent, so that the node's memory stays
/// within it under a flood of writes (bench/cache_rss.sh measures it).
struct cache_memory {
  /// The store's RocksDB: memtables and block cache (a quarter, at most
  /// 64 MiB).
  uint64_t store = 0;
  /// Not handed out: entries on their way in and out (request bodies,
  /// encodings), RocksDB's own buffers and the allocator's slack (an eighth).
  uint64_t working = 0;
  /// The shards' hot tiers together: the rest.
  uint64_t hot = 0;
};

[[nodiscard]] inline cache_memory split_cache_memory(const cache_section& cache) {
  cache_memory out;
  out.store = std::min<uint64_t>(cache.memory_budget_bytes / 4, uint64_t{64} << 20);
  out.working = cache.memory_budget_bytes / 8;
  out.hot = cache.memory_budget_bytes - out.store - out.working;
  return out;
}

struct llm_section {
  /// Asio threads carrying upstream HTTP, apart from the gateway's (the
  /// bytes never touch an actor thread).
  uint32_t io_threads = 1;
  /// Whole-call timeout of one upstream attempt; for a stream, the longest
  /// silence between two reads.
  uint32_t timeout_ms = 30000;
  /// Retries of one provider after a 5xx, a timeout or a 429 with retry-after.
  uint32_t retries_max = 2;
  /// Retry backoff: min * 2^(k-1) with +-jitter, capped at max.
  uint32_t retry_backoff_min_ms = 250;
  uint32_t retry_backoff_max_ms = 8000;
  /// Longest retry-after (or ratelimit reset) the gateway waits out; longer
  /// ones fail over at once.
  uint32_t retry_after_max_ms = 20000;
  /// Calls in flight, and so connections open, per upstream; more wait.
  uint32_t connections_max = 256;
  /// Models tried, in order, on the same upstream after the asked model
  /// failed (overloaded, breaker open, retries spent).
  std::vector<std::string> fallback_models;
  /// OpenAI-compatible server (llama.cpp, Ollama) tried after the models;
  /// empty: none. `local_model` is the model name it is sent.
  std::string local_base_url;
  std::string local_model = "local";
  /// Serve a stale cached answer (marked so) when every upstream failed.
  bool stale_fallback = true;
  /// "alias=model" items, e.g. ["fast=claude-haiku-4-5"].
  std::vector<std::string> model_aliases;
  /// Response cache on /v1/messages.
  bool cache_enabled = true;
  /// Also cache requests with temperature > 0: a cached answer is a valid
  /// sample of its request, and real clients never send temperature 0.
  bool cache_sampled = true;
  /// Lifetime of a cached answer.
  uint32_t cache_ttl_s = 24 * 3600;
  /// Automatic prompt caching: requests without cache_control of their own
  /// get breakpoints after their tools, system prompt and conversation when
  /// the prefix is long enough for the provider to cache it.
  bool auto_cache_control = true;
  /// Shortest prefix (estimated tokens) marked; 0: the model's own minimum
  /// (1024 tokens, 2048 for Haiku models).
  uint32_t auto_cache_min_tokens = 0;
  /// What one /v1/messages request may hold (each costs the gateway work);
  /// beyond: 413 request_too_large.
  uint32_t messages_max = 10'000;
  uint32_t content_blocks_max = 100'000;
  uint32_t tools_max = 1'000;
  /// Local limiter mirroring the upstream's buckets; 0: unlimited.
  uint32_t requests_per_minute = 0;
  uint64_t input_tokens_per_minute = 0;
  uint64_t output_tokens_per_minute = 0;
  /// Requests waiting for the limiter, all clients together; beyond: 429.
  uint32_t queue_max = 1000;
  /// Longest wait in that queue before the request fails with 429.
  uint32_t queue_timeout_ms = 60000;
  /// Upstream tokens (input + output) each client token may spend; 0: no budget.
  uint64_t budget_tokens = 0;
  /// Share of the budget at which a warning is logged and counted.
  double budget_alert_fraction = 0.8;
};

struct llm_anthropic_section {
  /// Base URL of the Anthropic API (https verifies certificates).
  std::string base_url = "https://api.anthropic.com";
  /// API key. The loader fills it from ANTHROPIC_API_KEY when no file,
  /// TROUPE_ variable or flag sets it.
  std::string api_key;
  /// anthropic-version sent when the client sends none.
  std::string version = "2023-06-01";
};

struct sessions_section {
  /// A session without output or input for this long is ended; 0: never.
  uint32_t idle_timeout_s = 0;
  /// No output for this long and a session reports "idle".
  uint32_t idle_after_ms = 5000;
  /// A session whose cursor line matches this (ECMAScript) and is quiet
  /// reports "waiting" (for input).
  std::string prompt_regex = "[$#>%] ?$";
  /// Time a shell gets between SIGHUP and SIGKILL when its session ends.
  uint32_t hangup_grace_ms = 2000;
  /// Asio threads reading the PTYs, apart from the gateway's and the
  /// upstream client's.
  uint32_t io_threads = 1;
};

struct agents_section {
  /// The node's personas (Claude Code subagent files); a workspace's
  /// `.claude/agents/` adds to them and overrides them by name. Relative to
  /// the node's working directory; a directory that does not exist holds
  /// none.
  std::string personas_dir = "configs/personas";
  /// An agent's model when neither it nor its persona names one.
  std::string model = "claude-sonnet-4-5";
  /// What a persona's `model: sonnet|opus|haiku` means ("alias=model").
  std::vector<std::string> model_aliases = {"sonnet=claude-sonnet-4-5", "opus=claude-opus-4-1",
                                            "haiku=claude-haiku-4-5"};
  /// Most tokens one model call of an agent may send, unless it says.
  uint32_t context_tokens = 100000;
  /// Model calls per prompt, unless the agent says.
  uint32_t max_turns = 50;
  /// max_tokens of an agent's model calls, unless it says.
  uint32_t max_tokens = 8192;
  /// Agents one node holds.
  uint32_t agents_max = 10000;
  /// How long a call a hook asked a person about waits for an answer
  /// before it is denied.
  uint32_t approval_timeout_s = 600;
  /// A Claude Code settings file (JSON) whose `hooks` apply to every agent
  /// of the node, before a workspace's own; empty: none. Relative to the
  /// node's working directory.
  std::string hooks_file;
};

struct node_config {
  node_section node;
  gateway_section gateway;
  auth_section auth;
  log_section log;
  chaos_section chaos;
  supervisor_section supervisor;
  breaker_section breaker;
  limits_section limits;
  storage_section storage;
  cache_section cache;
  llm_section llm;
  llm_anthropic_section llm_anthropic;
  sessions_section sessions;
  agents_section agents;
};

/// Where configuration comes from; later sources beat earlier ones:
/// embedded defaults < file < environment < flags.
struct config_sources {
  /// TOML file; nullopt: no file (defaults, env and flags only).
  std::optional<std::string> file;
  /// Environment, e.g. {"TROUPE_GATEWAY_LISTEN", "127.0.0.1:0"}. Only keys
  /// starting with TROUPE_ are looked at, and ANTHROPIC_API_KEY (see
  /// llm_anthropic_section::api_key). Injected so tests need no setenv.
  std::map<std::string, std::string> env;
  /// Command-line overrides keyed "section.key", e.g. {"node.data_dir", "/tmp/x"}.
  std::map<std::string, std::string> flags;
};

/// Loads, merges and validates the configuration. Errors (code
/// `config_invalid`) name the source (file path, env variable or flag), the
/// key and the reason, e.g.
/// "configs/node.toml: gateway.io_threads: must be between 1 and 64 (got 0)".
[[nodiscard]] expected<node_config> load_config(const config_sources& sources);

/// The variable Anthropic's clients read their key from.
inline constexpr const char* anthropic_key_variable = "ANTHROPIC_API_KEY";

/// Collects the TROUPE_* variables (and ANTHROPIC_API_KEY) of the process
/// environment.
[[nodiscard]] std::map<std::string, std::string> troupe_environment();

/// The TROUPE_* variables in `env` that are no config key (no section
/// matches) and that troupe does not use elsewhere (TROUPE_URL and
/// TROUPE_TOKEN are troupectl's), each with why: "ignored: no config section
/// 'GATWAY' (did you mean TROUPE_GATEWAY_LISTEN?)". The node logs them as
/// warnings: the prefix is shared, so they cannot be refused outright.
[[nodiscard]] std::map<std::string, std::string> ignored_environment(
    const std::map<std::string, std::string>& env);

/// Multi-line "section.key = value" rendering of the effective config for the
/// start-up log; secrets (auth.token) are masked.
[[nodiscard]] std::string describe(const node_config& config);

/// The items of a comma-separated config value ("a, b,c"), each trimmed of
/// spaces, empty ones dropped.
[[nodiscard]] std::vector<std::string> split_list(std::string_view text);

}  // namespace troupe
