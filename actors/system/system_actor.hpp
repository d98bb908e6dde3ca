#pragma once

// The `sys` actor family: one worker answering sys.ping, sys.echo, sys.info.

#include <memory>

#include "runtime/protocol/handler_table.hpp"
#include "runtime/supervisor/supervisor.hpp"

namespace troupe {

struct node_context;
class db;

/// The child spec of the `sys` actor, a permanent worker. It reports the
/// health of `store` (none: storage not enabled).
[[nodiscard]] child_spec system_child(std::shared_ptr<node_context> ctx,
                                      std::shared_ptr<db> store = nullptr);

/// The handler table of the `sys` actor (for tests and benches).
[[nodiscard]] std::shared_ptr<const handler_table> system_handlers(
    std::shared_ptr<node_context> ctx, std::shared_ptr<db> store = nullptr);

}  // namespace troupe
