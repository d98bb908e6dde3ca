#pragma once

// Shared by the agent benches (agent_step, agents_idle, agents_load): a
// Release node in front of the mock upstream, agents made over HTTP, and
// the mock's scripted conversations ("mock-script:", see
// tests/support/mock_upstream/README.md) so every step is a real tool call.

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "client/http_client.hpp"
#include "tests/integration/node_process.hpp"

namespace troupe::bench {

using json = nlohmann::json;

/// A script of `reads` Read calls of `file`, then a text answer.
inline std::string read_script(int reads, const std::string& file) {
  json steps = json::array();
  for (int i = 0; i < reads; ++i) {
    steps.push_back({{"tool", "Read"}, {"input", {{"file_path", file}}}});
  }
  steps.push_back({{"text", "done"}});
  return "mock-script: " + steps.dump();
}

/// A workspace with one file of `lines` short lines.
inline void fill_workspace(const std::string& dir, int lines) {
  std::ofstream out(std::filesystem::path(dir) / "notes.txt");
  for (int i = 0; i < lines; ++i) {
    out << "line " << i << " of the notes an agent reads\n";
  }
}

inline bool create_agent(http_client& http, const std::string& name, const std::string& ws) {
  auto r = http.request("POST", "/v1/agents", json{{"name", name}, {"workspace", ws}}.dump());
  if (!r || r->status != 200) {
    std::fprintf(stderr, "creating agent %s failed: %s\n", name.c_str(),
                 r ? r->body.c_str() : r.err().message.c_str());
    return false;
  }
  return true;
}

/// The node's environment: the mock as its upstream, quiet logs.
inline std::map<std::string, std::string> agent_node_env(const std::string& mock_url) {
  return {{"TROUPE_ANTHROPIC_BASE_URL", mock_url},
          {"ANTHROPIC_API_KEY", "sk-ant-bench"},
          {"TROUPE_LOG_LEVEL", "warn"}};
}

}  // namespace troupe::bench
