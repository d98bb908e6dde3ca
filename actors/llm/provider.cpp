#include "actors/llm/provider.hpp"

#include <cmath>
#include <cstdio>
#include <ctime>
#include <random>
#include <unordered_map>

#include <spdlog/logger.h>
#include <caf/all.hpp>

#include "actors/llm/internal.hpp"
#include "runtime/backoff.hpp"
#include "runtime/breaker/circuit_breaker.hpp"
#include "runtime/log/log.hpp"
#include "runtime/node/node_context.hpp"

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

struct provider_state {
  std::shared_ptr<node_context> ctx;
  provider_spec spec;
  /// One per model.
  std::unique_ptr<keyed_breakers> breakers;
  /// One breaker per model: overload is usually per model, and the next
  /// model of the chain on this upstream must still get its chance.
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
    pool_connections->set(static_cast<double>(spec.pool->connections()));
    pool_waiting->set(static_cast<double>(spec.pool->waiting()));
  }

  static inline const char* name = "troupe.llm.provider";
};

using provider_actor = caf::stateful_actor<provider_state>;

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

void finish(provider_actor* self, const std::shared_ptr<attempt>& a, outcome result,
            std::string reason) {
  a->result = result;
  a->reason = std::move(reason);
  self->send(a->reply_to, attempt_done_msg{a});
}

upstream_request build_request(const provider_state& st, const attempt& a) {
  upstream_request req;
  req.timeout = std::chrono::milliseconds(st.ctx->config.llm.timeout_ms);
  req.headers.emplace_back("content-type", "application/json");
  req.headers.emplace_back("user-agent", std::string("troupe/") + troupe_version);
  if (st.spec.kind == provider_kind::openai) {
    req.path = "/v1/chat/completions";
    req.body = to_openai_request(a.x->body, a.step.model).dump();
    if (!st.spec.api_key.empty()) {
      req.headers.emplace_back("authorization", "Bearer " + st.spec.api_key);
    }
    return req;
  }
  req.path = a.path;
  req.stream = a.stream;
  if (a.step.model == a.x->info.model) {
    req.body = a.x->body_text;
  } else {
    auto body = a.x->body;
    body["model"] = a.step.model;
    req.body = body.dump();
  }
  req.headers.emplace_back("x-api-key", st.spec.api_key);
  const auto version = a.x->req.header("anthropic-version");
  req.headers.emplace_back("anthropic-version",
                           version.empty() ? st.spec.version : std::string(version));
  if (auto beta = a.x->req.header("anthropic-beta"); !beta.empty()) {
    req.headers.emplace_back("anthropic-beta", std::string(beta));
  }
  return req;
}

/// A stream already sent to the client ended: close it properly, with an
/// error event when the upstream stopped half-way.
void end_committed_stream(const attempt& a) {
  const bool complete = a.assembler.complete() || a.assembler.error().has_value();
  if (!complete) {
    const auto why =
        a.response.error.empty() ? std::string("the stream ended early") : a.response.error;
    // The blank line first ends whatever event the upstream left half-sent.
    a.x->sink->stream(
        "\n\n" + sse_format("error", error_body("api_error", "upstream stream broke off: " + why)));
  }
  a.x->sink->end_stream();
}

void start(provider_actor* self, const std::shared_ptr<attempt>& a) {
  auto& st = self->state;
  const auto now = clock::now();
  auto permit = breaker_for(self, a->step.model).try_acquire(now);
  if (!permit.allowed) {
    return finish(self, a, outcome::unavailable,
                  st.spec.name + "/" + a->step.model + ": circuit breaker open (retry in " +
                      std::to_string(permit.retry_after.count()) + " ms)");
  }
  ++a->tries;
  a->started = now;
  st.upstream_calls->inc();
  upstream_callbacks cb;
  // A call still waiting for a connection when its client leaves is dropped.
  cb.abandoned = [a] { return a->x->abandoned(); };
  if (a->stream && st.spec.kind == provider_kind::anthropic) {
    cb.on_head = [a, name = st.spec.name](const upstream_response& head) {
      a->committed = true;
      a->head_at = clock::now();
      if (a->x->answered.exchange(true)) {
        return;  // answered already: the sink ignores what follows
      }
      auto headers = passthrough_headers(head);
      headers.emplace_back("content-type", "text/event-stream");
      headers.emplace_back("cache-control", "no-cache");
      headers.emplace_back(cache_header, a->x->mode == cache_mode::bypass ? "bypass" : "miss");
      headers.emplace_back(upstream_header, name + "/" + a->step.model);
      a->x->sink->begin_stream(200, std::move(headers));
    };
    cb.on_data = [a, limit = st.ctx->config.cache.value_bytes_max](std::string_view bytes) {
      if (a->x->abandoned()) {
        return false;  // nobody reads: stop the upstream spending tokens
      }
      a->x->sink->stream(std::string(bytes));
      if (a->keep && !a->capture_overflow) {
        if (a->captured.size() + bytes.size() + 1 > limit) {
          a->capture_overflow = true;
          a->captured.clear();
        } else {
          a->captured.append(bytes);
        }
      }
      auto fed = a->parser.feed(bytes, [&](sse_event&& e) { a->assembler.add(e); });
      if (!fed) {
        a->capture_overflow = true;
      }
      return true;
    };
  }
  const bool answer_here =
      !a->stream && a->path == "/v1/messages" && st.spec.kind == provider_kind::anthropic;
  cb.on_done = [a, answer_here, handle = caf::actor_cast<caf::actor>(self),
                name = st.spec.name](upstream_response r) {
    a->response = std::move(r);
    // The common case, a whole 200, is answered right here on the upstream
    // thread: the client does not wait for two actor hops. The actors
    // still judge the call (breaker, ledger, cache) right after.
    if (answer_here && a->response.status == 200) {
      if (a->parse_body() && !a->x->answered.exchange(true)) {
        auto headers = passthrough_headers(a->response);
        headers.emplace_back("content-type", "application/json");
        headers.emplace_back(cache_header, a->x->mode == cache_mode::bypass ? "bypass" : "miss");
        headers.emplace_back(upstream_header, name + "/" + a->step.model);
        a->x->sink->reply(200, std::move(headers), a->response.body);
      }
    }
    caf::anon_send(handle, upstream_done_msg{a});
  };
  st.spec.pool->send(build_request(st, *a), std::move(cb));
  st.observe_pool();
}

void on_upstream_done(provider_actor* self, const std::shared_ptr<attempt>& a) {
  auto& st = self->state;
  st.observe_pool();
  const auto now = clock::now();
  const auto& r = a->response;
  if (r.not_sent) {
    // The call never left this node (see upstream_response::not_sent): that
    // says nothing of the upstream's health, and retrying would only queue
    // again.
    breaker_for(self, a->step.model).on_not_attempted();
    return finish(self, a, outcome::unavailable, st.spec.name + ": " + r.error);
  }
  // Time waiting for a free connection is this node's, not the upstream's.
  // A stream is judged by how soon it started: a long answer takes as long
  // as it takes to write, and is no sign of a slow upstream.
  const auto took = (a->committed ? a->head_at : now) - a->started - r.queued;
  // The breaker judges the upstream's health: overload, server errors and
  // transport failures count; refusals (4xx) and rate limits do not.
  const bool malformed = st.spec.kind == provider_kind::anthropic && !a->committed &&
                         r.status == 200 && !a->parse_body();
  const bool sick =
      !r.cancelled && (r.status == 0 || r.status >= 500 || malformed ||
                       (a->committed && !a->assembler.complete() && !a->assembler.error()));
  if (sick) {
    breaker_for(self, a->step.model).on_failure(now, took);
    st.upstream_failures->inc();
  } else {
    breaker_for(self, a->step.model).on_success(now, took);
  }

  if (a->committed) {
    end_committed_stream(*a);
    if (auto err = a->assembler.error()) {
      return finish(self, a, outcome::ok,
                    "upstream sent an error event mid-stream: " + err->dump());
    }
    return finish(self, a, outcome::ok, r.error);
  }

  const auto& cfg = st.ctx->config.llm;
  const bool can_retry = a->tries <= static_cast<int>(cfg.retries_max) && !a->x->abandoned();
  auto retry_in = [&](std::chrono::milliseconds delay, std::string why) {
    st.log->info("{}: {}; retry {} of {} in {} ms", st.spec.name, why, a->tries, cfg.retries_max,
                 delay.count());
    st.retries->inc();
    ++a->x->retries;
    self->delayed_send(self, delay, call_msg{a});
  };

  if (st.spec.kind == provider_kind::openai && r.status == 200) {
    auto parsed = nlohmann::json::parse(r.body, nullptr, false);
    auto message = parsed.is_discarded()
                       ? expected<nlohmann::json>(make_error(errc::bad_body, "not JSON"))
                       : from_openai_response(parsed, a->step.model);
    if (!message) {
      return finish(self, a, outcome::unavailable,
                    st.spec.name + ": unreadable answer: " + message.err().message);
    }
    a->response.body = message->dump();
    a->parsed = std::move(*message);  // the router reads it, not the text
    a->body_parsed = true;
    return finish(self, a, outcome::ok, {});
  }
  if (malformed) {
    return finish(self, a, outcome::unavailable, st.spec.name + ": a 200 whose body is not JSON");
  }
  if (r.status == 200) {
    return finish(self, a, outcome::ok, {});
  }
  if (r.status == 0) {
    const auto why = r.error;
    // A call that timed out after the upstream got it may still be running
    // (and billed) there: fail over instead of asking the same one again.
    const bool maybe_running = r.timed_out && r.delivered && a->path == "/v1/messages";
    if (can_retry && !maybe_running) {
      return retry_in(backoff(st, a->tries), why);
    }
    return finish(self, a, outcome::unavailable, st.spec.name + ": " + why);
  }
  if (r.status == 429) {
    if (is_spend_limit(r)) {
      return finish(self, a, outcome::refused, st.spec.name + ": spend limit reached");
    }
    const auto told = retry_after(r);
    auto wait = told.value_or(backoff(st, a->tries));
    if (told) {
      // The router holds back other calls to this model as long (capped),
      // instead of letting them draw the same 429; other models go on.
      self->send(a->reply_to, pause_atom::value, st.spec.name + "/" + a->step.model,
                 static_cast<int64_t>(told->count()));
    }
    if (can_retry && wait <= std::chrono::milliseconds(cfg.retry_after_max_ms)) {
      return retry_in(wait, "429 rate limited");
    }
    const auto why =
        a->x->abandoned() ? std::string("the client went away")
        : !can_retry ? "retries spent (llm.retries_max = " + std::to_string(cfg.retries_max) + ")"
                     : "it asked to wait " + std::to_string(wait.count()) +
                           " ms, more than llm.retry_after_max_ms (" +
                           std::to_string(cfg.retry_after_max_ms) + ")";
    return finish(self, a, outcome::unavailable, st.spec.name + ": rate limited (429); " + why);
  }
  if (r.status == 529) {
    // Overloaded: waiting on the same model rarely helps; fail over.
    return finish(self, a, outcome::unavailable, st.spec.name + ": overloaded (529)");
  }
  if (r.status >= 500) {
    if (can_retry) {
      return retry_in(backoff(st, a->tries), "status " + std::to_string(r.status));
    }
    return finish(self, a, outcome::unavailable,
                  st.spec.name + ": status " + std::to_string(r.status) + " after " +
                      std::to_string(a->tries) + " tries");
  }
  return finish(self, a, outcome::refused,
                st.spec.name + ": refused with status " + std::to_string(r.status));
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
      return {
          [self](call_msg& m) { start(self, m.a); },
          [self](upstream_done_msg& m) { on_upstream_done(self, m.a); },
      };
    });
  };
  return child;
}

}  // namespace troupe::llm
