#include "actors/llm/provider.hpp"

#include <atomic>
#include <cmath>
#include <cstdio>
#include <ctime>
#include <random>
#include <unordered_map>

#include <spdlog/logger.h>
#include <caf/all.hpp>
#include <nlohmann/json.hpp>

#include "actors/llm/internal.hpp"
#include "actors/llm/messages.hpp"
#include "actors/llm/requester.hpp"
#include "actors/llm/sse.hpp"
#include "runtime/actor/envelope_message.hpp"
#include "runtime/backoff.hpp"
#include "runtime/breaker/circuit_breaker.hpp"
#include "runtime/log/log.hpp"
#include "runtime/node/error_answer.hpp"
#include "runtime/node/node_context.hpp"
#include "runtime/protocol/codec.hpp"

namespace troupe::llm {

http_headers passthrough_headers(const upstream_response& r) {
  http_headers out;
  out.reserve(r.headers.size() + 4);  // room for what callers add
  for (const auto& [name, value] : r.headers) {
    if (name == "request-id" || name == "retry-after" || name == "x-should-retry" ||
        name.starts_with("anthropic-")) {
      out.emplace_back(name, value);
    }
  }
  return out;
}

namespace {

/// A 429 that says a spend limit was reached: waiting does not help.
bool is_spend_limit(const upstream_response& r) {
  if (r.status != 429 || !r.header("retry-after").empty()) {
    return false;
  }
  const auto& b = r.body;
  return b.find("usage limit") != std::string::npos || b.find("spend") != std::string::npos ||
         b.find("credit balance") != std::string::npos;
}

/// "2026-11-24T15:54:47Z" (RFC 3339, UTC, as the API sends its resets).
std::optional<std::chrono::system_clock::time_point> parse_utc(std::string_view text) {
  std::tm tm{};
  const std::string s(text);
  if (sscanf(s.c_str(), "%4d-%2d-%2dT%2d:%2d:%2d", &tm.tm_year, &tm.tm_mon, &tm.tm_mday,
             &tm.tm_hour, &tm.tm_min, &tm.tm_sec) != 6) {
    return std::nullopt;
  }
  tm.tm_year -= 1900;
  tm.tm_mon -= 1;
  const auto t = timegm(&tm);
  if (t == -1) {
    return std::nullopt;
  }
  return std::chrono::system_clock::from_time_t(t);
}

/// Without retry-after, the API's own buckets say when to come back: the
/// latest reset among the exhausted ones.
std::optional<std::chrono::milliseconds> ratelimit_reset(const upstream_response& r) {
  std::optional<std::chrono::milliseconds> wait;
  for (const char* bucket : {"requests", "input-tokens", "output-tokens", "tokens"}) {
    const std::string prefix = std::string("anthropic-ratelimit-") + bucket;
    if (r.header(prefix + "-remaining") != "0") {
      continue;
    }
    if (auto at = parse_utc(r.header(prefix + "-reset"))) {
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          *at - std::chrono::system_clock::now());
      wait = std::max(wait.value_or(std::chrono::milliseconds(0)),
                      std::max(left, std::chrono::milliseconds(0)));
    }
  }
  return wait;
}

/// Seconds of retry-after, else the exhausted bucket's reset.
std::optional<std::chrono::milliseconds> retry_after(const upstream_response& r) {
  const auto value = r.header("retry-after");
  if (value.empty()) {
    return ratelimit_reset(r);
  }
  double seconds = 0;
  try {
    seconds = std::stod(std::string(value));
  } catch (const std::exception&) {
    return std::nullopt;
  }
  if (!(seconds >= 0) || seconds > 86400) {
    return std::nullopt;
  }
  return std::chrono::milliseconds(static_cast<int64_t>(seconds * 1000));
}

/// One try at the upstream, as its connection's thread sees it: what it
/// streamed and how. Only that try's callbacks touch it, one at a time (on
/// the connection's strand); its end goes to the provider by message.
struct try_state {
  answer_to requester;
  caf::actor provider;
  /// Set by the provider when nobody waits for the answer any more.
  std::shared_ptr<const std::atomic<bool>> cancelled;
  bool anthropic = true;
  bool keep = false;
  /// A whole 200 of /v1/messages is answered from the connection's thread.
  bool answer_here = false;
  /// "provider/model", for x-troupe-upstream.
  std::string label;
  std::string cache_label;
  size_t capture_max = 0;
  clock::time_point started;
  msg::upstream_result result;
  sse_parser parser;
  stream_assembler assembler;
};

int64_t micros(clock::duration d) {
  return std::chrono::duration_cast<std::chrono::microseconds>(d).count();
}

/// The try's headers for the client, with the gateway's own.
http_headers answer_headers(const upstream_response& r, const try_state& t,
                            const char* content_type) {
  auto headers = passthrough_headers(r);
  headers.emplace_back("content-type", content_type);
  if (std::string_view(content_type) == "text/event-stream") {
    headers.emplace_back("cache-control", "no-cache");
  }
  headers.emplace_back(cache_header, t.cache_label);
  headers.emplace_back(upstream_header, t.label);
  return headers;
}

void on_try_head(try_state& t, const upstream_response& head) {
  t.result.committed = true;
  t.result.answered = true;
  t.result.took_us = micros(clock::now() - t.started);
  send_head(t.requester, 200, answer_headers(head, t, "text/event-stream"));
}

bool on_try_data(try_state& t, http_msg::chunk_packer& packed) {
  if (t.cancelled->load(std::memory_order_relaxed)) {
    return false;  // nobody reads: stop the upstream spending tokens
  }
  // Read here, then passed on in the message it was read into.
  const std::string_view bytes = packed.bytes();
  auto& s = t.result.stream;
  if (t.keep && !s.overflow) {
    if (s.captured.size() + bytes.size() + 1 > t.capture_max) {
      s.overflow = true;
      s.captured.clear();
    } else {
      s.captured.append(bytes);
    }
  }
  if (!t.parser.feed(bytes, [&](sse_event&& e) { t.assembler.add(e); })) {
    s.overflow = true;
  }
  send_packed_chunk(t.requester, packed.take());
  return true;
}

msg::usage_counts counts_of(const usage& u) {
  return {u.input_tokens, u.output_tokens, u.cache_creation_input_tokens,
          u.cache_read_input_tokens};
}

/// The try ended: a whole 200 is answered here, a stream is closed
/// properly (with an error event when the upstream stopped half-way), and
/// the provider hears how it went.
void on_try_done(try_state& t, upstream_response r) {
  auto& out = t.result;
  out.status = r.status;
  out.error = std::move(r.error);
  out.timed_out = r.timed_out;
  out.delivered = r.delivered;
  out.cancelled = r.cancelled;
  out.not_sent = r.not_sent;
  out.queued_ms = r.queued.count();
  if (!out.committed) {
    out.took_us = micros(clock::now() - t.started);
  }
  if (t.anthropic && r.status == 200 && !out.committed) {
    // Parsed once, here: the actors read the verdict and the usage.
    auto parsed = nlohmann::json::parse(r.body, nullptr, false);
    out.json_ok = !parsed.is_discarded();
    if (out.json_ok) {
      out.usage = counts_of(usage_of(parsed));
      if (t.answer_here) {
        // The common case: the client does not wait for two actor hops. The
        // actors still judge the call (breaker, ledger, cache) right after.
        out.answered = true;
        send_reply(t.requester, 200, answer_headers(r, t, "application/json"), r.body);
      }
    }
  }
  if (out.committed) {
    auto& s = out.stream;
    s.complete = t.assembler.complete();
    out.usage = counts_of(t.assembler.usage());
    const auto err = t.assembler.error();
    if (err) {
      s.error_type = err->value("type", "api_error");
      s.error_message = err->value("message", "");
    }
    if (!s.complete && !err) {
      const auto why = out.error.empty() ? std::string("the stream ended early") : out.error;
      // The blank line first ends whatever event the upstream left half-sent.
      send_chunk(t.requester,
                 anthropic_error_event("api_error", "upstream stream broke off: " + why));
    }
    send_end(t.requester);
    if (s.complete && s.overflow && t.keep) {
      s.message = t.assembler.message().dump();
    }
  }
  out.headers = http_msg::to_fields(std::move(r.headers));
  out.body = std::move(r.body);
  caf::anon_send(t.provider, std::string(msg::upstream_type), encode(out), uint64_t{0});
}

/// A call this provider runs, until it ends (after its retries).
struct call_record {
  msg::call call;
  answer_to requester;
  int tries = 0;
  uint64_t retries = 0;
  /// The try being made, or the wait before the next.
  bool in_try = false;
  std::shared_ptr<std::atomic<bool>> cancelled = std::make_shared<std::atomic<bool>>(false);
};

struct provider_state {
  std::shared_ptr<node_context> ctx;
  provider_spec spec;
  /// The upstream connections and their threads: this incarnation's own,
  /// closed with it.
  std::unique_ptr<upstream_io> io;
  std::shared_ptr<upstream_pool> pool;
  std::unordered_map<uint64_t, call_record> calls;
  /// One breaker per model: overload is usually per model, and the next
  /// model of the chain on this upstream must still get its chance.
  std::unique_ptr<keyed_breakers> breakers;
  std::shared_ptr<spdlog::logger> log;
  std::mt19937_64 rng{0x5eed};
  counter* upstream_calls = nullptr;
  counter* upstream_failures = nullptr;
  counter* retries = nullptr;
  /// The pool as of the last call started or ended here.
  gauge* pool_connections = nullptr;
  gauge* pool_waiting = nullptr;

  /// Publishes the pool's connections and waiting calls.
  void observe_pool() const {
    pool_connections->set(static_cast<double>(pool->connections()));
    pool_waiting->set(static_cast<double>(pool->waiting()));
  }

  ~provider_state() {
    if (io) {
      io->stop();  // no try outlives its provider
    }
  }

  static inline const char* name = "troupe.llm.provider";
};

using provider_actor = caf::stateful_actor<provider_state>;
using retry_atom = caf::atom_constant<caf::atom("llmretry")>;

/// Models a client may name are unbounded; past this many breakers the
/// closed ones (which hold nothing worth keeping) are dropped.
constexpr size_t breakers_max = 1000;

circuit_breaker& breaker_for(provider_actor* self, const std::string& model) {
  return (*self->state.breakers)[model];
}

/// Backoff before retry `k` (1-based): min(max, min * 2^(k-1)) +-20 %.
std::chrono::milliseconds backoff(provider_state& st, int k) {
  const auto& cfg = st.ctx->config.llm;
  std::uniform_real_distribution<double> draw(0.0, 1.0);
  return exponential_backoff(std::chrono::milliseconds(cfg.retry_backoff_min_ms),
                             std::chrono::milliseconds(cfg.retry_backoff_max_ms),
                             static_cast<uint32_t>(std::max(1, k)), 0.2, draw(st.rng));
}

/// To the router: this provider's sibling, by its stable path.
template <class... Ts>
void tell_router(provider_actor* self, Ts&&... xs) {
  if (auto router = self->state.ctx->registry.current("llm/router")) {
    self->send(router, std::forward<Ts>(xs)...);
  }
}

void finish(provider_actor* self, uint64_t id, msg::outcome result, std::string reason,
            msg::upstream_result last = {}) {
  auto& st = self->state;
  auto it = st.calls.find(id);
  if (it == st.calls.end()) {
    return;
  }
  msg::call_result done{id, static_cast<uint8_t>(result), std::move(reason), it->second.retries,
                        std::move(last)};
  done.last.id = id;
  st.calls.erase(it);
  tell_router(self, std::string(msg::done_type), encode(done), uint64_t{0});
}

upstream_request build_request(const provider_state& st, const msg::call& c) {
  upstream_request req;
  req.timeout = std::chrono::milliseconds(st.ctx->config.llm.timeout_ms);
  req.headers.emplace_back("content-type", "application/json");
  req.headers.emplace_back("user-agent", std::string("troupe/") + troupe_version);
  if (st.spec.kind == provider_kind::openai) {
    req.path = "/v1/chat/completions";
    req.body = to_openai_request(nlohmann::json::parse(c.body), c.model).dump();
    if (!st.spec.api_key.empty()) {
      req.headers.emplace_back("authorization", "Bearer " + st.spec.api_key);
    }
    return req;
  }
  req.path = c.path;
  req.stream = c.stream;
  if (c.model == c.body_model) {
    req.body = c.body;
  } else {
    // A fallback model: the same question, asked of another model.
    auto body = nlohmann::json::parse(c.body);
    body["model"] = c.model;
    req.body = body.dump();
  }
  req.headers.emplace_back("x-api-key", st.spec.api_key);
  req.headers.emplace_back("anthropic-version", c.version.empty() ? st.spec.version : c.version);
  if (!c.beta.empty()) {
    req.headers.emplace_back("anthropic-beta", c.beta);
  }
  return req;
}

void start(provider_actor* self, uint64_t id) {
  auto& st = self->state;
  auto it = st.calls.find(id);
  if (it == st.calls.end()) {
    return;
  }
  auto& rec = it->second;
  const auto& c = rec.call;
  if (rec.cancelled->load()) {
    return finish(self, id, msg::outcome::unavailable, st.spec.name + ": the client went away");
  }
  const auto now = clock::now();
  auto permit = breaker_for(self, c.model).try_acquire(now);
  if (!permit.allowed) {
    return finish(self, id, msg::outcome::unavailable,
                  st.spec.name + "/" + c.model + ": circuit breaker open (retry in " +
                      std::to_string(permit.retry_after.count()) + " ms)");
  }
  upstream_request request;
  try {
    request = build_request(st, c);
  } catch (const std::exception& e) {
    return finish(self, id, msg::outcome::refused,
                  st.spec.name + ": the request could not be rewritten: " + e.what());
  }
  ++rec.tries;
  rec.in_try = true;
  st.upstream_calls->inc();
  auto t = std::make_shared<try_state>();
  t->requester = rec.requester;
  t->provider = caf::actor_cast<caf::actor>(self);
  t->cancelled = rec.cancelled;
  t->anthropic = st.spec.kind == provider_kind::anthropic;
  t->keep = c.keep;
  t->answer_here = !c.stream && c.path == "/v1/messages" && t->anthropic;
  t->label = st.spec.name + "/" + c.model;
  t->cache_label = c.cache_label;
  t->capture_max = st.ctx->config.cache.value_bytes_max;
  t->started = now;
  t->result.id = id;
  t->assembler = stream_assembler(stream_assembler::stream_bytes_max_default, c.keep);
  if (!c.keep) {
    // Nothing reads the text of a stream that is not kept: only its size counts.
    t->parser.skip_data_of("content_block_delta");
  }
  upstream_callbacks cb;
  // A call still waiting for a connection when its client leaves is dropped.
  cb.abandoned = [cancelled = rec.cancelled] { return cancelled->load(); };
  if (c.stream && t->anthropic) {
    cb.on_head = [t](const upstream_response& head) { on_try_head(*t, head); };
    cb.on_data = [t](http_msg::chunk_packer& bytes) { return on_try_data(*t, bytes); };
  }
  cb.on_done = [t](upstream_response r) { on_try_done(*t, std::move(r)); };
  st.pool->send(std::move(request), std::move(cb));
  st.observe_pool();
}

void on_try_ended(provider_actor* self, msg::upstream_result r) {
  auto& st = self->state;
  st.observe_pool();
  auto it = st.calls.find(r.id);
  if (it == st.calls.end()) {
    return;
  }
  auto& rec = it->second;
  rec.in_try = false;
  const auto id = r.id;
  const auto& model = rec.call.model;
  const auto now = clock::now();
  if (r.not_sent) {
    // The call never left this node (see upstream_response::not_sent): that
    // says nothing of the upstream's health, and retrying would only queue
    // again.
    breaker_for(self, model).on_not_attempted();
    auto why = st.spec.name + ": " + r.error;
    return finish(self, id, msg::outcome::unavailable, std::move(why), std::move(r));
  }
  // Time waiting for a free connection is this node's, not the upstream's.
  // A stream is judged by how soon it started: a long answer takes as long
  // as it takes to write, and is no sign of a slow upstream.
  const auto took = std::chrono::microseconds(r.took_us) - std::chrono::milliseconds(r.queued_ms);
  // The breaker judges the upstream's health: overload, server errors and
  // transport failures count; refusals (4xx) and rate limits do not.
  const bool anthropic = st.spec.kind == provider_kind::anthropic;
  const bool malformed = anthropic && !r.committed && r.status == 200 && !r.json_ok;
  const bool broken_stream = r.committed && !r.stream.complete && r.stream.error_type.empty();
  const bool sick =
      !r.cancelled && (r.status == 0 || r.status >= 500 || malformed || broken_stream);
  if (sick) {
    breaker_for(self, model).on_failure(now, took);
    st.upstream_failures->inc();
  } else {
    breaker_for(self, model).on_success(now, took);
  }

  if (r.committed) {
    auto why = r.stream.error_type.empty()
                   ? r.error
                   : "upstream sent an error event mid-stream: " + r.stream.error_message;
    return finish(self, id, msg::outcome::ok, std::move(why), std::move(r));
  }

  const auto& cfg = st.ctx->config.llm;
  const bool abandoned = rec.cancelled->load();
  const bool can_retry = rec.tries <= static_cast<int>(cfg.retries_max) && !abandoned;
  auto retry_in = [&](std::chrono::milliseconds delay, const std::string& why) {
    st.log->info("{}: {}; retry {} of {} in {} ms", st.spec.name, why, rec.tries, cfg.retries_max,
                 delay.count());
    st.retries->inc();
    ++rec.retries;
    self->delayed_send(self, delay, retry_atom::value, id);
  };

  if (!anthropic && r.status == 200) {
    auto parsed = nlohmann::json::parse(r.body, nullptr, false);
    auto message = parsed.is_discarded()
                       ? expected<nlohmann::json>(make_error(errc::bad_body, "not JSON"))
                       : from_openai_response(parsed, model);
    if (!message) {
      return finish(self, id, msg::outcome::unavailable,
                    st.spec.name + ": unreadable answer: " + message.err().message, std::move(r));
    }
    r.body = message->dump();
    r.json_ok = true;
    r.usage = counts_of(usage_of(*message));
    return finish(self, id, msg::outcome::ok, {}, std::move(r));
  }
  if (malformed) {
    return finish(self, id, msg::outcome::unavailable,
                  st.spec.name + ": a 200 whose body is not JSON", std::move(r));
  }
  if (r.status == 200) {
    return finish(self, id, msg::outcome::ok, {}, std::move(r));
  }
  upstream_response view;  // the header readers below take a response
  view.status = r.status;
  view.headers = http_msg::to_headers(r.headers);
  view.body = r.body;
  if (r.status == 0) {
    // A call that timed out after the upstream got it may still be running
    // (and billed) there: fail over instead of asking the same one again.
    const bool maybe_running = r.timed_out && r.delivered && rec.call.path == "/v1/messages";
    if (can_retry && !maybe_running) {
      return retry_in(backoff(st, rec.tries), r.error);
    }
    auto why = st.spec.name + ": " + r.error;
    return finish(self, id, msg::outcome::unavailable, std::move(why), std::move(r));
  }
  if (r.status == 429) {
    if (is_spend_limit(view)) {
      return finish(self, id, msg::outcome::refused, st.spec.name + ": spend limit reached",
                    std::move(r));
    }
    const auto told = retry_after(view);
    auto wait = told.value_or(backoff(st, rec.tries));
    if (told) {
      // The router holds back other calls to this model as long (capped),
      // instead of letting them draw the same 429; other models go on.
      tell_router(self, pause_atom::value, st.spec.name + "/" + model,
                  static_cast<int64_t>(told->count()));
    }
    if (can_retry && wait <= std::chrono::milliseconds(cfg.retry_after_max_ms)) {
      return retry_in(wait, "429 rate limited");
    }
    const auto why =
        abandoned    ? std::string("the client went away")
        : !can_retry ? "retries spent (llm.retries_max = " + std::to_string(cfg.retries_max) + ")"
                     : "it asked to wait " + std::to_string(wait.count()) +
                           " ms, more than llm.retry_after_max_ms (" +
                           std::to_string(cfg.retry_after_max_ms) + ")";
    return finish(self, id, msg::outcome::unavailable,
                  st.spec.name + ": rate limited (429); " + why, std::move(r));
  }
  if (r.status == 529) {
    // Overloaded: waiting on the same model rarely helps; fail over.
    return finish(self, id, msg::outcome::unavailable, st.spec.name + ": overloaded (529)",
                  std::move(r));
  }
  if (r.status >= 500) {
    if (can_retry) {
      return retry_in(backoff(st, rec.tries), "status " + std::to_string(r.status));
    }
    auto why = st.spec.name + ": status " + std::to_string(r.status) + " after " +
               std::to_string(rec.tries) + " tries";
    return finish(self, id, msg::outcome::unavailable, std::move(why), std::move(r));
  }
  auto why = st.spec.name + ": refused with status " + std::to_string(r.status);
  return finish(self, id, msg::outcome::refused, std::move(why), std::move(r));
}

void on_call(provider_actor* self, const std::string& body) {
  auto& st = self->state;
  auto sender = caf::actor_cast<caf::actor>(self->current_sender());
  auto c = decode<msg::call>(body, decode_limits{.body_bytes_max = 1u << 30});
  if (!c) {
    st.log->error("an unreadable call: {}", c.err().message);
    return;
  }
  const auto id = c->id;
  if (st.calls.contains(id)) {
    return;  // one call per request at a time
  }
  call_record rec;
  rec.call = std::move(*c);
  rec.requester = answer_to{std::move(sender), rec.call.correlation};
  st.calls.emplace(id, std::move(rec));
  start(self, id);
}

}  // namespace

child_spec provider_child(std::shared_ptr<node_context> ctx, provider_spec spec) {
  child_spec child;
  child.name = spec.name;
  child.kind = actor_kind::worker;
  child.restart = restart_type::permanent;
  child.start = [ctx, spec](caf::actor_system& system, const std::string&) {
    return system.spawn([ctx, spec](provider_actor* self) -> caf::behavior {
      auto& st = self->state;
      st.ctx = ctx;
      st.spec = spec;
      st.log = logger("llm");
      st.breakers = std::make_unique<keyed_breakers>(
          make_breaker_config(ctx->config.breaker), breakers_max,
          report_transitions(ctx->metrics, st.log, "llm/" + spec.name + "/"));
      const metric_labels labels{{"provider", spec.name}};
      st.upstream_calls = &ctx->metrics.counter("troupe_llm_upstream_calls_total",
                                                "Calls sent to an upstream", labels);
      st.upstream_failures = &ctx->metrics.counter(
          "troupe_llm_upstream_failures_total",
          "Upstream calls that failed (5xx, overload, transport, cut stream)", labels);
      st.retries =
          &ctx->metrics.counter("troupe_llm_retries_total", "Upstream calls retried", labels);
      st.pool_connections = &ctx->metrics.gauge("troupe_llm_upstream_connections",
                                                "Connections open to the upstream", labels);
      st.pool_waiting = &ctx->metrics.gauge(
          "troupe_llm_upstream_waiting",
          "Calls waiting for a free upstream connection (llm.connections_max)", labels);
      // Last: the metrics above are there before the threads start.
      if (spec.pool_for_tests) {
        st.pool = spec.pool_for_tests();
      } else {
        st.io = std::make_unique<upstream_io>(spec.io_threads);
        st.pool = st.io->pool(spec.url, spec.connections_max);
      }
      st.observe_pool();
      return {
          [self](const std::string& type, const std::string& body, uint64_t) {
            if (type == msg::call_type) {
              on_call(self, body);
            } else if (type == msg::upstream_type) {
              auto r =
                  decode<msg::upstream_result>(body, decode_limits{.body_bytes_max = 1u << 30});
              if (r) {
                on_try_ended(self, std::move(*r));
              }
            } else if (type == msg::health_type) {
              auto promise = self->make_response_promise();
              auto& st = self->state;
              msg::upstream_health h{
                  st.spec.name, st.pool->connections(), st.pool->waiting(), st.calls.size(), {}};
              for (const auto& [model, state] : st.breakers->not_closed(clock::now())) {
                h.breakers[model] = std::string(to_string(state));
              }
              deliver(promise, make_envelope(std::string(msg::health_type) + ".reply", h));
            } else if (type == msg::cancel_type) {
              if (auto c = decode<msg::cancel>(body)) {
                if (auto it = self->state.calls.find(c->id); it != self->state.calls.end()) {
                  it->second.cancelled->store(c->cancelled);
                }
              }
            }
          },
          [self](retry_atom, uint64_t id) { start(self, id); },
      };
    });
  };
  return child;
}

}  // namespace troupe::llm
