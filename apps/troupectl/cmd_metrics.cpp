// troupectl metrics.

#include "apps/troupectl/commands.hpp"

namespace troupe::ctl {

namespace {


int run_metrics(const context& ctx) {
  auto client = ctx.make_client();
  const auto metrics = call(client, "GET", "/metrics");
  if (metrics.failed) {
    return fail(*metrics.failed);
  }
  // Prometheus text is already what scripts want; --json changes nothing here.
  std::cout << metrics.reply.body;
  return exit_ok;
}

std::function<int(const context&)> add_metrics(CLI::App& /*sub*/) {
  return run_metrics;
}

}  // namespace

run_fn add_metrics_command(CLI::App& sub) {
  return add_metrics(sub);
}

}  // namespace troupe::ctl
