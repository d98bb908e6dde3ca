// chaos_soak: a node under a mixed load while random actors are killed,
// then killed itself with SIGKILL and started again on the same data dir.
//
// The load, each part on threads of its own with its own keep-alive
// connection, all of it running until the last kill:
//   - cache writers: PUT /v1/cache/{unique key}, half with a dependency on a
//     file nobody edits, the rest with none. Every 200 is an acknowledged
//     write, remembered with its value.
//   - an editor: PUT a key depending on a scratch file, append to the file,
//     GET the key: it must be a miss (a hit is a stale answer).
//   - LLM clients: POST /v1/messages through the node to the mock upstream,
//     some streamed, questions repeating (cache hits); every 500 ms the mock
//     is told to answer its next calls with an overload, a server error and
//     a slow answer.
//   - a terminal: a shell session attached over WebSocket, typing
//     `echo t$((N))` and waiting for the answer; a lost viewer or session is
//     attached or made again.
//   Every client waits 20 ms after a failed request, as a real client backs
//   off on 503 + Retry-After.
//   - the killer: POST /v1/actors/{path}/kill on a random actor of the
//     current tree (root aside), one every 10 ms (--interval-ms), until
//     10,000 kills were done (--kills; --quick: 100). The node runs with
//     chaos enabled, a restart intensity no kill rate reaches (so nothing
//     is given up on) and restart back-off capped at 100 ms.
// Then the node is killed with SIGKILL, started again on the same data dir,
// and every acknowledged write is read back.
//
// Reports: acknowledged writes lost (the figure; bar 0), the share of
// requests answered with success during the kills (per kind and in all),
// stale answers (bar 0), time from the restart to /readyz 200, and the
// node's RSS after warm-up and at the end of the run. There is no baseline:
// the figures are absolute. Exits non-zero when a write was lost, an answer
// was stale or the node did not come back.
//
//   chaos_soak [--quick] [--kills N] [--interval-ms N]

#include <signal.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include <nlohmann/json.hpp>

#include "bench/bench_util.hpp"
#include "bench/pty_bench.hpp"
#include "tests/support/wait.hpp"

using namespace troupe;
using namespace troupe::bench;
using json = nlohmann::json;

namespace {

/// Successes and attempts of one kind of request.
struct tally {
  std::atomic<uint64_t> ok{0};
  std::atomic<uint64_t> all{0};
  void count(bool success) {
    ++all;
    ok += success ? 1 : 0;
  }
  [[nodiscard]] double share() const {
    const auto n = all.load();
    return n == 0 ? 0 : static_cast<double>(ok.load()) / static_cast<double>(n);
  }
};

struct soak {
  std::atomic<bool> stop{false};
  tally cache_puts;
  tally edits;
  tally llm;
  tally terminal;
  tally kills;
  std::atomic<uint64_t> stale{0};
  std::mutex acked_mutex;
  std::unordered_map<std::string, std::string> acked;
  std::mutex latency_mutex;
  std::vector<double> latency_ms;

  void record_latency(clock_type::time_point t0) {
    const double ms = micros_since(t0) / 1000.0;
    std::lock_guard lock(latency_mutex);
    latency_ms.push_back(ms);
  }
};

/// After a failed request a client waits this long before the next, as a
/// real one would (the node answers 503 with Retry-After while an actor
/// restarts); otherwise fast refusals would outnumber everything else.
constexpr std::chrono::milliseconds failure_pause{20};

void pause_after_failure(const soak& s) {
  test::wait_until([&] { return s.stop.load(); }, failure_pause);
}

http_client client(const test::node_process& node) {
  return http_client(*parse_node_url(node.url()), node.token(), 15'000);
}

void cache_writer(soak& s, const test::node_process& node, int id, const std::string& stable_file) {
  auto http = client(node);
  for (uint64_t n = 0; !s.stop; ++n) {
    const auto key = "soak-" + std::to_string(id) + "-" + std::to_string(n);
    const auto value = "value of " + key + " " + std::string(64 + n % 200, 'v');
    std::string target = "/v1/cache/" + key;
    if (n % 2 == 0) {
      target += "?dep=" + stable_file;
    }
    const auto t0 = clock_type::now();
    auto r = http.request("PUT", target, value, "application/octet-stream");
    s.record_latency(t0);
    const bool ok = r && r->status == 200;
    s.cache_puts.count(ok);
    if (ok) {
      std::lock_guard lock(s.acked_mutex);
      s.acked.emplace(key, value);
    } else {
      if (!r) {
        http = client(node);  // the connection is gone: a new one
      }
      pause_after_failure(s);
    }
  }
}

void editor(soak& s, const test::node_process& node, const std::string& dir) {
  auto http = client(node);
  for (uint64_t n = 0; !s.stop; ++n) {
    const auto file = dir + "/edited-" + std::to_string(n % 8);
    std::ofstream(file, std::ios::app) << "line " << n << "\n";
    const auto key = "edited-" + std::to_string(n);
    auto put = http.request("PUT", "/v1/cache/" + key + "?dep=" + file, "answer " + key,
                            "application/octet-stream");
    if (!put || put->status != 200) {
      s.edits.count(false);
      if (!put) {
        http = client(node);
      }
      pause_after_failure(s);
      continue;
    }
    std::ofstream(file, std::ios::app) << "edited after " << key << "\n";
    auto get = http.request("GET", "/v1/cache/" + key);
    if (get && get->status == 200) {
      ++s.stale;  // served although the file it depends on changed
    }
    s.edits.count(get && get->status == 404);
  }
}

json question(uint64_t n, bool stream) {
  return json{{"model", "claude-soak"},
              {"max_tokens", 64},
              {"stream", stream},
              {"messages", json::array({{{"role", "user"},
                                         {"content", "question " + std::to_string(n % 50)}}})}};
}

void llm_client(soak& s, const test::node_process& node, int id) {
  auto http = http_client(*parse_node_url(node.url()), "", 15'000);
  for (uint64_t n = static_cast<uint64_t>(id) * 7; !s.stop; ++n) {
    const auto t0 = clock_type::now();
    auto r = http.request("POST", "/v1/messages", question(n, n % 3 == 0).dump(),
                          "application/json",
                          {{"x-api-key", node.token()}, {"anthropic-version", "2023-06-01"}});
    s.record_latency(t0);
    s.llm.count(r && r->status == 200);
    if (!r) {
      http = http_client(*parse_node_url(node.url()), "", 15'000);
    }
    if (!r || r->status != 200) {
      pause_after_failure(s);
    }
  }
}

void fault_injector(soak& s, const std::string& mock_url) {
  auto http = http_client(*parse_node_url(mock_url), "", 5'000);
  const auto script = json{{"faults",
                            {{{"kind", "overloaded"}},
                             {{"kind", "server_error"}},
                             {{"kind", "slow"}, {"delay_ms", 300}}}}}
                          .dump();
  while (!s.stop) {
    (void)http.request("POST", "/mock/faults", script);
    test::wait_until([&] { return s.stop.load(); }, std::chrono::milliseconds(500));
  }
}

/// One typed line answered by the shell; false when the viewer or session is lost.
bool echo_once(ws_client& ws, uint64_t n) {
  const auto expect = "t" + std::to_string(1000 + n);
  if (ws.write_binary("echo t$((1000+" + std::to_string(n) + "))\n")) {
    return false;
  }
  deadline d(std::chrono::seconds(5));
  std::string seen;
  while (seen.find(expect) == std::string::npos) {
    auto m = next_message(ws, d);
    if (!m) {
      return false;
    }
    if (m->binary) {
      seen += m->data;
    }
  }
  return true;
}

void terminal(soak& s, const test::node_process& node) {
  auto http = client(node);
  std::string id;
  ws_client ws;
  bool attached = false;
  for (uint64_t n = 0; !s.stop; ++n) {
    if (!attached) {
      auto known = id.empty() ? expected<http_response>(make_error(errc::not_found, "none"))
                              : http.request("GET", "/v1/sessions/" + id);
      if (!known) {
        http = client(node);
      }
      if (!known || known->status != 200) {
        auto made = create_session(http, {"/bin/sh"});
        id = made ? made->id : "";
      }
      ws = ws_client();
      attached = !id.empty() && !attach(ws, node, id);
    }
    const auto t0 = clock_type::now();
    const bool ok = attached && echo_once(ws, n);
    if (attached) {
      s.record_latency(t0);
    }
    s.terminal.count(ok);
    attached = ok;
    if (!ok) {
      test::wait_until([&] { return s.stop.load(); }, std::chrono::milliseconds(50));
    }
  }
}

/// Every actor path of the tree but the root's.
std::vector<std::string> actor_paths(http_client& http) {
  std::vector<std::string> out;
  auto r = http.request("GET", "/v1/actors");
  if (!r || r->status != 200) {
    return out;
  }
  std::vector<json> pending{json::parse(r->body, nullptr, false)};
  while (!pending.empty()) {
    auto node = std::move(pending.back());
    pending.pop_back();
    if (!node.is_object()) {
      continue;
    }
    if (auto p = node.value("path", std::string()); !p.empty()) {
      out.push_back(p);
    }
    for (auto& child : node.value("children", json::array())) {
      pending.push_back(std::move(child));
    }
  }
  return out;
}

/// Kills until `kills` were done, one every `interval`; false when the node
/// stopped answering or `budget` passed first.
bool killer(soak& s, const test::node_process& node, uint64_t kills,
            std::chrono::milliseconds interval, std::chrono::seconds budget) {
  auto http = client(node);
  std::mt19937_64 rng(20261205);
  std::vector<std::string> paths;
  uint64_t done = 0;
  const auto give_up = clock_type::now() + budget;
  for (uint64_t n = 0; done < kills; ++n) {
    if (clock_type::now() > give_up) {
      return false;
    }
    if (n % 50 == 0 || paths.empty()) {
      paths = actor_paths(http);
      if (paths.empty()) {
        http = client(node);
        test::wait_until([] { return false; }, interval);
        continue;
      }
    }
    // A 503 (the actor is restarting) is not a kill; the next pick is another.
    const auto& path = paths[rng() % paths.size()];
    auto r = http.request("POST", "/v1/actors/" + path + "/kill", "{}");
    const bool ok = r && r->status == 200;
    s.kills.count(ok);
    done += ok ? 1 : 0;
    if (!r) {
      http = client(node);
    }
    test::wait_until([] { return false; }, interval);
  }
  return true;
}

void print_tally(const char* name, const tally& t) {
  std::printf("  %-12s %8llu of %8llu answered with success (%.2f %%)\n", name,
              static_cast<unsigned long long>(t.ok.load()),
              static_cast<unsigned long long>(t.all.load()), 100.0 * t.share());
}

}  // namespace

int main(int argc, char** argv) {
  ::signal(SIGPIPE, SIG_IGN);
  const bool quick = has_flag(argc, argv, "--quick");
  const auto kills = static_cast<uint64_t>(int_flag(argc, argv, "--kills", quick ? 100 : 10'000));
  const auto interval = std::chrono::milliseconds(int_flag(argc, argv, "--interval-ms", 10));
  // Room for every kill, its restart and the load; past it the run fails.
  const auto budget = std::chrono::seconds(30) + interval * kills * 5;

  test::temp_dir data;
  test::temp_dir files;
  const auto stable_file = files.path() + "/stable";
  std::ofstream(stable_file) << "never edited\n";
  test::mock_upstream_process mock;
  if (!mock.started()) {
    std::fprintf(stderr, "chaos_soak: the mock upstream did not start\n");
    return 1;
  }
  auto options = pinned_node();
  options.data_dir = data.path();
  options.env["TROUPE_CHAOS_ENABLED"] = "true";
  // A restart intensity that random kills at any rate stay under: 10,000
  // restarts of one supervisor's children within a second.
  options.env["TROUPE_SUPERVISOR_RESTARTS_MAX"] = "10000";
  options.env["TROUPE_SUPERVISOR_PERIOD_MS"] = "1000";
  // Restart back-off capped at 100 ms rather than 5 s: an actor killed again
  // and again would otherwise spend most of the run waiting to come back.
  options.env["TROUPE_SUPERVISOR_BACKOFF_MAX_MS"] = "100";
  options.env["TROUPE_ANTHROPIC_BASE_URL"] = mock.url();
  options.env["ANTHROPIC_API_KEY"] = "sk-ant-soak";
  options.env["TROUPE_CACHE_DEPENDENCY_ROOTS"] = files.path();
  auto node = std::make_unique<test::node_process>(options);
  if (!node->started()) {
    std::fprintf(stderr, "chaos_soak: the node did not start:\n%s\n", node->stderr_text().c_str());
    return 1;
  }
  const pid_t pid = node->pid();
  std::printf("chaos_soak: %llu kills under load (node pid %d)\n",
              static_cast<unsigned long long>(kills), static_cast<int>(pid));

  soak s;
  std::vector<std::thread> load;
  for (int i = 0; i < 2; ++i) {
    load.emplace_back(cache_writer, std::ref(s), std::cref(*node), i, stable_file);
    load.emplace_back(llm_client, std::ref(s), std::cref(*node), i);
  }
  load.emplace_back(editor, std::ref(s), std::cref(*node), files.path());
  load.emplace_back(terminal, std::ref(s), std::cref(*node));
  load.emplace_back(fault_injector, std::ref(s), mock.url());

  // Warm-up: every kind of request answered once before the first kill.
  test::wait_until(
      [&] {
        return s.cache_puts.ok > 0 && s.llm.ok > 0 && s.terminal.ok > 0 && s.edits.ok > 0;
      },
      std::chrono::seconds(30));
  const auto rss_before = rss_kib(pid).value_or(0);
  const auto t0 = clock_type::now();
  const bool survived = killer(s, *node, kills, interval, std::chrono::ceil<std::chrono::seconds>(budget));
  const double run_s = seconds_since(t0);
  if (std::getenv("CHAOS_SOAK_LOG") != nullptr) {
    std::ofstream(std::getenv("CHAOS_SOAK_LOG")) << node->stderr_text();
  }
  if (!survived) {
    const auto log = node->stderr_text();
    std::printf("  the kills did not finish in time; the node's log ends:\n%s\n",
                log.substr(log.size() > 4000 ? log.size() - 4000 : 0).c_str());
  }
  const auto rss_after = rss_kib(pid).value_or(0);
  s.stop = true;
  for (auto& t : load) {
    t.join();
  }

  // The node dies at once; a new one starts on the same data dir.
  node->stop(SIGKILL);
  node.reset();
  auto again_options = options;
  const auto restarted = clock_type::now();
  test::node_process again(again_options);
  bool ready = again.started();
  if (ready) {
    auto http = client(again);
    ready = test::wait_until(
        [&] {
          auto r = http.request("GET", "/readyz");
          return r && r->status == 200;
        },
        std::chrono::seconds(60));
  }
  const double ready_s = seconds_since(restarted);
  uint64_t lost = 0;
  uint64_t checked = 0;
  if (ready) {
    auto http = client(again);
    for (const auto& [key, value] : s.acked) {
      auto r = http.request("GET", "/v1/cache/" + key);
      if (!r) {
        http = client(again);
        r = http.request("GET", "/v1/cache/" + key);
      }
      ++checked;
      if (!r || r->status != 200 || r->body != value) {
        if (lost < 5) {
          std::printf("  lost: %s (%s)\n", key.c_str(),
                      r ? std::to_string(r->status).c_str() : r.err().message.c_str());
        }
        ++lost;
      }
    }
  }

  std::vector<double> latencies;
  {
    std::lock_guard lock(s.latency_mutex);
    latencies = s.latency_ms;
  }
  const uint64_t ok_all = s.cache_puts.ok + s.edits.ok + s.llm.ok + s.terminal.ok;
  const uint64_t all = s.cache_puts.all + s.edits.all + s.llm.all + s.terminal.all;
  const double share = all == 0 ? 0 : static_cast<double>(ok_all) / static_cast<double>(all);
  std::printf("  %llu kills in %.1f s (%llu kill requests refused or lost)\n",
              static_cast<unsigned long long>(s.kills.ok.load()), run_s,
              static_cast<unsigned long long>(s.kills.all - s.kills.ok));
  print_tally("cache puts", s.cache_puts);
  print_tally("edits", s.edits);
  print_tally("llm", s.llm);
  print_tally("terminal", s.terminal);
  std::printf("  all          %.2f %% answered with success; latency p50 %.1f ms, p99 %.1f ms\n",
              100.0 * share, quantile(latencies, 0.5), quantile(latencies, 0.99));
  std::printf("  stale answers: %llu (bar 0)\n", static_cast<unsigned long long>(s.stale.load()));
  std::printf("  RSS: %.1f MiB after warm-up, %.1f MiB after the kills\n", rss_before / 1024.0,
              rss_after / 1024.0);
  std::printf("  SIGKILL, restart: %s in %.2f s\n", ready ? "ready" : "NOT ready", ready_s);
  std::printf("  acknowledged writes: %llu checked after the restart, %llu lost (bar 0)\n",
              static_cast<unsigned long long>(checked), static_cast<unsigned long long>(lost));

  result r;
  r.bench = "chaos_soak";
  r.figure = static_cast<double>(lost);
  r.unit = "acknowledged writes lost";
  r.baseline = 0;
  r.ratio = share;
  r.p50 = quantile(latencies, 0.5);
  r.p99 = quantile(latencies, 0.99);
  r.runs = 1;
  print_json(r);
  return survived && ready && lost == 0 && s.stale == 0 ? 0 : 1;
}
