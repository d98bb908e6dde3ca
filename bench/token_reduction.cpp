// token_reduction: upstream tokens of a replayed multi-agent coding workload
// with the response cache off (baseline) and on, counted by the mock
// upstream; and stale answers after edits, which must be 0.
//
// The workload: three agents (reviewer, tester, documenter), each with its
// own persona, go over the files of a small project four times. Each pass
// an agent reviews every file with its content in the prompt (as a coding
// agent does after reading it) and asks a question about the file by path
// alone (the answer depends on the file, which the request names in
// X-Troupe-Depends-On). After the second pass three files are edited.
//
// A stale answer is one that describes a file version other than the one
// on disk when it was asked: the mock reads the files a prompt names and
// puts each one's digest in its answer, and the bench compares.
//
//   token_reduction [--quick]

#include <signal.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "actors/gateway/http_client.hpp"
#include "bench/bench_util.hpp"
#include "tests/integration/node_process.hpp"

namespace {

using json = nlohmann::json;
using troupe::http_client;
using troupe::test::mock_upstream_process;
using troupe::test::node_process;
using troupe::test::temp_dir;

/// FNV-1a 64, as the mock digests the files a prompt names.
std::string digest(const std::string& text) {
  uint64_t h = 0xcbf29ce484222325ULL;
  for (char c : text) {
    h ^= static_cast<uint8_t>(c);
    h *= 0x100000001b3ULL;
  }
  char out[17];
  std::snprintf(out, sizeof out, "%016llx", static_cast<unsigned long long>(h));
  return out;
}

std::string read(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

/// A deterministic source file of about `lines` lines.
std::string source_file(int index, int lines) {
  std::string text = "// module " + std::to_string(index) + "\n#include <vector>\n\n";
  for (int i = 0; i < lines; ++i) {
    text += "int function_" + std::to_string(index) + "_" + std::to_string(i) +
            "(std::vector<int>& v) { return v.empty() ? " + std::to_string(i) + " : v.front() + " +
            std::to_string(index) + "; }\n";
  }
  return text;
}

/// The answer's text, from a whole message or from a stream's text deltas.
std::string answer_text(const std::string& body) {
  std::string text;
  if (!body.starts_with("event:")) {
    auto message = json::parse(body, nullptr, false);
    if (message.is_object() && message.contains("content")) {
      for (const auto& block : message["content"]) {
        text += block.value("text", "");
      }
    }
    return text;
  }
  std::istringstream lines(body);
  for (std::string line; std::getline(lines, line);) {
    if (!line.starts_with("data: ")) {
      continue;
    }
    auto event = json::parse(line.substr(6), nullptr, false);
    if (event.is_object() && event.value("type", "") == "content_block_delta") {
      text += event["delta"].value("text", "");
    }
  }
  return text;
}

struct agent {
  std::string name;
  std::string persona;
  std::string task;
};

std::vector<agent> agents() {
  auto persona = [](const std::string& role) {
    std::string p = "You are the team's " + role + ". ";
    for (int i = 0; i < 20; ++i) {
      p += "Follow the project's style guide, name what you check, be specific about lines, "
           "and keep answers short. ";
    }
    return p;
  };
  return {{"reviewer", persona("code reviewer"), "Review this file for bugs"},
          {"tester", persona("test engineer"), "List the tests this file needs"},
          {"documenter", persona("technical writer"), "Write the API notes for this file"}};
}

struct run_result {
  uint64_t upstream_tokens = 0;
  uint64_t requests = 0;
  uint64_t stale = 0;
  uint64_t failed = 0;
};

run_result run_workload(bool cache, int files, int passes, int lines) {
  temp_dir project;
  std::vector<std::string> paths;
  for (int i = 0; i < files; ++i) {
    paths.push_back(project.path() + "/module_" + std::to_string(i) + ".cpp");
    std::ofstream(paths.back()) << source_file(i, lines);
  }
  mock_upstream_process mock;
  node_process node({{},
                     {{"TROUPE_ANTHROPIC_BASE_URL", mock.url()},
                      {"ANTHROPIC_API_KEY", "sk-ant-bench"},
                      {"TROUPE_LOG_LEVEL", "warn"},
                      {"TROUPE_LLM_CACHE_ENABLED", cache ? "true" : "false"}},
                     {}});
  run_result out;
  if (!mock.started() || !node.started()) {
    std::fprintf(stderr, "token_reduction: the node or the mock did not start\n");
    out.failed = 1;
    return out;
  }
  auto http = http_client(*troupe::parse_node_url(node.url()), node.token(), 30000);
  const auto team = agents();
  for (int pass = 0; pass < passes; ++pass) {
    if (pass == 2) {
      // Midway, some files change.
      for (int i = 0; i < files; i += 3) {
        std::ofstream(paths[static_cast<size_t>(i)], std::ios::app)
            << "int added_in_pass_" << pass << "() { return 1; }\n";
      }
    }
    for (const auto& a : team) {
      for (const auto& path : paths) {
        const auto content = read(path);
        const std::vector<std::string> prompts{
            a.task + " " + path + ":\n\n" + content,
            "In one sentence, what does " + path + " export?",
        };
        for (size_t k = 0; k < prompts.size(); ++k) {
          json body{{"model", "claude-bench"},
                    {"max_tokens", 512},
                    {"temperature", 0},
                    {"stream", k == 1},
                    {"system", a.persona},
                    {"messages", json::array({{{"role", "user"}, {"content", prompts[k]}}})}};
          auto r = http.request("POST", "/v1/messages", body.dump(), "application/json",
                                {{"x-troupe-agent", a.name}, {"x-troupe-depends-on", path}});
          ++out.requests;
          if (!r || r->status != 200) {
            ++out.failed;
            continue;
          }
          // The answer (whole or streamed) names the digest of the file it saw.
          const auto seen = answer_text(r->body).find("fnv:" + digest(content));
          if (k == 1 && seen == std::string::npos) {
            ++out.stale;
          }
        }
      }
    }
  }
  auto stats =
      http_client(*troupe::parse_node_url(mock.url()), "", 10000).request("GET", "/mock/stats");
  if (stats && stats->status == 200) {
    auto s = json::parse(stats->body);
    out.upstream_tokens = s["input_tokens"].get<uint64_t>() + s["output_tokens"].get<uint64_t>();
  }
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  signal(SIGPIPE, SIG_IGN);
  const bool quick = troupe::bench::has_flag(argc, argv, "--quick");
  const int files = quick ? 3 : 9;
  const int passes = 4;
  const int lines = quick ? 10 : 60;
  const auto off = run_workload(false, files, passes, lines);
  const auto on = run_workload(true, files, passes, lines);
  if (off.failed != 0 || on.failed != 0) {
    std::fprintf(stderr, "token_reduction: %llu + %llu requests failed\n",
                 static_cast<unsigned long long>(off.failed),
                 static_cast<unsigned long long>(on.failed));
    return 1;
  }
  const double reduction = off.upstream_tokens == 0
                               ? 0
                               : 1.0 - static_cast<double>(on.upstream_tokens) /
                                           static_cast<double>(off.upstream_tokens);
  std::printf("token_reduction: %d files, 3 agents, %d passes, edits after pass 2, %llu requests\n",
              files, passes, static_cast<unsigned long long>(on.requests));
  std::printf("  cache off: %llu upstream tokens, %llu stale answers\n",
              static_cast<unsigned long long>(off.upstream_tokens),
              static_cast<unsigned long long>(off.stale));
  std::printf("  cache on:  %llu upstream tokens, %llu stale answers\n",
              static_cast<unsigned long long>(on.upstream_tokens),
              static_cast<unsigned long long>(on.stale));
  std::printf("  reduction: %.1f %% (bar: >= 40 %%, goal >= 60 %%; stale must be 0)\n",
              reduction * 100);
  troupe::bench::print_json({"token_reduction", reduction * 100, "% fewer upstream tokens",
                             static_cast<double>(off.upstream_tokens), reduction, 0, 0, 1});
  return on.stale == 0 && off.stale == 0 ? 0 : 1;
}
