#pragma once

// The runtime's CAF atoms, declared in one place. Atoms are at most 10
// characters in CAF 0.17.

#include <caf/atom.hpp>

namespace troupe {

/// (route, child_name, envelope): deliver to a supervisor's child by name,
/// stashing while it restarts.
using route_atom = caf::atom_constant<caf::atom("route")>;
/// (start_child, child_spec): add a child to a dynamic supervisor.
using start_child_atom = caf::atom_constant<caf::atom("startchild")>;
/// (stop_child, name): stop one child for good.
using stop_child_atom = caf::atom_constant<caf::atom("stopchild")>;
/// (restart, name, generation): a delayed restart coming due.
using restart_atom = caf::atom_constant<caf::atom("restart")>;
/// (shutdown): stop children in reverse order, then quit.
using shutdown_atom = caf::atom_constant<caf::atom("shutdown")>;
/// (parent): sent by a supervisor to a child supervisor right after starting
/// it, so the child knows whose exit message means "stop".
using parent_atom = caf::atom_constant<caf::atom("parent")>;
/// (stop_timeout, generation): a child did not stop in time.
using stop_timeout_atom = caf::atom_constant<caf::atom("stoptimeo")>;

}  // namespace troupe
