#pragma once

// The agents family, under the `agents` supervisor (one_for_one):
//   agents/personas  the persona catalog (actors/agents/personas.hpp)
//   agents/journal   every agent's transcript in the store, and a JSONL copy
//                    per agent in <data_dir>/transcripts/ (hooks read it)
//   agents/manager   creates, lists and deletes agents; brings them back
//                    after a node restart
//   agents/live      a dynamic supervisor: one actor per agent,
//                    agents/live/<name> (actors/agents/agent.hpp)
// The journal and the manager touch the disk, so they run detached.
// Messages: actors/agents/messages.hpp.

#include <memory>

#include "runtime/supervisor/supervisor.hpp"

namespace troupe {
struct node_context;
class db;
}  // namespace troupe

namespace troupe::agents {

/// The `agents` family. `store` keeps agents and transcripts (null: the
/// family runs without agents, e.g. in tests of the persona catalog).
[[nodiscard]] child_spec agents_family(std::shared_ptr<node_context> ctx,
                                       std::shared_ptr<db> store);

/// What is wrong with an agent's name, or empty.
[[nodiscard]] std::string agent_name_problem(std::string_view name);

/// The store key of an agent's transcript entry.
[[nodiscard]] std::string entry_key(std::string_view agent, uint64_t seq);

}  // namespace troupe::agents
