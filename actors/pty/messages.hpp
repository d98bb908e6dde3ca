#pragma once

// Schema of the sessions family (its public face, and what its actors say
// to each other). Requests go to "sessions/manager":
//   session.create     {command, cwd, env, cols, rows, name, persistent} -> session_info
//   session.list       {}    -> {sessions: [session_info]}
//   session.get        {id}  -> session_info
//   session.end        {id}  -> {ended}
//   session.scrollback {id}  -> {content_type, bytes}  (the recent output)
//   session.cast       {id}  -> {content_type, bytes}  (asciicast v2)
// The manager asks the session actor "sessions/live/<id>" the same
// session.info / session.scrollback / session.cast / session.end (empty
// bodies). Between incarnations a session's state travels through the
// manager: the ending incarnation sends session.handoff {snapshot}, the next
// asks session.resume {id} -> {found, snapshot}. Viewers speak the terminal
// protocol (runtime/node/terminal.hpp) to the session actor.

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "runtime/protocol/fields.hpp"

namespace troupe::pty {

inline constexpr const char* create_type = "session.create";
inline constexpr const char* list_type = "session.list";
inline constexpr const char* get_type = "session.get";
inline constexpr const char* end_type = "session.end";
inline constexpr const char* scrollback_type = "session.scrollback";
inline constexpr const char* cast_type = "session.cast";
inline constexpr const char* info_type = "session.info";
inline constexpr const char* resume_type = "session.resume";
inline constexpr const char* handoff_type = "session.handoff";
/// The manager asking a running session for its recording's events.
inline constexpr const char* recording_type = "session.recording";

/// What POST /v1/sessions takes, and what a persistent session stores.
/// Sizes are read wide and range-checked before they are narrowed.
struct session_spec {
  std::vector<std::string> command;
  std::string cwd;
  std::map<std::string, std::string> env;
  int64_t cols = 80;
  int64_t rows = 24;
  std::string name;
  bool persistent = false;
  TROUPE_FIELDS(command, cwd, env, cols, rows, name, persistent)
};

struct session_id {
  std::string id;
  TROUPE_FIELDS(id)
};

struct session_info {
  std::string id;
  std::string name;
  int64_t pid = 0;
  /// starting, running, idle, waiting (a prompt), exited, restarting, failed.
  std::string state;
  uint16_t cols = 0;
  uint16_t rows = 0;
  uint64_t bytes_in = 0;
  uint64_t bytes_out = 0;
  uint64_t idle_ms = 0;
  std::optional<int64_t> exit_status;
  bool persistent = false;
  uint32_t restarts = 0;
  std::vector<std::string> command;
  std::string cwd;
  TROUPE_FIELDS(id, name, pid, state, cols, rows, bytes_in, bytes_out, idle_ms, exit_status,
                persistent, restarts, command, cwd)
};

struct session_list {
  std::vector<session_info> sessions;
  TROUPE_FIELDS(sessions)
};

struct session_ended {
  std::string ended;
  TROUPE_FIELDS(ended)
};

/// A reply that is a document of its own (scrollback bytes, a recording):
/// the gateway answers with `bytes` as they are.
struct raw_document {
  std::string content_type;
  std::string bytes;
  TROUPE_FIELDS(content_type, bytes)
};

/// One asciicast event: seconds since the session began, "o" or "r", data.
struct cast_event {
  double t = 0;
  std::string kind;
  std::string data;
  TROUPE_FIELDS(t, kind, data)
};

/// A chunk of a persistent session's output in the store ("sb/<id>/<seq>").
struct stored_chunk {
  uint64_t seq = 0;
  uint64_t bytes = 0;
  TROUPE_FIELDS(seq, bytes)
};

/// Everything a session carries from one incarnation to the next.
struct session_snapshot {
  std::string id;
  session_spec spec;
  /// The recent output and the absolute offset just past it.
  std::string output;
  uint64_t output_end = 0;
  std::vector<cast_event> cast;
  /// Seconds since the session was created (times in `cast` count from then).
  double age_s = 0;
  uint64_t bytes_in = 0;
  uint64_t bytes_out = 0;
  uint32_t incarnations = 0;
  std::optional<int64_t> exit_status;
  uint16_t cols = 0;
  uint16_t rows = 0;
  /// What its store holds (persistent sessions).
  uint64_t next_chunk = 0;
  std::vector<stored_chunk> chunks;
  TROUPE_FIELDS(id, spec, output, output_end, cast, age_s, bytes_in, bytes_out, incarnations,
                exit_status, cols, rows, next_chunk, chunks)
};

/// A running session's recording as its events (the answer to
/// session.recording). The manager renders it: escaping a full recording
/// takes milliseconds, and the session's thread is every terminal's.
struct recording_msg {
  std::string id;
  session_spec spec;
  std::vector<cast_event> cast;
  TROUPE_FIELDS(id, spec, cast)
};

struct resume_reply {
  bool found = false;
  session_snapshot snapshot;
  TROUPE_FIELDS(found, snapshot)
};

struct handoff_msg {
  session_snapshot snapshot;
  TROUPE_FIELDS(snapshot)
};

}  // namespace troupe::pty
