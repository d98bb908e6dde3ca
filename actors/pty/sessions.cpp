#include "actors/pty/sessions.hpp"

#include <filesystem>
#include <map>
#include <random>
#include <set>

#include <spdlog/logger.h>
#include <boost/asio/io_context.hpp>
#include <caf/all.hpp>
#include <nlohmann/json.hpp>

#include "actors/pty/messages.hpp"
#include "actors/pty/pty_process.hpp"
#include "actors/pty/session_actor.hpp"
#include "runtime/actor/ask.hpp"
#include "runtime/actor/atoms.hpp"
#include "runtime/actor/envelope_message.hpp"
#include "runtime/log/log.hpp"
#include "runtime/node/node_context.hpp"
#include "runtime/node/terminal.hpp"
#include "runtime/protocol/codec.hpp"
#include "storage/db.hpp"
#include "storage/writer.hpp"

namespace troupe::pty {

namespace {

using json = nlohmann::json;
namespace net = boost::asio;

/// Sessions one node holds.
constexpr size_t sessions_max = 10000;
constexpr std::string_view live_prefix = "sessions/live/";
/// How long the manager waits for a session's own answer.
constexpr std::chrono::seconds session_timeout{5};
/// Viewers that may wait for one restarting session.
constexpr size_t attaching_max = 256;

using restore_atom = caf::atom_constant<caf::atom("ptyrestore")>;
using done_fn = std::function<void(envelope)>;

struct manager_state {
  std::shared_ptr<node_context> ctx;
  net::io_context* io = nullptr;
  /// Read at boot (restore) and when a persistent session is created.
  std::shared_ptr<db> store;
  std::shared_ptr<store_writer> writer;
  asker requests;
  /// The state of sessions that are not running: between two incarnations
  /// (handed over by the one that ended, taken by the next), given up on,
  /// or ended by their shell and kept for GET until they are deleted.
  std::map<std::string, session_snapshot> held;
  /// Deleted, and still in the tree for a moment (hanging up): not shown.
  std::set<std::string> ended;
  /// Viewers' attaches to sessions that are restarting: forwarded to the
  /// next incarnation when it asks for its state.
  std::map<std::string, std::vector<std::pair<caf::response_promise, envelope>>> attaching;
  std::mt19937_64 rng{std::random_device{}()};
  std::shared_ptr<spdlog::logger> log;
  static inline const char* name = "troupe.pty.manager";
};

using manager_actor = caf::stateful_actor<manager_state>;

std::string live_path(const std::string& id) {
  return std::string(live_prefix) + id;
}

envelope reply_of(const char* type, const auto& body) {
  return make_envelope(std::string(type) + ".reply", body);
}

envelope error_of(errc code, std::string message) {
  return make_error_envelope(make_error(code, std::move(message)));
}

/// Forgets ended sessions that have left the tree.
void prune_ended(manager_state& st) {
  std::erase_if(st.ended,
                [&](const std::string& id) { return !st.ctx->registry.find(live_path(id)); });
}

std::string new_id(manager_state& st) {
  for (;;) {
    char id[16];
    std::snprintf(id, sizeof id, "s-%08x", static_cast<uint32_t>(st.rng()));
    if (!st.held.contains(id) && !st.ended.contains(id) && !st.ctx->registry.find(live_path(id))) {
      return id;
    }
  }
}

/// What would fail every spawn (a bad size, a relative or missing cwd, a
/// bad env name, a NUL in an argument) is refused now, not retried into a
/// crash loop.
std::optional<error> check_spec(const session_spec& spec) {
  if (auto bad = check_terminal_size(spec.cols, spec.rows)) {
    return bad;
  }
  if (!spec.cwd.empty() && spec.cwd.front() != '/') {
    return make_error(errc::bad_request, "cwd must be an absolute path (got '" + spec.cwd + "')");
  }
  std::error_code ec;
  if (!spec.cwd.empty() && !std::filesystem::is_directory(spec.cwd, ec)) {
    return make_error(errc::bad_request, "cwd '" + spec.cwd + "' is not a directory");
  }
  if (auto ok = pty_process::check(spawn_options{spec.command, spec.cwd, spec.env,
                                                 static_cast<uint16_t>(spec.cols),
                                                 static_cast<uint16_t>(spec.rows)});
      !ok) {
    return std::move(ok).err();
  }
  return std::nullopt;
}

/// A session's description as stored (JSON, as POST /v1/sessions takes it).
json describe(const session_spec& s) {
  return json{{"command", s.command},
              {"cwd", s.cwd},
              {"env", s.env},
              {"cols", s.cols},
              {"rows", s.rows},
              {"name", s.name},
              {"persistent", s.persistent}};
}

/// A stored description read back (through msgpack, as a request would be).
expected<session_spec> read_description(const std::string& stored) {
  auto doc = json::parse(stored, nullptr, false);
  if (doc.is_discarded() || !doc.is_object()) {
    return make_error(errc::bad_body, "not a JSON object");
  }
  const auto bytes = json::to_msgpack(doc);
  auto spec = decode<session_spec>(
      std::string_view(reinterpret_cast<const char*>(bytes.data()), bytes.size()));
  if (!spec) {
    return spec;
  }
  if (auto bad = check_spec(*spec)) {
    return *bad;
  }
  return spec;
}

/// The report of a session that is not running, from what the manager holds.
session_info info_held(const std::string& id, const session_snapshot* s, std::string state) {
  session_info out;
  out.id = id;
  out.state = std::move(state);
  if (s == nullptr) {
    return out;
  }
  out.name = s->spec.name;
  out.cols = s->cols;
  out.rows = s->rows;
  out.bytes_in = s->bytes_in;
  out.bytes_out = s->bytes_out;
  out.exit_status = s->exit_status;
  out.persistent = s->spec.persistent;
  out.restarts = s->incarnations > 0 ? s->incarnations - 1 : 0;
  out.command = s->spec.command;
  out.cwd = s->spec.cwd;
  return out;
}

/// What a session that does not run is called, from its place in the tree.
std::string state_name(const std::optional<actor_route>& route) {
  if (!route) {
    return "exited";
  }
  switch (route->state) {
    case actor_state::restarting:
      return "restarting";
    case actor_state::failed:
      return "failed";
    case actor_state::stopped:
      return "exited";
    default:
      return "starting";
  }
}

const session_snapshot* held_of(const manager_state& st, const std::string& id) {
  auto it = st.held.find(id);
  return it == st.held.end() ? nullptr : &it->second;
}

/// Removes a persistent session's description and output from the store.
void forget_stored(manager_state& st, const std::string& id) {
  if (st.writer) {
    st.writer->remove(column::sessions, "desc/" + id);
    st.writer->remove_prefix(column::sessions, "sb/" + id + "/");
  }
}

/// Asks the incarnation running now, and only it: if it goes down first,
/// the answer is an error at once. (An `asker` would retry through the
/// supervisor, which holds the request until the restart, seconds later:
/// wrong for a report of how the session is now.)
void ask_now(manager_actor* self, const caf::actor& incarnation, const char* type,
             std::function<void(envelope)> done) {
  self->request(incarnation, session_timeout, std::string(type), encode(empty_body{}), uint64_t{0})
      .then([done](std::string& t, std::string& body,
                   uint64_t id) { done(from_fields(t, body, id)); },
            [done, type](caf::error& e) {
              done(error_of(errc::unavailable,
                            std::string(type) + ": the session went down: " + to_string(e)));
            });
}

/// The session's report: its own while it runs, else what the manager holds.
void report(manager_actor* self, const std::string& id, std::function<void(session_info)> done) {
  auto& st = self->state;
  auto route = st.ctx->registry.find(live_path(id));
  if (!is_running(route)) {
    return done(info_held(id, held_of(st, id), state_name(route)));
  }
  ask_now(self, route->current, info_type, [self, id, done](envelope reply) {
    if (!reply.is_error()) {
      if (auto info = decode<session_info>(reply.body)) {
        return done(std::move(*info));
      }
    }
    // It went down meanwhile.
    auto& s = self->state;
    done(info_held(id, held_of(s, id), state_name(s.ctx->registry.find(live_path(id)))));
  });
}

/// Starts the session's actor under sessions/live; `done` gets nullopt or why not.
void launch(manager_actor* self, const std::string& id, const session_spec& spec,
            std::shared_ptr<pty_process> first,
            std::function<void(const std::optional<error>&)> done) {
  auto& st = self->state;
  auto forget = [self, id] {
    auto& s = self->state;
    s.held.erase(id);
    forget_stored(s, id);
  };
  auto live = st.ctx->registry.current("sessions/live");
  if (!live) {
    forget();
    return done(make_error(errc::restarting, "the sessions supervisor is restarting; try again"));
  }
  self->request(live, std::chrono::seconds(10), start_child_atom::value,
                session_child(st.ctx, id, spec, std::move(first), st.writer, *st.io))
      .then(
          [done, forget](std::string& type, std::string& body, uint64_t) {
            if (type == error_type) {
              forget();
              return done(read_error(envelope{type, body, 0}));
            }
            done(std::nullopt);
          },
          [done, forget](caf::error& e) {
            forget();
            done(make_error(errc::unavailable, "starting the session failed: " + to_string(e)));
          });
}

/// Sessions the node holds: those in the tree, and those only the manager
/// holds (ended by their shell, kept for GET).
size_t session_count(const manager_state& st) {
  size_t n = 0;
  for (const auto& child : st.ctx->registry.children("sessions/live")) {
    n += st.held.contains(child.path.substr(live_prefix.size())) ? 0 : 1;
  }
  return n + st.held.size();
}

void create(manager_actor* self, std::string_view body, const done_fn& done) {
  auto& st = self->state;
  auto spec = decode<session_spec>(body);
  if (!spec) {
    return done(make_error_envelope(spec.err()));
  }
  if (auto bad = check_spec(*spec)) {
    return done(make_error_envelope(*bad));
  }
  prune_ended(st);
  if (session_count(st) >= sessions_max) {
    return done(error_of(errc::conflict, "this node holds its maximum of sessions"));
  }
  // The shell starts now: a node out of PTYs or file descriptors answers 503
  // here rather than 200 for a session that can never run.
  auto proc = pty_process::spawn(spawn_options{spec->command, spec->cwd, spec->env,
                                               static_cast<uint16_t>(spec->cols),
                                               static_cast<uint16_t>(spec->rows)});
  if (!proc) {
    return done(error_of(proc.err().code, "cannot start the session: " + proc.err().message));
  }
  const auto id = new_id(st);
  if (spec->persistent && st.store) {
    if (auto put = st.store->put(column::sessions, "desc/" + id, describe(*spec).dump()); !put) {
      return done(
          error_of(errc::unavailable, "the session could not be stored: " + put.err().message));
    }
  }
  session_snapshot initial;
  initial.id = id;
  initial.spec = *spec;
  initial.cols = static_cast<uint16_t>(spec->cols);
  initial.rows = static_cast<uint16_t>(spec->rows);
  st.held[id] = std::move(initial);
  launch(self, id, *spec, std::shared_ptr<pty_process>(std::move(*proc)),
         [self, id, done](const std::optional<error>& err) {
           if (err) {
             return done(make_error_envelope(*err));
           }
           report(self, id, [done](session_info info) { done(reply_of(create_type, info)); });
         });
}

/// Persistent sessions of an earlier run come back, with their scrollback.
void restore(manager_actor* self) {
  auto& st = self->state;
  if (!st.store) {
    return;
  }
  auto descs = st.store->scan_prefix(column::sessions, "desc/", 0, sessions_max);
  if (!descs) {
    st.log->error("persistent sessions could not be read: {}", descs.err().message);
    return;
  }
  for (const auto& [key, value] : *descs) {
    const auto id = key.substr(5);
    auto spec = read_description(value);
    if (!spec) {
      st.log->error("session {}: its stored description is unreadable ({}); skipped", id,
                    spec.err().message);
      continue;
    }
    spec->persistent = true;
    session_snapshot snap;
    snap.id = id;
    snap.spec = *spec;
    snap.cols = static_cast<uint16_t>(spec->cols);
    snap.rows = static_cast<uint16_t>(spec->rows);
    std::string output;
    if (auto rows = st.store->scan_prefix(column::sessions, "sb/" + id + "/", 0, 1'000'000)) {
      for (const auto& [chunk, bytes] : *rows) {
        output += bytes;
        snap.chunks.push_back(stored_chunk{
            std::stoull(chunk.substr(chunk.rfind('/') + 1), nullptr, 16), bytes.size()});
        snap.cast.push_back(cast_event{0, "o", bytes});
      }
      snap.next_chunk = snap.chunks.empty() ? 0 : snap.chunks.back().seq + 1;
    }
    output += node_restart_notice;
    snap.cast.push_back(cast_event{0, "o", node_restart_notice});
    if (output.size() > scrollback_bytes) {
      output.erase(0, output.size() - scrollback_bytes);
    }
    snap.output_end = output.size();
    snap.output = std::move(output);
    st.held[id] = std::move(snap);
    launch(self, id, *spec, nullptr, [self, id](const std::optional<error>& err) {
      if (err) {
        self->state.log->error("session {} did not come back: {}", id, err->message);
      }
    });
    st.log->info("session {} restored after the node restart", id);
  }
}

void end_session(manager_actor* self, const std::string& id, const done_fn& done) {
  auto& st = self->state;
  prune_ended(st);
  const auto path = live_path(id);
  auto route = st.ctx->registry.find(path);
  const bool was_held = st.held.erase(id) > 0;
  if (st.ended.contains(id) || (!route && !was_held)) {
    return done(error_of(errc::not_found, "no session '" + id + "'"));
  }
  auto ended = reply_of(end_type, session_ended{id});
  if (auto waiting = st.attaching.extract(id); !waiting.empty()) {
    for (auto& [promise, msg] : waiting.mapped()) {
      deliver(promise,
              make_error_envelope(make_error(errc::not_found, "session '" + id + "' ended"),
                                  msg.correlation_id));
    }
  }
  if (is_running(route)) {
    // It hangs up its shell (SIGKILL after the grace), forgets itself in the
    // store and ends; until it has left the tree it is not shown.
    st.ended.insert(id);
    st.requests.ask(self, path, make_envelope(end_type, empty_body{}), session_timeout,
                    [done, ended](envelope) { done(ended); });
    return;
  }
  if (route && route->supervisor && route->state != actor_state::stopped) {
    // Restarting or given up on: its supervisor cancels the pending restart
    // and takes it out of the tree.
    st.ended.insert(id);
    caf::anon_send(route->supervisor, stop_child_atom::value, id);
  }
  // Not running, so nothing else writes its entries any more.
  forget_stored(st, id);
  done(ended);
}

/// Renders a running session's recording (a recording_msg body) on a
/// one-shot actor: a full one takes about 4 ms, which the manager's other
/// requests (create, get, an attach to a restarting session) do not wait for.
void render_apart(manager_actor* self, std::string events, const done_fn& done) {
  auto renderer = self->spawn([](caf::event_based_actor* r) -> caf::behavior {
    return {[r](const std::string&, const std::string& body, uint64_t) {
      auto rp = r->make_response_promise();
      auto m = decode<recording_msg>(body, decode_limits{.body_bytes_max = snapshot_bytes_max});
      deliver(rp, m ? reply_of(cast_type, raw_document{"application/x-asciicast",
                                                       render_recording(m->id, m->spec, m->cast)})
                    : error_of(errc::internal,
                               "a session's recording is unreadable: " + m.err().message));
      r->quit();
    }};
  });
  self->request(renderer, caf::infinite, std::string(recording_type), std::move(events),
                uint64_t{0})
      .then([done](std::string& t, std::string& b, uint64_t id) { done(from_fields(t, b, id)); },
            [done](caf::error& e) {
              done(error_of(errc::internal, "rendering a recording failed: " + to_string(e)));
            });
}

/// session.scrollback and session.cast: the session's own answer while it
/// runs, else from what the manager holds.
void document(manager_actor* self, const char* type, const std::string& id, const done_fn& done) {
  auto& st = self->state;
  auto route = st.ctx->registry.find(live_path(id));
  if (is_running(route) && std::string_view(type) == scrollback_type) {
    ask_now(self, route->current, type, [done](envelope reply) { done(std::move(reply)); });
    return;
  }
  if (is_running(route)) {
    // The session sends its events and they are rendered elsewhere: the
    // session's thread carries every terminal's keystrokes.
    ask_now(self, route->current, recording_type, [self, done](envelope reply) {
      if (reply.is_error()) {
        return done(std::move(reply));
      }
      render_apart(self, std::move(reply.body), done);
    });
    return;
  }
  const auto* s = held_of(st, id);
  if (s == nullptr) {
    return done(error_of(errc::unavailable, "session '" + id + "' is " + state_name(route) +
                                                " and its output is not held"));
  }
  if (std::string_view(type) == scrollback_type) {
    return done(reply_of(type, raw_document{"application/octet-stream", s->output}));
  }
  done(reply_of(type, raw_document{"application/x-asciicast", render_recording(*s)}));
}

void list(manager_actor* self, const done_fn& done) {
  auto& st = self->state;
  prune_ended(st);
  std::vector<std::string> ids;
  std::set<std::string> seen;
  for (const auto& child : st.ctx->registry.children("sessions/live")) {
    auto id = child.path.substr(live_prefix.size());
    if (!st.ended.contains(id) && seen.insert(id).second) {
      ids.push_back(std::move(id));
    }
  }
  for (const auto& [id, snap] : st.held) {
    if (seen.insert(id).second) {
      ids.push_back(id);
    }
  }
  struct gather {
    session_list list;
    size_t waiting = 0;
  };
  auto all = std::make_shared<gather>();
  all->list.sessions.resize(ids.size());
  all->waiting = ids.size();
  if (ids.empty()) {
    return done(reply_of(list_type, all->list));
  }
  for (size_t i = 0; i < ids.size(); ++i) {
    report(self, ids[i], [all, i, done](session_info info) {
      all->list.sessions[i] = std::move(info);
      if (--all->waiting == 0) {
        done(reply_of(list_type, all->list));
      }
    });
  }
}

/// A viewer's term.attach: forwarded, its sender kept, to the session's
/// running incarnation, which answers the viewer itself; held while the
/// session restarts, until the next incarnation asks for its state.
void attach(manager_actor* self, envelope msg, caf::response_promise promise) {
  auto& st = self->state;
  auto req = decode<term::attach_request>(msg.body);
  if (!req) {
    return deliver(promise, make_error_envelope(req.err(), msg.correlation_id));
  }
  prune_ended(st);
  auto route = st.ctx->registry.find(live_path(req->id));
  if (st.ended.contains(req->id) || !route) {
    return deliver(promise,
                   make_error_envelope(make_error(errc::not_found, "no session '" + req->id + "'"),
                                       msg.correlation_id));
  }
  if (is_running(route)) {
    return delegate(promise, route->current, std::move(msg));
  }
  if (route->state == actor_state::restarting || route->state == actor_state::starting) {
    auto& waiting = st.attaching[req->id];
    if (waiting.size() >= attaching_max) {
      return deliver(promise, make_error_envelope(
                                  make_error(errc::restarting,
                                             "session '" + req->id + "' is restarting; try again"),
                                  msg.correlation_id));
    }
    waiting.emplace_back(std::move(promise), std::move(msg));
    return;
  }
  deliver(promise,
          make_error_envelope(
              make_error(errc::unavailable, "session '" + req->id + "' is " + state_name(route)),
              msg.correlation_id));
}

/// A request that names a session: known, and not deleted.
expected<std::string> session_of(manager_state& st, std::string_view body) {
  auto req = decode<session_id>(body);
  if (!req) {
    return std::move(req).err();
  }
  prune_ended(st);
  if (st.ended.contains(req->id) ||
      (!st.held.contains(req->id) && !st.ctx->registry.find(live_path(req->id)))) {
    return make_error(errc::not_found, "no session '" + req->id + "'");
  }
  return std::move(req->id);
}

void on_request(manager_actor* self, std::string_view type, std::string_view body,
                const caf::actor& sender, const done_fn& done) {
  auto& st = self->state;
  if (type == create_type) {
    return create(self, body, done);
  }
  if (type == list_type) {
    return list(self, done);
  }
  if (type == resume_type) {
    auto req = decode<session_id>(body);
    if (!req) {
      return done(make_error_envelope(req.err()));
    }
    if (st.ended.contains(req->id)) {
      return done(error_of(errc::not_found, "session '" + req->id + "' was ended"));
    }
    resume_reply reply;
    if (auto it = st.held.find(req->id); it != st.held.end()) {
      reply.found = true;
      reply.snapshot = std::move(it->second);
      st.held.erase(it);
    }
    done(reply_of(resume_type, reply));
    // After the reply, so the incarnation has its state before its viewers.
    if (auto waiting = st.attaching.extract(req->id); !waiting.empty() && sender) {
      for (auto& [promise, msg] : waiting.mapped()) {
        delegate(promise, sender, std::move(msg));
      }
    }
    return;
  }
  if (type == end_type) {
    auto req = decode<session_id>(body);
    return req ? end_session(self, req->id, done) : done(make_error_envelope(req.err()));
  }
  auto id = session_of(st, body);
  if (type == get_type || type == scrollback_type || type == cast_type) {
    if (!id) {
      return done(make_error_envelope(id.err()));
    }
  }
  if (type == get_type) {
    return report(self, *id, [done](session_info info) { done(reply_of(get_type, info)); });
  }
  if (type == scrollback_type || type == cast_type) {
    return document(self, type == scrollback_type ? scrollback_type : cast_type, *id, done);
  }
  done(error_of(errc::unknown_type,
                "sessions/manager does not answer '" + std::string(type) +
                    "' (session.create, .list, .get, .end, .scrollback, .cast)"));
}

}  // namespace

child_spec sessions_child(std::shared_ptr<node_context> ctx, std::shared_ptr<db> store,
                          net::io_context& io) {
  auto policy = make_restart_policy(ctx->config.supervisor);
  supervisor_spec family{strategy::one_for_one, policy, {}, 100, 0x5e55};
  child_spec manager;
  manager.name = "manager";
  auto writer = store ? std::make_shared<store_writer>(store, "sessions") : nullptr;
  manager.start = [ctx, store, writer, &io](caf::actor_system& system, const std::string&) {
    return system.spawn([ctx, store, writer, &io](manager_actor* self) -> caf::behavior {
      auto& st = self->state;
      st.ctx = ctx;
      st.store = store;
      st.writer = writer;
      st.io = &io;
      st.requests = asker{ctx->registry};
      st.log = logger("sessions");
      // `live` starts before the manager: with no session in it, this is
      // the node's first manager, which brings the persistent ones back.
      if (ctx->registry.children("sessions/live").empty()) {
        self->send(self, restore_atom::value);
      }
      return {
          [self](const std::string& type, const std::string& body, uint64_t correlation_id) {
            if (type == handoff_type) {
              auto m = decode<handoff_msg>(
                  body, decode_limits{.body_bytes_max = snapshot_bytes_max, .elements_max = 65536});
              if (!m) {
                self->state.log->error("a session's handed-over state is unreadable: {}",
                                       m.err().message);
              } else if (!self->state.ended.contains(m->snapshot.id)) {
                auto id = m->snapshot.id;
                self->state.held[id] = std::move(m->snapshot);
              }
              return;
            }
            if (!self->current_message_id().is_request()) {
              return;
            }
            // Read before the promise takes the sender out of the message.
            auto sender = caf::actor_cast<caf::actor>(self->current_sender());
            auto rp = self->make_response_promise();
            if (type == term::attach_type) {
              return attach(self, envelope{type, body, correlation_id}, std::move(rp));
            }
            on_request(self, type, body, sender, [rp, correlation_id](envelope reply) mutable {
              reply.correlation_id = correlation_id;
              deliver(rp, std::move(reply));
            });
          },
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

}  // namespace troupe::pty
