#include "actors/llm/router.hpp"

#include <algorithm>
#include <cassert>
#include <deque>
#include <map>
#include <set>
#include <thread>
#include <unordered_map>

#include <spdlog/logger.h>
#include <boost/asio/post.hpp>
#include <boost/asio/thread_pool.hpp>
#include <caf/all.hpp>

#include "actors/cache/client.hpp"
#include "actors/cache/messages.hpp"
#include "actors/llm/internal.hpp"
#include "actors/llm/ledger.hpp"
#include "actors/llm/limiter.hpp"
#include "actors/llm/messages.hpp"
#include "actors/llm/pauses.hpp"
#include "actors/llm/requester.hpp"
#include "actors/llm/sse.hpp"
#include "runtime/actor/ask.hpp"
#include "runtime/actor/envelope_message.hpp"
#include "runtime/log/log.hpp"
#include "runtime/node/error_answer.hpp"
#include "runtime/node/json_body.hpp"
#include "runtime/node/node_context.hpp"
#include "runtime/protocol/codec.hpp"
#include "runtime/wall_clock.hpp"
#include "storage/db.hpp"
#include "storage/writer.hpp"

namespace troupe::llm {

exchange_state::~exchange_state() {
  if (!answered && requester) {
    send_dropped(requester);
  }
}

namespace {

using json = nlohmann::json;
using poll_atom = caf::atom_constant<caf::atom("llmpoll")>;
using flush_atom = caf::atom_constant<caf::atom("llmflush")>;

/// How often the ledger reaches the disk at most: bookings in between are
/// batched into one write per row.
constexpr std::chrono::milliseconds ledger_flush_period{500};
/// How long a copy of each answer stays for the stale fallback, in units of
/// the cache's own lifetime.
constexpr uint64_t stale_lifetimes = 7;
/// Where those copies live in the ledger column family.
constexpr std::string_view answer_prefix = "answer/";
/// Models paused at once by their upstream's retry-after; past it, the
/// pause that ends first is forgotten (client-chosen names are unbounded).
constexpr size_t pauses_max = 1000;
/// Queue timeouts are checked at least this often while requests wait.
constexpr std::chrono::milliseconds queue_check_period{100};
/// Requests that may wait for one identical request in flight. Each is a
/// client connection the gateway already bounds; past this, a request
/// makes its own call rather than grow one list without end.
constexpr size_t followers_max = 10'000;

/// JSON nesting deeper than this is refused while parsing: copies of a
/// json value recurse once per level, so a body of a few megabytes of '['
/// would otherwise overflow the stack. Real requests nest ~10 deep (tool
/// schemas more, hence more room than the gateway's own routes get).
constexpr int json_depth_max = 128;

/// Longest anthropic-beta value that still gets cached answers (it is part
/// of the key, which has a size limit).
constexpr size_t beta_key_chars_max = 256;

/// Longest model name accepted; real ones are a few dozen characters.
constexpr size_t model_chars_max = 256;

/// Bodies up to this size are parsed and checked on the router's own thread
/// (a fraction of a millisecond). Larger ones (Claude Code sends a few
/// hundred KB; a hostile client megabytes of tiny messages) go to the parse
/// pool, so that one client's big bodies never hold up everyone's requests.
constexpr size_t inline_parse_bytes_max = 64 * 1024;

/// Threads of the parse pool: half the cores, at least two.
size_t parse_threads() {
  return std::max<size_t>(2, std::thread::hardware_concurrency() / 2);
}

/// What checking a request needs from the router's configuration: fixed
/// when the router starts, shared read-only with the parse pool.
struct request_rules {
  llm_section cfg;
  std::map<std::string, std::string> aliases;
  /// Where dependency paths must lie (cache.dependency_roots).
  std::vector<std::string> roots;
};

/// Identical requests (one canonical key) in flight at once: the leader
/// calls the upstream, the followers wait for its answer.
struct flight {
  /// Empty once the answer landed; expired too if the leader was dropped
  /// unanswered (its provider died under it): then a follower takes over
  /// (recover_flights), so nobody waits on a call that will never end.
  std::weak_ptr<exchange_state> leader;
  std::vector<std::shared_ptr<exchange_state>> followers;
  /// The leader's answer as the cache keeps it, from when it landed until
  /// the cache acknowledged storing it: a repeat in that window gets it at
  /// once instead of missing.
  std::string landed;
};

struct router_state {
  std::shared_ptr<node_context> ctx;
  /// Requests to the cache shards.
  asker shard_requests;
  std::shared_ptr<db> store;
  /// The router's writes (ledger rows, stale copies) go through it, so the
  /// router never waits for the disk.
  std::shared_ptr<store_writer> writer;
  std::shared_ptr<ledger> book;
  std::unique_ptr<limiter> limits;
  std::unordered_map<ticket_id, std::shared_ptr<exchange_state>> waiting;
  /// By canonical key.
  std::unordered_map<std::string, flight> flights;
  std::shared_ptr<const request_rules> rules;
  /// Large bodies are parsed here (see inline_parse_bytes_max), at most
  /// `parses_per_client` of one client at a time; the rest of that client's
  /// wait in order, so another client always finds a free thread.
  std::unique_ptr<boost::asio::thread_pool> parse_pool;
  size_t parses_per_client = 1;
  std::unordered_map<std::string, size_t> parsing;
  std::unordered_map<std::string, std::deque<std::shared_ptr<exchange_state>>> parse_waiting;
  /// In the parse pool, by exchange id.
  std::unordered_map<uint64_t, std::shared_ptr<exchange_state>> being_parsed;
  size_t parses_in_pool = 0;
  size_t parses_waiting = 0;
  gauge* parse_gauge = nullptr;
  gauge* parse_waiting_gauge = nullptr;
  /// Back-off per provider/model, and the requests held until theirs ends.
  std::unique_ptr<upstream_pauses> pauses;
  std::multimap<clock::time_point, std::shared_ptr<exchange_state>> held;
  std::vector<std::string> fallback_models;
  bool has_local = false;
  /// Where a key's shard is.
  std::shared_ptr<const cache::client> cache;
  bool poll_armed = false;
  bool flush_armed = false;
  std::shared_ptr<spdlog::logger> log;
  metrics_registry* metrics = nullptr;
  gauge* queue_waiting = nullptr;

  /// Resolved once per label: the registry lookup allocates and locks.
  std::map<std::string, counter*, std::less<>> request_counters;
  std::map<std::string, counter*, std::less<>> token_counters;

  counter& requests(std::string_view result) {
    auto it = request_counters.find(result);
    if (it == request_counters.end()) {
      auto& c = metrics->counter("troupe_llm_requests_total",
                                 "Requests to /v1/messages by how they were answered",
                                 {{"result", std::string(result)}});
      it = request_counters.emplace(std::string(result), &c).first;
    }
    return *it->second;
  }
  counter& tokens(std::string_view kind) {
    auto it = token_counters.find(kind);
    if (it == token_counters.end()) {
      auto& c = metrics->counter("troupe_llm_tokens_total",
                                 "Tokens: upstream input/output, provider cache reads/writes, and "
                                 "tokens the response cache served",
                                 {{"kind", std::string(kind)}});
      it = token_counters.emplace(std::string(kind), &c).first;
    }
    return *it->second;
  }

  /// Exchanges by requester, so an `http.gone` from it reaches its
  /// exchange. Expired ones are swept.
  std::unordered_map<caf::actor_addr, std::weak_ptr<exchange_state>> requesters;
  uint64_t next_id = 1;
  /// Requests whose call runs at a provider, by id.
  std::unordered_map<uint64_t, std::shared_ptr<exchange_state>> calls;
  /// Providers this router watches: one that goes down takes its calls with it.
  std::set<caf::actor_addr> watched;
  size_t requesters_sweep_at = 1024;
  static inline const char* name = "troupe.llm.router";
};

using router_actor = caf::stateful_actor<router_state>;

// ---------------------------------------------------------------------------
// Answers
// ---------------------------------------------------------------------------

void reply(exchange_state& x, int status, http_headers headers, std::string body) {
  if (x.answered) {
    return;
  }
  x.answered = true;
  headers.emplace_back("content-type", "application/json");
  send_reply(x.requester, status, std::move(headers), std::move(body));
}

void reply_error(exchange_state& x, std::string_view type, std::string_view message,
                 http_headers headers = {}) {
  reply(x, anthropic_status(type), std::move(headers), anthropic_error_body(type, message));
}

/// A complete SSE byte sequence as one streamed answer.
void reply_stream(exchange_state& x, http_headers headers, std::string events) {
  if (x.answered) {
    return;
  }
  x.answered = true;
  headers.emplace_back("content-type", "text/event-stream");
  headers.emplace_back("cache-control", "no-cache");
  send_head(x.requester, 200, std::move(headers));
  send_chunk(x.requester, events);
  send_end(x.requester);
}

/// The message a cached value holds: 'S' + SSE events or 'M' + message JSON.
std::optional<json> message_of(std::string_view value) {
  if (value.empty()) {
    return std::nullopt;
  }
  if (value.front() == 'M') {
    auto parsed = json::parse(value.substr(1), nullptr, false);
    return parsed.is_discarded() ? std::nullopt : std::optional<json>(std::move(parsed));
  }
  if (value.front() != 'S') {
    return std::nullopt;
  }
  sse_parser parser;
  stream_assembler assembler;
  auto fed = parser.feed(value.substr(1), [&](sse_event&& e) { assembler.add(e); });
  if (!fed || !assembler.complete()) {
    return std::nullopt;
  }
  return assembler.message();
}

ledger_entry entry_for(const exchange_state& x) {
  ledger_entry e;
  e.model = x.info.model;
  e.client = x.req.client;
  e.agent = x.agent;
  e.persona = x.persona;
  e.counts.requests = 1;
  e.counts.queued = x.queued ? 1 : 0;
  e.counts.retries = x.retries;
  return e;
}

void arm_flush(router_actor* self) {
  if (!self->state.flush_armed) {
    self->state.flush_armed = true;
    self->delayed_send(self, ledger_flush_period, flush_atom::value);
  }
}

void book(router_actor* self, const ledger_entry& e) {
  auto& st = self->state;
  const auto budget = st.ctx->config.llm.budget_tokens;
  const auto before = budget == 0 ? 0 : st.book->client(e.client).spent();
  st.book->book(e);
  const auto& c = e.counts;
  st.tokens("upstream_input").inc(static_cast<double>(c.input_tokens));
  st.tokens("upstream_output").inc(static_cast<double>(c.output_tokens));
  st.tokens("provider_cache_read").inc(static_cast<double>(c.cache_read_input_tokens));
  st.tokens("provider_cache_write").inc(static_cast<double>(c.cache_creation_input_tokens));
  st.tokens("cache_served")
      .inc(static_cast<double>(c.served_input_tokens + c.served_output_tokens));
  if (budget != 0) {
    const auto alert_at = static_cast<uint64_t>(static_cast<double>(budget) *
                                                st.ctx->config.llm.budget_alert_fraction);
    const auto after = st.book->client(e.client).spent();
    if (before < alert_at && after >= alert_at) {
      st.log->warn("client '{}' has spent {} of its {} token budget", e.client, after, budget);
      st.metrics
          ->counter("troupe_llm_budget_alerts_total",
                    "Clients crossing the alert share of their token budget")
          .inc();
    }
  }
  arm_flush(self);
}

void add_usage(ledger_counts& c, const usage& u) {
  c.input_tokens += static_cast<uint64_t>(std::max<int64_t>(0, u.input_tokens));
  c.output_tokens += static_cast<uint64_t>(std::max<int64_t>(0, u.output_tokens));
  c.cache_read_input_tokens +=
      static_cast<uint64_t>(std::max<int64_t>(0, u.cache_read_input_tokens));
  c.cache_creation_input_tokens +=
      static_cast<uint64_t>(std::max<int64_t>(0, u.cache_creation_input_tokens));
}

/// Answers from a cached (or stale) value; false if the value is unusable.
bool serve_cached(router_actor* self, exchange_state& x, std::string_view value,
                  std::string_view label) {
  auto message = message_of(value);
  if (!message) {
    return false;
  }
  http_headers headers{{cache_header, std::string(label)},
                       {upstream_header, "cache/" + x.info.model}};
  if (x.info.stream) {
    reply_stream(
        x, std::move(headers),
        value.front() == 'S' ? std::string(value.substr(1)) : events_for_message(*message));
  } else {
    // A stored message goes out byte for byte as the upstream sent it.
    reply(x, 200, std::move(headers),
          value.front() == 'M' ? std::string(value.substr(1)) : message->dump());
  }
  const auto u = usage_of(*message);
  auto e = entry_for(x);
  e.counts.cache_hits = label == "hit" ? 1 : 0;
  e.counts.coalesced = label == "coalesced" ? 1 : 0;
  e.counts.stale_served = label == "stale" ? 1 : 0;
  // Every answer the cache gives is an upstream call (and its retries) not made.
  e.counts.retries_avoided = 1;
  // All the input the call would have sent: the prompt-cache reads and
  // writes are input tokens too, billed at other rates.
  const auto tokens = [](int64_t n) { return static_cast<uint64_t>(std::max<int64_t>(0, n)); };
  e.counts.served_input_tokens = tokens(u.input_tokens) + tokens(u.cache_read_input_tokens) +
                                 tokens(u.cache_creation_input_tokens);
  e.counts.served_output_tokens = tokens(u.output_tokens);
  book(self, e);
  self->state.requests(label).inc();
  return true;
}

void start_step(router_actor* self, const std::shared_ptr<exchange_state>& x);
void arm_poll(router_actor* self);
/// Asks the cache, then the upstream, for a request that calls for itself.
void lead(router_actor* self, const std::shared_ptr<exchange_state>& x);

// ---------------------------------------------------------------------------
// Flights: identical requests in flight at once make one call
// ---------------------------------------------------------------------------

/// Whether `x` was answered from a flight (joined or served at once); if
/// not, and it may share, it now leads a new flight for its key.
bool join_flight(router_actor* self, const std::shared_ptr<exchange_state>& x) {
  auto& st = self->state;
  if (x->key.empty() || !x->cacheable) {
    return false;
  }
  auto it = st.flights.find(x->key);
  if (it == st.flights.end()) {
    st.flights.emplace(x->key, flight{x, {}, {}});
    x->leads = true;
    return false;
  }
  // A refresh asks for a new sample: it makes its own call.
  if (x->mode != cache_mode::use) {
    return false;
  }
  auto& f = it->second;
  if (!f.landed.empty()) {
    return serve_cached(self, *x, f.landed, "coalesced");
  }
  auto leader = f.leader.lock();
  if (!leader) {
    // Its leader was dropped: this request leads the ones still waiting.
    f.leader = x;
    x->leads = true;
    x->shared = !f.followers.empty();
    return false;
  }
  if (f.followers.size() >= followers_max) {
    return false;
  }
  if (leader->abandoned() && leader->provider) {
    // Its client left and the call was being cancelled: it is wanted again.
    self->send(leader->provider, std::string(msg::cancel_type),
               encode(msg::cancel{leader->id, false}), uint64_t{0});
  }
  leader->shared = true;
  f.followers.push_back(x);
  arm_poll(self);  // to notice a leader dropped unanswered
  return true;
}

/// The leader's answer `value` (as the cache keeps it) reaches every
/// follower. With `storing`, the flight stays until the store is done.
void land_flight(router_actor* self, const exchange_state& x, const std::string& value,
                 bool storing) {
  auto& st = self->state;
  auto it = x.leads ? st.flights.find(x.key) : st.flights.end();
  if (it == st.flights.end()) {
    return;
  }
  auto followers = std::move(it->second.followers);
  if (storing) {
    it->second.leader.reset();
    it->second.followers.clear();
    it->second.landed = value;
  } else {
    st.flights.erase(it);
  }
  for (const auto& f : followers) {
    if (!serve_cached(self, *f, value, "coalesced")) {
      reply_error(*f, "api_error", "the shared upstream answer could not be read");
    }
  }
}

/// The leader's call failed (or its answer is an error): every follower
/// gets the same answer.
void fail_flight(router_actor* self, const exchange_state& x, int status,
                 const http_headers& headers, const std::string& body) {
  auto& st = self->state;
  auto it = x.leads ? st.flights.find(x.key) : st.flights.end();
  if (it == st.flights.end()) {
    return;
  }
  auto followers = std::move(it->second.followers);
  st.flights.erase(it);
  for (const auto& f : followers) {
    auto e = entry_for(*f);
    e.counts.errors = 1;
    book(self, e);
    st.requests("error").inc();
    reply(*f, status, headers, body);
  }
}

/// The leader `x` was abandoned: its client left and nobody follows it.
void drop_flight(router_actor* self, const exchange_state& x) {
  auto& st = self->state;
  auto it = x.leads ? st.flights.find(x.key) : st.flights.end();
  if (it != st.flights.end()) {
    assert(it->second.followers.empty());  // followers make the leader shared
    st.flights.erase(it);
  }
}

/// Answers the leader `x` with an error, and its followers alike.
void refuse(router_actor* self, exchange_state& x, int status, http_headers headers,
            std::string body) {
  fail_flight(self, x, status, headers, body);
  reply(x, status, std::move(headers), std::move(body));
}

void refuse_error(router_actor* self, exchange_state& x, std::string_view type,
                  std::string_view message, http_headers headers = {}) {
  refuse(self, x, anthropic_status(type), std::move(headers), anthropic_error_body(type, message));
}

// ---------------------------------------------------------------------------
// The chain
// ---------------------------------------------------------------------------

std::vector<chain_step> chain_for(const router_state& st, const exchange_state& x) {
  std::vector<chain_step> chain{{"anthropic", x.info.model}};
  if (x.req.target.starts_with("/v1/messages/count_tokens")) {
    return chain;
  }
  for (const auto& model : st.fallback_models) {
    if (model != x.info.model) {
      chain.push_back({"anthropic", model});
    }
  }
  if (st.has_local) {
    chain.push_back({"local", st.ctx->config.llm.local_model});
  }
  return chain;
}

/// An answer as the cache keeps it: `kind` 'M' (a whole message) or 'S'
/// (the event stream) in front of `body`.
std::string cache_value(char kind, std::string_view body) {
  std::string value;
  value.reserve(body.size() + 1);
  value += kind;
  value += body;
  return value;
}

/// Caches an answer (a cache_value) and hands it to the requests waiting
/// for it; the flight ends once the cache has it.
void store_answer(router_actor* self, exchange_state& x, std::string value) {
  auto& st = self->state;
  const auto& cfg = st.ctx->config;
  if (!x.cacheable || x.mode == cache_mode::bypass || value.size() > cfg.cache.value_bytes_max) {
    return land_flight(self, x, value, false);
  }
  land_flight(self, x, value, true);
  if (st.ctx->config.llm.stale_fallback && st.writer) {
    const auto lifetime_ms = uint64_t{cfg.llm.cache_ttl_s} * 1000 * stale_lifetimes;
    st.writer->put(column::ledger, std::string(answer_prefix) + x.key, value,
                   wall_ms() + lifetime_ms);
  }
  cache::put_request put{x.key, std::move(value), cfg.llm.cache_ttl_s, x.deps, {}};
  st.shard_requests.ask(
      self, st.cache->shard_for(x.key), make_envelope(cache::put_type, put),
      std::chrono::milliseconds(cfg.gateway.request_timeout_ms),
      [self, key = x.leads ? x.key : std::string()](envelope r) {
        if (r.is_error()) {
          self->state.log->warn("caching an answer failed: {}", read_error(r).message);
        }
        if (!key.empty()) {
          self->state.flights.erase(key);  // the cache answers repeats from now on
        }
      });
}

void settle(router_actor* self, const exchange_state& x, const usage& u) {
  self->state.limits->settle(x.ticket_estimate, u.input_tokens, u.output_tokens, clock::now());
}

/// The upstream's own headers worth passing on, from a try's result.
http_headers passthrough_of(const msg::upstream_result& r) {
  upstream_response view;
  view.headers = http_msg::to_headers(r.headers);
  return passthrough_headers(view);
}

void all_failed(router_actor* self, const std::shared_ptr<exchange_state>& x,
                const msg::call_result& last) {
  auto& st = self->state;
  if (st.ctx->config.llm.stale_fallback && st.store && !x->key.empty()) {
    auto copy = st.store->get(column::ledger, std::string(answer_prefix) + x->key, wall_ms());
    if (copy && *copy && serve_cached(self, *x, **copy, "stale")) {
      st.log->warn("every upstream failed ({}); answered with a stale cached answer", last.reason);
      // The followers get the same stale answer (and are booked as such).
      auto it = x->leads ? st.flights.find(x->key) : st.flights.end();
      if (it != st.flights.end()) {
        auto followers = std::move(it->second.followers);
        st.flights.erase(it);
        for (const auto& f : followers) {
          serve_cached(self, *f, **copy, "stale");
        }
      }
      return;
    }
  }
  auto e = entry_for(*x);
  e.counts.errors = 1;
  book(self, e);
  st.requests("error").inc();
  if (last.last.status >= 400) {
    return refuse(self, *x, last.last.status, passthrough_of(last.last), last.last.body);
  }
  std::string why;
  for (const auto& failure : x->failures) {
    why += (why.empty() ? "" : "; ") + failure;
  }
  refuse_error(self, *x, "overloaded_error", "every upstream failed: " + why);
}

usage usage_from(const msg::usage_counts& c) {
  return usage{c.input_tokens, c.output_tokens, c.cache_creation_input_tokens,
               c.cache_read_input_tokens};
}

void on_call_done(router_actor* self, const std::shared_ptr<exchange_state>& x,
                  msg::call_result done) {
  auto& st = self->state;
  const auto& step = x->chain[x->step];
  auto& r = done.last;
  x->retries += done.retries;
  x->answered = x->answered || r.answered;
  const auto result = static_cast<msg::outcome>(done.outcome);
  if (result == msg::outcome::unavailable && r.cancelled && !x->abandoned()) {
    // Stopped for a client that left, and wanted again since (a request
    // joined it): the same step is called again.
    return start_step(self, x);
  }
  if (result == msg::outcome::unavailable) {
    st.log->info("{}: {}", step.provider, done.reason);
    x->failures.push_back(step.provider + "/" + step.model + ": " + done.reason);
    ++x->step;
    if (x->abandoned()) {
      drop_flight(self, *x);
      settle(self, *x, {});
      auto e = entry_for(*x);
      e.counts.errors = 1;
      book(self, e);
      return;
    }
    if (x->step < x->chain.size()) {
      const auto& next = x->chain[x->step];
      st.metrics
          ->counter("troupe_llm_fallbacks_total", "Requests passed on to the next chain step",
                    {{"to", next.provider + "/" + next.model}})
          .inc();
      return start_step(self, x);
    }
    settle(self, *x, {});
    return all_failed(self, x, done);
  }
  auto e = entry_for(*x);
  e.model = step.model;  // tokens are booked to the model that spent them
  if (x->step > 0) {
    e.counts.fallbacks = 1;
  }
  if (result == msg::outcome::refused) {
    // The upstream refused the request itself (an unknown model, a bad
    // field): a name it did not accept gets no row of its own.
    e.model.clear();
    e.counts.errors = 1;
    book(self, e);
    settle(self, *x, {});
    st.requests("refused").inc();
    if (r.status == 0) {
      return refuse_error(self, *x, "invalid_request_error", done.reason);
    }
    return refuse(self, *x, r.status, passthrough_of(r), std::move(r.body));
  }
  const bool count_tokens = x->req.target.starts_with("/v1/messages/count_tokens");
  const auto upstream_label = step.provider + "/" + step.model;
  const auto cache_label = x->mode == cache_mode::bypass ? "bypass" : "miss";
  const auto u = usage_from(r.usage);
  if (r.committed) {
    // Streamed to the client already; book it, cache it if it is whole.
    const auto& sm = r.stream;
    if (sm.complete && !sm.overflow) {
      store_answer(self, *x, cache_value('S', sm.captured));
    } else if (sm.complete && !sm.message.empty()) {
      // Too long to keep, but whoever waits for it still gets the message.
      land_flight(self, *x, cache_value('M', sm.message), false);
    } else {
      const auto type = sm.error_type.empty() ? std::string("api_error") : sm.error_type;
      fail_flight(
          self, *x, anthropic_status(type), {{"content-type", "application/json"}},
          anthropic_error_body(type, "the shared upstream stream broke off: " +
                                         (sm.error_type.empty() ? done.reason : sm.error_message)));
    }
  } else if (count_tokens) {
    auto h = passthrough_of(r);
    h.emplace_back(upstream_header, upstream_label);
    reply(*x, 200, std::move(h), r.body);
  } else {
    // Usually answered on the upstream thread already (see provider.cpp).
    if (!x->answered) {
      auto h = passthrough_of(r);
      h.emplace_back(cache_header, cache_label);
      h.emplace_back(upstream_header, upstream_label);
      if (x->info.stream) {
        reply_stream(*x, std::move(h), events_for_message(json::parse(r.body)));
      } else {
        reply(*x, 200, std::move(h), r.body);
      }
    }
    store_answer(self, *x, cache_value('M', r.body));
  }
  add_usage(e.counts, u);
  book(self, e);
  settle(self, *x, u);
  st.requests(x->step > 0 ? "fallback" : cache_label).inc();
}

/// A provider that went down took the calls it ran with it: their
/// requesters hear them dropped (a stream already begun ends with an error
/// event), and requests waiting on them get the same error.
void on_provider_down(router_actor* self, const caf::actor_addr& who) {
  auto& st = self->state;
  st.watched.erase(who);
  std::vector<std::shared_ptr<exchange_state>> lost;
  for (auto it = st.calls.begin(); it != st.calls.end();) {
    if (it->second->provider.address() == who) {
      lost.push_back(std::move(it->second));
      it = st.calls.erase(it);
    } else {
      ++it;
    }
  }
  for (const auto& x : lost) {
    const auto& step = x->chain[x->step];
    st.log->warn("{}/{} went down under a call", step.provider, step.model);
    x->provider = nullptr;
    settle(self, *x, {});
    auto e = entry_for(*x);
    e.counts.errors = 1;
    book(self, e);
    st.requests("error").inc();
    fail_flight(
        self, *x, 500, {{"content-type", "application/json"}},
        anthropic_error_body("api_error", "the upstream call was lost: llm/" + step.provider +
                                              " stopped under it; it is safe to retry"));
    // Unanswered as far as the router knows: as it goes, its requester
    // hears it dropped, and ends whatever part of the answer it got.
  }
}

void start_step(router_actor* self, const std::shared_ptr<exchange_state>& x) {
  auto& st = self->state;
  if (x->chain.empty()) {
    x->chain = chain_for(st, *x);
  }
  const auto& step = x->chain[x->step];
  if (auto until = st.pauses->until(step.provider + "/" + step.model, clock::now())) {
    // The upstream asked for a pause on this model: the next step of the
    // chain answers, or, at the last step, the request waits it out.
    if (x->step + 1 < x->chain.size()) {
      x->failures.push_back(step.provider + "/" + step.model +
                            ": paused by the upstream's retry-after");
      ++x->step;
      return start_step(self, x);
    }
    st.held.emplace(*until, x);
    return arm_poll(self);
  }
  auto provider = st.ctx->registry.current("llm/" + step.provider);
  if (!provider) {
    msg::call_result done;
    done.id = x->id;
    done.reason = "provider '" + step.provider + "' is not running";
    return on_call_done(self, x, std::move(done));
  }
  msg::call c;
  c.id = x->id;
  c.model = step.model;
  c.body_model = x->info.model;
  c.path = x->req.target.starts_with("/v1/messages/count_tokens") ? "/v1/messages/count_tokens"
                                                                  : "/v1/messages";
  c.body = x->body_text;
  c.stream = x->info.stream && c.path == "/v1/messages";
  c.keep = x->cacheable;
  c.version = std::string(x->req.header("anthropic-version"));
  c.beta = std::string(x->req.header("anthropic-beta"));
  c.cache_label = x->mode == cache_mode::bypass ? "bypass" : "miss";
  if (st.watched.insert(provider.address()).second) {
    self->monitor(provider);
  }
  x->provider = provider;
  st.calls[x->id] = x;
  // Sent as the requester: the provider streams the answer straight to it.
  c.correlation = x->requester.correlation;
  caf::send_as(x->requester.actor, provider, std::string(msg::call_type), encode(c), uint64_t{0});
}

// ---------------------------------------------------------------------------
// Admission: budget, limiter queue
// ---------------------------------------------------------------------------

void arm_poll(router_actor* self) {
  auto& st = self->state;
  if (st.poll_armed || (st.waiting.empty() && st.held.empty() && st.flights.empty())) {
    return;
  }
  const auto now = clock::now();
  auto delay = queue_check_period;
  if (!st.held.empty()) {
    delay = std::min(
        delay, std::chrono::duration_cast<std::chrono::milliseconds>(st.held.begin()->first - now) +
                   std::chrono::milliseconds(1));
  }
  if (auto ready = st.limits->next_ready(now)) {
    delay = std::min(delay, std::chrono::duration_cast<std::chrono::milliseconds>(*ready - now) +
                                std::chrono::milliseconds(1));
  }
  st.poll_armed = true;
  self->delayed_send(self, std::max(delay, std::chrono::milliseconds(1)), poll_atom::value);
}

/// Starts the held requests whose pause ended; drops those nobody waits for.
void release_held(router_actor* self, clock::time_point now) {
  auto& st = self->state;
  for (auto it = st.held.begin(); it != st.held.end();) {
    auto x = it->second;
    if (it->first <= now) {
      it = st.held.erase(it);
      start_step(self, x);
    } else if (x->abandoned()) {
      it = st.held.erase(it);
      drop_flight(self, *x);
      settle(self, *x, {});
    } else {
      ++it;
    }
  }
}

/// Flights whose leader was dropped unanswered: the first follower leads.
void recover_flights(router_actor* self) {
  auto& st = self->state;
  std::vector<std::shared_ptr<exchange_state>> new_leaders;
  for (auto& [key, f] : st.flights) {
    if (f.landed.empty() && f.leader.expired() && !f.followers.empty()) {
      auto next = std::move(f.followers.front());
      f.followers.erase(f.followers.begin());
      next->leads = true;
      next->shared = !f.followers.empty();
      f.leader = next;
      new_leaders.push_back(std::move(next));
    }
  }
  for (const auto& x : new_leaders) {
    st.log->warn("a request shared by others was dropped unanswered; the next one calls");
    lead(self, x);
  }
}

void poll(router_actor* self) {
  auto& st = self->state;
  st.poll_armed = false;
  const auto now = clock::now();
  release_held(self, now);
  recover_flights(self);
  for (auto id : st.limits->poll(now)) {
    auto it = st.waiting.find(id);
    if (it == st.waiting.end()) {
      continue;
    }
    auto x = std::move(it->second);
    st.waiting.erase(it);
    start_step(self, x);
  }
  const auto timeout = std::chrono::milliseconds(st.ctx->config.llm.queue_timeout_ms);
  for (auto it = st.waiting.begin(); it != st.waiting.end();) {
    auto& x = it->second;
    const bool expired = now - x->started >= timeout;
    if (expired || x->abandoned()) {
      st.limits->cancel(it->first);
      if (!expired) {
        drop_flight(self, *x);
      } else {
        refuse_error(self, *x, "rate_limit_error",
                     "waited " + std::to_string(timeout.count()) +
                         " ms in the gateway's queue (llm.queue_timeout_ms) without a free slot "
                         "under the configured per-minute limits");
        st.requests("queue_timeout").inc();
      }
      it = st.waiting.erase(it);
    } else {
      ++it;
    }
  }
  st.queue_waiting->set(static_cast<double>(st.waiting.size()));
  arm_poll(self);
}

void admit(router_actor* self, const std::shared_ptr<exchange_state>& x) {
  auto& st = self->state;
  // The budget bounds upstream spending; cached answers (served before
  // this point) cost nothing and stay available.
  if (const auto budget = st.ctx->config.llm.budget_tokens; budget != 0) {
    const auto spent = st.book->client(x->req.client).spent();
    if (spent >= budget) {
      st.requests("budget").inc();
      return refuse_error(self, *x, "rate_limit_error",
                          "this client's token budget is spent (" + std::to_string(spent) + " of " +
                              std::to_string(budget) +
                              " upstream tokens, llm.budget_tokens); cached answers are still "
                              "served",
                          {{"x-should-retry", "false"}});
    }
  }
  ticket t;
  t.client = x->req.client;
  t.priority = x->priority;
  // Estimates until the upstream says: about four bytes a token in, and
  // max_tokens out.
  t.input_tokens = static_cast<int64_t>(x->body_text.size() / 4 + 1);
  t.output_tokens = x->info.max_tokens;
  x->ticket_estimate = t;
  auto submitted = st.limits->submit(t, clock::now());
  if (!submitted) {
    st.requests("rejected").inc();
    const bool full = submitted.err().code == errc::too_large;
    return refuse_error(self, *x, full ? "rate_limit_error" : "invalid_request_error",
                        submitted.err().message);
  }
  if (submitted->admitted) {
    return start_step(self, x);
  }
  x->queued = true;
  st.waiting.emplace(submitted->id, x);
  st.queue_waiting->set(static_cast<double>(st.waiting.size()));
  arm_poll(self);
}

// ---------------------------------------------------------------------------
// Arrival
// ---------------------------------------------------------------------------

/// No request may end the router (and every other client's request with
/// it): what escapes a request's handling answers that request alone.
template <class Handler>
void guarded(router_actor* self, const std::shared_ptr<exchange_state>& x, Handler&& handle) {
  try {
    handle(self, x);
  } catch (const std::exception& e) {
    self->state.log->error("a request failed inside the router: {}", e.what());
    self->state.requests("internal_error").inc();
    refuse_error(self, *x, "api_error",
                 std::string("the gateway failed on this request: ") + e.what());
  }
}

/// A request refused before it went anywhere.
msg::prepared refusal(std::string_view type, std::string_view message) {
  msg::prepared p;
  p.error_status = anthropic_status(type);
  p.error_body = anthropic_error_body(type, message);
  return p;
}

/// Parses and checks what the client sent (`body` is its bytes): what the
/// router keeps of it, or the error answer. Touches nothing of the
/// router's: the parse pool runs it too.
msg::prepared prepare(const request_rules& rules, const exchange_request& req, std::string body) {
  const auto& cfg = rules.cfg;
  auto parsed = parse_json_body(body, json_depth_max);
  if (!parsed) {
    return refusal("invalid_request_error", "the request " + parsed.err().message);
  }
  auto& doc = *parsed;
  const bool count_tokens = req.target.starts_with("/v1/messages/count_tokens");
  if (!doc.is_object()) {
    return refusal("invalid_request_error", "the request body must be a JSON object");
  }
  bool aliased = false;
  if (auto it = doc.find("model"); it != doc.end() && it->is_string()) {
    if (auto alias = rules.aliases.find(it->get<std::string>()); alias != rules.aliases.end()) {
      *it = alias->second;
      aliased = true;
    }
  }
  // The model name travels into headers, metric labels and breaker keys.
  if (auto it = doc.find("model"); it != doc.end() && it->is_string()) {
    const auto& model = it->get_ref<const std::string&>();
    const bool printable =
        std::all_of(model.begin(), model.end(), [](char c) { return c > ' ' && c <= '~'; });
    if (model.empty() || model.size() > model_chars_max || !printable) {
      return refusal("invalid_request_error", "model: must be 1 to " +
                                                  std::to_string(model_chars_max) +
                                                  " printable ASCII characters without spaces");
    }
  }
  msg::prepared p;
  if (count_tokens) {
    // Only the fields the count needs; the upstream checks the rest.
    if (!doc.contains("model") || !doc["model"].is_string()) {
      return refusal("invalid_request_error", "model: Field required");
    }
    if (!doc.contains("messages") || !doc["messages"].is_array()) {
      return refusal("invalid_request_error", "messages: Field required");
    }
    p.model = doc["model"].get<std::string>();
  } else {
    auto info = validate_request(
        doc, request_limits{cfg.messages_max, cfg.content_blocks_max, cfg.tools_max});
    if (!info) {
      return refusal(
          info.err().code == errc::too_large ? "request_too_large" : "invalid_request_error",
          info.err().message);
    }
    p.model = std::move(info->model);
    p.stream = info->stream;
    p.temperature = info->temperature;
    p.max_tokens = info->max_tokens;
  }
  const auto min_tokens =
      cfg.auto_cache_min_tokens != 0 ? cfg.auto_cache_min_tokens : min_cacheable_tokens(p.model);
  const bool marked =
      cfg.auto_cache_control && !count_tokens && add_cache_breakpoints(doc, min_tokens) > 0;
  p.body_text = aliased || marked ? doc.dump() : std::move(body);
  p.agent = std::string(req.header("x-troupe-agent"));
  p.persona = std::string(req.header("x-troupe-persona"));

  if (auto pr = req.header("x-troupe-priority"); !pr.empty()) {
    if (pr != "0" && pr != "1" && pr != "2") {
      return refusal(
          "invalid_request_error",
          "x-troupe-priority: must be 0 (highest), 1 or 2 (got '" + std::string(pr) + "')");
    }
    p.priority = pr[0] - '0';
  }
  const auto mode = req.header(cache_header);
  if (mode == "bypass") {
    p.mode = static_cast<uint8_t>(cache_mode::bypass);
  } else if (mode == "refresh") {
    p.mode = static_cast<uint8_t>(cache_mode::refresh);
  } else if (!mode.empty()) {
    return refusal("invalid_request_error",
                   "x-troupe-cache: must be bypass or refresh (got '" + std::string(mode) + "')");
  }
  if (count_tokens || p.mode == static_cast<uint8_t>(cache_mode::bypass)) {
    return p;  // no key: the cache is neither read nor written
  }
  p.cacheable = cfg.cache_enabled && (p.temperature == 0 || cfg.cache_sampled);
  p.key = canonical_key(doc);
  // Betas can change the answer: they are part of the question.
  if (const auto beta = req.header("anthropic-beta"); !beta.empty()) {
    p.cacheable = p.cacheable && beta.size() <= beta_key_chars_max;
    p.key += "+" + std::string(beta);
  }
  p.deps = referenced_paths(doc);
  // A file the conversation names outside the dependency roots cannot be
  // watched: an answer about it is not cached rather than risk going stale.
  p.cacheable = p.cacheable && std::all_of(p.deps.begin(), p.deps.end(), [&](const auto& dep) {
                  return cache::dependency_refusal(dep, rules.roots).empty();
                });
  for (auto& dep : split_list(req.header("x-troupe-depends-on"))) {
    if (auto why = cache::dependency_refusal(dep, rules.roots); !why.empty()) {
      return refusal("invalid_request_error", "x-troupe-depends-on: " + why);
    }
    p.deps.push_back(std::move(dep));
  }
  return p;
}

/// Takes a checked request's facts into its exchange; false (and answered)
/// when it was refused.
bool apply(exchange_state& x, msg::prepared p) {
  if (p.error_status != 0) {
    reply(x, p.error_status, {}, std::move(p.error_body));
    return false;
  }
  x.info.model = std::move(p.model);
  x.info.stream = p.stream;
  x.info.temperature = p.temperature;
  x.info.max_tokens = p.max_tokens;
  x.body_text = std::move(p.body_text);
  x.key = std::move(p.key);
  x.cacheable = p.cacheable;
  x.mode = static_cast<cache_mode>(p.mode);
  x.deps = std::move(p.deps);
  x.agent = std::move(p.agent);
  x.persona = std::move(p.persona);
  x.priority = p.priority;
  return true;
}

void go_on(router_actor* self, const std::shared_ptr<exchange_state>& x);
void parse_aside(router_actor* self, const std::shared_ptr<exchange_state>& x);

void on_exchange(router_actor* self, const std::shared_ptr<exchange_state>& x) {
  auto& st = self->state;
  const auto path = std::string_view(x->req.target).substr(0, x->req.target.find('?'));
  if (path == "/v1/usage") {
    // The gateway sends only GETs here (and answers the rest itself).
    auto body = st.book->to_json();
    body["queue"] = {{"waiting", st.waiting.size()}, {"held", st.held.size()}};
    auto paused = json::object();
    for (const auto& [key, left_ms] : st.pauses->in_force(clock::now())) {
      paused[key] = left_ms;
    }
    body["paused"] = std::move(paused);
    return reply(*x, 200, {}, body.dump());
  }
  if (x->req.method != "POST") {
    return reply_error(*x, "not_found_error",
                       "use POST for " + std::string(path) + " (got " + x->req.method + ")");
  }
  if (x->req.body.size() > inline_parse_bytes_max) {
    return parse_aside(self, x);
  }
  if (apply(*x, prepare(*st.rules, x->req, std::move(x->req.body)))) {
    go_on(self, x);
  }
}

/// A checked request: it joins an identical one in flight or leads its own.
void go_on(router_actor* self, const std::shared_ptr<exchange_state>& x) {
  if (!join_flight(self, x)) {
    lead(self, x);
  }
}

void show_parses(router_state& st) {
  st.parse_gauge->set(static_cast<double>(st.parses_in_pool));
  st.parse_waiting_gauge->set(static_cast<double>(st.parses_waiting));
}

/// The parse pool gets the request's bytes, and sends back what it found
/// (llm.prepared); the exchange waits in `parsing` meanwhile.
void start_parse(router_actor* self, std::shared_ptr<exchange_state> x) {
  auto& st = self->state;
  ++st.parsing[x->req.client];
  ++st.parses_in_pool;
  show_parses(st);
  st.being_parsed.emplace(x->id, x);
  auto body = std::move(x->req.body);
  x->req.body = std::string();
  boost::asio::post(
      *st.parse_pool, [rules = st.rules, id = x->id, req = x->req, body = std::move(body),
                       router = caf::actor_cast<caf::actor>(self)]() mutable {
        msg::prepared p;
        try {
          p = prepare(*rules, req, std::move(body));
        } catch (const std::exception& e) {
          p = refusal("api_error", std::string("the gateway failed on this request: ") + e.what());
        }
        p.id = id;
        caf::anon_send(router, std::string(msg::prepared_type), encode(p), uint64_t{0});
      });
}

void parse_aside(router_actor* self, const std::shared_ptr<exchange_state>& x) {
  auto& st = self->state;
  if (st.parsing[x->req.client] >= st.parses_per_client) {
    st.parse_waiting[x->req.client].push_back(x);
    ++st.parses_waiting;
    return show_parses(st);
  }
  start_parse(self, x);
}

/// One parse in the pool ended: the client's next waiting body takes its
/// place (skipping those whose client left), and the request goes on.
void on_parsed(router_actor* self, msg::prepared p) {
  auto& st = self->state;
  auto found = st.being_parsed.find(p.id);
  if (found == st.being_parsed.end()) {
    return;
  }
  auto x = std::move(found->second);
  st.being_parsed.erase(found);
  const auto& client = x->req.client;
  --st.parses_in_pool;
  if (auto it = st.parsing.find(client); it != st.parsing.end() && --it->second == 0) {
    st.parsing.erase(it);
  }
  if (auto w = st.parse_waiting.find(client); w != st.parse_waiting.end()) {
    while (!w->second.empty() && w->second.front()->gone) {
      w->second.pop_front();  // nobody to answer: not worth the parse
      --st.parses_waiting;
    }
    if (!w->second.empty()) {
      auto next = std::move(w->second.front());
      w->second.pop_front();
      --st.parses_waiting;
      start_parse(self, std::move(next));
    }
    if (w->second.empty()) {
      st.parse_waiting.erase(w);
    }
  }
  show_parses(st);
  if (x->gone) {
    return;  // nobody to answer (its requester hears it dropped)
  }
  guarded(self, x, [&p](router_actor* s, const std::shared_ptr<exchange_state>& ex) {
    if (apply(*ex, std::move(p))) {
      go_on(s, ex);
    }
  });
}

void lead(router_actor* self, const std::shared_ptr<exchange_state>& x) {
  auto& st = self->state;
  if (x->key.empty() || !x->cacheable || x->mode != cache_mode::use) {
    return admit(self, x);
  }
  st.shard_requests.ask(
      self, st.cache->shard_for(x->key), make_envelope(cache::get_type, cache::get_request{x->key}),
      std::chrono::milliseconds(st.ctx->config.gateway.request_timeout_ms), [self, x](envelope r) {
        if (!r.is_error()) {
          auto got = decode<cache::get_reply>(r.body);
          if (got && got->found && serve_cached(self, *x, got->value, "hit")) {
            return land_flight(self, *x, got->value, false);
          }
        }
        admit(self, x);
      });
}

/// An exchange that arrived as a message (`http.request`): it is answered
/// by `http.*` messages to its sender.
void on_request_message(router_actor* self, std::string_view body, uint64_t correlation) {
  auto& st = self->state;
  // Read before the promise takes the sender out of the message.
  const answer_to requester{caf::actor_cast<caf::actor>(self->current_sender()), correlation};
  if (self->current_message_id().is_request()) {
    auto promise = self->make_response_promise();
    deliver(promise, make_envelope(std::string(http_msg::request_type) + ".reply", empty_body{}));
  }
  if (!requester) {
    return;  // nobody to answer
  }
  auto request = decode<http_msg::request>(
      body, decode_limits{.body_bytes_max = st.ctx->config.gateway.body_bytes_max + (1u << 20)});
  if (!request) {
    send_reply(requester, 400, {{"content-type", "application/json"}},
               anthropic_error_body("invalid_request_error",
                                    "the request could not be read: " + request.err().message));
    return;
  }
  if (st.requesters.size() >= st.requesters_sweep_at) {
    std::erase_if(st.requesters, [](const auto& entry) { return entry.second.expired(); });
    st.requesters_sweep_at = std::max<size_t>(1024, 2 * st.requesters.size());
  }
  // Not make_shared: `requesters` holds a weak_ptr per requester until the
  // next sweep, which would keep the whole exchange (its request and what
  // it captured) allocated long after it ended.
  auto x = std::shared_ptr<exchange_state>(
      new exchange_state(st.next_id++, http_msg::from_message(std::move(*request)), requester));
  st.requesters[requester.actor.address()] = x;
  guarded(self, x, on_exchange);
}

/// The client of an exchange left: its call stops unless others wait for
/// the same answer.
void on_gone(router_actor* self) {
  auto& st = self->state;
  const auto who = caf::actor_cast<caf::actor_addr>(self->current_sender());
  if (auto it = st.requesters.find(who); it != st.requesters.end()) {
    if (auto x = it->second.lock()) {
      x->gone = true;
      if (x->abandoned() && x->provider) {
        self->send(x->provider, std::string(msg::cancel_type), encode(msg::cancel{x->id}),
                   uint64_t{0});
      }
    }
    st.requesters.erase(it);
  }
}

void on_done_message(router_actor* self, std::string_view body) {
  auto& st = self->state;
  auto done = decode<msg::call_result>(body, decode_limits{.body_bytes_max = 1u << 30});
  if (!done) {
    st.log->error("an unreadable call result: {}", done.err().message);
    return;
  }
  auto it = st.calls.find(done->id);
  if (it == st.calls.end()) {
    return;  // its provider was given up on already
  }
  auto x = std::move(it->second);
  st.calls.erase(it);
  x->provider = nullptr;
  guarded(self, x, [&done](router_actor* s, const std::shared_ptr<exchange_state>& ex) {
    on_call_done(s, ex, std::move(*done));
  });
}

}  // namespace

child_spec router_child(std::shared_ptr<node_context> ctx, std::shared_ptr<db> store) {
  child_spec child;
  child.name = "router";
  child.kind = actor_kind::worker;
  child.restart = restart_type::permanent;
  child.start = [ctx, store](caf::actor_system& system, const std::string&) {
    return system.spawn([ctx, store](router_actor* self) -> caf::behavior {
      auto& st = self->state;
      const auto& cfg = ctx->config.llm;
      st.ctx = ctx;
      st.shard_requests = asker{ctx->registry};
      st.store = store;
      st.log = logger("llm");
      st.metrics = &ctx->metrics;
      st.queue_waiting =
          &ctx->metrics.gauge("troupe_llm_queue_waiting", "Requests waiting for the local limiter");
      st.writer = store ? std::make_shared<store_writer>(store, "llm/router") : nullptr;
      st.book = std::make_shared<ledger>(store, st.writer);
      if (auto loaded = st.book->load(); !loaded) {
        st.log->error("the token ledger could not be read ({}); counting from zero",
                      loaded.err().message);
      }
      limiter_config lc;
      lc.requests_per_minute = cfg.requests_per_minute;
      lc.input_tokens_per_minute = static_cast<int64_t>(cfg.input_tokens_per_minute);
      lc.output_tokens_per_minute = static_cast<int64_t>(cfg.output_tokens_per_minute);
      lc.queue_max = cfg.queue_max;
      st.limits = std::make_unique<limiter>(lc, clock::now());
      st.pauses = std::make_unique<upstream_pauses>(
          std::chrono::milliseconds(cfg.retry_after_max_ms), pauses_max);
      auto rules = std::make_shared<request_rules>();
      rules->cfg = cfg;
      for (const auto& pair : cfg.model_aliases) {
        const auto eq = pair.find('=');
        rules->aliases[pair.substr(0, eq)] = pair.substr(eq + 1);
      }
      rules->roots = cache::dependency_roots(ctx->config);
      st.rules = std::move(rules);
      const auto threads = parse_threads();
      st.parse_pool = std::make_unique<boost::asio::thread_pool>(threads);
      st.parses_per_client = std::max<size_t>(1, threads / 2);
      st.parse_gauge = &ctx->metrics.gauge(
          "troupe_llm_parsing", "Large request bodies being parsed and checked off the router");
      st.parse_waiting_gauge = &ctx->metrics.gauge(
          "troupe_llm_parse_waiting",
          "Large request bodies waiting for their client's earlier ones to be parsed");
      show_parses(st);
      st.fallback_models = cfg.fallback_models;
      st.has_local = !cfg.local_base_url.empty();
      st.cache = std::make_shared<const cache::client>(ctx->config);
      self->set_down_handler([self](caf::down_msg& down) { on_provider_down(self, down.source); });
      self->attach_functor([book = st.book](const caf::error&) {
        // Whatever was booked reaches the disk, even on a crash: the writer
        // applies it before it goes.
        book->flush();
      });
      return {
          [self](const std::string& type, const std::string& body, uint64_t correlation) {
            if (type == http_msg::request_type) {
              on_request_message(self, body, correlation);
            } else if (type == http_msg::gone_type) {
              on_gone(self);
            } else if (type == msg::done_type) {
              on_done_message(self, body);
            } else if (type == msg::prepared_type) {
              auto p = decode<msg::prepared>(body, decode_limits{.body_bytes_max = 1u << 30});
              if (p) {
                on_parsed(self, std::move(*p));
              }
            }
          },
          [self](poll_atom) { poll(self); },
          [self](pause_atom, const std::string& key, int64_t ms) {
            auto& st = self->state;
            const auto applied = st.pauses->pause(key, std::chrono::milliseconds(ms), clock::now());
            st.log->info("{} asked to wait {} ms: its calls pause for {} ms", key, ms,
                         applied.count());
            st.metrics
                ->counter("troupe_llm_upstream_pauses_total",
                          "Pauses of one upstream model after a 429 that said when to retry")
                .inc();
          },
          [self](flush_atom) {
            self->state.flush_armed = false;
            self->state.book->flush();
          },
      };
    });
  };
  return child;
}

}  // namespace troupe::llm
