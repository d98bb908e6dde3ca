// agents_load: many agents working at once. N agents each run a prompt of
// S Read steps at the same time (one client thread each, JSON answers)
// against the mock upstream with no delay; the figure is tool steps per
// second over the whole run, and every transcript is then read back and
// its entries counted (none may be missing). The baseline is the same
// number of model calls made straight to the mock by N clients at once:
// what the upstream alone allows on this machine.
//
//   agents_load [--quick] [--agents N] [--steps S]

#include <signal.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <string>
#include <thread>
#include <vector>

#include "bench/agent_bench.hpp"
#include "bench/bench_util.hpp"

namespace {

using clock_type = std::chrono::steady_clock;
using troupe::bench::json;
using namespace troupe;

/// The entries a prompt of `steps` Read steps writes: prompt, persona,
/// per step assistant, tool_call, tool_result, then the last answer and
/// turn_end.
size_t entries_for(int steps) {
  return 2 + 3 * static_cast<size_t>(steps) + 2;
}

double seconds_since(clock_type::time_point start) {
  return std::chrono::duration<double>(clock_type::now() - start).count();
}

}  // namespace

int main(int argc, char** argv) {
  signal(SIGPIPE, SIG_IGN);
  const bool quick = bench::has_flag(argc, argv, "--quick");
  const int agents = bench::int_flag(argc, argv, "--agents", quick ? 10 : 100);
  const int steps = bench::int_flag(argc, argv, "--steps", quick ? 3 : 20);

  test::mock_upstream_process mock({"--threads", "1"});
  if (!mock.started()) {
    std::fprintf(stderr, "agents_load: the mock upstream did not start\n");
    return 1;
  }
  test::node_process node({{}, bench::agent_node_env(mock.url()), {}});
  if (!node.started()) {
    std::fprintf(stderr, "agents_load: the node did not start:\n%s\n", node.stderr_text().c_str());
    return 1;
  }
  test::temp_dir ws;
  bench::fill_workspace(ws.path(), 40);
  auto http = http_client(*parse_node_url(node.url()), node.token(), 60000);
  for (int i = 0; i < agents; ++i) {
    if (!bench::create_agent(http, "load-" + std::to_string(i), ws.path())) {
      return 1;
    }
  }

  // Through the agents.
  const auto prompt = json{{"prompt", bench::read_script(steps, "notes.txt")}}.dump();
  std::atomic<int> failed{0};
  auto start = clock_type::now();
  {
    std::vector<std::jthread> clients;
    for (int i = 0; i < agents; ++i) {
      clients.emplace_back([&, i] {
        auto c = http_client(*parse_node_url(node.url()), node.token(), 120000);
        auto r = c.request("POST", "/v1/agents/load-" + std::to_string(i) + "/prompt", prompt,
                           "application/json", {{"Accept", "application/json"}});
        if (!r || r->status != 200 || json::parse(r->body)["stop_reason"] != "end_turn") {
          failed.fetch_add(1);
        }
      });
    }
  }
  const double agent_seconds = seconds_since(start);
  const double steps_per_s = static_cast<double>(agents) * steps / agent_seconds;

  // Every entry of every transcript is there.
  size_t missing = 0;
  for (int i = 0; i < agents; ++i) {
    auto r = http.request("GET", "/v1/agents/load-" + std::to_string(i) + "/transcript");
    const size_t got = r && r->status == 200 ? json::parse(r->body)["entries"].size() : 0;
    missing += got < entries_for(steps) ? entries_for(steps) - got : 0;
  }

  // The same number of model calls straight to the mock.
  const std::string body =
      R"({"model":"claude-sonnet-4-5","max_tokens":64,"messages":[{"role":"user","content":")" +
      std::string(400, 'x') + R"("}]})";
  start = clock_type::now();
  {
    std::vector<std::jthread> clients;
    for (int i = 0; i < agents; ++i) {
      clients.emplace_back([&] {
        auto c = http_client(*parse_node_url(mock.url()), "", 60000);
        for (int k = 0; k <= steps; ++k) {
          auto r = c.request("POST", "/v1/messages", body, "application/json",
                             {{"x-api-key", "sk-ant-bench"}, {"anthropic-version", "2023-06-01"}});
          if (!r || r->status != 200) {
            failed.fetch_add(1);
          }
        }
      });
    }
  }
  const double direct_seconds = seconds_since(start);
  const double calls_per_s = static_cast<double>(agents) * (steps + 1) / direct_seconds;

  std::printf("agents_load: %d agents x %d Read steps at once\n", agents, steps);
  std::printf("  through the agents: %.2f s, %.0f steps/s\n", agent_seconds, steps_per_s);
  std::printf("  straight to the mock: %.2f s, %.0f calls/s (the same number of model calls)\n",
              direct_seconds, calls_per_s);
  std::printf("  transcript entries missing: %zu of %zu; failed prompts or calls: %d\n", missing,
              entries_for(steps) * static_cast<size_t>(agents), failed.load());
  bench::print_json({"agents_load", steps_per_s, "steps/s", calls_per_s, steps_per_s / calls_per_s,
                     steps_per_s, steps_per_s, 1});
  return missing == 0 && failed.load() == 0 ? 0 : 1;
}
