#include "actors/pty/session_actor.hpp"

#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <deque>

#include <spdlog/logger.h>
#include <boost/asio/io_context.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/strand.hpp>
#include <caf/all.hpp>
#include <nlohmann/json.hpp>

#include "actors/pty/asciicast.hpp"
#include "actors/pty/pty_process.hpp"
#include "actors/pty/screen_state.hpp"
#include "actors/pty/scrollback.hpp"
#include "runtime/actor/envelope_message.hpp"
#include "runtime/log/log.hpp"
#include "runtime/net/strand_actor.hpp"
#include "runtime/node/node_context.hpp"
#include "runtime/node/terminal.hpp"
#include "runtime/protocol/codec.hpp"
#include "storage/writer.hpp"

namespace troupe::pty {

namespace {

using json = nlohmann::json;
using clock = std::chrono::steady_clock;
namespace net = boost::asio;

/// Sent by a session's PTY reader (an I/O thread) to the session.
constexpr const char* pty_output_type = "pty.output";
constexpr const char* pty_eof_type = "pty.eof";

/// EIO on the master can come a moment before the child can be reaped.
constexpr std::chrono::milliseconds reap_retry{10};
constexpr int reap_tries_max = 200;
/// How long reading waits for viewers that are behind before it goes on
/// without them.
constexpr std::chrono::milliseconds viewer_patience{2000};
/// Input waiting beyond this is dropped: a viewer typing into a program
/// that reads nothing must not grow the node's memory.
constexpr size_t pending_input_max = 1u << 20;
/// Replayed output goes to a viewer in pieces of this size.
constexpr size_t replay_piece_bytes = 64u << 10;
constexpr const char* restart_notice = "\r\n[troupe: session restarted after the shell ended]\r\n";

using reap_atom = caf::atom_constant<caf::atom("ptyreap")>;
using flush_atom = caf::atom_constant<caf::atom("ptyflush")>;
using idle_atom = caf::atom_constant<caf::atom("ptyidle")>;
using patience_atom = caf::atom_constant<caf::atom("ptybp")>;
using kill_atom = caf::atom_constant<caf::atom("ptykill")>;

/// Where a session is in its life. `ended` is final: DELETE set it, and the
/// session neither restarts nor hands its state over.
enum class session_phase : uint8_t { starting, running, exited, ended };

[[nodiscard]] std::string_view to_string(session_phase p) {
  switch (p) {
    case session_phase::starting:
      return "starting";
    case session_phase::running:
      return "running";
    case session_phase::exited:
      return "exited";
    case session_phase::ended:
      return "ended";
  }
  return "unknown";
}

void send_envelope(const caf::actor& to, std::string type, std::string body) {
  caf::anon_send(to, std::move(type), std::move(body), uint64_t{0});
}

/// Reads a PTY master on an Asio thread and sends its output to the session.
class pty_reader : public std::enable_shared_from_this<pty_reader> {
 public:
  // A strand of its own: with several PTY threads, its reads and the
  // pause/resume/stop posts must not run at once.
  pty_reader(net::io_context& io, int fd, caf::actor owner)
      : stream_(net::make_strand(io), fd), owner_(std::move(owner)) {}

  /// No further read until resume(); the program then blocks on a full
  /// terminal, as it would under a slow real terminal.
  void pause() {
    net::post(stream_.get_executor(), [self = shared_from_this()] { self->paused_ = true; });
  }
  void resume() {
    net::post(stream_.get_executor(), [self = shared_from_this()] {
      self->paused_ = false;
      if (self->parked_) {
        self->parked_ = false;
        self->read();
      }
    });
  }
  void start() {
    net::post(stream_.get_executor(), [self = shared_from_this()] { self->read(); });
  }
  /// Stops reading; the descriptor (a dup) closes with the reader.
  void stop() {
    net::post(stream_.get_executor(), [self = shared_from_this()] {
      boost::system::error_code ignored;
      self->stream_.cancel(ignored);
      self->stopped_ = true;
    });
  }

 private:
  /// Waits until the master is readable, then reads what is there into
  /// this thread's buffer: an idle session holds no buffer of its own.
  void read() {
    if (stopped_) {
      return;
    }
    stream_.async_wait(net::posix::stream_descriptor::wait_read, [self = shared_from_this()](
                                                                     boost::system::error_code ec) {
      if (self->stopped_ || ec == net::error::operation_aborted) {
        return;
      }
      thread_local const std::unique_ptr<char[]> buffer =
          std::make_unique_for_overwrite<char[]>(buffer_bytes);
      const ssize_t n = ec ? -1 : ::read(self->stream_.native_handle(), buffer.get(), buffer_bytes);
      if (n > 0) {
        send_envelope(self->owner_, pty_output_type,
                      encode(term::bytes_msg{std::string(buffer.get(), static_cast<size_t>(n))}));
      } else if (ec || n == 0 || (errno != EAGAIN && errno != EINTR)) {
        // EIO: the last process holding the terminal ended.
        send_envelope(self->owner_, pty_eof_type, encode(empty_body{}));
        return;
      }
      if (self->paused_) {
        self->parked_ = true;
        return;
      }
      self->read();
    });
  }

  net::posix::stream_descriptor stream_;
  caf::actor owner_;
  static constexpr size_t buffer_bytes = 16384;
  bool stopped_ = false;
  bool paused_ = false;
  /// Paused with no read pending: resume() starts one.
  bool parked_ = false;
};

struct viewer {
  caf::actor handle;
  bool readonly = false;
  /// Output sent to it and not acknowledged yet.
  uint64_t unacked = 0;
  /// It stayed behind through a whole wait: reading no longer waits for it
  /// (until it catches up; its connection's own bound drops it if it never
  /// does).
  bool slow = false;
};

/// A recording_msg packed from the events where the session keeps them.
struct recording_view {
  const std::string& id;
  const session_spec& spec;
  const std::deque<cast_event>& cast;
  TROUPE_PACK_FIELDS(id, spec, cast)
};

struct session_state {
  std::shared_ptr<node_context> ctx;
  std::string id;
  session_spec spec;
  std::shared_ptr<spdlog::logger> log;

  // What the session keeps across incarnations (handed over in a snapshot).
  scrollback output{scrollback_bytes};
  std::deque<cast_event> cast;
  size_t cast_bytes = 0;
  clock::time_point created = clock::now();
  uint64_t bytes_in = 0;
  uint64_t bytes_out = 0;
  uint32_t incarnations = 0;
  std::optional<int> exit_status;
  uint16_t cols = 80;
  uint16_t rows = 24;

  // A persistent session's output also goes to the store, in chunks
  // "sb/<id>/<seq>", the oldest dropped past the scrollback size, through
  // the family's writer: the actor never waits for the disk.
  std::shared_ptr<store_writer> writer;
  uint64_t next_chunk = 0;
  std::deque<stored_chunk> chunks;
  size_t chunk_bytes = 0;

  // This incarnation.
  std::optional<screen_state> screen;
  clock::time_point last_activity = clock::now();
  session_phase phase = session_phase::starting;
  /// The shell: the one the manager started (first incarnation) or one of
  /// its own; null once it ended.
  std::shared_ptr<pty_process> proc;
  std::shared_ptr<pty_reader> reader;
  int reap_tries = 0;
  /// Input the PTY did not take yet (its buffer was full).
  std::string pending_input;
  bool flush_armed = false;
  /// DELETE or the idle timeout: the shell was hung up on.
  bool ending = false;
  std::vector<viewer> viewers;
  /// Since when reading waits for viewers that are behind (unset: it does not).
  std::optional<clock::time_point> paused_since;
  uint64_t patience_generation = 0;
  net::io_context* io = nullptr;

  static inline const char* name = "troupe.pty.session";

  [[nodiscard]] bool persistent() const { return writer && spec.persistent; }

  void persist_output(std::string_view bytes) {
    if (!persistent() || bytes.empty() || phase == session_phase::ended) {
      return;
    }
    writer->put(column::sessions, chunk_key(id, next_chunk), std::string(bytes));
    chunks.push_back(stored_chunk{next_chunk++, bytes.size()});
    chunk_bytes += bytes.size();
    while ((chunk_bytes > scrollback_bytes || chunks.size() > stored_chunks_max) &&
           chunks.size() > 1) {
      writer->remove(column::sessions, chunk_key(id, chunks.front().seq));
      chunk_bytes -= chunks.front().bytes;
      chunks.pop_front();
    }
  }

  /// Forgets the session in the store (it ended, or was ended).
  void unpersist() {
    if (!persistent()) {
      return;
    }
    writer->remove(column::sessions, "desc/" + id);
    writer->remove_prefix(column::sessions, "sb/" + id + "/");
    chunks.clear();
    chunk_bytes = 0;
  }

  void record(char kind, std::string data) {
    const double t = std::chrono::duration<double>(clock::now() - created).count();
    cast_bytes += data.size();
    cast.push_back(cast_event{t, std::string(1, kind), std::move(data)});
    while ((cast_bytes > scrollback_bytes || cast.size() > cast_events_max) && cast.size() > 1) {
      cast_bytes -= cast.front().data.size();
      cast.pop_front();
    }
  }

  /// Output of the terminal, or of troupe about it: kept, recorded, shown.
  void emit(std::string_view bytes) {
    output.append(bytes);
    record('o', std::string(bytes));
    for (auto& v : viewers) {
      send_output(v, std::string(bytes));
    }
  }

  void send_output(viewer& v, std::string bytes) {
    v.unacked += bytes.size();
    send_envelope(v.handle, term::output_type, encode(term::bytes_msg{std::move(bytes)}));
  }

  void tell_viewers(const char* type, std::string body) {
    for (const auto& v : viewers) {
      send_envelope(v.handle, type, body);
    }
  }

  [[nodiscard]] viewer* find_viewer(const caf::actor_addr& who) {
    auto it = std::find_if(viewers.begin(), viewers.end(),
                           [&](const viewer& v) { return v.handle.address() == who; });
    return it == viewers.end() ? nullptr : &*it;
  }

  /// How far behind the viewers that reading waits for are.
  [[nodiscard]] uint64_t behind() const {
    uint64_t most = 0;
    for (const auto& v : viewers) {
      if (!v.slow) {
        most = std::max(most, v.unacked);
      }
    }
    return most;
  }

  [[nodiscard]] session_info info() const {
    const auto now = clock::now();
    // Running, it says what the terminal looks like: running, idle, waiting.
    const std::string state(phase == session_phase::running && screen
                                ? to_string(screen->state(now))
                                : to_string(phase));
    const auto last = screen ? screen->last_output().value_or(created) : created;
    session_info out;
    out.id = id;
    out.name = spec.name;
    out.pid = proc ? proc->pid() : 0;
    out.state = state;
    out.cols = cols;
    out.rows = rows;
    out.bytes_in = bytes_in;
    out.bytes_out = bytes_out;
    out.idle_ms = static_cast<uint64_t>(std::max<int64_t>(
        0, std::chrono::duration_cast<std::chrono::milliseconds>(now - last).count()));
    if (exit_status) {
      out.exit_status = *exit_status;
    }
    out.persistent = spec.persistent;
    out.restarts = incarnations > 0 ? incarnations - 1 : 0;
    out.command = spec.command;
    out.cwd = spec.cwd;
    return out;
  }

  /// recording_msg's wire form, packed straight from the events kept (a
  /// full recording: about 0.5 ms, against 4 ms to render it).
  [[nodiscard]] std::string recording() const { return encode(recording_view{id, spec, cast}); }

  [[nodiscard]] session_snapshot snapshot() const {
    session_snapshot s;
    s.id = id;
    s.spec = spec;
    s.output = output.contents();
    s.output_end = output.total_bytes();
    s.cast.assign(cast.begin(), cast.end());
    s.age_s = std::chrono::duration<double>(clock::now() - created).count();
    s.bytes_in = bytes_in;
    s.bytes_out = bytes_out;
    s.incarnations = incarnations;
    if (exit_status) {
      s.exit_status = *exit_status;
    }
    s.cols = cols;
    s.rows = rows;
    s.next_chunk = next_chunk;
    s.chunks.assign(chunks.begin(), chunks.end());
    return s;
  }

  void restore(session_snapshot& s) {
    output.restore(s.output, s.output_end);
    cast.assign(std::make_move_iterator(s.cast.begin()), std::make_move_iterator(s.cast.end()));
    cast_bytes = 0;
    for (const auto& e : cast) {
      cast_bytes += e.data.size();
    }
    created = clock::now() - std::chrono::duration_cast<clock::duration>(
                                 std::chrono::duration<double>(std::max(0.0, s.age_s)));
    bytes_in = s.bytes_in;
    bytes_out = s.bytes_out;
    incarnations = s.incarnations;
    if (s.exit_status) {
      exit_status = static_cast<int>(*s.exit_status);
    }
    next_chunk = s.next_chunk;
    chunks.assign(s.chunks.begin(), s.chunks.end());
    chunk_bytes = 0;
    for (const auto& c : chunks) {
      chunk_bytes += c.bytes;
    }
  }
};

/// A session's turns run on a terminal thread (a strand of the PTY
/// io_context), where its PTY is read and its attached viewers' WebSockets
/// are written: a keystroke and its echo pass no CAF worker.
using session_actor = caf::stateful_actor<session_state, strand_base>;

/// Gives the session's state to the manager, which keeps it for the next
/// incarnation (or for GET while the session is down). Not for an ended
/// session: nothing of it is wanted any more.
void hand_off(session_actor* self) {
  auto& st = self->state;
  if (st.phase == session_phase::ended) {
    return;
  }
  if (auto manager = st.ctx->registry.current("sessions/manager")) {
    self->send(manager, std::string(handoff_type), encode(handoff_msg{st.snapshot()}), uint64_t{0});
  }
}

void stop_reading(session_actor* self) {
  auto& st = self->state;
  if (st.reader) {
    st.reader->stop();
    st.reader.reset();
  }
}

void finish(session_actor* self, int status) {
  auto& st = self->state;
  st.exit_status = status;
  stop_reading(self);
  st.proc.reset();
  const bool done = st.ending || status == 0;
  st.tell_viewers(term::control_type,
                  encode(term::control_msg{json{
                      {"type", done ? "exit" : "notice"},
                      {"status", status},
                      {"message", done ? "the session ended (status " + std::to_string(status) + ")"
                                       : "the shell exited with status " + std::to_string(status) +
                                             "; restarting"}}
                                               .dump()}));
  if (done) {
    st.tell_viewers(term::close_type, encode(term::close_msg{"session ended"}));
    st.unpersist();
    if (st.phase != session_phase::ended) {
      st.phase = session_phase::exited;
      hand_off(self);  // kept, so GET shows how it ended
    }
    self->quit();  // transient: a normal end is not restarted
    return;
  }
  st.phase = session_phase::exited;
  st.log->warn("session {}: the shell exited with status {}; restarting", st.id, status);
  hand_off(self);
  self->quit(caf::make_error(caf::sec::runtime_error,
                             "the shell exited with status " + std::to_string(status)));
}

void write_input(session_actor* self, std::string bytes) {
  auto& st = self->state;
  if (!st.proc) {
    return;
  }
  if (st.pending_input.size() + bytes.size() > pending_input_max) {
    st.log->warn("session {}: input dropped: the program reads none", st.id);
    return;
  }
  st.pending_input += bytes;
  while (!st.pending_input.empty()) {
    auto n = st.proc->write(st.pending_input);
    if (!n || *n == 0) {
      break;
    }
    st.bytes_in += *n;
    st.last_activity = clock::now();
    st.pending_input.erase(0, *n);
  }
  if (!st.pending_input.empty() && !st.flush_armed) {
    st.flush_armed = true;
    self->delayed_send(self, std::chrono::milliseconds(5), flush_atom::value);
  }
}

void try_reap(session_actor* self) {
  auto& st = self->state;
  if (!st.proc) {
    return;
  }
  if (auto status = st.proc->reap()) {
    return finish(self, *status);
  }
  if (++st.reap_tries >= reap_tries_max) {
    st.proc->signal_group(SIGKILL);
  }
  self->delayed_send(self, reap_retry, reap_atom::value);
}

/// Reading waits while a viewer it waits for is far behind, and goes on
/// once every such viewer is close again.
void check_window(session_actor* self) {
  auto& st = self->state;
  if (!st.reader) {
    return;
  }
  const auto behind = st.behind();
  if (!st.paused_since && behind > term::window_high) {
    st.reader->pause();
    st.paused_since = clock::now();
    self->delayed_send(self, viewer_patience, patience_atom::value, ++st.patience_generation);
  } else if (st.paused_since && behind < term::window_low) {
    st.paused_since.reset();
    st.reader->resume();
  }
}

void on_output(session_actor* self, std::string bytes) {
  auto& st = self->state;
  const auto now = clock::now();
  st.bytes_out += bytes.size();
  st.last_activity = now;
  if (st.screen) {
    st.screen->feed(bytes, now);
  }
  st.persist_output(bytes);
  st.emit(bytes);
  check_window(self);
}

void start_shell(session_actor* self) {
  auto& st = self->state;
  if (!st.proc) {
    auto spawned = pty_process::spawn(spawn_options{st.spec.command, st.spec.cwd, st.spec.env,
                                                    static_cast<uint16_t>(st.spec.cols),
                                                    static_cast<uint16_t>(st.spec.rows)});
    if (!spawned) {
      st.phase = session_phase::exited;
      const auto why = "troupe: cannot start the session: " + spawned.err().message + "\r\n";
      st.output.append(why);
      st.record('o', why);
      hand_off(self);
      self->quit(caf::make_error(caf::sec::runtime_error, spawned.err().message));
      return;
    }
    st.proc = std::move(*spawned);
  }
  st.phase = session_phase::running;
  st.exit_status.reset();
  st.cols = static_cast<uint16_t>(st.spec.cols);
  st.rows = static_cast<uint16_t>(st.spec.rows);
  st.last_activity = clock::now();
  st.screen->feed("", clock::now());
  if (++st.incarnations > 1) {
    st.emit(restart_notice);
  }
  if (st.ctx->config.sessions.idle_timeout_s > 0) {
    self->delayed_send(self, std::chrono::seconds(st.ctx->config.sessions.idle_timeout_s),
                       idle_atom::value);
  }
  const int fd = ::dup(st.proc->fd());
  if (fd >= 0) {
    st.reader = std::make_shared<pty_reader>(*st.io, fd, caf::actor_cast<caf::actor>(self));
    st.reader->start();
    // However the actor ends (a kill skips the exit handler), its reader
    // stops: held here, not through the state, which is gone by then.
    self->attach_functor([reader = std::weak_ptr<pty_reader>(st.reader)](const caf::error&) {
      if (auto r = reader.lock()) {
        r->stop();
      }
    });
  }
}

/// The incarnation picks up what the previous one handed over.
void resume(session_actor* self) {
  auto& st = self->state;
  auto manager = st.ctx->registry.current("sessions/manager");
  if (!manager) {
    // The manager is restarting: what it held is gone; start afresh.
    st.log->warn("session {}: no state to resume (the manager is down)", st.id);
    return start_shell(self);
  }
  self->request(manager, std::chrono::seconds(5), std::string(resume_type),
                encode(session_id{st.id}), uint64_t{0})
      .await(
          [self](std::string& type, std::string& body, uint64_t) {
            auto& s = self->state;
            if (type == error_type) {
              // Ended while this incarnation was on its way.
              s.phase = session_phase::ended;
              self->quit();
              return;
            }
            auto reply = decode<resume_reply>(
                body, decode_limits{.body_bytes_max = snapshot_bytes_max, .elements_max = 65536});
            if (reply && reply->found) {
              s.restore(reply->snapshot);
            } else if (!reply) {
              s.log->error("session {}: its handed-over state is unreadable ({}); starting afresh",
                           s.id, reply.err().message);
            }
            start_shell(self);
          },
          [self](caf::error&) {
            self->state.log->warn("session {}: the manager did not answer; starting afresh",
                                  self->state.id);
            start_shell(self);
          });
}

void on_attach(session_actor* self, const term::attach_request& req, const caf::actor& who,
               caf::response_promise& rp) {
  auto& st = self->state;
  if (!who) {
    deliver(rp, make_error_envelope(
                    make_error(errc::bad_request, "term.attach needs a sender (the viewer)")));
    return;
  }
  if (st.phase == session_phase::ended) {
    deliver(rp, make_error_envelope(make_error(errc::not_found, "session '" + st.id + "' ended")));
    return;
  }
  auto replay = st.output.since(req.resume ? req.from : 0);
  const uint64_t from = st.output.total_bytes() - replay.size();
  deliver(rp, make_envelope(std::string(term::attach_type) + ".reply",
                            term::attach_reply{from, st.cols, st.rows}));
  if (st.find_viewer(who.address()) == nullptr) {
    self->monitor(who);
    st.viewers.push_back(viewer{who, req.readonly, 0, false});
  }
  auto& v = *st.find_viewer(who.address());
  for (size_t at = 0; at < replay.size(); at += replay_piece_bytes) {
    st.send_output(v, replay.substr(at, replay_piece_bytes));
  }
  check_window(self);
}

/// The session's answer to a request from the manager or a viewer.
envelope answer(session_actor* self, std::string_view type, std::string_view body,
                const caf::actor& sender, caf::response_promise& rp, bool& delivered) {
  auto& st = self->state;
  if (type == info_type) {
    return make_envelope(std::string(info_type) + ".reply", st.info());
  }
  if (type == scrollback_type) {
    return make_envelope(std::string(scrollback_type) + ".reply",
                         raw_document{"application/octet-stream", st.output.contents()});
  }
  if (type == recording_type) {
    // The events only: the manager renders them, off this thread.
    return envelope{std::string(recording_type) + ".reply", st.recording(), 0};
  }
  if (type == end_type) {
    // Ended for good: no restart, no state kept, nothing left in the store.
    st.phase = session_phase::ended;
    st.ending = true;
    st.unpersist();
    if (st.proc) {
      st.proc->signal_group(SIGHUP);
      self->delayed_send(self, std::chrono::milliseconds(st.ctx->config.sessions.hangup_grace_ms),
                         kill_atom::value);
    } else {
      self->quit();
    }
    return make_envelope(std::string(end_type) + ".reply", session_ended{st.id});
  }
  if (type == term::attach_type) {
    auto req = decode<term::attach_request>(body);
    if (!req) {
      return make_error_envelope(req.err());
    }
    on_attach(self, *req, sender, rp);
    delivered = true;
    return {};
  }
  return make_error_envelope(
      make_error(errc::unknown_type, "session actors do not answer '" + std::string(type) + "'"));
}

/// The signals a viewer may send a session's foreground job; 0 for others.
int signal_named(std::string_view name) {
  if (name == "INT") {
    return SIGINT;
  }
  if (name == "TERM") {
    return SIGTERM;
  }
  if (name == "KILL") {
    return SIGKILL;
  }
  if (name == "HUP") {
    return SIGHUP;
  }
  return 0;
}

/// Plain sends: the PTY's output, and what viewers say.
bool on_signal(session_actor* self, std::string_view type, std::string_view body) {
  auto& st = self->state;
  if (type == pty_output_type) {
    if (auto m = decode<term::bytes_msg>(body, decode_limits{.body_bytes_max = 1u << 20})) {
      on_output(self, std::move(m->bytes));
    }
    return true;
  }
  if (type == pty_eof_type) {
    try_reap(self);
    return true;
  }
  if (type == term::input_type) {
    const auto* v = st.find_viewer(caf::actor_cast<caf::actor_addr>(self->current_sender()));
    if (v != nullptr && v->readonly) {
      return true;
    }
    if (auto m = decode<term::bytes_msg>(body, decode_limits{.body_bytes_max = 2u << 20})) {
      write_input(self, std::move(m->bytes));
    }
    return true;
  }
  if (type == term::signal_type) {
    const auto* v = st.find_viewer(caf::actor_cast<caf::actor_addr>(self->current_sender()));
    auto m = decode<term::signal_msg>(body);
    if (v == nullptr || v->readonly || !m || !st.proc) {
      return true;
    }
    if (const int sig = signal_named(m->signal); sig != 0) {
      st.proc->signal_foreground(sig);
    }
    return true;
  }
  if (type == term::resize_type) {
    auto m = decode<term::resize_msg>(body);
    if (!m || !st.proc || check_terminal_size(m->cols, m->rows)) {
      return true;
    }
    if (auto resized = st.proc->resize(m->cols, m->rows); resized && *resized) {
      st.cols = m->cols;
      st.rows = m->rows;
      st.record('r', std::to_string(m->cols) + "x" + std::to_string(m->rows));
    }
    return true;
  }
  if (type == term::ack_type) {
    auto m = decode<term::ack_msg>(body);
    if (auto* v = st.find_viewer(caf::actor_cast<caf::actor_addr>(self->current_sender()));
        v != nullptr && m) {
      v->unacked -= std::min(v->unacked, m->bytes);
      if (v->slow && v->unacked < term::window_low) {
        v->slow = false;
      }
      check_window(self);
    }
    return true;
  }
  if (type == term::detach_type) {
    const auto who = caf::actor_cast<caf::actor_addr>(self->current_sender());
    std::erase_if(st.viewers, [&](const viewer& v) { return v.handle.address() == who; });
    check_window(self);
    return true;
  }
  return false;
}

caf::behavior session_behavior(session_actor* self, std::shared_ptr<node_context> ctx,
                               std::string id, session_spec spec,
                               std::shared_ptr<pty_process> first,
                               std::shared_ptr<store_writer> writer, net::io_context& io) {
  auto& st = self->state;
  st.ctx = std::move(ctx);
  st.id = std::move(id);
  st.spec = std::move(spec);
  st.proc = std::move(first);
  st.writer = std::move(writer);
  st.io = &io;
  st.log = logger("sessions");
  st.cols = static_cast<uint16_t>(st.spec.cols);
  st.rows = static_cast<uint16_t>(st.spec.rows);
  st.screen.emplace(std::chrono::milliseconds(st.ctx->config.sessions.idle_after_ms),
                    st.ctx->config.sessions.prompt_regex);
  self->set_exit_handler([self](caf::exit_msg& msg) {
    // Stopped (shutdown, the supervisor, chaos): end the shell, not just
    // the actor, and keep the state for whoever comes next.
    auto& s = self->state;
    stop_reading(self);
    if (s.proc) {
      s.proc->signal_group(SIGKILL);
      s.proc->reap();
    }
    s.proc.reset();
    hand_off(self);
    self->quit(msg.reason);
  });
  self->set_down_handler([self](caf::down_msg& down) {
    std::erase_if(self->state.viewers,
                  [&](const viewer& v) { return v.handle.address() == down.source; });
    check_window(self);
  });
  self->set_exception_handler([self](std::exception_ptr& eptr) -> caf::error {
    std::string what = "unknown exception";
    try {
      std::rethrow_exception(eptr);
    } catch (const std::exception& e) {
      what = e.what();
    } catch (...) {
    }
    auto& s = self->state;
    s.log->error("session {}: {}", s.id, what);
    stop_reading(self);
    if (s.proc) {
      s.proc->signal_group(SIGKILL);
    }
    hand_off(self);
    return caf::make_error(caf::sec::runtime_error, what);
  });
  resume(self);
  return {
      [self](const std::string& type, const std::string& body, uint64_t correlation_id) {
        if (on_signal(self, type, body)) {
          return;
        }
        if (!self->current_message_id().is_request()) {
          return;  // a stray answer or an unknown notice: nobody waits for a reply
        }
        // Read before the promise takes the sender out of the message.
        auto sender = caf::actor_cast<caf::actor>(self->current_sender());
        auto rp = self->make_response_promise();
        bool delivered = false;
        auto reply = answer(self, type, body, sender, rp, delivered);
        if (!delivered) {
          reply.correlation_id = correlation_id;
          deliver(rp, std::move(reply));
        }
      },
      [self](flush_atom) {
        self->state.flush_armed = false;  // only the timer disarms itself
        write_input(self, {});
      },
      [self](reap_atom) { try_reap(self); },
      [self](patience_atom, uint64_t generation) {
        auto& s = self->state;
        if (!s.paused_since || generation != s.patience_generation) {
          return;
        }
        // Reading goes on; whoever is still behind is not waited for again.
        for (auto& v : s.viewers) {
          if (v.unacked >= term::window_low) {
            v.slow = true;
          }
        }
        check_window(self);
      },
      [self](idle_atom) {
        auto& s = self->state;
        const auto timeout = std::chrono::seconds(s.ctx->config.sessions.idle_timeout_s);
        if (s.ending || !s.proc) {
          return;
        }
        const auto last = s.last_activity;
        if (clock::now() - last >= timeout) {
          s.log->info("session {}: idle for {} s; ending it", s.id, timeout.count());
          s.tell_viewers(term::control_type,
                         encode(term::control_msg{
                             R"({"type":"notice","message":"idle timeout: the session ends"})"}));
          s.ending = true;
          s.proc->signal_group(SIGHUP);
          self->delayed_send(self,
                             std::chrono::milliseconds(s.ctx->config.sessions.hangup_grace_ms),
                             kill_atom::value);
          return;
        }
        self->delayed_send(
            self,
            std::min<clock::duration>(
                timeout - (clock::now() - last) + std::chrono::milliseconds(10), timeout),
            idle_atom::value);
      },
      [self](kill_atom) {
        if (self->state.proc) {
          self->state.proc->signal_group(SIGKILL);
        }
      },
  };
}

}  // namespace

std::string render_recording(const session_snapshot& s) {
  return render_recording(s.id, s.spec, s.cast);
}

std::string render_recording(const std::string& id, const session_spec& spec,
                             const std::vector<cast_event>& cast) {
  std::string out =
      asciicast_header(static_cast<uint16_t>(spec.cols), static_cast<uint16_t>(spec.rows),
                       std::chrono::duration_cast<std::chrono::seconds>(
                           std::chrono::system_clock::now().time_since_epoch())
                           .count(),
                       spec.name.empty() ? id : spec.name);
  utf8_carry carry;
  for (const auto& e : cast) {
    auto text = carry.take(e.data);
    if (!text.empty()) {
      out += asciicast_event(e.t, e.kind.empty() ? 'o' : e.kind.front(), text);
    }
  }
  return out;
}

std::string chunk_key(const std::string& id, uint64_t seq) {
  char hex[17];
  std::snprintf(hex, sizeof hex, "%016llx", static_cast<unsigned long long>(seq));
  return "sb/" + id + "/" + hex;
}

child_spec session_child(std::shared_ptr<node_context> ctx, std::string id, session_spec spec,
                         std::shared_ptr<pty_process> first, std::shared_ptr<store_writer> writer,
                         net::io_context& io) {
  child_spec child;
  child.name = id;
  child.kind = actor_kind::worker;
  // A shell that ends normally (exit 0, `troupectl session kill`) is done;
  // one that dies abnormally comes back, within the restart intensity.
  child.restart = restart_type::transient;
  // The first shell goes to the first incarnation only.
  auto handed = std::make_shared<std::shared_ptr<pty_process>>(std::move(first));
  child.start = [ctx = std::move(ctx), id = std::move(id), spec = std::move(spec), handed,
                 writer = std::move(writer), &io](caf::actor_system& system, const std::string&) {
    return spawn_on_strand(
        system, net::make_strand(io),
        [ctx, id, spec, first = std::exchange(*handed, nullptr), writer, &io](session_actor* self) {
          return session_behavior(self, ctx, id, spec, first, writer, io);
        });
  };
  return child;
}

}  // namespace troupe::pty
