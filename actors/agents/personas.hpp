#pragma once

// The persona catalog, `agents/personas` (the rest of the family is in
// actors/agents/agents.hpp): the node's persona files and, per workspace,
// its `.claude/agents/` (actors/agents/messages.hpp).
// It reads files, so it runs detached (a thread of its own), never on a
// scheduler thread. Every request checks the files' sizes and times and
// reads them again when one changed, appeared or went away: an edited
// persona counts from the next request. A file that does not parse is
// skipped, reported in persona.list and logged once per change.

#include <memory>

#include "runtime/supervisor/supervisor.hpp"

namespace troupe {
struct node_context;
}

namespace troupe::agents {

/// Workspaces whose catalogs are kept (least recently used goes first).
inline constexpr size_t workspaces_cached_max = 64;

[[nodiscard]] child_spec personas_child(std::shared_ptr<node_context> ctx);

}  // namespace troupe::agents
