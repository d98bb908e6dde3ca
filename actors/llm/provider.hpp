#pragma once

// A provider actor: one per upstream, behind its own circuit breaker. It
// runs one chain step of a request (with retries per the upstream's answer)
// and reports to the router; stream bytes go straight to the client's sink.

#include <memory>
#include <string>

#include "actors/llm/upstream.hpp"
#include "runtime/supervisor/supervisor.hpp"

namespace troupe {
struct node_context;
}

namespace troupe::llm {

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
  std::shared_ptr<upstream_pool> pool;
  /// Never logged.
  std::string api_key;
  /// anthropic-version when the client sends none.
  std::string version;
};

[[nodiscard]] child_spec provider_child(std::shared_ptr<node_context> ctx, provider_spec spec);

}  // namespace troupe::llm
