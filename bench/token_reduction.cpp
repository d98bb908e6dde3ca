// token_reduction: how many upstream tokens troupe's LLM gateway saves on a
// multi-agent coding workload sent the way Claude Code sends it, with the
// node's shipped defaults, against the same requests sent straight to the
// upstream; and how many answers were stale after edits, which must be 0.
//
// The workload (deterministic): 4 personas (subagents: reviewer, tester,
// documenter, auditor) x 12 files x 3 rounds = 144 requests a side;
// --quick: 4 x 4 x 3 with shorter files. Each request is what Claude Code
// sends for a subagent: the persona's system prompt (~8 KB, distinct per
// persona), Claude Code's 12 tools (~50 KB of JSON), metadata.user_id,
// max_tokens 1024, no temperature and no cache_control anywhere. The user
// message is the persona's task, the file's absolute path and the file's
// current content (~60 lines of code). Files with an odd index are streamed
// and the others are not, in every round, so a repeat is the identical
// request. Between rounds a few files are appended to: 2 after round 1 and 2
// others after round 2 (1 each in quick mode).
//
// Two mocks, so counts do not mix: the baseline client talks to one
// directly; the node, with no TROUPE_LLM_* setting (its shipped defaults),
// talks to the other. Each request goes to both sides in turn, so both see
// the same file contents. From each mock's GET /mock/stats:
//   raw tokens                = input + output + cache read + cache creation
//   billed-equivalent input   = input + 1.25 x cache creation + 0.1 x cache read
// (Anthropic's prices for cache writes and reads, relative to plain input).
// Also: hits on repeats (x-troupe-cache: hit in rounds 2 and 3 on files not
// edited since the previous round); stale answers (the mock tags each file
// a question names with the digest of the file as it read it, and an answer
// without the digest of the content sent is stale); and the node's ledger
// (GET /v1/usage) against what its mock counted.
//
// Exits non-zero when a request failed or an answer was stale; the % bars are
// printed, not asserted, since CI runs this once in quick mode as a smoke test.
//
//   token_reduction [--quick]

#include <signal.h>
#include <stdlib.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <fstream>
#include <optional>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "client/http_client.hpp"
#include "bench/bench_util.hpp"
#include "tests/integration/node_process.hpp"
#include "tests/support/wait.hpp"

extern char** environ;

namespace {

using json = nlohmann::json;
using troupe::http_client;
using troupe::http_response;
using troupe::test::mock_upstream_process;
using troupe::test::node_process;
using troupe::test::temp_dir;

constexpr int rounds = 3;
constexpr const char* model = "claude-sonnet-4-5";
constexpr int max_tokens = 1024;
constexpr uint32_t request_timeout_ms = 30000;
/// A Claude Code tool description runs to a few KB; 12 of them with their
/// schemas come to ~50 KB of JSON.
constexpr size_t tool_description_bytes = 3600;
/// Subagent system prompts are several KB; 6-10 KB is the brief.
constexpr size_t persona_prompt_bytes = 8000;
/// The ledger books an answer after the client has it: give it this long.
constexpr auto ledger_settle = std::chrono::milliseconds(5000);

// The bars the figures are read against (printed, not asserted).
constexpr double raw_reduction_bar = 0.54;
constexpr double billed_reduction_bar = 0.85;
constexpr double repeat_hit_bar = 0.85;
constexpr double ledger_apart_bar = 0.05;

unsigned long long ull(uint64_t n) {
  return static_cast<unsigned long long>(n);
}

// ------------------------------------------------------------ the workload

/// The size of a run: the full one, or the quick smoke test's.
struct shape {
  int files = 0;
  int lines = 0;
  /// edited[r]: the files appended to just before round r.
  std::vector<std::vector<int>> edited;
};

shape shape_for(bool quick) {
  if (quick) {
    return {4, 15, {{}, {1}, {2}}};
  }
  return {12, 60, {{}, {1, 5}, {3, 9}}};
}

/// FNV-1a 64, as the mock digests the files a question names.
std::string digest(const std::string& text) {
  uint64_t h = 0xcbf29ce484222325ULL;
  for (char c : text) {
    h ^= static_cast<uint8_t>(c);
    h *= 0x100000001b3ULL;
  }
  char out[17];
  std::snprintf(out, sizeof out, "%016llx", ull(h));
  return out;
}

std::string read(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

/// A deterministic source file of `lines` functions.
std::string source_file(int index, int lines) {
  std::string text = "// module " + std::to_string(index) + "\n#include <vector>\n\n";
  for (int i = 0; i < lines; ++i) {
    text += "int function_" + std::to_string(index) + "_" + std::to_string(i) +
            "(std::vector<int>& v) { return v.empty() ? " + std::to_string(i) + " : v.front() + " +
            std::to_string(index) + "; }\n";
  }
  return text;
}

std::vector<std::string> write_project(const std::string& dir, const shape& s) {
  std::vector<std::string> paths;
  for (int i = 0; i < s.files; ++i) {
    paths.push_back(dir + "/module_" + std::to_string(i) + ".cpp");
    std::ofstream(paths.back()) << source_file(i, s.lines);
  }
  return paths;
}

void edit_files(const std::vector<std::string>& paths, const std::vector<int>& which, int round) {
  for (int i : which) {
    std::ofstream(paths.at(static_cast<size_t>(i)), std::ios::app)
        << "int added_before_round_" << round << "_" << i << "() { return " << round << "; }\n";
  }
}

/// `pattern` with every '$' replaced by `subject`.
std::string fill(std::string_view pattern, std::string_view subject) {
  std::string out;
  for (char c : pattern) {
    if (c == '$') {
      out += subject;
    } else {
      out += c;
    }
  }
  return out;
}

/// Deterministic prose of at least `bytes` bytes about `subject`: the
/// sentences in turn, a paragraph every four, as long prompts read.
std::string prose(std::string_view subject, const std::vector<std::string_view>& sentences,
                  size_t bytes) {
  std::string text;
  for (size_t i = 0; text.size() < bytes; ++i) {
    if (i > 0) {
      text += i % 4 == 0 ? "\n\n" : " ";
    }
    text += fill(sentences[i % sentences.size()], subject);
  }
  return text;
}

// ------------------------------------------------------- Claude Code's tools

struct tool_param {
  const char* name;
  const char* type;  ///< a JSON-schema type; an "array" holds objects
  const char* about;
  bool required;
};

struct tool_spec {
  const char* name;
  const char* summary;
  std::vector<tool_param> params;
};

const std::vector<std::string_view> tool_sentences{
    "Use the $ tool when the task needs it, and prefer it to a shell command that does the same.",
    "Before calling $, make sure every required parameter is known; never guess a path or an id.",
    "$ runs in the user's working directory with the user's permissions: its effects are real.",
    "When $ fails, read the error, fix the cause and retry once at most, then report what happened.",
    "If several $ calls do not depend on each other, send them together in a single message.",
    "Long results of $ are truncated; ask for a narrower range instead of repeating the call.",
    "Never use $ to reach outside the project unless the user explicitly asked for that.",
    "Say in one short line why you call $ before you call it, so the user can follow along.",
};

std::vector<tool_spec> tool_specs() {
  return {
      {"Bash", "Executes a bash command in a persistent shell session with an optional timeout.",
       {{"command", "string", "The command to execute", true},
        {"timeout", "number", "Optional timeout in milliseconds (max 600000)", false},
        {"description", "string", "Clear, concise description of what this command does", false}}},
      {"Read", "Reads a file from the local filesystem, with line numbers.",
       {{"file_path", "string", "The absolute path to the file to read", true},
        {"offset", "number", "The line number to start reading from", false},
        {"limit", "number", "The number of lines to read", false}}},
      {"Write", "Writes a file to the local filesystem, replacing any existing file.",
       {{"file_path", "string", "The absolute path to the file to write", true},
        {"content", "string", "The content to write to the file", true}}},
      {"Edit", "Performs exact string replacements in files.",
       {{"file_path", "string", "The absolute path to the file to modify", true},
        {"old_string", "string", "The text to replace", true},
        {"new_string", "string", "The text to replace it with", true},
        {"replace_all", "boolean", "Replace all occurrences of old_string", false}}},
      {"Glob", "Fast file pattern matching that works with any codebase size.",
       {{"pattern", "string", "The glob pattern to match files against", true},
        {"path", "string", "The directory to search in", false}}},
      {"Grep", "A powerful search tool built on ripgrep.",
       {{"pattern", "string", "The regular expression pattern to search for", true},
        {"path", "string", "File or directory to search in", false},
        {"glob", "string", "Glob pattern to filter files", false},
        {"output_mode", "string", "content, files_with_matches or count", false}}},
      {"Task", "Launches a new agent to handle complex, multi-step tasks autonomously.",
       {{"description", "string", "A short (3-5 word) description of the task", true},
        {"prompt", "string", "The task for the agent to perform", true},
        {"subagent_type", "string", "The type of specialized agent to use", true}}},
      {"WebFetch", "Fetches content from a URL and processes it with a prompt.",
       {{"url", "string", "The URL to fetch content from", true},
        {"prompt", "string", "The prompt to run on the fetched content", true}}},
      {"TodoWrite", "Creates and manages a structured task list for the current session.",
       {{"todos", "array", "The updated todo list", true}}},
      {"NotebookEdit", "Replaces the contents of a cell in a Jupyter notebook.",
       {{"notebook_path", "string", "The absolute path to the notebook", true},
        {"cell_id", "string", "The ID of the cell to edit", false},
        {"new_source", "string", "The new source for the cell", true},
        {"edit_mode", "string", "replace, insert or delete", false}}},
      {"MultiEdit", "Makes multiple edits to a single file in one operation.",
       {{"file_path", "string", "The absolute path to the file to modify", true},
        {"edits", "array", "Edits to apply sequentially", true}}},
      {"LS", "Lists files and directories in a given path.",
       {{"path", "string", "The absolute path to the directory to list", true},
        {"ignore", "array", "Glob patterns to ignore", false}}},
  };
}

json input_schema(const std::vector<tool_param>& params) {
  json properties = json::object();
  json required = json::array();
  for (const auto& p : params) {
    json property{{"type", p.type}, {"description", p.about}};
    if (std::string_view(p.type) == "array") {
      property["items"] = json{{"type", "object"}};
    }
    properties[p.name] = std::move(property);
    if (p.required) {
      required.push_back(p.name);
    }
  }
  return json{{"type", "object"},
              {"properties", std::move(properties)},
              {"required", std::move(required)},
              {"additionalProperties", false},
              {"$schema", "http://json-schema.org/draft-07/schema#"}};
}

json claude_code_tools() {
  json tools = json::array();
  for (const auto& t : tool_specs()) {
    tools.push_back(json{
        {"name", t.name},
        {"description", std::string(t.summary) + "\n\n" +
                            prose(t.name, tool_sentences, tool_description_bytes)},
        {"input_schema", input_schema(t.params)}});
  }
  return tools;
}

// ---------------------------------------------------------------- personas

struct persona {
  std::string name;  ///< sent as x-troupe-agent
  std::string task;
  std::string system;
};

const std::vector<std::string_view> persona_sentences{
    "You are the team's $, a subagent that a lead agent calls with one file at a time.",
    "As the $, read the whole file before you answer, and answer about that file only.",
    "Name the lines you talk about, quote the smallest piece of code that shows the point, and "
    "say why it matters.",
    "Do not restate the file, the lead agent has it; say what the $ sees that others would miss.",
    "When something is uncertain, say so plainly and say what would settle it, instead of "
    "guessing.",
    "Keep the answer short: findings, the most important first, each in one or two sentences.",
    "Follow the project's style guide: snake_case names, units last, braces on every statement.",
    "Never propose a change outside the given file; name it as a follow-up for the lead agent.",
    "Do not run commands or edit files; the $ only reads and reports.",
    "If the file is fine as it is, say so in one line; no findings is a valid answer from the $.",
};

persona make_persona(std::string name, std::string role, std::string task, std::string focus) {
  std::string system = "You are Claude Code's " + name + " subagent.\n\n" +
                       prose(role, persona_sentences, persona_prompt_bytes) +
                       "\n\nWhat the " + role + " looks for first: " + focus + ".";
  return {std::move(name), std::move(task), std::move(system)};
}

std::vector<persona> personas() {
  return {
      make_persona("reviewer", "code reviewer", "Review this file for bugs",
                   "unchecked results, off-by-one errors, lifetimes and undefined behaviour"),
      make_persona("tester", "test engineer", "List the tests this file needs",
                   "empty inputs, limits, error paths and concurrency"),
      make_persona("documenter", "technical writer", "Write the API notes for this file",
                   "what each function promises, needs, and forbids its callers"),
      make_persona("auditor", "security auditor", "Audit this file for security issues",
                   "untrusted input, integer overflow, resource exhaustion and leaked secrets"),
  };
}

/// The body Claude Code sends for a subagent's turn: no temperature and no
/// cache_control, system and user content as text blocks.
std::string request_body(const persona& p, const json& tools, const std::string& path,
                         const std::string& content, bool stream) {
  const json text_block{{"type", "text"}, {"text", p.task + " " + path + ":\n\n" + content}};
  const json user{{"role", "user"}, {"content", json::array({text_block})}};
  const json system_block{{"type", "text"}, {"text", p.system}};
  return json{{"model", model},
              {"max_tokens", max_tokens},
              {"stream", stream},
              {"metadata", {{"user_id", "bench-user"}}},
              {"system", json::array({system_block})},
              {"tools", tools},
              {"messages", json::array({user})}}
      .dump();
}

// ----------------------------------------------------------------- answers

std::string message_text(const std::string& body) {
  std::string text;
  const auto message = json::parse(body, nullptr, false);
  if (!message.is_object() || !message.contains("content") || !message["content"].is_array()) {
    return text;
  }
  for (const auto& block : message["content"]) {
    if (block.is_object() && block.value("type", "") == "text") {
      text += block.value("text", "");
    }
  }
  return text;
}

/// The text_delta texts of a stream, in order.
std::string streamed_text(const std::string& body) {
  std::string text;
  std::istringstream lines(body);
  for (std::string line; std::getline(lines, line);) {
    if (!line.empty() && line.back() == '\r') {
      line.pop_back();
    }
    if (!line.starts_with("data:")) {
      continue;
    }
    const auto event = json::parse(line.substr(line.starts_with("data: ") ? 6 : 5), nullptr, false);
    if (event.is_object() && event.value("type", "") == "content_block_delta" &&
        event.contains("delta") && event["delta"].value("type", "") == "text_delta") {
      text += event["delta"].value("text", "");
    }
  }
  return text;
}

std::string answer_text(const http_response& r) {
  const bool stream = r.content_type.find("text/event-stream") != std::string::npos ||
                      r.body.starts_with("event:");
  return stream ? streamed_text(r.body) : message_text(r.body);
}

/// Whether the answer is about `content`, the file as it was when asked.
bool is_fresh(const http_response& r, const std::string& path, const std::string& content) {
  const auto tag = "[file " + path + " fnv:" + digest(content) + "]";
  return answer_text(r).find(tag) != std::string::npos;
}

// ------------------------------------------------------------------- sides

/// One way to an upstream: a client, the headers it always sends, and what
/// came back.
struct side {
  http_client http;
  http_client::headers headers;
  uint64_t requests = 0;
  uint64_t failed = 0;
  uint64_t stale = 0;
};

side side_for(const std::string& url, const std::string& api_key) {
  return {http_client(*troupe::parse_node_url(url), "", request_timeout_ms),
          {{"x-api-key", api_key}, {"anthropic-version", "2023-06-01"}}};
}

/// One question about one file; the reply when it came back 200. Counts
/// failures and stale answers.
std::optional<http_response> ask(side& s, const std::string& body, http_client::headers extra,
                                 const std::string& path, const std::string& content) {
  auto headers = s.headers;
  headers.insert(headers.end(), extra.begin(), extra.end());
  auto r = s.http.request("POST", "/v1/messages", body, "application/json", std::move(headers));
  ++s.requests;
  if (!r || r->status != 200) {
    ++s.failed;
    return std::nullopt;
  }
  if (!is_fresh(*r, path, content)) {
    ++s.stale;
  }
  return std::move(r).value();
}

struct hit_tally {
  uint64_t hits = 0;
  /// Rounds 2 and 3, on files not edited since the previous round: the
  /// identical request was answered before.
  uint64_t repeats = 0;
  uint64_t repeat_hits = 0;
};

struct workload {
  std::vector<persona> team;
  json tools;
  std::vector<std::string> paths;
};

/// Every persona asks about every file once, each question to both sides.
void run_round(int round, const std::vector<int>& edited, const workload& w, side& baseline,
               side& node, hit_tally& tally) {
  for (const auto& p : w.team) {
    for (size_t i = 0; i < w.paths.size(); ++i) {
      const auto& path = w.paths[i];
      const auto content = read(path);
      // Parity by file, not by request: a repeat must be the identical request.
      const auto body = request_body(p, w.tools, path, content, i % 2 == 1);
      (void)ask(baseline, body, {}, path, content);
      const auto r =
          ask(node, body, {{"x-troupe-agent", p.name}, {"x-troupe-depends-on", path}}, path, content);
      const bool hit = r && troupe::find_header(*r, "x-troupe-cache") == "hit";
      const bool repeat =
          round > 0 && std::find(edited.begin(), edited.end(), static_cast<int>(i)) == edited.end();
      tally.hits += hit ? 1 : 0;
      tally.repeats += repeat ? 1 : 0;
      tally.repeat_hits += repeat && hit ? 1 : 0;
    }
  }
}

// ---------------------------------------------------------------- counting

/// What one mock upstream counted.
struct upstream_count {
  uint64_t requests = 0;
  uint64_t input = 0;
  uint64_t output = 0;
  uint64_t cache_read = 0;
  uint64_t cache_creation = 0;

  [[nodiscard]] uint64_t raw() const { return input + output + cache_read + cache_creation; }
  /// Input in plain-input units: a cache write costs 1.25x, a read 0.1x.
  [[nodiscard]] double billed_input() const {
    return static_cast<double>(input) + 1.25 * static_cast<double>(cache_creation) +
           0.1 * static_cast<double>(cache_read);
  }
};

/// A counter from a JSON object; 0 when absent (older mocks have no cache fields).
uint64_t count_field(const json& j, const char* name) {
  const auto it = j.find(name);
  return it != j.end() && it->is_number() ? it->get<uint64_t>() : 0;
}

std::optional<upstream_count> mock_stats(const std::string& url) {
  auto r = http_client(*troupe::parse_node_url(url), "", request_timeout_ms)
               .request("GET", "/mock/stats");
  if (!r || r->status != 200) {
    return std::nullopt;
  }
  const auto s = json::parse(r->body, nullptr, false);
  if (!s.is_object()) {
    return std::nullopt;
  }
  return upstream_count{count_field(s, "requests"), count_field(s, "input_tokens"),
                        count_field(s, "output_tokens"), count_field(s, "cache_read_input_tokens"),
                        count_field(s, "cache_creation_input_tokens")};
}

/// The ledger's totals, as GET /v1/usage reports them.
struct ledger_view {
  uint64_t upstream_tokens = 0;
  std::optional<uint64_t> served_tokens;
  std::optional<double> saved_fraction;
};

std::optional<json> usage_total(http_client& http) {
  auto r = http.request("GET", "/v1/usage");
  if (!r || r->status != 200) {
    return std::nullopt;
  }
  auto usage = json::parse(r->body, nullptr, false);
  if (!usage.is_object() || !usage.contains("total") || !usage["total"].is_object()) {
    return std::nullopt;
  }
  return usage["total"];
}

/// The ledger books an answer after the client has it, so wait (bounded)
/// for it to agree with the mock; then take what it says either way.
std::optional<ledger_view> read_ledger(const node_process& node, uint64_t mock_raw) {
  http_client http(*troupe::parse_node_url(node.url()), node.token(), request_timeout_ms);
  std::optional<json> total;
  (void)troupe::test::wait_until(
      [&] {
        total = usage_total(http);
        return total && count_field(*total, "upstream_tokens") == mock_raw;
      },
      ledger_settle);
  if (!total) {
    return std::nullopt;
  }
  ledger_view view{count_field(*total, "upstream_tokens"), std::nullopt, std::nullopt};
  if (total->contains("served_tokens")) {
    view.served_tokens = count_field(*total, "served_tokens");
  }
  if (const auto it = total->find("saved_fraction"); it != total->end() && it->is_number()) {
    view.saved_fraction = it->get<double>();
  }
  return view;
}

// --------------------------------------------------------------- reporting

double reduction(double node, double baseline) {
  return baseline == 0 ? 0 : 1.0 - node / baseline;
}

const char* against(bool met) {
  return met ? "ok" : "BELOW BAR";
}

void print_side(const char* label, const side& s, const upstream_count& c) {
  std::printf(
      "  %-19s %4llu requests, %4llu upstream calls, raw %llu tokens (in %llu, out %llu, "
      "cache read %llu, cache write %llu), billed-eq input %.0f, failed %llu, stale %llu\n",
      label, ull(s.requests), ull(c.requests), ull(c.raw()), ull(c.input), ull(c.output),
      ull(c.cache_read), ull(c.cache_creation), c.billed_input(), ull(s.failed), ull(s.stale));
}

void print_ledger(const std::optional<ledger_view>& ledger, uint64_t mock_raw) {
  if (!ledger) {
    std::printf("  ledger:          GET /v1/usage failed\n");
    return;
  }
  const double diff = static_cast<double>(ledger->upstream_tokens) - static_cast<double>(mock_raw);
  const double apart = mock_raw == 0 ? (diff == 0 ? 0 : 1) : std::fabs(diff) / static_cast<double>(mock_raw);
  std::printf("  ledger:          upstream_tokens %llu vs the mock's raw %llu: %.1f %% apart "
              "(bar: within %.0f %%: %s)",
              ull(ledger->upstream_tokens), ull(mock_raw), apart * 100, ledger_apart_bar * 100,
              against(apart <= ledger_apart_bar));
  if (ledger->served_tokens) {
    std::printf(", served_tokens %llu", ull(*ledger->served_tokens));
  }
  if (ledger->saved_fraction) {
    std::printf(", saved_fraction %.3f", *ledger->saved_fraction);
  }
  std::printf("\n");
}

void print_hits(const hit_tally& t, const side& node, const upstream_count& c) {
  const double rate =
      t.repeats == 0 ? 0 : static_cast<double>(t.repeat_hits) / static_cast<double>(t.repeats);
  std::printf("  hits on repeats: %llu of %llu = %.1f %% (bar: >= %.0f %%: %s); all hits %llu, "
              "node requests - upstream calls = %lld\n",
              ull(t.repeat_hits), ull(t.repeats), rate * 100, repeat_hit_bar * 100,
              against(rate >= repeat_hit_bar), ull(t.hits),
              static_cast<long long>(node.requests) - static_cast<long long>(c.requests));
}

void print_reductions(double raw, double billed) {
  std::printf("  raw reduction:   %.1f %% (bar: >= %.0f %%: %s)\n", raw * 100,
              raw_reduction_bar * 100, against(raw >= raw_reduction_bar));
  std::printf("  billed-eq input reduction: %.1f %% (bar: >= %.0f %%: %s)\n", billed * 100,
              billed_reduction_bar * 100, against(billed >= billed_reduction_bar));
}

void print_workload(const shape& s, const workload& w) {
  size_t system_bytes = 0;
  for (const auto& p : w.team) {
    system_bytes += p.system.size();
  }
  std::printf("token_reduction: %zu personas x %d files x %d rounds = %zu requests a side; "
              "edits: %zu files before round 2, %zu before round 3\n",
              w.team.size(), s.files, rounds, w.team.size() * w.paths.size() * static_cast<size_t>(rounds),
              s.edited[1].size(), s.edited[2].size());
  std::printf("  each request: %zu tools (%zu bytes of JSON), system ~%zu bytes, a %d-line file; "
              "half streamed; no temperature, no cache_control; node on shipped defaults\n",
              w.tools.size(), w.tools.dump().size(), system_bytes / w.team.size(), s.lines);
}

// ------------------------------------------------------------------- main

/// The node must run on its shipped defaults: drop any TROUPE_LLM_* setting
/// this process inherited, since the node inherits our environment.
void clear_llm_settings() {
  std::vector<std::string> names;
  for (char** e = environ; *e != nullptr; ++e) {
    const std::string_view kv(*e);
    if (kv.starts_with("TROUPE_LLM_")) {
      names.emplace_back(kv.substr(0, kv.find('=')));
    }
  }
  for (const auto& name : names) {
    ::unsetenv(name.c_str());
  }
}

}  // namespace

int main(int argc, char** argv) {
  signal(SIGPIPE, SIG_IGN);
  clear_llm_settings();
  const auto s = shape_for(troupe::bench::has_flag(argc, argv, "--quick"));
  temp_dir project;
  mock_upstream_process direct_mock;
  mock_upstream_process node_mock;
  node_process node({{},
                     {{"TROUPE_ANTHROPIC_BASE_URL", node_mock.url()},
                      {"ANTHROPIC_API_KEY", "sk-ant-bench"},
                      {"TROUPE_LOG_LEVEL", "warn"}},
                     {}});
  if (!direct_mock.started() || !node_mock.started() || !node.started()) {
    std::fprintf(stderr, "token_reduction: the node or a mock did not start\n");
    return 1;
  }
  const workload w{personas(), claude_code_tools(), write_project(project.path(), s)};
  side baseline = side_for(direct_mock.url(), "sk-ant-bench");
  side via_node = side_for(node.url(), node.token());
  hit_tally tally;
  for (int round = 0; round < rounds; ++round) {
    edit_files(w.paths, s.edited.at(static_cast<size_t>(round)), round);
    run_round(round, s.edited.at(static_cast<size_t>(round)), w, baseline, via_node, tally);
  }
  const auto base_count = mock_stats(direct_mock.url());
  const auto node_count = mock_stats(node_mock.url());
  if (!base_count || !node_count) {
    std::fprintf(stderr, "token_reduction: GET /mock/stats failed\n");
    return 1;
  }
  const auto ledger = read_ledger(node, node_count->raw());
  const double raw = reduction(static_cast<double>(node_count->raw()),
                               static_cast<double>(base_count->raw()));
  const double billed = reduction(node_count->billed_input(), base_count->billed_input());
  print_workload(s, w);
  print_side("baseline (direct):", baseline, *base_count);
  print_side("troupe node:", via_node, *node_count);
  print_reductions(raw, billed);
  print_hits(tally, via_node, *node_count);
  print_ledger(ledger, node_count->raw());
  const uint64_t failed = baseline.failed + via_node.failed + (ledger ? 0 : 1);
  const uint64_t stale = baseline.stale + via_node.stale;
  std::printf("  correctness:     %llu failed, %llu stale (both must be 0)\n", ull(failed),
              ull(stale));
  troupe::bench::print_json({"token_reduction", raw * 100, "% fewer upstream tokens",
                             static_cast<double>(base_count->raw()), raw, 0, 0, 1});
  return failed == 0 && stale == 0 ? 0 : 1;
}
