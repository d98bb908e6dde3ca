#pragma once

// The HTTP client of the LLM gateway: one keep-alive connection pool per
// upstream (http or https with certificate verification), on Asio threads
// of its own. A call either arrives whole or, for a streamed 200, chunk by
// chunk as the upstream writes it. Beast stays in upstream.cpp.

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "runtime/error.hpp"
#include "runtime/net/base_url.hpp"
#include "runtime/node/http_exchange.hpp"

namespace boost::asio {
class io_context;
}

namespace troupe::llm {

struct upstream_request {
  std::string method = "POST";
  /// Appended to the base path, e.g. "/v1/messages".
  std::string path;
  http_headers headers;
  std::string body;
  /// A 200 is delivered through on_data as it arrives, not as one body.
  bool stream = false;
  /// Bound on connecting plus the whole exchange; for a streamed body, on
  /// the silence between two reads.
  std::chrono::milliseconds timeout{30000};
};

struct upstream_response {
  /// 0 when no response arrived (see `error`).
  int status = 0;
  /// Names lower-cased.
  http_headers headers;
  /// The whole body, unless it was streamed.
  std::string body;
  /// What went wrong in transport (connect, TLS, timeout, cut), or "".
  std::string error;
  bool timed_out = false;
  /// The body went to on_data (a streamed 200).
  bool streamed = false;
  /// Bytes of body received before a transport error (a cut stream).
  uint64_t body_bytes = 0;
  /// The whole request reached the upstream: it may have acted on it (and
  /// billed it) even if no answer came back.
  bool delivered = false;
  /// on_data asked to stop.
  bool cancelled = false;
  /// The call never left this node: no connection came free within its
  /// timeout (llm.connections_max calls in flight), its caller left while it
  /// waited, the pool stopped, or this node could not set a connection up
  /// (its TLS state). Says nothing of the upstream's health; `error` says
  /// which. (A refused or failed connect is the upstream's: not this.)
  bool not_sent = false;
  /// How long the call waited for a free connection before it started.
  std::chrono::milliseconds queued{0};

  [[nodiscard]] std::string_view header(std::string_view name) const;
};

struct upstream_callbacks {
  /// A streamed 200's head, before its first on_data.
  std::function<void(const upstream_response& head)> on_head;
  /// The bytes that came, in the message that will carry them on (take it,
  /// or it is dropped). False: the reader went away; the call stops (its
  /// connection closes) and ends with `cancelled`.
  std::function<bool(http_msg::chunk_packer& bytes)> on_data;
  /// Exactly once, last.
  std::function<void(upstream_response done)> on_done;
  /// Optional: true once nobody wants the answer any more. A call still
  /// waiting for a connection then ends `cancelled` without being sent.
  std::function<bool()> abandoned;
};

class upstream_pool;

/// The Asio threads and TLS context every pool shares.
class upstream_io {
 public:
  /// Runs `threads` Asio threads of its own (named troupe-upstream): no
  /// other traffic of the node waits behind an upstream's bytes.
  explicit upstream_io(uint32_t threads);
  ~upstream_io();
  upstream_io(const upstream_io&) = delete;
  upstream_io& operator=(const upstream_io&) = delete;

  /// A pool for `url` with at most `connections_max` calls in flight (and so
  /// connections open); further calls wait for a free one, in order, each up
  /// to its own timeout, and then end with `timed_out`.
  [[nodiscard]] std::shared_ptr<upstream_pool> pool(base_url url, size_t connections_max);

  /// Stops the threads; calls waiting for a connection end with an error.
  void stop();

  struct impl;

 private:
  std::unique_ptr<impl> impl_;
};

class upstream_pool {
 public:
  virtual ~upstream_pool() = default;
  /// Starts a call; its callbacks run on an upstream thread.
  virtual void send(upstream_request request, upstream_callbacks callbacks) = 0;
  /// Connections open now (idle + busy).
  [[nodiscard]] virtual size_t connections() const = 0;
  /// Calls waiting for a connection to come free.
  [[nodiscard]] virtual size_t waiting() const = 0;
};

}  // namespace troupe::llm
