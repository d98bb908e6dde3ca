#include "actors/pty/sessions.hpp"

#include <signal.h>
#include <unistd.h>

#include <array>
#include <deque>
#include <filesystem>
#include <limits>
#include <map>
#include <mutex>
#include <random>
#include <set>

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
#include "runtime/actor/atoms.hpp"
#include "runtime/log/log.hpp"
#include "runtime/node/node_context.hpp"
#include "runtime/node/terminal.hpp"
#include "runtime/protocol/codec.hpp"
#include "storage/db.hpp"
#include "storage/writer.hpp"

namespace troupe::pty {

namespace {

using json = nlohmann::json;
using clock = std::chrono::steady_clock;
namespace net = boost::asio;

/// Output kept per session in memory (and replayed to new viewers).
constexpr size_t scrollback_bytes = 1u << 20;
/// EIO on the master can come a moment before the child can be reaped.
constexpr std::chrono::milliseconds reap_retry{10};
constexpr int reap_tries_max = 200;
/// Sessions one node holds.
constexpr size_t sessions_max = 10000;
/// What viewers (and the scrollback) see when a session comes back.
constexpr const char* node_restart_notice =
    "\r\n[troupe: the node restarted; this session was started again]\r\n";
constexpr const char* restart_notice = "\r\n[troupe: session restarted after the shell ended]\r\n";

}  // namespace

/// Where a session is in its life. `ended` is final: DELETE set it, and no
/// incarnation starts a shell after it.
enum class session_phase : uint8_t { starting, running, exited, restarting, ended };

[[nodiscard]] std::string_view to_string(session_phase p) {
  switch (p) {
    case session_phase::starting:
      return "starting";
    case session_phase::running:
      return "running";
    case session_phase::exited:
      return "exited";
    case session_phase::restarting:
      return "restarting";
    case session_phase::ended:
      return "ended";
  }
  return "unknown";
}

struct session_spec {
  std::vector<std::string> command;
  std::string cwd;
  std::map<std::string, std::string> env;
  uint16_t cols = 80;
  uint16_t rows = 24;
  std::string name;
  bool persistent = false;
};

/// What a session keeps across its incarnations (and what the manager
/// reports): shared by the actor, its reader and the manager, so guarded.
struct session_data {
  session_data(std::string i, session_spec s, const sessions_section& cfg)
      : id(std::move(i)),
        spec(std::move(s)),
        screen(std::chrono::milliseconds(cfg.idle_after_ms), cfg.prompt_regex),
        created(clock::now()),
        last_activity(created),
        hangup_grace(cfg.hangup_grace_ms),
        idle_timeout(std::chrono::seconds(cfg.idle_timeout_s)) {}

  const std::string id;
  const session_spec spec;

  mutable std::mutex mutex;
  scrollback output{scrollback_bytes};
  /// asciicast events: (seconds since creation, 'o' or 'r', data), bounded
  /// like the scrollback.
  std::deque<std::tuple<double, char, std::string>> cast;
  size_t cast_bytes = 0;
  screen_state screen;
  clock::time_point created;
  /// Last output or input: what the idle timeout measures.
  clock::time_point last_activity;
  const std::chrono::milliseconds hangup_grace;
  /// 0: never.
  const std::chrono::seconds idle_timeout;
  pid_t pid = 0;
  session_phase phase = session_phase::starting;
  std::optional<int> exit_status;
  uint16_t cols = 80;
  uint16_t rows = 24;
  uint64_t bytes_in = 0;
  uint64_t bytes_out = 0;
  uint32_t incarnations = 0;
  std::vector<std::shared_ptr<terminal_viewer>> viewers;
  /// The shell the manager started when the session was created (so that a
  /// node out of PTYs or fds refuses the request instead of accepting it);
  /// the first incarnation takes it, later ones spawn their own.
  std::unique_ptr<pty_process> first_process;

  // A persistent session's output also goes to the store, in chunks
  // "sb/<id>/<seq>", the oldest dropped past the scrollback size.
  // Through the sessions' writer: the session actor never waits for the disk.
  std::shared_ptr<store_writer> writer;
  uint64_t next_chunk = 0;
  std::deque<std::pair<uint64_t, size_t>> chunks;
  size_t chunk_bytes = 0;

  void persist_output(std::string_view bytes) {
    if (!writer || !spec.persistent || bytes.empty()) {
      return;
    }
    writer->put(column::sessions, chunk_key(next_chunk), std::string(bytes));
    chunks.emplace_back(next_chunk++, bytes.size());
    chunk_bytes += bytes.size();
    while (chunk_bytes > scrollback_bytes && chunks.size() > 1) {
      writer->remove(column::sessions, chunk_key(chunks.front().first));
      chunk_bytes -= chunks.front().second;
      chunks.pop_front();
    }
  }

  /// Forgets the session in the store (it ended, or was ended).
  void unpersist() {
    if (!writer || !spec.persistent) {
      return;
    }
    writer->remove(column::sessions, "desc/" + id);
    writer->remove_prefix(column::sessions, "sb/" + id + "/");
  }

  [[nodiscard]] std::string chunk_key(uint64_t seq) const {
    char hex[17];
    std::snprintf(hex, sizeof hex, "%016llx", static_cast<unsigned long long>(seq));
    return "sb/" + id + "/" + hex;
  }

  /// Sends to every viewer; forgets those that went away. Call unlocked.
  template <class F>
  void each_viewer(F&& f) {
    std::vector<std::shared_ptr<terminal_viewer>> now;
    {
      std::lock_guard lock(mutex);
      std::erase_if(viewers, [](const auto& v) { return v->gone(); });
      now = viewers;
    }
    for (const auto& v : now) {
      f(*v);
    }
  }

  void record(char kind, std::string data) {
    const double t = std::chrono::duration<double>(clock::now() - created).count();
    cast_bytes += data.size();
    cast.emplace_back(t, kind, std::move(data));
    while (cast_bytes > scrollback_bytes && cast.size() > 1) {
      cast_bytes -= std::get<2>(cast.front()).size();
      cast.pop_front();
    }
  }

  json info() const {
    std::lock_guard lock(mutex);
    const auto now = clock::now();
    // Running, it says what the terminal looks like: running, idle, waiting.
    const std::string state(phase == session_phase::running ? to_string(screen.state(now))
                                                            : to_string(phase));
    const auto last = screen.last_output().value_or(created);
    return json{
        {"id", id},
        {"name", spec.name},
        {"pid", pid},
        {"state", state},
        {"cols", cols},
        {"rows", rows},
        {"bytes_in", bytes_in},
        {"bytes_out", bytes_out},
        {"idle_ms", std::chrono::duration_cast<std::chrono::milliseconds>(now - last).count()},
        {"exit_status", exit_status ? json(*exit_status) : json(nullptr)},
        {"persistent", spec.persistent},
        {"restarts", incarnations > 0 ? incarnations - 1 : 0},
        {"command", spec.command},
        {"cwd", spec.cwd}};
  }
};

/// Every session of the node by id: the manager adds and removes, the
/// attach handler (on a gateway thread) looks up.
class session_table {
 public:
  std::shared_ptr<session_data> find(const std::string& id) const {
    std::lock_guard lock(mutex_);
    auto it = map_.find(id);
    return it == map_.end() ? std::shared_ptr<session_data>{} : it->second;
  }
  bool contains(const std::string& id) const { return find(id) != nullptr; }
  size_t size() const {
    std::lock_guard lock(mutex_);
    return map_.size();
  }
  void put(std::shared_ptr<session_data> d) {
    std::lock_guard lock(mutex_);
    map_[d->id] = std::move(d);
  }
  void erase(const std::string& id) {
    std::lock_guard lock(mutex_);
    map_.erase(id);
  }
  std::vector<std::shared_ptr<session_data>> all() const {
    std::lock_guard lock(mutex_);
    std::vector<std::shared_ptr<session_data>> out;
    for (const auto& [id, d] : map_) {
      out.push_back(d);
    }
    return out;
  }

 private:
  mutable std::mutex mutex_;
  std::map<std::string, std::shared_ptr<session_data>> map_;
};

namespace {

// Messages of the session actor (local: they carry bytes from the reader).
struct output_msg {
  std::string bytes;
};
struct input_msg {
  std::string bytes;
};
struct resize_msg {
  uint16_t cols = 0;
  uint16_t rows = 0;
};
struct eof_msg {};
struct end_msg {};

}  // namespace

}  // namespace troupe::pty

CAF_ALLOW_UNSAFE_MESSAGE_TYPE(troupe::pty::output_msg)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(troupe::pty::input_msg)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(troupe::pty::resize_msg)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(troupe::pty::eof_msg)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(troupe::pty::end_msg)

namespace troupe::pty {

namespace {

using reap_atom = caf::atom_constant<caf::atom("ptyreap")>;
using flush_atom = caf::atom_constant<caf::atom("ptyflush")>;
using restore_atom = caf::atom_constant<caf::atom("ptyrestore")>;
using idle_atom = caf::atom_constant<caf::atom("ptyidle")>;
using backpressure_atom = caf::atom_constant<caf::atom("ptybp")>;

/// Reading pauses while a viewer has more than backlog_high bytes waiting,
/// resumes below backlog_low, and never pauses longer than backpressure_max:
/// a stuck viewer cannot hold the session (or the others) for longer.
constexpr size_t backlog_high = 1u << 20;
constexpr size_t backlog_low = 256u << 10;
constexpr std::chrono::milliseconds backpressure_check{5};
constexpr std::chrono::milliseconds backpressure_max{2000};
using kill_atom = caf::atom_constant<caf::atom("ptykill")>;

/// Reads a PTY master on an Asio thread and hands its output to the actor.
class pty_reader : public std::enable_shared_from_this<pty_reader> {
 public:
  // A strand of its own: with several gateway threads, its reads and the
  // pause/resume/stop posts must not run at once.
  pty_reader(net::io_context& io, int fd, caf::actor owner)
      : stream_(net::make_strand(io), fd), owner_(std::move(owner)) {}

  /// Backpressure: no further read until resume(); the program then blocks
  /// on a full terminal, as it would under a slow real terminal.
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
  void read() {
    if (stopped_) {
      return;
    }
    stream_.async_read_some(net::buffer(buffer_.get(), buffer_bytes),
                            [self = shared_from_this()](boost::system::error_code ec, size_t n) {
                              if (n > 0) {
                                caf::anon_send(self->owner_,
                                               output_msg{std::string(self->buffer_.get(), n)});
                              }
                              if (ec) {
                                // EIO: the last process holding the terminal ended.
                                if (!self->stopped_) {
                                  caf::anon_send(self->owner_, eof_msg{});
                                }
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
  /// Not zero-filled: an idle session's buffer costs no resident memory.
  static constexpr size_t buffer_bytes = 16384;
  std::unique_ptr<char[]> buffer_ = std::make_unique_for_overwrite<char[]>(buffer_bytes);
  bool stopped_ = false;
  bool paused_ = false;
  /// Paused with no read pending: resume() starts one.
  bool parked_ = false;
};

struct session_state {
  std::shared_ptr<session_data> data;
  std::unique_ptr<pty_process> proc;
  std::shared_ptr<pty_reader> reader;
  bool ending = false;
  int reap_tries = 0;
  /// Input the PTY did not take yet (its buffer was full).
  std::string pending_input;
  /// Since when reading is paused for viewers that are behind (unset: not).
  std::optional<clock::time_point> paused_since;
  /// Viewers that stayed behind through a whole pause: not waited for again
  /// (their own bound drops them if they stay behind).
  std::set<const terminal_viewer*> slow;
  bool flush_armed = false;
  std::shared_ptr<spdlog::logger> log;
  static inline const char* name = "troupe.pty.session";
};

using session_actor = caf::stateful_actor<session_state>;

void finish(session_actor* self, int status) {
  auto& st = self->state;
  {
    std::lock_guard lock(st.data->mutex);
    st.data->exit_status = status;
    st.data->phase = st.ending || status == 0 ? session_phase::exited : session_phase::restarting;
  }
  if (st.reader) {
    st.reader->stop();
  }
  st.proc.reset();
  const bool done = st.ending || status == 0;
  const auto notice =
      json{{"type", done ? "exit" : "notice"},
           {"status", status},
           {"message",
            done ? "the session ended (status " + std::to_string(status) + ")"
                 : "the shell exited with status " + std::to_string(status) + "; restarting"}}
          .dump();
  st.data->each_viewer([&](terminal_viewer& v) {
    v.control(notice);
    if (done) {
      v.close("session ended");
    }
  });
  if (done) {
    st.data->unpersist();
    self->quit();  // transient: a normal end is not restarted
    return;
  }
  st.log->warn("session {}: the shell exited with status {}; restarting", st.data->id, status);
  self->quit(caf::make_error(caf::sec::runtime_error,
                             "the shell exited with status " + std::to_string(status)));
}

/// Input waiting beyond this is dropped: a viewer typing into a program
/// that reads nothing must not grow the node's memory.
constexpr size_t pending_input_max = 1u << 20;

void write_input(session_actor* self, std::string bytes) {
  auto& st = self->state;
  if (!st.proc) {
    return;
  }
  if (st.pending_input.size() + bytes.size() > pending_input_max) {
    st.log->warn("session {}: input dropped: the program reads none", st.data->id);
    return;
  }
  st.pending_input += bytes;
  while (!st.pending_input.empty()) {
    auto n = st.proc->write(st.pending_input);
    if (!n || *n == 0) {
      break;
    }
    {
      std::lock_guard lock(st.data->mutex);
      st.data->bytes_in += *n;
      st.data->last_activity = clock::now();
    }
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

caf::behavior session_behavior(session_actor* self, std::shared_ptr<session_data> data,
                               net::io_context& io) {
  auto& st = self->state;
  st.data = data;
  st.log = logger("sessions");
  {
    // Deleted while this incarnation was on its way (a restart already
    // scheduled): an ended session never starts a shell again.
    std::lock_guard lock(data->mutex);
    if (data->phase == session_phase::ended) {
      self->quit();
      return {};
    }
  }
  std::unique_ptr<pty_process> started;
  {
    std::lock_guard lock(data->mutex);
    started = std::move(data->first_process);
  }
  auto proc = started ? expected<std::unique_ptr<pty_process>>(std::move(started))
                      : pty_process::spawn(spawn_options{data->spec.command, data->spec.cwd,
                                                         data->spec.env, data->spec.cols,
                                                         data->spec.rows});
  if (!proc) {
    {
      std::lock_guard lock(data->mutex);
      data->phase = session_phase::exited;
      data->output.append("troupe: cannot start the session: " + proc.err().message + "\r\n");
    }
    self->quit(caf::make_error(caf::sec::runtime_error, proc.err().message));
    return {};
  }
  st.proc = std::move(*proc);
  {
    std::lock_guard lock(data->mutex);
    data->pid = st.proc->pid();
    data->phase = session_phase::running;
    data->exit_status.reset();
    data->cols = data->spec.cols;
    data->rows = data->spec.rows;
    data->screen.feed("", clock::now());
    if (++data->incarnations > 1) {
      data->output.append(restart_notice);
      data->record('o', restart_notice);
    }
  }
  if (data->incarnations > 1) {
    data->each_viewer([](terminal_viewer& v) { v.output(restart_notice); });
  }
  if (data->idle_timeout.count() > 0) {
    self->delayed_send(self, data->idle_timeout, idle_atom::value);
  }
  const int fd = ::dup(st.proc->fd());
  if (fd >= 0) {
    st.reader = std::make_shared<pty_reader>(io, fd, caf::actor_cast<caf::actor>(self));
    st.reader->start();
  }
  self->attach_functor([reader = st.reader](const caf::error&) {
    if (reader) {
      reader->stop();
    }
  });
  self->set_exit_handler([self](caf::exit_msg& msg) {
    // Stopping (shutdown, or the supervisor): end the shell, not just the actor.
    auto& s = self->state;
    if (s.proc) {
      s.proc->signal_group(SIGKILL);
      s.proc->reap();
      s.proc.reset();
    }
    self->quit(msg.reason);
  });
  return {
      [self](output_msg& m) {
        auto& d = *self->state.data;
        {
          std::lock_guard lock(d.mutex);
          d.bytes_out += m.bytes.size();
          d.last_activity = clock::now();
          d.output.append(m.bytes);
          d.screen.feed(m.bytes, clock::now());
          d.record('o', m.bytes);
          d.persist_output(m.bytes);
        }
        auto& s = self->state;
        size_t behind = 0;
        d.each_viewer([&](terminal_viewer& v) {
          v.output(m.bytes);
          if (!s.slow.contains(&v)) {
            behind = std::max(behind, v.backlog());
          }
        });
        if (behind > backlog_high && !s.paused_since && s.reader) {
          s.reader->pause();
          s.paused_since = clock::now();
          self->delayed_send(self, backpressure_check, backpressure_atom::value);
        }
      },
      [self](backpressure_atom) {
        auto& s = self->state;
        if (!s.paused_since || !s.reader) {
          return;
        }
        size_t behind = 0;
        std::set<const terminal_viewer*> alive;
        s.data->each_viewer([&](terminal_viewer& v) {
          alive.insert(&v);
          if (!s.slow.contains(&v)) {
            behind = std::max(behind, v.backlog());
          }
        });
        std::erase_if(s.slow, [&](const terminal_viewer* v) { return !alive.contains(v); });
        const bool stuck = clock::now() - *s.paused_since > backpressure_max;
        if (stuck) {
          // Reading goes on; whoever is still behind is not waited for again.
          s.data->each_viewer([&](terminal_viewer& v) {
            if (v.backlog() >= backlog_low) {
              s.slow.insert(&v);
            }
          });
        }
        if (behind < backlog_low || stuck) {
          s.paused_since.reset();
          s.reader->resume();
          return;
        }
        self->delayed_send(self, backpressure_check, backpressure_atom::value);
      },
      [self](input_msg& m) { write_input(self, std::move(m.bytes)); },
      [self](flush_atom) {
        self->state.flush_armed = false;  // only the timer disarms itself
        write_input(self, {});
      },
      [self](resize_msg& m) {
        auto& s = self->state;
        if (!s.proc) {
          return;
        }
        if (auto resized = s.proc->resize(m.cols, m.rows); resized && *resized) {
          std::lock_guard lock(s.data->mutex);
          s.data->cols = m.cols;
          s.data->rows = m.rows;
          s.data->record('r', std::to_string(m.cols) + "x" + std::to_string(m.rows));
        }
      },
      [self](eof_msg) { try_reap(self); },
      [self](reap_atom) { try_reap(self); },
      [self](end_msg) {
        auto& s = self->state;
        s.ending = true;
        if (s.proc) {
          s.proc->signal_group(SIGHUP);
          self->delayed_send(self, s.data->hangup_grace, kill_atom::value);
        }
      },
      [self](idle_atom) {
        auto& s = self->state;
        const auto timeout = s.data->idle_timeout;
        clock::time_point last;
        {
          std::lock_guard lock(s.data->mutex);
          last = s.data->last_activity;
        }
        if (s.ending || !s.proc) {
          return;
        }
        if (clock::now() - last >= timeout) {
          s.log->info("session {}: idle for {} s; ending it", s.data->id, timeout.count());
          s.data->each_viewer([](terminal_viewer& v) {
            v.control(R"({"type":"notice","message":"idle timeout: the session ends"})");
          });
          self->send(self, end_msg{});
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

// ---------------------------------------------------------------------------
// The manager: /v1/sessions
// ---------------------------------------------------------------------------

struct session_exchange {
  session_exchange(exchange_request r, std::shared_ptr<exchange_sink> s)
      : req(std::move(r)), sink(std::move(s)) {}
  session_exchange(const session_exchange&) = delete;
  session_exchange& operator=(const session_exchange&) = delete;
  // Dropped unanswered, its sink answers 500 (the gateway's abandon()).
  void reply(int status, std::string body, std::string type = "application/json") {
    sink->reply(status, {{"content-type", std::move(type)}}, std::move(body));
  }
  void error(int status, std::string_view code, std::string_view message) {
    http_headers headers{{"content-type", "application/json"}};
    if (status == 503) {
      headers.emplace_back("Retry-After", "1");  // as the gateway's own 503s
    }
    sink->reply(status, std::move(headers),
                json{{"error", {{"code", code}, {"message", message}}}}.dump());
  }
  exchange_request req;
  std::shared_ptr<exchange_sink> sink;
};

struct exchange_msg {
  std::shared_ptr<session_exchange> x;
};

}  // namespace

}  // namespace troupe::pty

CAF_ALLOW_UNSAFE_MESSAGE_TYPE(troupe::pty::exchange_msg)

namespace troupe::pty {

namespace {

struct manager_state {
  std::shared_ptr<node_context> ctx;
  net::io_context* io = nullptr;
  std::shared_ptr<session_table> sessions;
  /// Read at boot (restore) and when a persistent session is created.
  std::shared_ptr<db> store;
  std::shared_ptr<store_writer> writer;
  std::mt19937_64 rng{std::random_device{}()};
  std::shared_ptr<spdlog::logger> log;
  static inline const char* name = "troupe.pty.manager";
};

using manager_actor = caf::stateful_actor<manager_state>;

std::string new_id(manager_state& st) {
  for (;;) {
    char id[16];
    std::snprintf(id, sizeof id, "s-%08x", static_cast<uint32_t>(st.rng()));
    if (!st.sessions->contains(id)) {
      return id;
    }
  }
}

/// An integer field, its type and range checked before any conversion
/// (a double such as 1e20 does not fit the integer it would be cast to).
expected<int64_t> integer_field(const json& j, const char* name, int64_t fallback) {
  const auto it = j.find(name);
  if (it == j.end()) {
    return fallback;
  }
  const bool fits =
      it->is_number_integer() &&
      !(it->is_number_unsigned() &&
        it->get<uint64_t>() > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()));
  if (!fits) {
    return make_error(errc::bad_request, std::string(name) + ": must be an integer from 1 to " +
                                             std::to_string(terminal_side_max) + " (got " +
                                             it->dump() + ")");
  }
  return it->get<int64_t>();
}

expected<session_spec> parse_spec(const std::string& body) {
  auto j = json::parse(body.empty() ? "{}" : body, nullptr, false);
  if (j.is_discarded() || !j.is_object()) {
    return make_error(errc::bad_request, "the body must be a JSON object");
  }
  session_spec spec;
  try {
    if (j.contains("command")) {
      spec.command = j["command"].get<std::vector<std::string>>();
    }
    spec.cwd = j.value("cwd", std::string{});
    if (j.contains("env")) {
      spec.env = j["env"].get<std::map<std::string, std::string>>();
    }
    const auto cols = integer_field(j, "cols", 80);
    const auto rows = integer_field(j, "rows", 24);
    if (!cols || !rows) {
      return cols ? rows.err() : cols.err();
    }
    if (auto bad = check_terminal_size(*cols, *rows)) {
      return *bad;
    }
    spec.cols = static_cast<uint16_t>(*cols);
    spec.rows = static_cast<uint16_t>(*rows);
    spec.name = j.value("name", std::string{});
    spec.persistent = j.value("persistent", false);
  } catch (const json::exception& e) {
    return make_error(errc::bad_request, std::string("bad field: ") + e.what());
  }
  if (!spec.cwd.empty() && spec.cwd.front() != '/') {
    return make_error(errc::bad_request, "cwd must be an absolute path (got '" + spec.cwd + "')");
  }
  std::error_code ec;
  if (!spec.cwd.empty() && !std::filesystem::is_directory(spec.cwd, ec)) {
    return make_error(errc::bad_request, "cwd '" + spec.cwd + "' is not a directory");
  }
  // What would fail every spawn (a bad env name, a NUL in an argument) is
  // refused now, not retried into a crash loop.
  if (auto ok =
          pty_process::check(spawn_options{spec.command, spec.cwd, spec.env, spec.cols, spec.rows});
      !ok) {
    return std::move(ok).err();
  }
  return spec;
}

child_spec session_child(std::shared_ptr<session_data> data, net::io_context& io) {
  child_spec child;
  child.name = data->id;
  child.kind = actor_kind::worker;
  // A shell that ends normally (exit 0, `troupectl session kill`) is done;
  // one that dies abnormally comes back, within the restart intensity.
  child.restart = restart_type::transient;
  child.start = [data, &io](caf::actor_system& system, const std::string&) {
    return system.spawn(
        [data, &io](session_actor* self) { return session_behavior(self, data, io); });
  };
  return child;
}

/// A session's description as stored (and as POST /v1/sessions takes it).
json describe(const session_spec& s) {
  return json{{"command", s.command},
              {"cwd", s.cwd},
              {"env", s.env},
              {"cols", s.cols},
              {"rows", s.rows},
              {"name", s.name},
              {"persistent", s.persistent}};
}

/// Starts the session's actor under sessions/live; `done` gets nullopt or why not.
void launch(manager_actor* self, const std::shared_ptr<session_data>& data, const caf::actor& live,
            std::function<void(const std::optional<error>&)> done) {
  auto& st = self->state;
  st.sessions->put(data);
  self->request(live, std::chrono::seconds(10), start_child_atom::value,
                session_child(data, *st.io))
      .then(
          [self, data, done](std::string& type, std::string& body, uint64_t, std::string&) {
            if (type == error_type) {
              self->state.sessions->erase(data->id);
              data->unpersist();
              return done(read_error(envelope{type, body, 0, {}}));
            }
            done(std::nullopt);
          },
          [self, data, done](caf::error& e) {
            self->state.sessions->erase(data->id);
            data->unpersist();
            done(make_error(errc::unavailable, "starting the session failed: " + to_string(e)));
          });
}

void create(manager_actor* self, const std::shared_ptr<session_exchange>& x) {
  auto& st = self->state;
  auto spec = parse_spec(x->req.body);
  if (!spec) {
    return x->error(400, "bad_request", spec.err().message);
  }
  if (st.sessions->size() >= sessions_max) {
    return x->error(409, "conflict", "this node holds its maximum of sessions");
  }
  auto route = st.ctx->registry.find("sessions/live");
  if (!route || !route->current) {
    return x->error(503, "restarting", "the sessions supervisor is restarting; try again");
  }
  auto data = std::make_shared<session_data>(new_id(st), std::move(*spec), st.ctx->config.sessions);
  // The shell starts now: a node out of PTYs or file descriptors answers 503
  // here rather than 200 for a session that can never run.
  auto proc = pty_process::spawn(spawn_options{data->spec.command, data->spec.cwd, data->spec.env,
                                               data->spec.cols, data->spec.rows});
  if (!proc) {
    const auto& err = proc.err();
    return x->error(http_status(err.code), to_string(err.code),
                    "cannot start the session: " + err.message);
  }
  data->first_process = std::move(*proc);
  data->writer = st.writer;
  if (data->spec.persistent && st.store) {
    if (auto put = st.store->put(column::sessions, "desc/" + data->id, describe(data->spec).dump());
        !put) {
      return x->error(503, "unavailable", "the session could not be stored: " + put.err().message);
    }
  }
  launch(self, data, route->current, [x, data](const std::optional<error>& err) {
    if (err) {
      return x->error(http_status(err->code), to_string(err->code), err->message);
    }
    x->reply(200, data->info().dump());
  });
}

/// Persistent sessions of an earlier run come back, with their scrollback.
void restore(manager_actor* self) {
  auto& st = self->state;
  if (!st.store) {
    return;
  }
  // `live` starts before the manager, so it is registered by now.
  auto route = st.ctx->registry.find("sessions/live");
  if (!route || !route->current) {
    st.log->error("persistent sessions not restored: sessions/live is not running");
    return;
  }
  auto descs = st.store->scan_prefix(column::sessions, "desc/", 0, sessions_max);
  if (!descs) {
    st.log->error("persistent sessions could not be read: {}", descs.err().message);
    return;
  }
  for (const auto& [key, value] : *descs) {
    const auto id = key.substr(5);
    auto spec = parse_spec(value);
    if (!spec) {
      st.log->error("session {}: its stored description is unreadable ({}); skipped", id,
                    spec.err().message);
      continue;
    }
    spec->persistent = true;
    auto data = std::make_shared<session_data>(id, std::move(*spec), st.ctx->config.sessions);
    data->writer = st.writer;
    if (auto rows = st.store->scan_prefix(column::sessions, "sb/" + id + "/", 0, 1'000'000)) {
      for (const auto& [chunk_key, bytes] : *rows) {
        data->output.append(bytes);
        data->record('o', bytes);
        data->chunks.emplace_back(
            std::stoull(chunk_key.substr(chunk_key.rfind('/') + 1), nullptr, 16), bytes.size());
        data->chunk_bytes += bytes.size();
      }
      data->next_chunk = data->chunks.empty() ? 0 : data->chunks.back().first + 1;
    }
    data->output.append(node_restart_notice);
    data->record('o', node_restart_notice);
    st.sessions->put(data);
    launch(self, data, route->current, [self, id](const std::optional<error>& err) {
      if (err) {
        self->state.log->error("session {} did not come back: {}", id, err->message);
      }
    });
    st.log->info("session {} restored after the node restart", id);
  }
}

void end_session(manager_actor* self, const std::shared_ptr<session_exchange>& x,
                 const std::string& id) {
  auto& st = self->state;
  // Marked ended first: an incarnation that starts from now on quits at once.
  if (auto data = st.sessions->find(id)) {
    {
      std::lock_guard lock(data->mutex);
      data->phase = session_phase::ended;
    }
    data->unpersist();
  }
  auto route = st.ctx->registry.find("sessions/live/" + id);
  if (route && route->current) {
    // Running: it hangs up its shell (SIGKILL after the grace) and ends.
    caf::anon_send(caf::actor_cast<caf::actor>(route->current), end_msg{});
  } else if (route && route->supervisor) {
    // Restarting or given up on: its supervisor cancels the pending restart
    // and takes it out of the tree.
    caf::anon_send(route->supervisor, stop_child_atom::value, id);
  }
  st.sessions->erase(id);
  x->reply(200, json{{"ended", id}}.dump());
}

/// The session's report, with what only its supervisor knows: a session
/// given up on (crash loop) is "failed".
json info_of(const manager_state& st, const session_data& d) {
  auto j = d.info();
  if (auto route = st.ctx->registry.find("sessions/live/" + d.id);
      route && route->state == actor_state::failed) {
    j["state"] = "failed";
  }
  return j;
}

std::string cast_of(const session_data& d) {
  std::lock_guard lock(d.mutex);
  std::string out = asciicast_header(d.spec.cols, d.spec.rows,
                                     std::chrono::duration_cast<std::chrono::seconds>(
                                         std::chrono::system_clock::now().time_since_epoch())
                                         .count(),
                                     d.spec.name.empty() ? d.id : d.spec.name);
  utf8_carry carry;
  for (const auto& [t, kind, data] : d.cast) {
    auto text = carry.take(data);
    if (!text.empty()) {
      out += asciicast_event(t, kind, text);
    }
  }
  return out;
}

void on_exchange(manager_actor* self, const std::shared_ptr<session_exchange>& x) {
  auto& st = self->state;
  const auto& method = x->req.method;
  auto path = std::string_view(x->req.target).substr(0, x->req.target.find('?'));
  path.remove_prefix(std::string_view("/v1/sessions").size());
  if (path.empty() || path == "/") {
    if (method == "POST") {
      return create(self, x);
    }
    if (method == "GET") {
      json list = json::array();
      for (const auto& data : st.sessions->all()) {
        list.push_back(info_of(st, *data));
      }
      return x->reply(200, json{{"sessions", std::move(list)}}.dump());
    }
    return x->error(405, "method_not_allowed", "use GET or POST /v1/sessions");
  }
  path.remove_prefix(1);
  const auto slash = path.find('/');
  const std::string id(path.substr(0, slash));
  const auto rest = slash == std::string_view::npos ? std::string_view{} : path.substr(slash);
  auto found = st.sessions->find(id);
  if (!found) {
    return x->error(404, "not_found", "no session '" + id + "'");
  }
  if (rest.empty() && method == "GET") {
    return x->reply(200, info_of(st, *found).dump());
  }
  if (rest.empty() && method == "DELETE") {
    return end_session(self, x, id);
  }
  if (rest == "/scrollback" && method == "GET") {
    std::string bytes;
    {
      std::lock_guard lock(found->mutex);
      bytes = found->output.contents();
    }
    return x->reply(200, std::move(bytes), "application/octet-stream");
  }
  if (rest == "/cast" && method == "GET") {
    return x->reply(200, cast_of(*found), "application/x-asciicast");
  }
  x->error(404, "not_found", "no route for " + method + " /v1/sessions/" + id + std::string(rest));
}

}  // namespace

child_spec sessions_child(std::shared_ptr<node_context> ctx, std::shared_ptr<session_table> table,
                          std::shared_ptr<db> store, net::io_context& io) {
  auto policy = make_restart_policy(ctx->config.supervisor);
  supervisor_spec family{strategy::one_for_one, policy, {}, 100, 0x5e55};
  child_spec manager;
  manager.name = "manager";
  auto writer = store ? std::make_shared<store_writer>(store, "sessions") : nullptr;
  manager.start = [ctx, table, store, writer, &io](caf::actor_system& system, const std::string&) {
    return system.spawn([ctx, table, store, writer, &io](manager_actor* self) -> caf::behavior {
      self->state.ctx = ctx;
      self->state.sessions = table;
      self->state.store = store;
      self->state.writer = writer;
      if (table->size() == 0) {
        self->send(self, restore_atom::value);  // first start of the node's manager
      }
      self->state.io = &io;
      self->state.log = logger("sessions");
      return {
          [self](exchange_msg& m) { on_exchange(self, m.x); },
          [self](restore_atom) { restore(self); },
      };
    });
  };
  // `live` first: the manager restores sessions into it when it starts.
  family.children.push_back(supervisor_child(
      "live", ctx,
      supervisor_spec{strategy::dynamic, policy, {}, static_cast<uint32_t>(sessions_max), 0x5e56}));
  family.children.push_back(std::move(manager));
  return supervisor_child("sessions", ctx, std::move(family));
}

exchange_handler sessions_entry(std::shared_ptr<node_context> ctx) {
  return [weak = std::weak_ptr<node_context>(ctx)](exchange_request request,
                                                   std::shared_ptr<exchange_sink> sink) {
    auto ctx = weak.lock();
    auto route = ctx ? ctx->registry.find("sessions/manager") : std::nullopt;
    if (!route || !route->current) {
      sink->reply(
          503, {{"content-type", "application/json"}},
          R"({"error":{"code":"restarting","message":"the sessions manager is restarting"}})");
      return;
    }
    caf::anon_send(
        caf::actor_cast<caf::actor>(route->current),
        exchange_msg{std::make_shared<session_exchange>(std::move(request), std::move(sink))});
  };
}

namespace {

/// A viewer's way into its session: messages to whichever incarnation runs.
class session_port : public terminal_port {
 public:
  session_port(std::weak_ptr<node_context> ctx, std::string id)
      : ctx_(std::move(ctx)), path_("sessions/live/" + id) {}
  void input(std::string bytes) override { send(input_msg{std::move(bytes)}); }
  void resize(uint16_t cols, uint16_t rows) override { send(resize_msg{cols, rows}); }

 private:
  template <class T>
  void send(T msg) {
    auto ctx = ctx_.lock();
    auto route = ctx ? ctx->registry.find(path_) : std::nullopt;
    if (route && route->current) {
      caf::anon_send(caf::actor_cast<caf::actor>(route->current), std::move(msg));
    }
  }
  std::weak_ptr<node_context> ctx_;
  std::string path_;
};

}  // namespace

std::shared_ptr<session_table> make_session_table() {
  return std::make_shared<session_table>();
}

attach_handler sessions_attach(std::shared_ptr<node_context> ctx,
                               std::shared_ptr<session_table> table) {
  return [weak = std::weak_ptr<node_context>(ctx), table](
             const std::string& id,
             std::shared_ptr<terminal_viewer> viewer) -> expected<std::shared_ptr<terminal_port>> {
    auto data = table->find(id);
    if (!data) {
      return make_error(errc::not_found, "no session '" + id + "'");
    }
    {
      // Under the lock: the recent output goes out before anything newer.
      std::lock_guard lock(data->mutex);
      viewer->output(data->output.contents());
      data->viewers.push_back(viewer);
    }
    return std::shared_ptr<terminal_port>(std::make_shared<session_port>(weak, id));
  };
}

}  // namespace troupe::pty
