#pragma once

// Every troupectl subcommand: registers its arguments on `sub` and returns
// the function that runs it (apps/troupectl/cmd_<name>.cpp).

#include "apps/troupectl/common.hpp"

namespace troupe::ctl {

[[nodiscard]] run_fn add_status_command(CLI::App& sub);
[[nodiscard]] run_fn add_tree_command(CLI::App& sub);
[[nodiscard]] run_fn add_send_command(CLI::App& sub);
[[nodiscard]] run_fn add_kill_command(CLI::App& sub);
[[nodiscard]] run_fn add_metrics_command(CLI::App& sub);
[[nodiscard]] run_fn add_cache_command(CLI::App& sub);
[[nodiscard]] run_fn add_usage_command(CLI::App& sub);
[[nodiscard]] run_fn add_session_command(CLI::App& sub);
[[nodiscard]] run_fn add_persona_command(CLI::App& sub);
[[nodiscard]] run_fn add_agent_command(CLI::App& sub);
/// `session attach`, registered by `session`.
[[nodiscard]] run_fn add_session_attach_command(CLI::App& sub);

}  // namespace troupe::ctl
