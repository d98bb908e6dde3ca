#include "actors/agents/agents.hpp"

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>

#include <spdlog/logger.h>
#include <caf/all.hpp>
#include <nlohmann/json.hpp>

#include "actors/agents/agent.hpp"
#include "actors/agents/messages.hpp"
#include "actors/agents/personas.hpp"
#include "actors/agents/shell.hpp"
#include "actors/pty/messages.hpp"
#include "runtime/actor/ask.hpp"
#include "runtime/actor/atoms.hpp"
#include "runtime/actor/envelope_message.hpp"
#include "runtime/actor/serve.hpp"
#include "runtime/log/log.hpp"
#include "runtime/node/node_context.hpp"
#include "runtime/protocol/codec.hpp"
#include "storage/db.hpp"

namespace troupe::agents {

namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

/// Descriptors in the transcripts column: "a/<name>" -> agent_spec (JSON).
constexpr std::string_view spec_prefix = "a/";
/// How long the manager waits for an agent's own answer.
constexpr std::chrono::seconds agent_timeout{5};
/// A store page of transcript entries, and of descriptors.
constexpr size_t scan_rows = 10000;
/// How long a deleted agent's SessionEnd hooks may take (a hook's own
/// default timeout is 60 s).
constexpr std::chrono::seconds session_end_timeout{70};
/// The sessions family, where agents' terminal sessions live.
constexpr std::string_view sessions_manager_path = "sessions/manager";

std::string spec_key(std::string_view name) {
  return std::string(spec_prefix) + std::string(name);
}

std::string entries_prefix(std::string_view agent) {
  return "t/" + std::string(agent) + "/";
}

envelope error_of(errc code, std::string message, uint64_t correlation_id = 0) {
  return make_error_envelope(make_error(code, std::move(message)), correlation_id);
}

// ---- the journal -----------------------------------------------------------

/// The JSONL files the journal appends to, kept open (the most recently
/// used `open_files_max`). Owned by the journal's one thread.
class jsonl_files {
 public:
  static constexpr size_t open_files_max = 64;
  jsonl_files() = default;
  jsonl_files(const jsonl_files&) = delete;
  jsonl_files& operator=(const jsonl_files&) = delete;
  ~jsonl_files() {
    for (auto& [path, f] : open_) {
      std::fclose(f.file);
    }
  }

  /// Appends `lines` (each with a newline) to the file at `path`.
  void append(const std::string& path, const std::vector<transcript_entry>& lines) {
    auto it = open_.find(path);
    if (it == open_.end()) {
      std::error_code ec;
      fs::create_directories(fs::path(path).parent_path(), ec);
      std::FILE* f = std::fopen(path.c_str(), "ae");
      if (f == nullptr) {
        return;  // the store has the entries; the copy is best effort
      }
      if (open_.size() >= open_files_max) {
        auto oldest = std::min_element(
            open_.begin(), open_.end(),
            [](const auto& a, const auto& b) { return a.second.used < b.second.used; });
        std::fclose(oldest->second.file);
        open_.erase(oldest);
      }
      it = open_.emplace(path, entry{f, 0}).first;
    }
    it->second.used = ++clock_;
    for (const auto& e : lines) {
      std::fwrite(e.data.data(), 1, e.data.size(), it->second.file);
      std::fputc('\n', it->second.file);
    }
    std::fflush(it->second.file);
  }

  void close(const std::string& path) {
    if (auto it = open_.find(path); it != open_.end()) {
      std::fclose(it->second.file);
      open_.erase(it);
    }
  }

 private:
  struct entry {
    std::FILE* file = nullptr;
    uint64_t used = 0;
  };
  std::map<std::string, entry> open_;
  uint64_t clock_ = 0;
};

std::shared_ptr<const handler_table> journal_handlers(const std::shared_ptr<node_context>& ctx,
                                                      std::shared_ptr<db> store) {
  auto files = std::make_shared<jsonl_files>();
  auto table = std::make_shared<handler_table>(decode_limits{.body_bytes_max = 256u << 20});
  const auto dir = fs::path(ctx->config.node.data_dir) / "transcripts";
  table->on<append_request>(
      transcript_append_type,
      [store, ctx, files](const append_request& req) -> expected<append_reply> {
        if (auto bad = agent_name_problem(req.agent); !bad.empty()) {
          return make_error(errc::bad_request, bad);
        }
        for (const auto& e : req.entries) {
          if (auto put = store->put(column::transcripts, entry_key(req.agent, e.seq), e.data);
              !put) {
            return std::move(put).err();
          }
        }
        // The JSONL copy hooks read (transcript_path); the store is the truth.
        files->append(transcript_file(*ctx, req.agent), req.entries);
        return append_reply{req.entries.size()};
      });
  table->on<read_request>(
      transcript_read_type, [store](const read_request& req) -> expected<transcript_page> {
        if (auto bad = agent_name_problem(req.agent); !bad.empty()) {
          return make_error(errc::bad_request, bad);
        }
        const auto limit = req.limit == 0 ? transcript_page_max
                                          : std::min<uint64_t>(req.limit, transcript_page_max);
        auto rows = store->scan_prefix(column::transcripts, entries_prefix(req.agent), 0, limit + 1,
                                       entry_key(req.agent, req.after + 1));
        if (!rows) {
          return std::move(rows).err();
        }
        transcript_page page;
        for (auto& [key, value] : *rows) {
          const auto seq = std::stoull(key.substr(key.rfind('/') + 1), nullptr, 16);
          if (page.entries.size() == limit) {
            page.next = page.entries.back().seq;
            break;
          }
          page.entries.push_back(transcript_entry{seq, std::move(value)});
        }
        return page;
      });
  table->on<agent_name>(
      transcript_drop_type, [store, ctx, files](const agent_name& req) -> expected<drop_reply> {
        if (auto bad = agent_name_problem(req.name); !bad.empty()) {
          return make_error(errc::bad_request, bad);
        }
        for (;;) {
          auto rows =
              store->scan_prefix(column::transcripts, entries_prefix(req.name), 0, scan_rows);
          if (!rows) {
            return std::move(rows).err();
          }
          if (rows->empty()) {
            break;
          }
          for (const auto& row : *rows) {
            if (auto gone = store->remove(column::transcripts, row.first); !gone) {
              return std::move(gone).err();
            }
          }
        }
        std::error_code ec;
        files->close(transcript_file(*ctx, req.name));
        fs::remove(transcript_file(*ctx, req.name), ec);
        return drop_reply{req.name};
      });
  return table;
}

// ---- the tool threads -------------------------------------------------------

using idle_atom = caf::atom_constant<caf::atom("idle")>;

/// Idle worker threads agents/tools keeps; more go away.
constexpr size_t idle_workers_max = 8;

/// One worker thread: a job at a time; its answer goes to the job's asker.
caf::behavior tool_worker(caf::event_based_actor* self, caf::actor pool,
                          std::shared_ptr<const node_context> ctx) {
  return {[self, pool, ctx](std::string& type, std::string& body, uint64_t correlation_id) {
    auto rp = self->make_response_promise();
    envelope done;
    try {
      done = run_worker_job(type, body, worker_env{&self->system(), ctx});
    } catch (const std::exception& e) {
      done = make_error_envelope(make_error(errc::internal, e.what()));
    }
    done.correlation_id = correlation_id;
    deliver(rp, std::move(done));
    self->send(pool, idle_atom::value);
  }};
}

struct tools_state {
  std::vector<caf::actor> idle;
  static inline const char* name = "troupe.agents.tools";
};

/// agents/tools: hands each job to an idle worker thread, or starts one, so
/// that a hook or a tool that blocks (or hangs until its timeout) holds one
/// thread and never another agent's job. Workers are linked to it.
child_spec tools_child(std::shared_ptr<const node_context> ctx) {
  child_spec spec;
  spec.name = "tools";
  spec.kind = actor_kind::worker;
  spec.restart = restart_type::permanent;
  spec.start = [ctx](caf::actor_system& system, const std::string&) {
    return system.spawn([ctx](caf::stateful_actor<tools_state>* self) -> caf::behavior {
      return {
          [self, ctx](std::string& type, std::string& body, uint64_t correlation_id) {
            auto& idle = self->state.idle;
            caf::actor worker;
            if (idle.empty()) {
              worker = self->spawn<caf::detached + caf::linked>(
                  tool_worker, caf::actor_cast<caf::actor>(self), ctx);
            } else {
              worker = std::move(idle.back());
              idle.pop_back();
            }
            auto rp = self->make_response_promise();
            delegate(rp, worker, envelope{std::move(type), std::move(body), correlation_id});
          },
          [self](idle_atom) {
            auto worker = caf::actor_cast<caf::actor>(self->current_sender());
            if (self->state.idle.size() >= idle_workers_max) {
              self->send_exit(worker, caf::exit_reason::normal);
              return;
            }
            self->state.idle.push_back(std::move(worker));
          },
      };
    });
  };
  return spec;
}

child_spec journal_child(std::shared_ptr<node_context> ctx, std::shared_ptr<db> store) {
  child_spec spec;
  spec.name = "journal";
  spec.kind = actor_kind::worker;
  spec.restart = restart_type::permanent;
  spec.start = [ctx, store](caf::actor_system& system, const std::string&) {
    return system.spawn<caf::detached>([ctx, store](caf::event_based_actor* self) {
      return serve(self, journal_handlers(ctx, store));
    });
  };
  return spec;
}

// ---- the manager -----------------------------------------------------------

using done_fn = std::function<void(envelope)>;

struct manager_state {
  std::shared_ptr<node_context> ctx;
  std::shared_ptr<db> store;
  asker requests;
  /// Every agent the node holds, by name.
  std::map<std::string, agent_spec> agents;
  /// Deleted, and maybe still in the tree for a moment: not shown.
  std::set<std::string> deleting;
  std::shared_ptr<spdlog::logger> log;
  static inline const char* name = "troupe.agents.manager";
};

using manager_actor = caf::stateful_actor<manager_state>;

std::string live_name(const std::string& name) {
  return std::string(live_prefix) + name;
}

json spec_json(const agent_spec& s) {
  return json{{"name", s.name},
              {"workspace", s.workspace},
              {"persona", s.persona},
              {"model", s.model},
              {"context_tokens", s.context_tokens},
              {"budget_tokens", s.budget_tokens},
              {"max_turns", s.max_turns},
              {"max_tokens", s.max_tokens},
              {"parent", s.parent},
              {"depth", s.depth}};
}

expected<agent_spec> spec_from_json(const std::string& text) {
  auto doc = json::parse(text, nullptr, false);
  if (!doc.is_object()) {
    return make_error(errc::corrupt, "not a JSON object");
  }
  try {
    agent_spec s;
    s.name = doc.at("name").get<std::string>();
    s.workspace = doc.at("workspace").get<std::string>();
    s.persona = doc.value("persona", "");
    s.model = doc.value("model", "");
    s.context_tokens = doc.value("context_tokens", int64_t{0});
    s.budget_tokens = doc.value("budget_tokens", int64_t{0});
    s.max_turns = doc.value("max_turns", int64_t{0});
    s.max_tokens = doc.value("max_tokens", int64_t{0});
    s.parent = doc.value("parent", "");
    s.depth = doc.value("depth", int64_t{0});
    return s;
  } catch (const json::exception& e) {
    return make_error(errc::corrupt, e.what());
  }
}

/// The spec as the agent runs it: checked, defaults filled in.
expected<agent_spec> checked(const node_config& cfg, agent_spec s) {
  if (auto bad = agent_name_problem(s.name); !bad.empty()) {
    return make_error(errc::bad_request, bad);
  }
  std::error_code ec;
  if (s.workspace.empty() || s.workspace.front() != '/' || !fs::is_directory(s.workspace, ec)) {
    return make_error(errc::bad_request,
                      "workspace: '" + s.workspace + "' is not an absolute path to a directory");
  }
  auto range = [](const char* what, int64_t& value, int64_t fallback, int64_t lo,
                  int64_t hi) -> std::optional<error> {
    if (value == 0) {
      value = fallback;
    }
    if (value < lo || value > hi) {
      return make_error(errc::bad_request, std::string(what) + ": must be " + std::to_string(lo) +
                                               " to " + std::to_string(hi) + " (got " +
                                               std::to_string(value) + ")");
    }
    return std::nullopt;
  };
  if (auto e =
          range("context_tokens", s.context_tokens, cfg.agents.context_tokens, 1000, 10'000'000)) {
    return *e;
  }
  if (auto e = range("max_turns", s.max_turns, cfg.agents.max_turns, 1, 10'000)) {
    return *e;
  }
  if (auto e = range("max_tokens", s.max_tokens, cfg.agents.max_tokens, 1, 1'000'000)) {
    return *e;
  }
  if (s.depth < 0 || s.depth > 16 || (!s.parent.empty() && !agent_name_problem(s.parent).empty())) {
    return make_error(errc::bad_request, "parent and depth: a Task's sub-agent only");
  }
  if (s.budget_tokens < 0) {
    return make_error(errc::bad_request, "budget_tokens: must be 0 (no limit) or more");
  }
  if (s.model.size() > 256 || s.persona.size() > 64) {
    return make_error(errc::bad_request, "model or persona: too long");
  }
  return s;
}

/// What the manager says of an agent that does not answer itself.
agent_info held_info(const manager_state& st, const agent_spec& spec) {
  agent_info info;
  info.spec = spec;
  auto route = st.ctx->registry.find(live_name(spec.name));
  info.state = !route                                    ? "stopped"
               : route->state == actor_state::failed     ? "failed"
               : route->state == actor_state::restarting ? "restarting"
                                                         : "starting";
  return info;
}

/// The agent's own report, or the manager's when it does not answer.
void report(manager_actor* self, const agent_spec& spec, std::function<void(agent_info)> done) {
  auto& st = self->state;
  auto route = st.ctx->registry.find(live_name(spec.name));
  if (!is_running(route)) {
    return done(held_info(st, spec));
  }
  self->request(route->current, agent_timeout, std::string(agent_info_type), encode(empty_body{}),
                uint64_t{0})
      .then(
          [self, spec, done](std::string& type, std::string& body, uint64_t) {
            if (type != error_type) {
              if (auto info = decode<agent_info>(body)) {
                return done(std::move(*info));
              }
            }
            done(held_info(self->state, spec));
          },
          [self, spec, done](caf::error&) { done(held_info(self->state, spec)); });
}

void launch(manager_actor* self, const agent_spec& spec,
            std::function<void(std::optional<error>)> done) {
  auto live = self->state.ctx->registry.current(live_path);
  if (!live) {
    return done(make_error(errc::restarting, "the agents supervisor is restarting; try again"));
  }
  self->request(live, std::chrono::seconds(10), start_child_atom::value,
                agent_child(self->state.ctx, spec))
      .then(
          [done](std::string& type, std::string& body, uint64_t) {
            if (type == error_type) {
              return done(read_error(envelope{type, body, 0}));
            }
            done(std::nullopt);
          },
          [done](caf::error& e) {
            done(make_error(errc::unavailable, "starting the agent failed: " + to_string(e)));
          });
}

void create(manager_actor* self, const std::string& body, const done_fn& done) {
  auto& st = self->state;
  auto spec = decode<agent_spec>(body);
  if (!spec) {
    return done(make_error_envelope(spec.err()));
  }
  auto ok = checked(st.ctx->config, std::move(*spec));
  if (!ok) {
    return done(make_error_envelope(ok.err()));
  }
  if (st.agents.contains(ok->name) || st.ctx->registry.find(live_name(ok->name))) {
    return done(error_of(errc::conflict, "an agent named '" + ok->name + "' exists"));
  }
  if (st.agents.size() >= st.ctx->config.agents.agents_max) {
    return done(error_of(errc::conflict, "this node holds its maximum of " +
                                             std::to_string(st.ctx->config.agents.agents_max) +
                                             " agents"));
  }
  auto go = [self, spec = *ok, done] {
    auto& s = self->state;
    if (auto put = s.store->put(column::transcripts, spec_key(spec.name), spec_json(spec).dump());
        !put) {
      return done(
          error_of(errc::unavailable, "the agent could not be stored: " + put.err().message));
    }
    s.agents[spec.name] = spec;
    launch(self, spec, [self, spec, done](std::optional<error> err) {
      if (err) {
        auto& s2 = self->state;
        s2.agents.erase(spec.name);
        (void)s2.store->remove(column::transcripts, spec_key(spec.name));
        return done(make_error_envelope(*err));
      }
      agent_info info;
      info.spec = spec;
      info.state = "idle";
      done(make_envelope(std::string(agent_create_type) + ".reply", info));
    });
  };
  if (ok->persona.empty()) {
    return go();
  }
  // A persona that does not exist is refused now, not at the first prompt.
  st.requests.ask(self, personas_path,
                  make_envelope(persona_get_type, persona_name{ok->persona, ok->workspace}),
                  agent_timeout, [go, done](envelope reply) {
                    if (reply.type == error_type) {
                      return done(std::move(reply));
                    }
                    go();
                  });
}

void list(manager_actor* self, const done_fn& done) {
  auto& st = self->state;
  struct gather {
    agent_list out;
    size_t left = 0;
    done_fn done;
  };
  auto g = std::make_shared<gather>();
  g->done = done;
  g->left = st.agents.size();
  if (g->left == 0) {
    return done(make_envelope(std::string(agent_list_type) + ".reply", g->out));
  }
  for (const auto& [name, spec] : st.agents) {
    report(self, spec, [g](agent_info info) {
      g->out.agents.push_back(std::move(info));
      if (--g->left == 0) {
        std::sort(g->out.agents.begin(), g->out.agents.end(),
                  [](const auto& a, const auto& b) { return a.spec.name < b.spec.name; });
        g->done(make_envelope(std::string(agent_list_type) + ".reply", g->out));
      }
    });
  }
}

const agent_spec* find_agent(const manager_state& st, const std::string& name) {
  auto it = st.agents.find(name);
  return it == st.agents.end() ? nullptr : &it->second;
}

envelope no_agent(const std::string& name) {
  return error_of(errc::not_found, "no agent '" + name + "'");
}

void stop_and_forget(manager_actor* self, const std::string& name, const done_fn& done);

void remove(manager_actor* self, const std::string& name, const done_fn& done) {
  auto& st = self->state;
  if (find_agent(st, name) == nullptr) {
    return done(no_agent(name));
  }
  st.agents.erase(name);
  // Its Task sub-agents go with it (and theirs with them).
  std::vector<std::string> subs;
  for (const auto& [other, spec] : st.agents) {
    if (spec.parent == name) {
      subs.push_back(other);
    }
  }
  for (const auto& sub : subs) {
    remove(self, sub, [](envelope) {});
  }
  // Its SessionEnd hooks run first (an agent that does not answer in time
  // is deleted all the same).
  auto route = st.ctx->registry.find(live_name(name));
  if (!is_running(route)) {
    return stop_and_forget(self, name, done);
  }
  self->request(route->current, session_end_timeout, std::string(agent_end_type),
                encode(end_request{"deleted"}), uint64_t{0})
      .then([self, name, done](std::string&, std::string&,
                               uint64_t) { stop_and_forget(self, name, done); },
            [self, name, done](caf::error&) { stop_and_forget(self, name, done); });
}

/// Ends the agent's terminal session (actors/agents/shell.hpp), if it has
/// one: a deleted agent leaves no shell behind.
void end_shell(manager_actor* self, const std::string& name) {
  auto& st = self->state;
  if (!st.ctx->registry.find(sessions_manager_path)) {
    return;
  }
  st.requests.ask(
      self, sessions_manager_path, make_envelope(pty::list_type, empty_body{}), journal_timeout,
      [self, session = shell_session_name(name)](envelope reply) {
        auto list =
            decode<pty::session_list>(reply.body, decode_limits{.body_bytes_max = 64u << 20});
        if (reply.is_error() || !list) {
          return;
        }
        for (const auto& s : list->sessions) {
          if (s.name == session) {
            self->state.requests.ask(self, sessions_manager_path,
                                     make_envelope(pty::end_type, pty::session_id{s.id}),
                                     journal_timeout, [](envelope) {});
          }
        }
      });
}

void stop_and_forget(manager_actor* self, const std::string& name, const done_fn& done) {
  auto& st = self->state;
  end_shell(self, name);
  if (auto route = st.ctx->registry.find(live_name(name)); route && route->supervisor) {
    // Its supervisor stops it (a pending restart is cancelled) and takes it
    // out of the tree.
    caf::anon_send(route->supervisor, stop_child_atom::value, name);
  }
  if (auto gone = st.store->remove(column::transcripts, spec_key(name)); !gone) {
    st.log->error("agent {}: its descriptor could not be removed: {}", name, gone.err().message);
  }
  st.requests.ask(
      self, journal_path, make_envelope(transcript_drop_type, agent_name{name}), journal_timeout,
      [done, name](envelope reply) {
        if (reply.type == error_type) {
          return done(std::move(reply));
        }
        done(make_envelope(std::string(agent_delete_type) + ".reply", agent_deleted{name}));
      });
}

void restore(manager_actor* self) {
  auto& st = self->state;
  auto rows =
      st.store->scan_prefix(column::transcripts, spec_prefix, 0, st.ctx->config.agents.agents_max);
  if (!rows) {
    st.log->error("agents could not be read from the store: {}", rows.err().message);
    return;
  }
  for (const auto& [key, value] : *rows) {
    auto spec = spec_from_json(value);
    if (!spec) {
      st.log->error("agent {}: its stored description is unreadable ({}); skipped",
                    key.substr(spec_prefix.size()), spec.err().message);
      continue;
    }
    st.agents[spec->name] = *spec;
    if (st.ctx->registry.find(live_name(spec->name))) {
      continue;  // the manager restarted; the agent did not
    }
    launch(self, *spec, [self, name = spec->name](std::optional<error> err) {
      if (err) {
        self->state.log->error("agent {} did not come back: {}", name, err->message);
      }
    });
  }
  if (!rows->empty()) {
    st.log->info("{} agent(s) restored from the store", rows->size());
  }
}

/// The node's agents, for the metrics.
void publish_count(manager_state& st) {
  st.ctx->metrics.gauge("troupe_agents", "Agents on this node (sub-agents included)")
      .set(static_cast<double>(st.agents.size()));
}

void handle(manager_actor* self, const std::string& type, const std::string& body,
            const done_fn& done) {
  auto& st = self->state;
  if (type == agent_create_type) {
    return create(self, body, done);
  }
  if (type == agent_list_type) {
    return list(self, done);
  }
  if (type == agent_get_type || type == agent_delete_type || type == agent_personas_type) {
    auto req = decode<agent_name>(body);
    if (!req) {
      return done(make_error_envelope(req.err()));
    }
    const auto* spec = find_agent(st, req->name);
    if (spec == nullptr) {
      return done(no_agent(req->name));
    }
    if (type == agent_delete_type) {
      return remove(self, req->name, done);
    }
    if (type == agent_get_type) {
      return report(self, *spec, [done](agent_info info) {
        done(make_envelope(std::string(agent_get_type) + ".reply", info));
      });
    }
    return st.requests.ask(self, personas_path,
                           make_envelope(persona_list_type, persona_scope{spec->workspace}),
                           agent_timeout, done);
  }
  if (type == agent_transcript_type) {
    auto req = decode<transcript_query>(body);
    if (!req) {
      return done(make_error_envelope(req.err()));
    }
    if (find_agent(st, req->name) == nullptr) {
      return done(no_agent(req->name));
    }
    return st.requests.ask(
        self, journal_path,
        make_envelope(transcript_read_type, read_request{req->name, req->after, req->limit}),
        journal_timeout, [done](envelope reply) {
          if (reply.type != error_type) {
            reply.type = std::string(agent_transcript_type) + ".reply";
          }
          done(std::move(reply));
        });
  }
  done(error_of(errc::unknown_type,
                "agents/manager does not answer '" + type +
                    "' (it answers agent.create, agent.list, agent.get, agent.delete, "
                    "agent.transcript, agent.personas)"));
}

child_spec manager_child(std::shared_ptr<node_context> ctx, std::shared_ptr<db> store) {
  child_spec spec;
  spec.name = "manager";
  spec.kind = actor_kind::worker;
  spec.restart = restart_type::permanent;
  spec.start = [ctx, store](caf::actor_system& system, const std::string&) {
    // Detached: it reads and writes the store.
    return system.spawn<caf::detached>([ctx, store](manager_actor* self) -> caf::behavior {
      auto& st = self->state;
      st.ctx = ctx;
      st.store = store;
      st.requests = asker(ctx->registry);
      st.log = logger("agents");
      restore(self);
      publish_count(st);
      return {
          [self](std::string& type, std::string& body, uint64_t correlation_id) {
            if (!self->current_message_id().is_request()) {
              return;
            }
            auto rp = self->make_response_promise();
            handle(self, type, body, [self, rp, correlation_id](envelope reply) mutable {
              reply.correlation_id = correlation_id;
              deliver(rp, std::move(reply));
              publish_count(self->state);
            });
          },
      };
    });
  };
  return spec;
}

}  // namespace

std::string agent_name_problem(std::string_view name) {
  const bool ok = !name.empty() && name.size() <= 64 && name.front() != '.' &&
                  std::all_of(name.begin(), name.end(), [](char c) {
                    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                           (c >= '0' && c <= '9') || c == '-' || c == '_' || c == '.';
                  });
  return ok ? std::string()
            : "an agent's name is 1 to 64 of A-Z a-z 0-9 . _ - and does not start with a dot "
              "(got '" +
                  std::string(name.substr(0, 80)) + "')";
}

std::string entry_key(std::string_view agent, uint64_t seq) {
  char hex[17];
  std::snprintf(hex, sizeof hex, "%016llx", static_cast<unsigned long long>(seq));
  return entries_prefix(agent) + hex;
}

child_spec agents_family(std::shared_ptr<node_context> ctx, std::shared_ptr<db> store) {
  supervisor_spec spec;
  spec.strat = strategy::one_for_one;
  spec.policy = make_restart_policy(ctx->config.supervisor);
  spec.children.push_back(personas_child(ctx));
  if (store) {
    spec.children.push_back(journal_child(ctx, store));
    spec.children.push_back(tools_child(ctx));
    spec.children.push_back(supervisor_child(
        "live", ctx,
        supervisor_spec{
            strategy::dynamic, spec.policy, {}, ctx->config.agents.agents_max, 0xa6e7}));
    spec.children.push_back(manager_child(ctx, store));
  }
  return supervisor_child("agents", std::move(ctx), std::move(spec));
}

}  // namespace troupe::agents
