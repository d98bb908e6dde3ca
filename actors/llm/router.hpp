#pragma once

// `llm/router`: answers /v1/messages, count_tokens and usage. Per request:
// check the body, look the canonical key up in the response cache, queue
// in the fair limiter, walk the fallback chain of providers, book the
// tokens in the ledger and cache the answer with its file dependencies.

#include <memory>

#include "runtime/supervisor/supervisor.hpp"

namespace troupe {
struct node_context;
class db;
}  // namespace troupe

namespace troupe::llm {

[[nodiscard]] child_spec router_child(std::shared_ptr<node_context> ctx, std::shared_ptr<db> store);

}  // namespace troupe::llm
