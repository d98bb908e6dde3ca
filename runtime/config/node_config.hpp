#pragma once

// The node's whole configuration, one struct per TOML section. Defaults here
// are the embedded defaults `make run` starts with; configs/node.toml documents
// every key. Units are last in every name.

#include <cstdint>
#include <map>
#include <optional>
#include <string>

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
  /// trace, debug, info, warn, error, critical or off.
  std::string level = "info";
  /// text or json (one JSON object per line).
  std::string format = "text";
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
  /// Memory for the hot tier of all shards together, divided evenly.
  uint64_t memory_budget_bytes = 1ull << 30;
  /// Default lifetime of an entry in memory and on disk.
  uint32_t hot_ttl_s = 4 * 3600;
  uint32_t cold_ttl_s = 24 * 3600;
  /// Largest key and value accepted.
  uint32_t key_bytes_max = 4096;
  uint64_t value_bytes_max = 4u << 20;
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
};

/// Where configuration comes from; later sources beat earlier ones:
/// embedded defaults < file < environment < flags.
struct config_sources {
  /// TOML file; nullopt: no file (defaults, env and flags only).
  std::optional<std::string> file;
  /// Environment, e.g. {"TROUPE_GATEWAY_LISTEN", "127.0.0.1:0"}. Only keys
  /// starting with TROUPE_ are looked at. Injected so tests need no setenv.
  std::map<std::string, std::string> env;
  /// Command-line overrides keyed "section.key", e.g. {"node.data_dir", "/tmp/x"}.
  std::map<std::string, std::string> flags;
};

/// Loads, merges and validates the configuration. Errors (code
/// `config_invalid`) name the source (file path, env variable or flag), the
/// key and the reason, e.g.
/// "configs/node.toml: gateway.io_threads: must be between 1 and 64 (got 0)".
[[nodiscard]] expected<node_config> load_config(const config_sources& sources);

/// Collects the TROUPE_* variables of the process environment.
[[nodiscard]] std::map<std::string, std::string> troupe_environment();

/// Multi-line "section.key = value" rendering of the effective config for the
/// start-up log; secrets (auth.token) are masked.
[[nodiscard]] std::string describe(const node_config& config);

}  // namespace troupe
