#pragma once

// A provider actor: one per upstream, behind its own circuit breakers (one
// per model). It owns its upstream connections and their threads (closed
// when it stops), runs one chain step of a request at a time per request
// (`llm.call`, with retries per the upstream's answer) and reports to the
// router (`llm.done`); a stream's bytes go from the connection's thread
// straight to the requester.

#include <functional>
#include <memory>
#include <string>

#include "runtime/net/base_url.hpp"
#include "runtime/supervisor/supervisor.hpp"

namespace troupe {
struct node_context;
}

namespace troupe::llm {

class upstream_pool;

enum class provider_kind : uint8_t {
  /// The Anthropic Messages API (or anything speaking it).
  anthropic,
  /// An OpenAI-compatible /v1/chat/completions server (llama.cpp, Ollama).
  openai,
};

struct provider_spec {
  /// Child name, also the label in metrics and X-Troupe-Upstream.
  std::string name;
  provider_kind kind = provider_kind::anthropic;
  base_url url;
  /// Calls in flight at most (llm.connections_max); more wait, in order.
  size_t connections_max = 1;
  /// Threads of its own for the upstream's connections (llm.io_threads).
  uint32_t io_threads = 1;
  /// Never logged.
  std::string api_key;
  /// anthropic-version when the client sends none.
  std::string version;
  /// Tests only: makes the pool each incarnation calls instead of one of
  /// its own (then no upstream threads are made).
  std::function<std::shared_ptr<upstream_pool>()> pool_for_tests;
};

[[nodiscard]] child_spec provider_child(std::shared_ptr<node_context> ctx, provider_spec spec);

}  // namespace troupe::llm
