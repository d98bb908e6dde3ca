#include "actors/agents/agent.hpp"

#include <algorithm>
#include <cctype>
#include <chrono>
#include <deque>
#include <filesystem>
#include <map>
#include <optional>
#include <unordered_map>
#include <utility>

#include <spdlog/logger.h>
#include <caf/all.hpp>
#include <nlohmann/json.hpp>

#include "actors/agents/file_tools.hpp"
#include "actors/agents/hooks.hpp"
#include "actors/agents/persona.hpp"
#include "actors/agents/shell.hpp"
#include "actors/agents/transcript.hpp"
#include "actors/cache/messages.hpp"
#include "actors/llm/anthropic.hpp"
#include "actors/llm/sse.hpp"
#include "runtime/actor/ask.hpp"
#include "runtime/actor/envelope_message.hpp"
#include "runtime/log/log.hpp"
#include "runtime/node/error_answer.hpp"
#include "runtime/node/http_exchange.hpp"
#include "runtime/node/node_context.hpp"
#include "runtime/protocol/codec.hpp"
#include "runtime/wall_clock.hpp"

namespace troupe::agents {

namespace {

using json = nlohmann::json;

/// What the Messages API version the agent's calls name.
constexpr const char* api_version = "2023-06-01";
/// How long persona lookups may take.
constexpr std::chrono::seconds persona_timeout{10};
/// Bash's default and longest timeout (Claude Code's).
constexpr int64_t bash_timeout_default_ms = 120000;
constexpr int64_t bash_timeout_max_ms = 600000;
/// Prompts that may wait while an incarnation reads its transcript.
constexpr size_t early_prompts_max = 16;
/// How deep Task sub-agents nest, and how long a Task or a SendMessage
/// waits for the other agent's turn.
constexpr int64_t task_depth_max = 3;
constexpr std::chrono::hours agent_tool_timeout{6};

/// A Task's sub-agent: "<parent>.task-<the call id's last characters>",
/// within the 64 characters of a name.
std::string sub_agent_name(const std::string& parent, const std::string& id) {
  std::string tail;
  for (auto it = id.rbegin(); it != id.rend() && tail.size() < 8; ++it) {
    if (std::isalnum(static_cast<unsigned char>(*it))) {
      tail.insert(tail.begin(), *it);
    }
  }
  const auto suffix = ".task-" + tail;
  return parent.substr(0, 64 - suffix.size()) + suffix;
}
/// The latest messages compaction never touches: the last answer and what
/// followed it.
constexpr size_t keep_messages = 2;

/// A summary's bound (its call's max_tokens): a tenth of the context
/// budget, within 256 to 4,096 tokens.
int64_t summary_tokens(int64_t budget) {
  return std::clamp<int64_t>(budget / 10, 256, 4096);
}

/// Who waits for a turn: an actor request (one reply at the end) or an
/// HTTP exchange (events as they are written, SSE or one JSON answer).
struct waiter {
  std::optional<caf::response_promise> promise;
  uint64_t correlation_id = 0;
  caf::actor exchange;
  bool sse = false;
  bool head_sent = false;
};

enum class phase : uint8_t { loading, idle, persona, model, tools, approval };

std::string_view phase_name(phase p) {
  switch (p) {
    case phase::loading:
      return "loading";
    case phase::idle:
      return "idle";
    case phase::approval:
      return "awaiting_approval";
    default:
      return "running";
  }
}

struct agent_state {
  std::shared_ptr<node_context> ctx;
  agent_spec spec;
  conversation conv;
  uint64_t next_seq = 1;
  asker requests;
  std::shared_ptr<spdlog::logger> log;
  phase at = phase::loading;
  /// The persona the current (or last) turn follows; none: no persona.
  std::optional<persona> active;
  std::string persona_name;
  std::string model;
  bool stop_requested = false;
  std::optional<waiter> who;
  std::vector<transcript_entry> turn_events;
  usage_info turn_usage;
  usage_info total_usage;
  uint64_t calls = 0;
  std::string last_stop;
  std::string last_text;
  /// The model call awaited (answers to older ones are ignored: see
  /// call_model).
  uint64_t call_generation = 0;
  bool call_open = false;
  /// Its answer, streamed (the agent asks with `stream: true`): a 200 is
  /// parsed as it comes and assembled into the message, its text deltas
  /// passed on to an SSE waiter; any other status is its error body.
  struct streamed_answer {
    int status = 0;
    std::string error_body;
    llm::sse_parser parser;
    llm::stream_assembler assembler;
  };
  std::optional<streamed_answer> streamed;
  /// A summary call under way (the call awaited is it): its cut, the
  /// estimate before it and the PreCompact hooks' entries.
  struct summary_job {
    summary_plan plan;
    int64_t before = 0;
    std::vector<json> hooks;
  };
  std::optional<summary_job> summarising;
  /// A count_tokens call under way: the raw estimate it measures.
  std::optional<int64_t> counting;
  /// The raw estimate a calibration was last tried at: not tried again
  /// until the request is twice as large.
  int64_t calibration_tried_at = 0;
  std::vector<std::pair<waiter, std::string>> early;
  /// Continuations waiting for an event's hooks, by ticket.
  std::map<uint64_t, std::function<void(hooks_done)>> hook_waits;
  uint64_t next_ticket = 1;
  /// The call a hook asked a person about (one at a time: calls run in
  /// order), and when it is denied for want of an answer.
  std::optional<approval_info> approval;
  uint64_t approval_deadline_ms = 0;
  uint64_t approval_generation = 0;
  /// This turn's Stop hooks already kept it going once (stop_hook_active).
  bool stop_hook_active = false;
  /// What SessionStart hooks added, for the next prompt.
  std::string session_context;
  /// The cache's dependency roots, and whether each file a tool read lies
  /// within them (asked once per path: the answer needs the file system).
  std::vector<std::string> roots;
  std::map<std::string, bool> watchable;
  /// The metric series it counted (count_entry), by name and label values.
  std::unordered_map<std::string, counter*> counters;
  static inline const char* name = "troupe.agents.agent";
};

using agent_actor = caf::stateful_actor<agent_state>;
using approval_timeout_atom = caf::atom_constant<caf::atom("apprtimeo")>;

int64_t spent(const usage_info& u) {
  return u.input_tokens + u.output_tokens + u.cache_creation_input_tokens +
         u.cache_read_input_tokens;
}

void add_usage(usage_info& into, const usage_info& u) {
  into.input_tokens += u.input_tokens;
  into.output_tokens += u.output_tokens;
  into.cache_creation_input_tokens += u.cache_creation_input_tokens;
  into.cache_read_input_tokens += u.cache_read_input_tokens;
}

json usage_json(const usage_info& u) {
  return json{{"input_tokens", u.input_tokens},
              {"output_tokens", u.output_tokens},
              {"cache_creation_input_tokens", u.cache_creation_input_tokens},
              {"cache_read_input_tokens", u.cache_read_input_tokens}};
}

usage_info usage_of(const json& u) {
  usage_info out;
  if (!u.is_object()) {
    return out;
  }
  auto num = [&u](const char* key) {
    const auto it = u.find(key);
    return it != u.end() && it->is_number_integer() ? it->get<int64_t>() : int64_t{0};
  };
  out.input_tokens = num("input_tokens");
  out.output_tokens = num("output_tokens");
  out.cache_creation_input_tokens = num("cache_creation_input_tokens");
  out.cache_read_input_tokens = num("cache_read_input_tokens");
  return out;
}

agent_info info_of(const agent_state& st) {
  agent_info info;
  info.spec = st.spec;
  info.state =
      st.stop_requested && st.at != phase::idle ? "stopping" : std::string(phase_name(st.at));
  info.persona = st.persona_name;
  info.entries = st.next_seq - 1;
  info.calls = st.calls;
  info.usage = st.total_usage;
  info.last_stop = st.last_stop;
  return info;
}

// ---- telling the waiter --------------------------------------------------

/// To an exchange's actor, with the correlation its request carried (which
/// names the exchange, as http_exchange.hpp says).
void send_http(agent_actor* self, const waiter& w, const char* type, const auto& body) {
  self->send(w.exchange, std::string(type), encode(body), w.correlation_id);
}

void http_error(agent_actor* self, const waiter& w, const error& e) {
  auto answer = troupe_error(e.code, e.message);
  send_http(self, w, http_msg::reply_type,
            http_msg::reply{
                answer.status, {{"content-type", "application/json"}}, std::move(answer.body)});
}

/// Refuses a prompt that could not start, to whoever asked.
void refuse(agent_actor* self, waiter& w, const error& e) {
  if (w.promise) {
    deliver(*w.promise, make_error_envelope(e, w.correlation_id));
  } else if (w.exchange) {
    http_error(self, w, e);
  }
}

/// One SSE event to an HTTP waiter that streams (the head first).
void send_sse(agent_actor* self, waiter& w, const std::string& kind, const std::string& data) {
  if (!w.exchange || !w.sse) {
    return;
  }
  if (!w.head_sent) {
    w.head_sent = true;
    send_http(self, w, http_msg::head_type,
              http_msg::head{
                  200, {{"content-type", "text/event-stream"}, {"cache-control", "no-cache"}}});
  }
  send_http(self, w, http_msg::chunk_type,
            http_msg::chunk{"event: " + kind + "\ndata: " + data + "\n\n"});
}

void stream_event(agent_actor* self, waiter& w, const transcript_entry& e,
                  const std::string& kind) {
  send_sse(self, w, kind, e.data);
}

/// The turn ended: the waiter gets its answer.
void finish_waiter(agent_actor* self) {
  auto& st = self->state;
  if (!st.who) {
    return;
  }
  auto w = std::move(*st.who);
  st.who.reset();
  prompt_reply reply{st.last_text, st.last_stop, st.turn_usage, std::move(st.turn_events)};
  st.turn_events.clear();
  if (w.promise) {
    deliver(*w.promise,
            make_envelope(std::string(agent_prompt_type) + ".reply", reply, w.correlation_id));
    return;
  }
  if (!w.exchange) {
    return;
  }
  if (w.sse) {
    if (!w.head_sent) {  // cannot happen: turn_end is an event
      send_http(self, w, http_msg::head_type,
                http_msg::head{200, {{"content-type", "text/event-stream"}}});
    }
    send_http(self, w, http_msg::end_type, empty_body{});
    return;
  }
  json events = json::array();
  for (const auto& e : reply.events) {
    events.push_back(json::parse(e.data, nullptr, false));
  }
  json body{{"text", reply.text},
            {"stop_reason", reply.stop_reason},
            {"usage", usage_json(reply.usage)},
            {"events", std::move(events)}};
  send_http(self, w, http_msg::reply_type,
            http_msg::reply{200, {{"content-type", "application/json"}}, body.dump()});
}

// ---- the transcript --------------------------------------------------------

using then_fn = std::function<void()>;

void end_turn(agent_actor* self, const std::string& reason);
void let_go_of_call(agent_actor* self);

/// A label from a closed set: `value` if it is one of `known`, else "other"
/// (a model may name any tool: its names must not grow the metrics).
template <class Range>
std::string closed_label(const std::string& value, const Range& known) {
  return std::find(std::begin(known), std::end(known), value) != std::end(known) ? value : "other";
}

/// Every decision an agent writes is counted too (docs/api.md, Metrics).
void count_entry(agent_state& st, const json& e, const std::string& kind) {
  static constexpr std::string_view events[] = {"PreToolUse",   "PostToolUse",  "UserPromptSubmit",
                                                "Stop",         "SubagentStop", "PreCompact",
                                                "SessionStart", "SessionEnd"};
  static constexpr std::string_view verdicts[] = {"proceed", "allow", "deny",
                                                  "ask",     "block", "stop"};
  static constexpr std::string_view stops[] = {
      "end_turn", "max_tokens", "stop_sequence", "max_turns", "budget",
      "context",  "stopped",    "hook",          "error",     "tool_use"};
  static constexpr std::string_view decisions[] = {"approved", "denied"};
  static constexpr std::string_view deciders[] = {"person", "timeout"};
  const char* name = nullptr;
  const char* help = nullptr;
  metric_labels labels;
  if (kind == "tool_result" || kind == "interrupted") {
    name = "troupe_agent_tool_calls_total";
    help = "Agents' tool calls by tool and result";
    labels = {{"tool", closed_label(e.value("name", ""), tool_names)},
              {"result", kind == "interrupted" ? "interrupted"
                                               : (e.value("is_error", false) ? "error" : "ok")}};
  } else if (kind == "hook") {
    name = "troupe_agent_hook_decisions_total";
    help = "What agents' hooks decided";
    labels = {{"event", closed_label(e.value("event", ""), events)},
              {"verdict", closed_label(e.value("verdict", ""), verdicts)}};
  } else if (kind == "approval_decision") {
    name = "troupe_agent_approvals_total";
    help = "Calls a hook asked a person about, as decided";
    labels = {{"decision", closed_label(e.value("decision", ""), decisions)},
              {"by", closed_label(e.value("by", ""), deciders)}};
  } else if (kind == "compaction") {
    name = "troupe_agent_compactions_total";
    help = "Agents' compactions by method";
    labels = {{"method", e.contains("summary") ? "summary" : "elision"}};
  } else if (kind == "turn_end") {
    name = "troupe_agent_turns_total";
    help = "Agents' turns by why they ended";
    labels = {{"stop_reason", closed_label(e.value("stop_reason", ""), stops)}};
  } else {
    return;
  }
  // The series this agent has counted before, without the registry's lock.
  std::string key = name;
  for (const auto& [k, v] : labels) {
    key += '\0';
    key += v;
  }
  auto [it, fresh] = st.counters.try_emplace(std::move(key), nullptr);
  if (fresh) {
    it->second = &st.ctx->metrics.counter(name, help, std::move(labels));
  }
  it->second->inc();
}

/// Writes `entries` (kind and fields; seq and time are added), then applies
/// them to the conversation, tells the waiter, and goes on with `then`. A
/// failed write stops the turn: nothing is acted upon that is not written.
void write(agent_actor* self, std::vector<json> entries, then_fn then) {
  auto& st = self->state;
  append_request req;
  req.agent = st.spec.name;
  for (auto& e : entries) {
    e["seq"] = st.next_seq;
    e["ts_ms"] = wall_ms();
    req.entries.push_back(transcript_entry{st.next_seq, e.dump()});
    ++st.next_seq;
  }
  st.requests.ask(self, journal_path, make_envelope(transcript_append_type, req), journal_timeout,
                  [self, entries = std::move(entries), written = req.entries,
                   then = std::move(then)](envelope reply) mutable {
                    auto& s = self->state;
                    if (reply.type == error_type) {
                      const auto e = read_error(reply);
                      s.log->error("agent {}: transcript write failed: {}", s.spec.name, e.message);
                      // What was not written did not happen: later seqs fill the gap.
                      s.last_stop = "error";
                      s.last_text = "the transcript could not be written: " + e.message;
                      s.at = phase::idle;
                      let_go_of_call(self);
                      finish_waiter(self);
                      return;
                    }
                    for (size_t i = 0; i < entries.size(); ++i) {
                      apply_entry(s.conv, entries[i]);
                      const auto kind = entries[i].value("kind", "");
                      count_entry(s, entries[i], kind);
                      if (s.who) {
                        if (s.turn_events.size() < reply_events_max) {
                          s.turn_events.push_back(written[i]);
                        }
                        stream_event(self, *s.who, written[i], kind);
                      }
                    }
                    then();
                  });
}

// ---- the loop --------------------------------------------------------------

void step(agent_actor* self);
int64_t context_budget(const agent_state& st);
bool needs_calibration(const agent_state& st, int64_t raw);
void calibrate(agent_actor* self, int64_t raw);
void compact(agent_actor* self, int64_t before);
void next_tool(agent_actor* self);
void write_and_run(agent_actor* self, std::vector<json> entries, const json& call);

std::vector<std::string> offered_tools(const agent_state& st) {
  std::vector<std::string> out;
  for (const auto name : tool_names) {
    if (st.active) {
      const auto& p = *st.active;
      const bool listed =
          !p.tools || std::any_of(p.tools->begin(), p.tools->end(),
                                  [&](const tool_rule& r) { return r.tool == name; });
      const bool banned = std::any_of(p.disallowed.begin(), p.disallowed.end(), [&](const auto& r) {
        return r.tool == name && r.pattern.empty();
      });
      if (!listed || banned) {
        continue;
      }
    }
    out.emplace_back(name);
  }
  return out;
}

std::string system_prompt(const agent_state& st) {
  std::string out;
  if (st.active && !st.active->prompt.empty()) {
    out = st.active->prompt + "\n\n";
  }
  out += "You are the troupe agent '" + st.spec.name + "'. Your workspace is " + st.spec.workspace +
         "; your tools act inside it only (paths may be absolute or relative to it).";
  return out;
}

/// The request as JSON text, without copying the conversation first: the
/// fixed fields, then the messages.
std::string request_body(const agent_state& st) {
  json head{{"model", st.model},
            {"max_tokens", st.spec.max_tokens},
            {"stream", true},
            {"system", system_prompt(st)}};
  auto tools = tool_definitions(offered_tools(st));
  if (!tools.empty()) {
    head["tools"] = std::move(tools);
  }
  auto body = head.dump();
  body.pop_back();  // the closing brace
  body += ",\"messages\":";
  body += st.conv.messages.dump();
  body += '}';
  return body;
}

json build_request(const agent_state& st) {
  json req{{"model", st.model},
           {"max_tokens", st.spec.max_tokens},
           {"stream", true},
           {"system", system_prompt(st)},
           {"messages", st.conv.messages}};
  auto tools = tool_definitions(offered_tools(st));
  if (!tools.empty()) {
    req["tools"] = std::move(tools);
  }
  return req;
}

std::string resolve_model(const agent_state& st) {
  std::string model = st.spec.model;
  if (model.empty() && st.active && st.active->model != "inherit" && !st.active->model.empty()) {
    model = st.active->model;
  }
  if (model.empty()) {
    model = st.ctx->config.agents.model;
  }
  for (const auto& pair : st.ctx->config.agents.model_aliases) {
    const auto eq = pair.find('=');
    if (eq != std::string::npos && pair.compare(0, eq, model) == 0) {
      return pair.substr(eq + 1);
    }
  }
  return model;
}

void on_notice(agent_actor* self, const std::string& type, const std::string& body,
               uint64_t correlation_id = 0);

/// Runs a job (a tool call, an event's hooks) on a worker thread: one of
/// agents/tools' (kept for the next job), or, when that pool is not
/// running, a thread started for it alone. The answer comes back as a
/// notice (agent.tool.done, agent.hooks.done); a job the pool lost is
/// answered by `lost` (it may have run: it is not run again).
void off_scheduler(agent_actor* self, const char* type, std::string body,
                   std::function<envelope(const std::string&)> lost) {
  auto run_alone = [self, type](std::string job) {
    auto me = caf::actor_cast<caf::actor>(self);
    self->system().spawn<caf::detached>([type = std::string(type), job = std::move(job), me,
                                         ctx = self->state.ctx](caf::event_based_actor* w) {
      auto done = run_worker_job(type, job, worker_env{&w->system(), ctx});
      w->send(me, std::move(done.type), std::move(done.body), uint64_t{0});
      w->quit();
    });
  };
  auto pool = self->state.ctx->registry.current(tools_path);
  if (!pool) {
    return run_alone(std::move(body));
  }
  self->request(pool, caf::infinite, std::string(type), body, uint64_t{0})
      .then(
          [self, lost](std::string& t, std::string& b, uint64_t) {
            if (t == error_type) {
              auto answer = lost(read_error(envelope{t, b, 0}).message);
              return on_notice(self, answer.type, answer.body);
            }
            on_notice(self, t, b);
          },
          [self, lost](caf::error& e) {
            auto answer = lost(to_string(e));
            on_notice(self, answer.type, answer.body);
          });
}

/// The `hook` entries of an event's runs.
std::vector<json> hook_entries(const std::vector<hook_note>& notes, const std::string& tool) {
  std::vector<json> out;
  for (const auto& h : notes) {
    out.push_back(json{{"kind", "hook"},
                       {"event", h.event},
                       {"tool", tool},
                       {"verdict", h.verdict},
                       {"reason", h.reason},
                       {"error", h.error}});
  }
  return out;
}

/// Runs `event`'s hooks on a worker thread (they block), then `then`.
void run_event_hooks(agent_actor* self, const char* event, json fields,
                     std::function<void(hooks_done)> then, std::string subject = {}) {
  auto& st = self->state;
  const auto ticket = st.next_ticket++;
  st.hook_waits.emplace(ticket, std::move(then));
  hook_job job{st.spec.name,
               st.spec.workspace,
               transcript_file(*st.ctx, st.spec.name),
               event,
               std::move(subject),
               fields.dump(),
               ticket,
               st.ctx->config.agents.hooks_file};
  off_scheduler(self, hook_job_type, encode(job), [ticket, event](const std::string& why) {
    hooks_done lost;
    lost.ticket = ticket;
    lost.verdict = "proceed";
    lost.hooks.push_back(hook_note{event, "proceed", "", "the hooks' worker was lost: " + why});
    return make_envelope(hooks_done_type, lost);
  });
}

void end_turn(agent_actor* self, const std::string& reason) {
  auto& st = self->state;
  if (st.call_open) {
    let_go_of_call(self);
  }
  st.summarising.reset();
  st.counting.reset();
  st.at = phase::tools;  // not idle until turn_end is written
  write(self,
        {json{{"kind", "turn_end"},
              {"stop_reason", reason},
              {"text", st.last_text},
              {"usage", usage_json(st.turn_usage)}}},
        [self, reason] {
          auto& s = self->state;
          s.last_stop = reason;
          s.stop_requested = false;
          s.at = phase::idle;
          finish_waiter(self);
        });
}

void fail_turn(agent_actor* self, const std::string& message) {
  auto& st = self->state;
  if (st.call_open) {
    let_go_of_call(self);
  }
  st.log->warn("agent {}: {}", st.spec.name, message);
  st.last_text = message;
  write(self, {json{{"kind", "error"}, {"message", message}}}, [self] { end_turn(self, "error"); });
}

/// Headers of a model call: who asks, and the files its answer depends on
/// (the response cache forgets it when one changes). A file outside the
/// cache's dependency roots cannot be watched: then the answer is not cached.
http_msg::request model_request(agent_state& st, std::string body, const char* target) {
  http_msg::request req;
  req.method = "POST";
  req.target = target;
  req.client = "agent:" + st.spec.name;
  req.body = std::move(body);
  req.headers = {{"content-type", "application/json"},
                 {"anthropic-version", api_version},
                 {"x-troupe-agent", st.spec.name}};
  if (!st.persona_name.empty()) {
    req.headers.push_back({"x-troupe-persona", st.persona_name});
  }
  if (st.roots.empty()) {
    st.roots = cache::dependency_roots(st.ctx->config);
  }
  std::string deps;
  bool watchable = true;
  for (const auto& path : st.conv.read_paths) {
    auto [known, fresh] = st.watchable.try_emplace(path, false);
    if (fresh) {
      known->second = cache::dependency_refusal(path, st.roots).empty();
    }
    if (!known->second) {
      watchable = false;
      break;
    }
    deps += (deps.empty() ? "" : ",") + path;
  }
  if (!watchable) {
    req.headers.push_back({"x-troupe-cache", "bypass"});
  } else if (!deps.empty()) {
    req.headers.push_back({"x-troupe-depends-on", std::move(deps)});
  }
  return req;
}

/// The agent no longer waits for the call under way, if any: the router
/// is told (http.gone: it cancels the call), and whatever of it still
/// arrives is dropped (its correlation id is an older generation).
void let_go_of_call(agent_actor* self) {
  auto& st = self->state;
  if (st.call_open) {
    if (auto router = st.ctx->registry.current("llm/router")) {
      self->send(router, std::string(http_msg::gone_type), encode(empty_body{}), uint64_t{0});
    }
  }
  st.call_open = false;
  ++st.call_generation;
  st.streamed.reset();
  st.summarising.reset();
  st.counting.reset();
}

/// Asks the router, as the requester of an exchange whose messages carry
/// the call's generation as their correlation id.
void call_model(agent_actor* self, std::string body, const char* target = "/v1/messages") {
  auto& st = self->state;
  auto router = st.ctx->registry.current("llm/router");
  if (!router) {
    return fail_turn(self, "the LLM router is not running; the turn ends here");
  }
  st.at = phase::model;
  st.call_open = true;
  st.streamed.reset();
  const auto generation = ++st.call_generation;
  self->request(router, caf::infinite, std::string(http_msg::request_type),
                encode(model_request(st, std::move(body), target)), generation)
      .then([](std::string&, std::string&, uint64_t) {},
            [self, generation](caf::error& e) {
              auto& s = self->state;
              if (s.call_open && generation == s.call_generation) {
                fail_turn(self, "the LLM router went down during the call: " + to_string(e));
              }
            });
}

void step(agent_actor* self) {
  auto& st = self->state;
  if (st.stop_requested) {
    return end_turn(self, "stopped");
  }
  if (st.conv.turn_calls >= static_cast<uint64_t>(st.spec.max_turns)) {
    st.last_text =
        "the turn reached its limit of " + std::to_string(st.spec.max_turns) + " model calls";
    return end_turn(self, "max_turns");
  }
  if (st.spec.budget_tokens > 0 && spent(st.total_usage) >= st.spec.budget_tokens) {
    st.last_text = "the agent has spent its budget of " + std::to_string(st.spec.budget_tokens) +
                   " tokens (" + std::to_string(spent(st.total_usage)) + " used)";
    return end_turn(self, "budget");
  }
  auto body = request_body(st);
  const auto budget = context_budget(st);
  const auto raw = estimate_tokens_of(body.size());
  if (needs_calibration(st, raw)) {
    return calibrate(self, raw);
  }
  const auto before = estimate_tokens_of(body.size(), st.conv.calibration);
  if (before <= budget) {
    return call_model(self, std::move(body));
  }
  compact(self, before);
}

/// The context budget: the agent's, or its persona's when that is smaller.
int64_t context_budget(const agent_state& st) {
  if (st.active && st.active->context_tokens > 0) {
    return std::min(st.spec.context_tokens, st.active->context_tokens);
  }
  return st.spec.context_tokens;
}

/// Whether to ask the upstream what the request counts before relying on
/// the estimate: only near the budget (from half of it), once, and again
/// when the request has doubled since.
bool needs_calibration(const agent_state& st, int64_t raw) {
  const auto budget = context_budget(st);
  if (static_cast<double>(raw) * st.conv.calibration * 2 < static_cast<double>(budget)) {
    return false;
  }
  const auto last = std::max(st.conv.calibrated_at, st.calibration_tried_at);
  return last == 0 || raw > 2 * last;
}

/// count_tokens through the router for the request about to be sent.
void calibrate(agent_actor* self, int64_t raw) {
  auto& st = self->state;
  st.calibration_tried_at = raw;
  st.counting = raw;
  auto request = build_request(st);
  request.erase("max_tokens");
  request.erase("stream");
  call_model(self, request.dump(), "/v1/messages/count_tokens");
}

/// A failed call as the upstream told it: "HTTP 529: Overloaded".
std::string failed_call(int status, const json& doc) {
  std::string why = "HTTP " + std::to_string(status);
  if (doc.is_object() && doc.contains("error") && doc["error"].is_object()) {
    const auto& e = doc["error"];
    if (const auto m = e.find("message"); m != e.end() && m->is_string()) {
      why += ": " + m->get<std::string>();
    }
  }
  return why;
}

/// The upstream's count: the estimate's factor from now on, written (so a
/// new incarnation has it), with a margin, as estimates must not fall short.
void take_count(agent_actor* self, int status, const json& doc) {
  auto& st = self->state;
  const auto raw = *st.counting;
  st.counting.reset();
  const auto it = doc.is_object() ? doc.find("input_tokens") : doc.end();
  const int64_t counted = it != doc.end() && it->is_number_integer() ? it->get<int64_t>() : 0;
  if (status != 200 || counted <= 0 || raw <= 0) {
    st.log->warn("agent {}: count_tokens answered {}; the estimate stays uncalibrated",
                 st.spec.name,
                 status == 200 ? std::string("no input_tokens") : failed_call(status, doc));
    return step(self);
  }
  constexpr double margin = 1.05;
  const double factor =
      std::clamp(static_cast<double>(counted) / static_cast<double>(raw) * margin, 0.25, 4.0);
  write(
      self,
      {json{{"kind", "calibration"}, {"estimated", raw}, {"counted", counted}, {"factor", factor}}},
      [self] { step(self); });
}

/// The request is over the budget: old tool results are elided first;
/// when nothing is left to elide, the oldest turns are summarised through
/// the model. PreCompact hooks run before either. Then the agent steps
/// again (another round if it is still over).
void compact(agent_actor* self, int64_t before) {
  auto& st = self->state;
  const auto budget = context_budget(st);
  auto request = build_request(st);
  auto ids = plan_elision(request, budget, st.conv.calibration, keep_messages);
  if (!ids.empty()) {
    conversation trial = st.conv;
    apply_entry(trial, json{{"kind", "compaction"}, {"elided", ids}});
    request["messages"] = trial.messages;
    const auto after = estimate_tokens(request, st.conv.calibration);
    return run_event_hooks(self, "PreCompact",
                           json{{"trigger", "auto"}, {"custom_instructions", ""}},
                           [self, ids, before, after](hooks_done done) {
                             auto entries = hook_entries(done.hooks, "");
                             entries.push_back(json{{"kind", "compaction"},
                                                    {"elided", ids},
                                                    {"tokens_before", before},
                                                    {"tokens_after", after}});
                             write(self, std::move(entries), [self] { step(self); });
                           });
  }
  request["messages"] = json::array();
  const summary_budget b{budget, estimate_tokens(request, st.conv.calibration),
                         summary_tokens(budget), budget};
  auto plan = plan_summary(st.conv, b, keep_messages);
  if (!plan) {
    st.last_text = "the conversation needs about " + std::to_string(before) +
                   " tokens, over the context budget of " + std::to_string(budget) +
                   ", and neither eliding nor summarising can bring it under: its latest turns "
                   "alone are too large, or its oldest message is more than a summary call can "
                   "send";
    return end_turn(self, "context");
  }
  run_event_hooks(
      self, "PreCompact", json{{"trigger", "auto"}, {"custom_instructions", ""}},
      [self, plan = *plan, before, b](hooks_done done) {
        auto& s = self->state;
        if (s.stop_requested) {
          s.last_text = "stopped by a person";
          return end_turn(self, "stopped");
        }
        s.summarising = agent_state::summary_job{plan, before, hook_entries(done.hooks, "")};
        call_model(self, summary_request(s.conv, plan, s.model, b.summary).dump());
      });
}

/// The summary came back: written as a compaction, and the agent steps on.
void take_summary(agent_actor* self, int status, const json& doc) {
  auto& st = self->state;
  auto job = std::move(*st.summarising);
  st.summarising.reset();
  std::string text;
  if (status == 200 && doc.is_object() && doc.contains("content") && doc["content"].is_array()) {
    for (const auto& block : doc["content"]) {
      if (block.is_object() && block.value("type", "") == "text") {
        text += block.value("text", "");
      }
    }
  }
  if (text.empty()) {
    return fail_turn(
        self,
        "the conversation is over its context budget and the summary call "
        "failed (" +
            (status == 200 ? std::string("an answer without text") : failed_call(status, doc)) +
            ")");
  }
  const auto usage = usage_of(doc.value("usage", json::object()));
  add_usage(st.turn_usage, usage);
  add_usage(st.total_usage, usage);
  json entry{{"kind", "compaction"},       {"summary", std::move(text)},
             {"upto", job.plan.upto},      {"keep_prompt", job.plan.keep_prompt},
             {"usage", usage_json(usage)}, {"tokens_before", job.before}};
  conversation trial = st.conv;
  apply_entry(trial, entry);
  auto request = build_request(st);
  request["messages"] = trial.messages;
  const auto after = estimate_tokens(request, st.conv.calibration);
  entry["tokens_after"] = after;
  auto entries = std::move(job.hooks);
  entries.push_back(std::move(entry));
  write(self, std::move(entries), [self, after, before = job.before] {
    if (after >= before) {
      auto& s = self->state;
      s.last_text = "summarising did not make the conversation smaller (about " +
                    std::to_string(after) + " tokens); its context budget is too small for it";
      return end_turn(self, "context");
    }
    step(self);
  });
}

void take_answer(agent_actor* self, int status, const json& doc);

/// The model ended its turn: Stop hooks may keep it going (their reason is
/// its next cue); they are told when they already did once this turn.
void stop_or_go_on(agent_actor* self, const std::string& reason) {
  auto& st = self->state;
  if (st.stop_requested) {
    return end_turn(self, "stopped");
  }
  // A sub-agent's (a Task's) are SubagentStop hooks, as in Claude Code.
  run_event_hooks(self, st.spec.parent.empty() ? "Stop" : "SubagentStop",
                  json{{"stop_hook_active", st.stop_hook_active}}, [self, reason](hooks_done done) {
                    auto entries = hook_entries(done.hooks, "");
                    if (done.verdict == "block" && !done.reason.empty()) {
                      self->state.stop_hook_active = true;
                      entries.push_back(json{{"kind", "continue"}, {"text", done.reason}});
                      return write(self, std::move(entries), [self] { step(self); });
                    }
                    if (entries.empty()) {
                      return end_turn(self, reason);
                    }
                    write(self, std::move(entries), [self, reason] { end_turn(self, reason); });
                  });
}

/// The model's answer (a whole Messages response) arrived. An upstream's
/// malformed answer ends the turn; it never ends the agent.
void on_answer(agent_actor* self, int status, const json& doc) {
  try {
    take_answer(self, status, doc);
  } catch (const nlohmann::json::exception& e) {
    fail_turn(self, std::string("the model's answer is malformed: ") + e.what());
  }
}

/// What a streamed answer's `content_block_delta` adds to its text goes to
/// an SSE waiter as it comes (`text_delta`; the transcript gets the whole
/// answer as one `assistant` entry).
void pass_delta(agent_actor* self, const std::string& data) {
  auto& st = self->state;
  const auto e = json::parse(data, nullptr, false);
  if (!e.is_object()) {
    return;
  }
  const auto d = e.find("delta");
  const auto index = e.find("index");
  if (d == e.end() || !d->is_object() || index == e.end() || !index->is_number_unsigned()) {
    return;
  }
  const auto type = d->find("type");
  const auto text = d->find("text");
  if (type == d->end() || *type != "text_delta" || text == d->end() || !text->is_string()) {
    return;  // another kind of delta, or a malformed one (the assembler judges those)
  }
  const json delta{{"kind", "text_delta"}, {"index", *index}, {"text", *text}};
  send_sse(self, *st.who, "text_delta", delta.dump());
}

/// A piece of the streamed answer to the call awaited.
void on_answer_bytes(agent_actor* self, const std::string& bytes) {
  auto& st = self->state;
  auto& answer = *st.streamed;
  if (answer.status != 200) {
    constexpr size_t error_body_max = 64u << 10;
    answer.error_body.append(bytes, 0,
                             error_body_max - std::min(error_body_max, answer.error_body.size()));
    return;
  }
  const bool deltas = st.who && st.who->exchange && st.who->sse;
  auto fed = answer.parser.feed(bytes, [&](llm::sse_event&& e) {
    answer.assembler.add(e);
    if (deltas && e.event == "content_block_delta") {
      pass_delta(self, e.data);
    }
  });
  if (!fed) {
    fail_turn(self, "the model's streamed answer could not be read: " + fed.err().message);
  }
}

/// The streamed answer ended: the whole message, or why there is none.
void on_answer_end(agent_actor* self) {
  auto& st = self->state;
  auto answer = std::move(*st.streamed);
  st.streamed.reset();
  if (answer.status != 200) {
    return on_answer(self, answer.status, json::parse(answer.error_body, nullptr, false));
  }
  if (auto e = answer.assembler.error()) {
    return fail_turn(self, "the model's streamed answer failed: " + e->value("message", e->dump()));
  }
  if (!answer.assembler.complete()) {
    return fail_turn(self, "the model's streamed answer ended before message_stop");
  }
  on_answer(self, 200, answer.assembler.message());
}

void take_answer(agent_actor* self, int status, const json& doc) {
  auto& st = self->state;
  st.call_open = false;
  if (st.counting) {
    return take_count(self, status, doc);
  }
  ++st.calls;
  if (st.summarising) {
    return take_summary(self, status, doc);
  }
  if (status != 200) {
    return fail_turn(self, "the model call failed (" + failed_call(status, doc) + ")");
  }
  if (!doc.is_object() || !doc.contains("content") || !doc["content"].is_array()) {
    return fail_turn(self, "the model's answer is not a Messages response");
  }
  const auto usage = usage_of(doc.value("usage", json::object()));
  add_usage(st.turn_usage, usage);
  add_usage(st.total_usage, usage);
  const auto stop_reason = doc.value("stop_reason", json("")).is_string()
                               ? doc.value("stop_reason", std::string())
                               : std::string();
  std::string text;
  for (const auto& block : doc["content"]) {
    if (block.is_object() && block.value("type", "") == "text") {
      text += block.value("text", "");
    }
  }
  if (!text.empty()) {
    st.last_text = text;
  }
  json answer{{"kind", "assistant"},
              {"content", doc["content"]},
              {"stop_reason", stop_reason},
              {"model", doc.value("model", st.model)},
              {"usage", usage_json(usage)}};
  // An answer that calls tools is written with what becomes of its first
  // call: one write, not two, before the call runs.
  for (const auto& block : doc["content"]) {
    if (block.is_object() && block.value("type", "") == "tool_use") {
      st.at = phase::tools;
      return write_and_run(self, {std::move(answer)},
                           json{{"id", block.value("id", "")},
                                {"name", block.value("name", "")},
                                {"input", block.value("input", json::object())}});
    }
  }
  write(self, {std::move(answer)}, [self, stop_reason] {
    auto& s = self->state;
    if (!s.conv.pending.empty()) {
      s.at = phase::tools;
      return next_tool(self);
    }
    stop_or_go_on(self, stop_reason.empty() ? "end_turn" : stop_reason);
  });
}

void park_for_approval(agent_actor* self, approval_info a);

void on_tool_done(agent_actor* self, tool_done done) {
  auto& st = self->state;
  auto entries = hook_entries(done.hooks, done.name);
  if (done.ask) {
    // A PreToolUse hook asked a person: nothing ran; the call waits.
    const auto input = done.updated_input.empty()
                           ? st.conv.pending.front().value("input", json::object()).dump()
                           : done.updated_input;
    approval_info a{done.id, done.name, input, done.content, 0, ""};
    entries.push_back(json{{"kind", "approval"},
                           {"id", a.id},
                           {"name", a.tool},
                           {"input", json::parse(a.input, nullptr, false)},
                           {"reason", a.reason}});
    return write(self, std::move(entries), [self, a] { park_for_approval(self, a); });
  }
  json result{{"kind", "tool_result"},
              {"id", done.id},
              {"name", done.name},
              {"content", done.content},
              {"is_error", done.is_error},
              {"read_paths", done.read_paths},
              {"written_paths", done.written_paths}};
  if (!done.updated_input.empty()) {
    result["updated_input"] = json::parse(done.updated_input, nullptr, false);
  }
  entries.push_back(std::move(result));
  if (done.stop) {
    st.stop_requested = true;
    st.last_text = "a hook stopped the agent: " + done.stop_reason;
  }
  write(self, std::move(entries), [self] { next_tool(self); });
}

/// Runs a tool call (hooks, the tool, hooks) on a thread of its own: hooks
/// and tools block, and a hung one must not stall any other agent.
void run_on_worker(agent_actor* self, const std::string& id, const std::string& name,
                   const json& input, bool approved) {
  auto& s = self->state;
  tool_job job{s.spec.name,  s.spec.workspace, transcript_file(*s.ctx, s.spec.name), id, name,
               input.dump(), approved,         s.ctx->config.agents.hooks_file};
  off_scheduler(self, tool_job_type, encode(job), [id, name](const std::string& why) {
    tool_done lost;
    lost.id = id;
    lost.name = name;
    lost.is_error = true;
    lost.content = "this call's worker thread was lost (" + why +
                   "); the call may or may not have run, and was not run again";
    return make_envelope(tool_done_type, lost);
  });
}

void park_for_approval(agent_actor* self, approval_info a) {
  auto& st = self->state;
  st.at = phase::approval;
  const auto timeout_s = st.ctx->config.agents.approval_timeout_s;
  st.approval_deadline_ms = wall_ms() + uint64_t{timeout_s} * 1000;
  st.approval = std::move(a);
  const auto generation = ++st.approval_generation;
  self->delayed_send(self, std::chrono::seconds(timeout_s), approval_timeout_atom::value,
                     generation);
}

void on_tool_done(agent_actor* self, tool_done done);

/// A tool answered by other agents (Task, SendMessage) rather than a
/// worker: the agent asks, and goes on when the answer comes.
void agent_tool(agent_actor* self, const std::string& id, const std::string& name,
                const json& input) {
  auto& st = self->state;
  auto answer = [self, id, name](std::string content, bool is_error) {
    tool_done done;
    done.id = id;
    done.name = name;
    done.content = std::move(content);
    done.is_error = is_error;
    on_tool_done(self, std::move(done));
  };
  auto text_of = [](const json& in, const char* key) {
    const auto it = in.find(key);
    return it != in.end() && it->is_string() ? it->get<std::string>() : std::string();
  };
  // The other agent's turn: its final text is the result.
  auto prompt_agent = [self, answer](const std::string& who, std::string prompt) {
    self->state.requests.ask(
        self, live_prefix + who,
        make_envelope(agent_prompt_type, prompt_request{std::move(prompt)}), agent_tool_timeout,
        [answer, who](envelope reply) {
          if (reply.type == error_type) {
            const auto e = read_error(reply);
            return answer("agent '" + who + "' did not answer: " + e.message, true);
          }
          auto turn = decode<prompt_reply>(reply.body, decode_limits{.body_bytes_max = 1u << 30});
          if (!turn) {
            return answer("agent '" + who + "' answered unreadably: " + turn.err().message, true);
          }
          answer(turn->text, turn->stop_reason != "end_turn");
        });
  };
  if (name == "SendMessage") {
    const auto to = text_of(input, "to");
    const auto message = text_of(input, "message");
    if (to.empty() || message.empty()) {
      return answer("SendMessage needs \"to\" (an agent's name) and \"message\"", true);
    }
    if (to == st.spec.name) {
      return answer("an agent cannot send a message to itself", true);
    }
    return prompt_agent(to, "Message from agent '" + st.spec.name + "':\n" + message);
  }
  // Task: a sub-agent with a persona and a prompt, in the same workspace
  // (the same hooks apply to it).
  const auto prompt = text_of(input, "prompt");
  if (prompt.empty()) {
    return answer("Task needs \"prompt\"", true);
  }
  if (st.spec.depth >= task_depth_max) {
    return answer("sub-agents may nest " + std::to_string(task_depth_max) +
                      " deep at most; do this task yourself",
                  true);
  }
  agent_spec sub;
  sub.name = sub_agent_name(st.spec.name, id);
  sub.workspace = st.spec.workspace;
  sub.persona = text_of(input, "subagent_type");
  if (sub.persona == "general-purpose") {
    sub.persona.clear();  // Claude Code's default type: the best match
  }
  sub.context_tokens = st.spec.context_tokens;
  sub.max_turns = st.spec.max_turns;
  sub.max_tokens = st.spec.max_tokens;
  sub.parent = st.spec.name;
  sub.depth = st.spec.depth + 1;
  st.requests.ask(self, manager_path, make_envelope(agent_create_type, sub), agent_tool_timeout,
                  [answer, prompt_agent, sub, prompt](envelope reply) {
                    if (reply.type == error_type) {
                      return answer("the sub-agent could not be made: " + read_error(reply).message,
                                    true);
                    }
                    prompt_agent(sub.name, prompt);
                  });
}

/// Runs a tool: on a worker (hooks, the tool, hooks), or, for Task and
/// SendMessage, through other agents after the PreToolUse hooks.
void dispatch_tool(agent_actor* self, const std::string& id, const std::string& name,
                   const json& input, bool approved) {
  if (name != "Task" && name != "SendMessage") {
    return run_on_worker(self, id, name, input, approved);
  }
  if (approved) {
    return agent_tool(self, id, name, input);
  }
  run_event_hooks(
      self, "PreToolUse", json{{"tool_name", name}, {"tool_input", input}, {"tool_use_id", id}},
      [self, id, name, input](hooks_done done) {
        if (done.verdict == "ask") {
          tool_done asked;
          asked.id = id;
          asked.name = name;
          asked.hooks = std::move(done.hooks);
          asked.ask = true;
          asked.content = done.reason;
          return on_tool_done(self, std::move(asked));
        }
        if (done.verdict == "deny" || done.verdict == "block" || done.verdict == "stop") {
          tool_done refused;
          refused.id = id;
          refused.name = name;
          refused.hooks = std::move(done.hooks);
          refused.is_error = true;
          refused.stop = done.verdict == "stop";
          refused.stop_reason = done.reason;
          refused.content = "a PreToolUse hook refused this call: " + done.reason;
          return on_tool_done(self, std::move(refused));
        }
        agent_tool(self, id, name, input);
      },
      name);
}

/// A person's answer (or the timeout's) to the call waiting for approval.
void decide(agent_actor* self, bool approve, const std::string& by, const std::string& reason) {
  auto& st = self->state;
  auto a = std::move(*st.approval);
  st.approval.reset();
  ++st.approval_generation;
  st.at = phase::tools;
  std::vector<json> entries{json{{"kind", "approval_decision"},
                                 {"id", a.id},
                                 {"decision", approve ? "approved" : "denied"},
                                 {"by", by},
                                 {"reason", reason}}};
  if (approve) {
    return write(self, std::move(entries), [self, a] {
      dispatch_tool(self, a.id, a.tool, json::parse(a.input, nullptr, false), true);
    });
  }
  entries.push_back(
      json{{"kind", "tool_result"},
           {"id", a.id},
           {"name", a.tool},
           {"content", (by == "timeout" ? std::string("no one approved this call in time")
                                        : std::string("a person denied this call")) +
                           (reason.empty() ? std::string() : ": " + reason)},
           {"is_error", true}});
  write(self, std::move(entries), [self] { next_tool(self); });
}

/// Runs the next tool call of the last answer, or asks the model again.
/// What becomes of a call (`{id, name, input}`): `tool_call` (it runs) or
/// an error `tool_result` (unknown tool, the persona's rules, a stop).
json plan_call(const agent_state& st, const json& call) {
  const auto id = call.value("id", "");
  const auto name = call.value("name", "");
  const auto input = call.value("input", json::object());
  const bool known =
      std::find(std::begin(tool_names), std::end(tool_names), name) != std::end(tool_names);
  std::string refusal;
  if (!known) {
    refusal = "there is no tool '" + name + "'";
  } else if (st.active) {
    const auto verdict = check_tool(*st.active, name, input);
    if (!verdict.allowed) {
      refusal = "the persona '" + st.active->name + "' does not allow this call: " + verdict.reason;
    }
  }
  if (st.stop_requested) {
    refusal = "the agent was stopped before this call ran";
  }
  if (!refusal.empty()) {
    return json{{"kind", "tool_result"},
                {"id", id},
                {"name", name},
                {"content", refusal},
                {"is_error", true}};
  }
  return json{{"kind", "tool_call"}, {"id", id}, {"name", name}, {"input", input}};
}

/// Writes `entries` and what becomes of `call`, then carries it out.
void write_and_run(agent_actor* self, std::vector<json> entries, const json& call) {
  auto plan = plan_call(self->state, call);
  const bool runs = plan["kind"] == "tool_call";
  entries.push_back(plan);
  if (!runs) {
    return write(self, std::move(entries), [self] { next_tool(self); });
  }
  write(self, std::move(entries), [self, plan] {
    dispatch_tool(self, plan.at("id").get<std::string>(), plan.at("name").get<std::string>(),
                  plan.at("input"), false);
  });
}

void next_tool(agent_actor* self) {
  auto& st = self->state;
  if (st.conv.pending.empty()) {
    return step(self);
  }
  write_and_run(self, {}, st.conv.pending.front());
}

void start_turn(agent_actor* self, waiter w, std::string prompt);

/// The persona a prompt follows: the agent's own, or the best match.
void choose_persona(agent_actor* self, std::string prompt,
                    std::function<void(expected<std::optional<persona_info>>, json)> done) {
  auto& st = self->state;
  auto fetch = [self, done](std::string name, json why) {
    self->state.requests.ask(
        self, personas_path,
        make_envelope(persona_get_type, persona_name{name, self->state.spec.workspace}),
        persona_timeout, [done, why = std::move(why)](envelope reply) {
          if (reply.type == error_type) {
            return done(read_error(reply), why);
          }
          auto info = decode<persona_info>(reply.body);
          if (!info) {
            return done(std::move(info).err(), why);
          }
          done(std::optional<persona_info>(std::move(*info)), why);
        });
  };
  if (!st.spec.persona.empty()) {
    return fetch(st.spec.persona, json{{"rule", "the agent's own persona"}});
  }
  st.requests.ask(self, personas_path,
                  make_envelope(persona_match_type, match_request{prompt, st.spec.workspace}),
                  persona_timeout, [done, fetch](envelope reply) {
                    if (reply.type == error_type) {
                      return done(read_error(reply), json());
                    }
                    auto match = decode<match_reply>(reply.body);
                    if (!match) {
                      return done(std::move(match).err(), json());
                    }
                    json why{{"rule", match->rule}};
                    json reasons = json::array();
                    for (const auto& c : match->candidates) {
                      reasons.push_back(json{{"name", c.name},
                                             {"priority", c.priority},
                                             {"score", c.score},
                                             {"reasons", c.reasons}});
                    }
                    why["candidates"] = std::move(reasons);
                    if (!match->chosen) {
                      return done(std::optional<persona_info>(), why);
                    }
                    fetch(*match->chosen, std::move(why));
                  });
}

expected<persona> to_persona(const persona_info& info) {
  persona p;
  p.name = info.name;
  p.description = info.description;
  p.model = info.model;
  p.prompt = info.prompt.value_or("");
  p.priority = static_cast<int>(info.priority);
  p.context_tokens = info.context_tokens;
  p.source = info.source;
  if (info.tools) {
    p.tools.emplace();
    for (const auto& text : *info.tools) {
      auto rule = parse_tool_rule(text);
      if (!rule) {
        return std::move(rule).err();
      }
      p.tools->push_back(std::move(*rule));
    }
  }
  for (const auto& text : info.disallowed_tools) {
    auto rule = parse_tool_rule(text);
    if (!rule) {
      return std::move(rule).err();
    }
    p.disallowed.push_back(std::move(*rule));
  }
  return p;
}

void start_turn(agent_actor* self, waiter w, std::string prompt) {
  auto& st = self->state;
  if (st.at == phase::loading) {
    if (st.early.size() >= early_prompts_max) {
      return refuse(self, w,
                    make_error(errc::restarting,
                               "agent '" + st.spec.name + "' is reading its transcript; retry"));
    }
    st.early.emplace_back(std::move(w), std::move(prompt));
    return;
  }
  if (st.at != phase::idle) {
    return refuse(self, w,
                  make_error(errc::conflict, "agent '" + st.spec.name +
                                                 "' is running a turn: wait for it, or stop it"));
  }
  if (prompt.empty() || prompt.size() > prompt_bytes_max) {
    return refuse(self, w,
                  make_error(errc::bad_request, "the prompt must be 1 to " +
                                                    std::to_string(prompt_bytes_max) + " bytes"));
  }
  st.at = phase::persona;
  st.who = std::move(w);
  st.turn_events.clear();
  st.turn_usage = {};
  st.last_text.clear();
  choose_persona(
      self, prompt, [self, prompt](expected<std::optional<persona_info>> chosen, json why) {
        auto& s = self->state;
        std::optional<persona> active;
        if (chosen && *chosen) {
          auto p = to_persona(**chosen);
          if (!p) {
            chosen = std::move(p).err();
          } else {
            active = std::move(*p);
          }
        }
        if (!chosen) {
          // Nothing was written: the prompt is refused as a whole.
          s.at = phase::idle;
          auto w = std::move(*s.who);
          s.who.reset();
          return refuse(self, w, chosen.err());
        }
        s.active = std::move(active);
        s.persona_name = s.active ? s.active->name : std::string();
        s.model = resolve_model(s);
        why["kind"] = "persona";
        why["name"] = s.persona_name;
        why["model"] = s.model;
        s.stop_hook_active = false;
        run_event_hooks(
            self, "UserPromptSubmit", json{{"prompt", prompt}},
            [self, prompt, why = std::move(why)](hooks_done done) {
              json entry{{"kind", "prompt"}, {"text", prompt}};
              auto& s2 = self->state;
              auto context = std::exchange(s2.session_context, std::string());
              if (!done.additional_context.empty()) {
                context += (context.empty() ? "" : "\n") + done.additional_context;
              }
              if (!context.empty()) {
                entry["context"] = std::move(context);
              }
              std::vector<json> entries{std::move(entry), why};
              auto notes = hook_entries(done.hooks, "");
              entries.insert(entries.end(), notes.begin(), notes.end());
              if (done.verdict == "block" || done.verdict == "stop" || done.verdict == "deny") {
                // The prompt is recorded, and not answered.
                self->state.last_text =
                    "a UserPromptSubmit hook blocked the prompt: " + done.reason;
                return write(self, std::move(entries), [self] { end_turn(self, "hook"); });
              }
              write(self, std::move(entries), [self] { step(self); });
            });
      });
}

// ---- a new incarnation -----------------------------------------------------

void resume(agent_actor* self);

void read_transcript(agent_actor* self, uint64_t after) {
  auto& st = self->state;
  st.requests.ask(
      self, journal_path,
      make_envelope(transcript_read_type, read_request{st.spec.name, after, transcript_page_max}),
      journal_timeout, [self](envelope reply) {
        auto& s = self->state;
        if (reply.type == error_type) {
          // Without its transcript the agent cannot run: its supervisor
          // starts it again (restart intensity bounds a broken store).
          throw std::runtime_error("agent " + s.spec.name +
                                   ": cannot read the transcript: " + read_error(reply).message);
        }
        auto page = decode<transcript_page>(reply.body, decode_limits{.body_bytes_max = 1u << 30});
        if (!page) {
          throw std::runtime_error("agent " + s.spec.name +
                                   ": unreadable transcript page: " + page.err().message);
        }
        for (const auto& e : page->entries) {
          auto doc = json::parse(e.data, nullptr, false);
          apply_entry(s.conv, doc);
          s.next_seq = std::max(s.next_seq, e.seq + 1);
          const auto kind = doc.is_object() ? doc.value("kind", "") : std::string();
          if (kind == "assistant" || (kind == "compaction" && doc.contains("summary"))) {
            add_usage(s.total_usage, usage_of(doc.value("usage", json::object())));
            ++s.calls;
          } else if (kind == "persona") {
            s.persona_name = doc.value("name", "");
            s.model = doc.value("model", "");
          } else if (kind == "turn_end") {
            s.last_stop = doc.value("stop_reason", "");
            s.last_text = doc.value("text", "");
          }
        }
        if (page->next != 0) {
          return read_transcript(self, page->next);
        }
        // SessionStart hooks, as Claude Code runs them when a session
        // starts (an agent's first incarnation) or resumes (any later one).
        const bool fresh = s.next_seq == 1;
        run_event_hooks(
            self, "SessionStart", json{{"source", fresh ? "startup" : "resume"}},
            [self](hooks_done done) {
              auto& s2 = self->state;
              s2.session_context = std::move(done.additional_context);
              auto notes = hook_entries(done.hooks, "");
              if (notes.empty()) {
                return resume(self);
              }
              write(self, std::move(notes), [self] { resume(self); });
            },
            fresh ? "startup" : "resume");
      });
}

void run_early(agent_actor* self) {
  auto early = std::move(self->state.early);
  self->state.early.clear();
  for (auto& [w, prompt] : early) {
    start_turn(self, std::move(w), std::move(prompt));
  }
}

/// Carries on from the transcript: a turn the agent was in goes on, with
/// every tool call that had started answered "interrupted".
void resume(agent_actor* self) {
  auto& st = self->state;
  if (!st.conv.in_turn) {
    st.at = phase::idle;
    return run_early(self);
  }
  st.log->info("agent {}: carrying on with its turn after a restart", st.spec.name);
  st.at = phase::persona;
  // Prompts that came while the transcript was read wait for no turn: one
  // is under way.
  run_early(self);
  auto go_on = [self] {
    auto& s = self->state;
    if (s.model.empty()) {
      s.model = resolve_model(s);
    }
    std::vector<json> cut;
    // A pending call with a tool_call entry had started: it may have run.
    // (Calls not yet started run now, in order.)
    for (const auto& call : s.conv.pending) {
      if (call.value("started", false)) {
        cut.push_back(json{{"kind", "interrupted"},
                           {"id", call.value("id", "")},
                           {"name", call.value("name", "")}});
      }
    }
    // A call that waited for a person waits again, for a full timeout.
    if (cut.empty() && !s.conv.pending.empty() && s.conv.pending.front().value("awaiting", false)) {
      const auto& call = s.conv.pending.front();
      return park_for_approval(self, approval_info{call.value("id", ""), call.value("name", ""),
                                                   call.value("input", json::object()).dump(),
                                                   "asked before the agent restarted", 0, ""});
    }
    auto after = [self] {
      auto& s2 = self->state;
      s2.at = s2.conv.pending.empty() ? phase::model : phase::tools;
      if (!s2.conv.pending.empty()) {
        return next_tool(self);
      }
      if (ready_for_model(s2.conv)) {
        return step(self);
      }
      // The last answer was written and its turn_end was not.
      end_turn(self, "end_turn");
    };
    if (cut.empty()) {
      return after();
    }
    write(self, std::move(cut), after);
  };
  if (st.persona_name.empty()) {
    return go_on();
  }
  st.requests.ask(self, personas_path,
                  make_envelope(persona_get_type, persona_name{st.persona_name, st.spec.workspace}),
                  persona_timeout, [self, go_on](envelope reply) {
                    auto& s = self->state;
                    if (reply.type != error_type) {
                      if (auto info = decode<persona_info>(reply.body)) {
                        if (auto p = to_persona(*info)) {
                          s.active = std::move(*p);
                        }
                      }
                    }
                    if (!s.active) {
                      s.log->warn("agent {}: persona '{}' is gone; carrying on without it",
                                  s.spec.name, s.persona_name);
                    }
                    go_on();
                  });
}

// ---- messages --------------------------------------------------------------

void on_request(agent_actor* self, const std::string& type, const std::string& body,
                uint64_t correlation_id) {
  auto& st = self->state;
  // Read before the promise takes the sender out of the message.
  auto sender = caf::actor_cast<caf::actor>(self->current_sender());
  auto rp = self->make_response_promise();
  if (type == http_msg::request_type) {
    rp.deliver(std::string(http_msg::request_type) + ".reply", encode(empty_body{}), uint64_t{0});
    waiter w;
    w.exchange = sender;
    w.correlation_id = correlation_id;
    auto req = decode<http_msg::request>(body, decode_limits{.body_bytes_max = 64u << 20});
    if (!req) {
      return refuse(self, w, req.err());
    }
    auto ex = http_msg::from_message(std::move(*req));
    w.sse = ex.header("accept").find("application/json") == std::string_view::npos;
    auto doc = json::parse(ex.body, nullptr, false);
    if (!doc.is_object() || !doc.contains("prompt") || !doc["prompt"].is_string()) {
      return refuse(self, w,
                    make_error(errc::bad_request, "the body must be {\"prompt\": string}"));
    }
    return start_turn(self, std::move(w), doc["prompt"].get<std::string>());
  }
  if (type == agent_prompt_type) {
    waiter w;
    w.promise = rp;
    w.correlation_id = correlation_id;
    auto req = decode<prompt_request>(body, decode_limits{.body_bytes_max = prompt_bytes_max + 64});
    if (!req) {
      return refuse(self, w, req.err());
    }
    return start_turn(self, std::move(w), std::move(req->prompt));
  }
  if (type == agent_stop_type) {
    if (st.at == phase::approval && st.approval) {
      st.stop_requested = true;
      decide(self, false, "person", "the agent was stopped");
    } else if (st.at != phase::idle && st.at != phase::loading) {
      st.stop_requested = true;
      if (st.at == phase::model && st.call_open) {
        // The answer awaited no longer counts; the turn ends now.
        let_go_of_call(self);
        st.last_text = "stopped by a person";
        end_turn(self, "stopped");
      }
    }
    return deliver(
        rp, make_envelope(std::string(agent_info_type) + ".reply", info_of(st), correlation_id));
  }
  if (type == agent_info_type) {
    return deliver(
        rp, make_envelope(std::string(agent_info_type) + ".reply", info_of(st), correlation_id));
  }
  if (type == agent_end_type) {
    auto req = decode<end_request>(body);
    const auto reason = req ? req->reason : std::string("other");
    return run_event_hooks(
        self, "SessionEnd", json{{"reason", reason}},
        [self, rp, correlation_id](hooks_done done) mutable {
          auto notes = hook_entries(done.hooks, "");
          auto reply = [rp, correlation_id, self]() mutable {
            deliver(rp, make_envelope(std::string(agent_end_type) + ".reply", info_of(self->state),
                                      correlation_id));
          };
          if (notes.empty()) {
            return reply();
          }
          write(self, std::move(notes), reply);
        },
        reason);
  }
  if (type == agent_approvals_type) {
    approval_list list;
    if (st.approval) {
      auto a = *st.approval;
      const auto now = wall_ms();
      a.expires_in_ms = st.approval_deadline_ms > now ? st.approval_deadline_ms - now : 0;
      list.approvals.push_back(std::move(a));
    }
    return deliver(
        rp, make_envelope(std::string(agent_approvals_type) + ".reply", list, correlation_id));
  }
  if (type == agent_decide_type) {
    auto req = decode<decide_request>(body);
    if (!req) {
      return deliver(rp, make_error_envelope(req.err(), correlation_id));
    }
    if (!st.approval || (!req->id.empty() && req->id != st.approval->id)) {
      return deliver(
          rp, make_error_envelope(
                  make_error(errc::not_found,
                             "agent '" + st.spec.name + "' has no call waiting" +
                                 (req->id.empty() ? std::string() : " with id '" + req->id + "'")),
                  correlation_id));
    }
    auto a = *st.approval;
    a.decision = req->approve ? "approved" : "denied";
    decide(self, req->approve, "person", req->reason);
    return deliver(rp, make_envelope(std::string(agent_decide_type) + ".reply", a, correlation_id));
  }
  deliver(rp,
          make_error_envelope(make_error(errc::unknown_type,
                                         "agent '" + st.spec.name + "' does not answer '" + type +
                                             "' (it answers agent.prompt, agent.stop, agent.info, "
                                             "agent.approvals, agent.decide)"),
                              correlation_id));
}

void on_notice(agent_actor* self, const std::string& type, const std::string& body,
               uint64_t correlation_id) {
  auto& st = self->state;
  if (type == tool_done_type) {
    auto done = decode<tool_done>(body, decode_limits{.body_bytes_max = 64u << 20});
    if (!done || st.conv.pending.empty() || st.conv.pending.front().value("id", "") != done->id) {
      return;  // not the call awaited (an earlier incarnation's)
    }
    return on_tool_done(self, std::move(*done));
  }
  if (type == hooks_done_type) {
    auto done = decode<hooks_done>(body, decode_limits{.body_bytes_max = 64u << 20});
    if (!done) {
      return;
    }
    auto it = st.hook_waits.find(done->ticket);
    if (it == st.hook_waits.end()) {
      return;
    }
    auto then = std::move(it->second);
    st.hook_waits.erase(it);
    return then(std::move(*done));
  }
  if (type == http_msg::gone_type) {
    // The client left: the turn goes on (the transcript has it all). Only
    // the exchange the turn answers says so for it; a late word about an
    // earlier exchange, or from anyone else, is not about this turn.
    if (st.who && st.who->exchange && correlation_id == st.who->correlation_id &&
        caf::actor_cast<caf::actor_addr>(self->current_sender()) == st.who->exchange.address()) {
      st.who.reset();
    }
    return;
  }
  if (!st.call_open || correlation_id != st.call_generation) {
    return;  // an answer nobody waits for any more
  }
  if (type == http_msg::reply_type) {
    auto reply = decode<http_msg::reply>(body, decode_limits{.body_bytes_max = 1u << 30});
    if (!reply) {
      return fail_turn(self, "the model's answer could not be read: " + reply.err().message);
    }
    return on_answer(self, reply->status, json::parse(reply->bytes, nullptr, false));
  }
  if (type == http_msg::head_type) {
    auto head = decode<http_msg::head>(body);
    if (!head) {
      return fail_turn(self, "the model's answer could not be read: " + head.err().message);
    }
    st.streamed.emplace();
    st.streamed->status = head->status;
    return;
  }
  if ((type == http_msg::chunk_type || type == http_msg::end_type) && !st.streamed) {
    return fail_turn(self, "the LLM router streamed an answer without its head");
  }
  if (type == http_msg::chunk_type) {
    auto chunk = decode<http_msg::chunk>(body, decode_limits{.body_bytes_max = 1u << 30});
    if (!chunk) {
      return fail_turn(self, "the model's answer could not be read: " + chunk.err().message);
    }
    return on_answer_bytes(self, chunk->bytes);
  }
  if (type == http_msg::end_type) {
    return on_answer_end(self);
  }
  if (type == http_msg::dropped_type) {
    return fail_turn(self, "the LLM router let go of the call unanswered");
  }
}

caf::behavior agent_behavior(agent_actor* self, std::shared_ptr<node_context> ctx,
                             agent_spec spec) {
  auto& st = self->state;
  st.ctx = std::move(ctx);
  st.spec = std::move(spec);
  st.requests = asker(st.ctx->registry);
  st.log = logger("agents");
  read_transcript(self, 0);
  return {
      [self](std::string& type, std::string& body, uint64_t correlation_id) {
        if (self->current_message_id().is_request()) {
          return on_request(self, type, body, correlation_id);
        }
        on_notice(self, type, body, correlation_id);
      },
      [self](approval_timeout_atom, uint64_t generation) {
        auto& s = self->state;
        if (s.approval && generation == s.approval_generation) {
          decide(self, false, "timeout",
                 "after " + std::to_string(s.ctx->config.agents.approval_timeout_s) + " s");
        }
      },
  };
}

// ---- the worker ------------------------------------------------------------

std::string bounded(std::string text) {
  if (text.size() > tool_output_bytes_max) {
    const auto cut = text.size() - tool_output_bytes_max;
    text.resize(tool_output_bytes_max);
    text += "\n[troupe: " + std::to_string(cut) + " more bytes cut]";
  }
  return text;
}

/// Bash's input, checked: the command and its timeout.
struct bash_call {
  std::string command;
  std::chrono::milliseconds timeout{bash_timeout_default_ms};
};

expected<bash_call> read_bash_call(const json& input) {
  const auto it = input.find("command");
  if (it == input.end() || !it->is_string() || it->get_ref<const std::string&>().empty()) {
    return make_error(errc::bad_request, "Bash needs \"command\": a non-empty string");
  }
  bash_call call{it->get<std::string>()};
  if (auto t = input.find("timeout"); t != input.end()) {
    if (!t->is_number_integer() || t->get<int64_t>() < 1 ||
        t->get<int64_t>() > bash_timeout_max_ms) {
      return make_error(errc::bad_request, "Bash \"timeout\" must be 1 to " +
                                               std::to_string(bash_timeout_max_ms) + " ms");
    }
    call.timeout = std::chrono::milliseconds(t->get<int64_t>());
  }
  return call;
}

/// What a command's run tells the model: its output, then why it failed.
tool_output bash_answer(std::string text, std::optional<int> status, bool timed_out,
                        std::chrono::milliseconds timeout) {
  tool_output out;
  if (timed_out) {
    text += "\n[the command timed out after " + std::to_string(timeout.count()) +
            " ms; its process group was killed]";
    out.is_error = true;
  } else if (status && *status != 0) {
    text += "\n[exit status " + std::to_string(*status) + "]";
    out.is_error = true;
  }
  out.content = bounded(std::move(text));
  return out;
}

/// Bash as a plain process group in the workspace (a node without a
/// sessions family).
tool_output bash_alone(const std::string& workspace, const bash_call& call) {
  hook_command cmd{call.command, call.timeout, false, "Bash"};
  auto run = run_hook(cmd, {}, workspace, workspace);
  if (run.failed_to_start) {
    return {"the command could not be started: " + run.out, true, {}, {}};
  }
  std::string text = run.out;
  if (!run.err.empty()) {
    text += (text.empty() || text.back() == '\n' ? "" : "\n") + run.err;
  }
  return bash_answer(std::move(text), run.exit_code, run.timed_out, call.timeout);
}

/// Bash in the agent's terminal session.
tool_output bash_in_session(const worker_env& env, const std::string& agent,
                            const std::string& workspace, const bash_call& call) {
  auto run = run_in_session(*env.system, *env.ctx, agent, workspace, call.command, call.timeout);
  if (!run.problem.empty()) {
    return {"Bash could not run: " + run.problem, true, {}, {}};
  }
  if (run.shell_ended && !run.status) {
    run.output +=
        "\n[the agent's shell ended before the command did; the next command starts a "
        "new one]";
    return {bounded(std::move(run.output)), true, {}, {}};
  }
  return bash_answer(std::move(run.output), run.status, run.timed_out, call.timeout);
}

tool_output bash_tool(const worker_env& env, const std::string& agent, const std::string& workspace,
                      const json& input) {
  auto call = read_bash_call(input);
  if (!call) {
    return {call.err().message, true, {}, {}};
  }
  const bool has_sessions = env.system != nullptr && env.ctx != nullptr &&
                            env.ctx->registry.find("sessions/manager").has_value();
  return has_sessions ? bash_in_session(env, agent, workspace, *call)
                      : bash_alone(workspace, *call);
}

/// The node's hooks (agents.hooks_file, checked when the node started),
/// then the workspace's.
hook_settings hooks_of(const std::string& workspace, const std::string& node_hooks) {
  hook_settings base;
  if (!node_hooks.empty()) {
    add_settings_file(base, node_hooks);
  }
  return load_workspace_hooks(workspace, std::move(base));
}

hook_note note_of(hook_event e, const hook_decision& d) {
  return hook_note{std::string(to_string(e)), std::string(to_string(d.verdict)), d.reason, d.error};
}

/// Runs the hooks of `e` whose matchers take `subject`, in `workspace`,
/// with `event` on stdin; each run is noted in `notes`.
hook_decision run_hooks(const hook_settings& settings, hook_event e, std::string_view subject,
                        const std::string& workspace, const json& event,
                        std::vector<hook_note>& notes) {
  std::vector<hook_decision> decisions;
  const auto input = event.dump();
  for (const auto& cmd : hooks_for(settings, e, subject)) {
    auto run = run_hook(cmd, input, workspace, workspace);
    auto decision = interpret(e, run, cmd.fail_closed);
    notes.push_back(note_of(e, decision));
    decisions.push_back(std::move(decision));
  }
  return combine(decisions);
}

}  // namespace

std::string transcript_file(const node_context& ctx, const std::string& name) {
  return (std::filesystem::path(ctx.config.node.data_dir) / "transcripts" / (name + ".jsonl"))
      .string();
}

tool_done run_tool_job(const tool_job& job, const worker_env& env) {
  tool_done done;
  done.id = job.id;
  done.name = job.name;
  auto input = json::parse(job.input, nullptr, false);
  if (!input.is_object()) {
    input = json::object();
  }
  const auto settings = hooks_of(job.workspace, job.node_hooks);
  json event{{"session_id", job.agent}, {"transcript_path", job.transcript_path},
             {"cwd", job.workspace},    {"hook_event_name", "PreToolUse"},
             {"tool_name", job.name},   {"tool_input", input},
             {"tool_use_id", job.id}};
  const auto pre = job.approved ? hook_decision{}
                                : run_hooks(settings, hook_event::pre_tool_use, job.name,
                                            job.workspace, event, done.hooks);
  switch (pre.verdict) {
    case hook_verdict::stop:
      done.stop = true;
      done.stop_reason = pre.reason;
      done.content = "a PreToolUse hook stopped the agent: " + pre.reason;
      done.is_error = true;
      return done;
    case hook_verdict::deny:
    case hook_verdict::block:
      done.content = "a PreToolUse hook refused this call: " + pre.reason;
      done.is_error = true;
      return done;
    case hook_verdict::ask:
      // A person decides; the agent holds the call until then.
      done.ask = true;
      done.content = pre.reason;
      if (pre.updated_input && pre.updated_input->is_object()) {
        done.updated_input = pre.updated_input->dump();
      }
      return done;
    default:
      break;
  }
  if (pre.updated_input && pre.updated_input->is_object()) {
    input = *pre.updated_input;
    done.updated_input = input.dump();
  }
  tool_output out;
  if (job.name == "Bash") {
    out = bash_tool(env, job.agent, job.workspace, input);
  } else {
    auto ws = workspace::open(job.workspace);
    if (!ws) {
      out = {"the workspace cannot be used: " + ws.err().message, true, {}, {}};
    } else if (job.name == "Read") {
      out = read_tool(*ws, input);
    } else if (job.name == "Write") {
      out = write_tool(*ws, input);
    } else if (job.name == "Edit") {
      out = edit_tool(*ws, input);
    } else if (job.name == "Glob") {
      out = glob_tool(*ws, input);
    } else if (job.name == "Grep") {
      out = grep_tool(*ws, input);
    } else {
      out = {"there is no tool '" + job.name + "'", true, {}, {}};
    }
  }
  if (!pre.additional_context.empty()) {
    out.content += "\n\n" + pre.additional_context;
  }
  event["hook_event_name"] = "PostToolUse";
  event["tool_input"] = input;
  event["tool_response"] = json{{"content", out.content}, {"is_error", out.is_error}};
  const auto post =
      run_hooks(settings, hook_event::post_tool_use, job.name, job.workspace, event, done.hooks);
  if (post.verdict == hook_verdict::block || post.verdict == hook_verdict::deny) {
    out.content += "\n\n[PostToolUse hook: " + post.reason + "]";
  } else if (post.verdict == hook_verdict::stop) {
    done.stop = true;
    done.stop_reason = post.reason;
  }
  if (!post.additional_context.empty()) {
    out.content += "\n\n" + post.additional_context;
  }
  done.content = bounded(std::move(out.content));
  done.is_error = out.is_error;
  done.read_paths = std::move(out.read_paths);
  done.written_paths = std::move(out.written_paths);
  return done;
}

envelope run_worker_job(const std::string& type, const std::string& body, const worker_env& env) {
  constexpr decode_limits limits{.body_bytes_max = 64u << 20};
  if (type == tool_job_type) {
    auto job = decode<tool_job>(body, limits);
    if (!job) {
      return make_error_envelope(job.err());
    }
    return make_envelope(tool_done_type, run_tool_job(*job, env));
  }
  if (type == hook_job_type) {
    auto job = decode<hook_job>(body, limits);
    if (!job) {
      return make_error_envelope(job.err());
    }
    return make_envelope(hooks_done_type, run_hook_job(*job));
  }
  return make_error_envelope(make_error(errc::unknown_type, "no worker job '" + type + "'"));
}

hooks_done run_hook_job(const hook_job& job) {
  hooks_done out;
  out.ticket = job.ticket;
  const auto e = hook_event_named(job.event);
  if (!e) {
    out.verdict = std::string(to_string(hook_verdict::proceed));
    return out;
  }
  const auto settings = hooks_of(job.workspace, job.node_hooks);
  json event{{"session_id", job.agent},
             {"transcript_path", job.transcript_path},
             {"cwd", job.workspace},
             {"hook_event_name", job.event}};
  auto fields = json::parse(job.fields, nullptr, false);
  if (fields.is_object()) {
    event.update(fields);
  }
  const auto combined = run_hooks(settings, *e, job.subject, job.workspace, event, out.hooks);
  out.verdict = std::string(to_string(combined.verdict));
  out.reason = combined.reason;
  out.additional_context = combined.additional_context;
  return out;
}

child_spec agent_child(std::shared_ptr<node_context> ctx, agent_spec spec) {
  child_spec child;
  child.name = spec.name;
  child.kind = actor_kind::worker;
  child.restart = restart_type::permanent;
  child.start = [ctx = std::move(ctx), spec = std::move(spec)](caf::actor_system& system,
                                                               const std::string&) {
    return system.spawn([ctx, spec](agent_actor* self) { return agent_behavior(self, ctx, spec); });
  };
  return child;
}

}  // namespace troupe::agents
