#pragma once

// Schema of the `sys` actor: the node's own control-plane messages.
//   sys.ping  {}              -> sys.ping.reply  {node, uptime_ms}
//   sys.echo  {text}          -> sys.echo.reply  {text}
//   sys.info  {}              -> sys.info.reply  {name, version, pid, ...}
//   health    {}              -> health.reply    {storage: {...}}  (/readyz asks)

#include <cstdint>
#include <string>

#include "runtime/protocol/codec.hpp"

namespace troupe::sys {

inline constexpr const char* ping_type = "sys.ping";
inline constexpr const char* echo_type = "sys.echo";
inline constexpr const char* info_type = "sys.info";
/// The readiness probe every actor /readyz asks answers (sys, the LLM
/// providers).
inline constexpr const char* health_type = "health";

using ping_request = empty_body;

struct ping_reply {
  std::string node;
  uint64_t uptime_ms = 0;
  TROUPE_FIELDS(node, uptime_ms)
};

struct echo_message {
  std::string text;
  TROUPE_FIELDS(text)
};

using info_request = empty_body;

struct info_reply {
  std::string name;
  std::string version;
  int64_t pid = 0;
  uint64_t uptime_ms = 0;
  uint32_t scheduler_threads = 0;
  uint64_t actors_total = 0;
  uint64_t actors_running = 0;
  std::string data_dir;
  TROUPE_FIELDS(name, version, pid, uptime_ms, scheduler_threads, actors_total, actors_running,
                data_dir)
};

/// How the store takes writes.
struct storage_health {
  /// The node has a store (false only for actors tested without one).
  bool enabled = false;
  /// No write failed in the last minute, RocksDB reports no background
  /// error and has not stopped writes.
  bool ok = true;
  uint64_t failed_writes = 0;
  std::string last_error;
  /// Seconds since the last failed write; -1 if none failed.
  int64_t last_error_age_s = -1;
  uint64_t background_errors = 0;
  bool writes_stopped = false;
  TROUPE_FIELDS(enabled, ok, failed_writes, last_error, last_error_age_s, background_errors,
                writes_stopped)
};

struct health_reply {
  storage_health storage;
  TROUPE_FIELDS(storage)
};

}  // namespace troupe::sys
