// agent_step: the node's own time per tool step. An agent runs a 10-step
// loop (Read, Read, ... then a text answer) against the mock upstream with
// no delay; the bench timestamps each `assistant` event of the prompt's SSE
// stream as it arrives. Between two answers lie one tool step (written
// before it runs, run on a worker, its result written) and one model call
// (through the LLM router to the mock). The model call's share is measured
// straight after each run: the same request, rebuilt from the transcript
// with the agent's own function, sent straight to the mock. The node's time
// per step is the interval minus that direct call. Bar: p99 <= 2 ms.
//
//   agent_step [--quick] [--runs N] [--steps N]

#include <signal.h>

#include <chrono>
#include <cstdio>
#include <string>
#include <vector>

#include "actors/agents/transcript.hpp"
#include "bench/agent_bench.hpp"
#include "bench/bench_util.hpp"

namespace {

using clock_type = std::chrono::steady_clock;
using troupe::bench::json;
using namespace troupe;

double ms_since(clock_type::time_point a, clock_type::time_point b) {
  return std::chrono::duration<double, std::milli>(b - a).count();
}

/// The requests the agent sent, rebuilt from its transcript: the messages
/// before each `assistant` entry (system prompt and tools as the agent
/// makes them are approximated by tools of the same names and a system
/// prompt of the same length).
std::vector<std::string> requests_of(http_client& http, const std::string& name) {
  std::vector<std::string> out;
  auto r = http.request("GET", "/v1/agents/" + name + "/transcript");
  if (!r || r->status != 200) {
    return out;
  }
  agents::conversation c;
  const auto page = json::parse(r->body);
  for (const auto& e : page["entries"]) {
    const auto entry = json::parse(e["data"].get<std::string>());
    if (entry["kind"] == "assistant") {
      json req{
          {"model", "claude-sonnet-4-5"},
          {"max_tokens", 8192},
          {"system", std::string(200, 's')},
          {"tools", agents::tool_definitions({"Bash", "Read", "Write", "Edit", "Glob", "Grep"})},
          {"messages", c.messages}};
      out.push_back(req.dump());
    }
    agents::apply_entry(c, entry);
  }
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  signal(SIGPIPE, SIG_IGN);
  const bool quick = bench::has_flag(argc, argv, "--quick");
  const int runs = bench::int_flag(argc, argv, "--runs", quick ? 2 : 40);
  const int steps = bench::int_flag(argc, argv, "--steps", 10);

  test::mock_upstream_process mock({"--threads", "1"});
  if (!mock.started()) {
    std::fprintf(stderr, "agent_step: the mock upstream did not start\n");
    return 1;
  }
  test::node_process node({{}, bench::agent_node_env(mock.url()), {}});
  if (!node.started()) {
    std::fprintf(stderr, "agent_step: the node did not start:\n%s\n", node.stderr_text().c_str());
    return 1;
  }
  test::temp_dir ws;
  bench::fill_workspace(ws.path(), 40);
  auto http = http_client(*parse_node_url(node.url()), node.token(), 60000);
  auto direct = http_client(*parse_node_url(mock.url()), "", 60000);
  const http_client::headers mock_headers{{"x-api-key", "sk-ant-bench"},
                                          {"anthropic-version", "2023-06-01"}};

  std::vector<double> node_ms;
  std::vector<double> upstream_ms;
  std::vector<double> interval_ms;
  for (int run = 0; run < runs; ++run) {
    const auto name = "step-" + std::to_string(run);
    if (!bench::create_agent(http, name, ws.path())) {
      return 1;
    }
    std::vector<clock_type::time_point> answers;
    std::string pending;
    std::string stop;
    auto on_body = [&](std::string_view piece) {
      const auto now = clock_type::now();
      pending.append(piece);
      for (auto end = pending.find("\n\n"); end != std::string::npos; end = pending.find("\n\n")) {
        const auto event = pending.substr(0, end);
        pending.erase(0, end + 2);
        if (event.rfind("event: assistant\n", 0) == 0) {
          answers.push_back(now);
        } else if (event.rfind("event: turn_end\n", 0) == 0) {
          const auto data = json::parse(event.substr(event.find("data: ") + 6), nullptr, false);
          stop = data.is_object() ? data.value("stop_reason", "") : "";
        }
      }
    };
    auto r = http.request_streamed("POST", "/v1/agents/" + name + "/prompt",
                                   json{{"prompt", bench::read_script(steps, "notes.txt")}}.dump(),
                                   on_body);
    if (!r || r->status != 200 || stop != "end_turn" ||
        answers.size() != static_cast<size_t>(steps) + 1) {
      std::fprintf(stderr, "agent_step: run %d failed (%s, %zu answers, stop '%s')\n", run,
                   r ? std::to_string(r->status).c_str() : r.err().message.c_str(), answers.size(),
                   stop.c_str());
      return 1;
    }
    // The same model calls, straight to the mock.
    const auto requests = requests_of(http, name);
    if (requests.size() != answers.size()) {
      std::fprintf(stderr, "agent_step: the transcript has %zu answers\n", requests.size());
      return 1;
    }
    std::vector<double> call_ms;
    for (const auto& body : requests) {
      const auto start = clock_type::now();
      auto d = direct.request("POST", "/v1/messages", body, "application/json", mock_headers);
      if (!d || d->status != 200) {
        std::fprintf(stderr, "agent_step: a direct call failed\n");
        return 1;
      }
      call_ms.push_back(ms_since(start, clock_type::now()));
    }
    for (size_t i = 1; i < answers.size(); ++i) {
      const double interval = ms_since(answers[i - 1], answers[i]);
      interval_ms.push_back(interval);
      upstream_ms.push_back(call_ms[i]);
      node_ms.push_back(interval - call_ms[i]);
    }
    (void)http.request("DELETE", "/v1/agents/" + name);
  }

  const double p50 = bench::quantile(node_ms, 0.5);
  const double p99 = bench::quantile(node_ms, 0.99);
  const double upstream = bench::median(upstream_ms);
  std::printf("agent_step: %zu tool steps (Read) in %d runs of %d\n", node_ms.size(), runs, steps);
  std::printf("  step interval  p50 %.3f ms  p99 %.3f ms (answer to answer, as the client sees)\n",
              bench::quantile(interval_ms, 0.5), bench::quantile(interval_ms, 0.99));
  std::printf("  direct call    p50 %.3f ms (the same request straight to the mock)\n", upstream);
  std::printf("  node per step  p50 %.3f ms  p99 %.3f ms  (bar: p99 <= 2 ms: %s)\n", p50, p99,
              p99 <= 2.0 ? "met" : "NOT met");
  bench::print_json(
      {"agent_step", p99, "ms", upstream, upstream > 0 ? p99 / upstream : 0, p50, p99, runs});
  return 0;
}
