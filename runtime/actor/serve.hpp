#pragma once

// Turns a handler_table into a CAF behavior. This is where the decider meets
// exceptions: CAF ends an actor on an escaped exception and cannot resume it,
// so handlers run inside try/catch and the decider chooses between resuming
// (the caller gets an `internal` error, the actor keeps its state) and ending
// the actor so that its supervisor restarts it.

#include <memory>
#include <string>

#include "runtime/protocol/handler_table.hpp"
#include "runtime/supervisor/policy.hpp"

namespace caf {
class behavior;
class event_based_actor;
}  // namespace caf

namespace troupe {

/// The behavior answering every `envelope` through `table`.
[[nodiscard]] caf::behavior serve(caf::event_based_actor* self,
                                  std::shared_ptr<const handler_table> table,
                                  decider decide = default_decider);

}  // namespace troupe
