#pragma once

// Readable text for CAF errors (exit reasons, sec codes with a message),
// for logs, the tree's last_failure and error replies.

#include <string>

namespace caf {
class actor_system;
class error;
}  // namespace caf

namespace troupe {

/// "killed by chaos", "user_shutdown", "request_timeout", or CAF's own
/// rendering for anything else. "normal" for no error.
[[nodiscard]] std::string error_text(caf::actor_system& system, const caf::error& err);

}  // namespace troupe
