#pragma once

// One terminal session as an actor: `sessions/live/<id>`. It owns its PTY,
// its scrollback and recording, its screen state, its viewers and its
// lifecycle; nothing of it is shared with another thread. Its PTY is read on
// the troupe-pty threads, which hand the bytes over as messages.
//
// An incarnation starts by asking the manager for the state the previous
// one handed over (session.resume), and hands its state over before it ends
// in any way that is followed by a restart or leaves the session to be
// inspected (session.handoff). See actors/pty/messages.hpp.

#include <memory>
#include <string>

#include "actors/pty/messages.hpp"
#include "runtime/supervisor/supervisor.hpp"

namespace boost::asio {
class io_context;
}

namespace troupe {
struct node_context;
class store_writer;
}  // namespace troupe

namespace troupe::pty {

class pty_process;

/// Output kept per session in memory (and replayed to new viewers).
inline constexpr size_t scrollback_bytes = 1u << 20;
/// Recording events kept per session (besides their bytes, bounded like the
/// scrollback): a program writing a byte at a time cannot grow the record.
inline constexpr size_t cast_events_max = 16384;
/// Output chunks a persistent session keeps in the store.
inline constexpr size_t stored_chunks_max = 16384;
/// What a snapshot (or a stored spec) may weigh when it is decoded.
inline constexpr size_t snapshot_bytes_max = 8u << 20;

inline constexpr const char* node_restart_notice =
    "\r\n[troupe: the node restarted; this session was started again]\r\n";

/// The session's child under sessions/live. `first` is the shell the manager
/// started when the session was created (so that a node out of PTYs refuses
/// the request); the first incarnation takes it, later ones spawn their own.
/// `writer` keeps a persistent session's output (may be null).
[[nodiscard]] child_spec session_child(std::shared_ptr<node_context> ctx, std::string id,
                                       session_spec spec, std::shared_ptr<pty_process> first,
                                       std::shared_ptr<store_writer> writer,
                                       boost::asio::io_context& io);

/// The session's recording (asciicast v2) from its events.
[[nodiscard]] std::string render_recording(const std::string& id, const session_spec& spec,
                                           const std::vector<cast_event>& cast);
[[nodiscard]] std::string render_recording(const session_snapshot& s);

/// The key of a persistent session's output chunk `seq` in the store.
[[nodiscard]] std::string chunk_key(const std::string& id, uint64_t seq);

}  // namespace troupe::pty
