// agents_idle: what an idle agent costs the node in memory. The node's RSS
// (median of a few samples) before any agent, then after N agents were
// created and each answered one prompt (so each has a conversation, a
// persona choice and a transcript); the figure is the growth per agent,
// against the bar of 64 KiB per agent at 1,000 agents.
//
//   agents_idle [--quick] [--agents N]

#include <signal.h>

#include <chrono>
#include <cstdio>
#include <string>
#include <thread>
#include <vector>

#include "bench/agent_bench.hpp"
#include "bench/bench_util.hpp"

namespace {

using troupe::bench::json;
using namespace troupe;

constexpr double bar_kib = 64;

/// RSS readings per figure.
constexpr int rss_samples = 5;

}  // namespace

int main(int argc, char** argv) {
  signal(SIGPIPE, SIG_IGN);
  const bool quick = bench::has_flag(argc, argv, "--quick");
  const int agents = bench::int_flag(argc, argv, "--agents", quick ? 20 : 1000);

  test::mock_upstream_process mock({"--threads", "1"});
  if (!mock.started()) {
    std::fprintf(stderr, "agents_idle: the mock upstream did not start\n");
    return 1;
  }
  test::node_process node({{}, bench::agent_node_env(mock.url()), {}});
  if (!node.started()) {
    std::fprintf(stderr, "agents_idle: the node did not start:\n%s\n", node.stderr_text().c_str());
    return 1;
  }
  test::temp_dir ws;
  bench::fill_workspace(ws.path(), 10);
  auto http = http_client(*parse_node_url(node.url()), node.token(), 60000);
  // Warm the paths every agent takes (one agent, one prompt), then measure.
  if (!bench::create_agent(http, "warm", ws.path())) {
    return 1;
  }
  const json prompt{{"prompt", bench::read_script(1, "notes.txt")}};
  const http_client::headers as_json{{"Accept", "application/json"}};
  auto warm =
      http.request("POST", "/v1/agents/warm/prompt", prompt.dump(), "application/json", as_json);
  if (!warm || warm->status != 200) {
    std::fprintf(stderr, "agents_idle: the warm-up prompt failed\n");
    return 1;
  }
  const auto before = bench::settled_rss_kib(node.pid(), rss_samples);
  for (int i = 0; i < agents; ++i) {
    const auto name = "idle-" + std::to_string(i);
    if (!bench::create_agent(http, name, ws.path())) {
      return 1;
    }
    auto r = http.request("POST", "/v1/agents/" + name + "/prompt", prompt.dump(),
                          "application/json", as_json);
    if (!r || r->status != 200) {
      std::fprintf(stderr, "agents_idle: prompt %d failed\n", i);
      return 1;
    }
  }
  auto listed = http.request("GET", "/v1/agents");
  size_t idle = 0;
  if (listed && listed->status == 200) {
    const auto list = json::parse(listed->body);
    for (const auto& a : list["agents"]) {
      idle += a["state"] == "idle" ? 1 : 0;
    }
  }
  const auto after = bench::settled_rss_kib(node.pid(), rss_samples);
  if (!before || !after || idle != static_cast<size_t>(agents) + 1) {
    std::fprintf(stderr, "agents_idle: %zu of %d agents idle, or RSS unreadable\n", idle,
                 agents + 1);
    return 1;
  }
  const double per_agent = (*after - *before) / agents;
  std::printf("agents_idle: %d idle agents (each after one prompt with one Read)\n", agents);
  std::printf("  node RSS %.0f KiB before, %.0f KiB after: %.1f KiB per agent (bar: <= %.0f: %s)\n",
              *before, *after, per_agent, bar_kib, per_agent <= bar_kib ? "met" : "NOT met");
  bench::print_json(
      {"agents_idle", per_agent, "KiB", bar_kib, per_agent / bar_kib, per_agent, per_agent, 1});
  return 0;
}
