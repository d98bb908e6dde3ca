#pragma once

// Schema of the `sys` actor: the node's own control-plane messages.
//   sys.ping  {}              -> sys.ping.reply  {node, uptime_ms}
//   sys.echo  {text}          -> sys.echo.reply  {text}
//   sys.info  {}              -> sys.info.reply  {name, version, pid, ...}

#include <cstdint>
#include <string>

#include "runtime/protocol/codec.hpp"

namespace troupe::sys {

inline constexpr const char* ping_type = "sys.ping";
inline constexpr const char* echo_type = "sys.echo";
inline constexpr const char* info_type = "sys.info";

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

}  // namespace troupe::sys
