// Personas: Claude Code subagent files parsed as they are, tool rules,
// trigger matching and its deterministic choice, and catalogs loaded from
// real directories (the shipped configs/personas/ among them).

#include "actors/agents/persona.hpp"

#include <catch2/catch.hpp>

#include <fstream>

#include <nlohmann/json.hpp>

#include "tests/support/scratch_dir.hpp"

using namespace troupe;
using namespace troupe::agents;
using nlohmann::json;

namespace {

persona parse_ok(std::string_view text, const std::string& source = "p.md") {
  auto p = parse_persona(text, source);
  INFO((p ? std::string() : p.err().message));
  REQUIRE(p);
  return std::move(*p);
}

std::string parse_error(std::string_view text, const std::string& source = "p.md") {
  auto p = parse_persona(text, source);
  REQUIRE_FALSE(p);
  return p.err().message;
}

void write_file(const std::filesystem::path& path, const std::string& text) {
  std::filesystem::create_directories(path.parent_path());
  std::ofstream(path) << text;
}

std::string simple(const std::string& name, const std::string& extra = "") {
  return "---\nname: " + name + "\ndescription: The " + name + " persona.\n" + extra +
         "---\nYou are " + name + ".\n";
}

}  // namespace

TEST_CASE("persona: a Claude Code subagent file is read as it is") {
  const auto p = parse_ok(R"(---
name: code-reviewer
description: Expert code review specialist. Use after writing code.
tools: Read, Grep, Glob, Bash(git diff *), Bash(npm run test:*)
model: sonnet
color: blue
---
You are a senior code reviewer.

Review the diff.
)");
  CHECK(p.name == "code-reviewer");
  CHECK(p.description == "Expert code review specialist. Use after writing code.");
  REQUIRE(p.tools);
  REQUIRE(p.tools->size() == 5);
  CHECK((*p.tools)[3].tool == "Bash");
  CHECK((*p.tools)[3].pattern == "git diff *");
  CHECK((*p.tools)[4].text() == "Bash(npm run test:*)");
  CHECK(p.model == "sonnet");
  CHECK(p.prompt == "You are a senior code reviewer.\n\nReview the diff.");
  CHECK(p.priority == 0);
  CHECK(p.triggers.empty());
}

TEST_CASE("persona: without tools every tool is allowed, and the model is inherited") {
  const auto p = parse_ok(simple("helper"));
  CHECK_FALSE(p.tools);
  CHECK(p.model == "inherit");
  CHECK(check_tool(p, "Bash", json{{"command", "rm -rf build"}}).allowed);
}

TEST_CASE("persona: tools as a YAML list, CRLF lines, troupe's own keys") {
  const auto p = parse_ok(
      "---\r\nname: security\r\ndescription: Audits.\r\ntools:\r\n  - Read\r\n  - Grep\r\n"
      "disallowedTools: [Write]\r\npriority: 20\r\ncontext_tokens: 50000\r\ntriggers:\r\n"
      "  keywords: [CVE, "
      "\"sql injection\"]\r\n  regex: ['\\bGHSA-\\w+']\r\n  files: [\"*.lock\"]\r\n---\r\nAudit "
      "it.\r\n");
  REQUIRE(p.tools);
  CHECK(p.tools->size() == 2);
  REQUIRE(p.disallowed.size() == 1);
  CHECK(p.disallowed[0].tool == "Write");
  CHECK(p.priority == 20);
  CHECK(p.context_tokens == 50000);
  CHECK(p.triggers.keywords == std::vector<std::string>{"CVE", "sql injection"});
  CHECK(p.triggers.regex.size() == 1);
  CHECK(p.compiled.size() == 1);
  CHECK(p.triggers.files == std::vector<std::string>{"*.lock"});
}

TEST_CASE("persona: a bad file is refused with its name and line") {
  CHECK(parse_error("no front matter\n", "a.md") ==
        "a.md:1: a persona starts with YAML front matter: a line '---'");
  CHECK(parse_error("---\nname: x\n", "a.md") ==
        "a.md:1: the front matter has no closing '---' line");
  CHECK(parse_error("---\nname: x\ndescription: [unclosed\n---\n", "b.md").rfind("b.md:3: ", 0) ==
        0);
  CHECK(parse_error("---\ndescription: d\n---\n") ==
        "p.md:2: name: required, lowercase letters, digits and hyphens (at most 64)");
  CHECK(parse_error("---\nname: Bad_Name\ndescription: d\n---\n") ==
        "p.md:2: name: required, lowercase letters, digits and hyphens (at most 64)");
  CHECK(parse_error("---\nname: x\n---\n") ==
        "p.md:2: description: required, says when to use this persona");
  CHECK(parse_error("---\nname: x\ndescription: d\n\npriority: high\n---\n") ==
        "p.md:5: priority: an integer from -1000 to 1000");
  CHECK(parse_error("---\nname: x\ndescription: d\ncontext_tokens: 10\n---\n") ==
        "p.md:4: context_tokens: an integer from 1,000 to 10,000,000");
  CHECK(parse_error("---\nname: x\ndescription: d\ntools: Bash(git diff\n---\n") ==
        "p.md:4: tools: tool rule 'Bash(git diff' has no closing parenthesis");
  CHECK(parse_error("---\nname: x\ndescription: d\ntriggers:\n  regex: ['(unclosed']\n---\n")
            .rfind("p.md:5: triggers.regex: '(unclosed': ", 0) == 0);
  CHECK(parse_error("---\nname: x\ndescription: d\ntriggers: [a, b]\n---\n") ==
        "p.md:4: triggers: a map of keywords, regex and files");
  CHECK(parse_error(std::string(persona_file_bytes_max + 1, 'x')) ==
        "p.md:1: larger than 262144 bytes");
}

TEST_CASE("persona: tool rules allow, restrict and deny, and say why") {
  const auto p = parse_ok(simple("git-only",
                                 "tools: Read, Bash(git diff *), Bash(git log:*)\n"
                                 "disallowedTools: Read(/etc/*)\n"));
  CHECK(check_tool(p, "Read", json{{"file_path", "src/a.cpp"}}).allowed);
  CHECK(check_tool(p, "Bash", json{{"command", "git diff HEAD~1 -- src"}}).allowed);
  CHECK(check_tool(p, "Bash", json{{"command", "git log"}}).allowed);
  CHECK(check_tool(p, "Bash", json{{"command", "git log --oneline"}}).allowed);

  auto v = check_tool(p, "Bash", json{{"command", "git push --force"}});
  CHECK_FALSE(v.allowed);
  CHECK(v.reason == "persona 'git-only' allows only Bash(git diff *), Bash(git log:*)");
  v = check_tool(p, "Write", json{{"file_path", "a"}, {"content", "b"}});
  CHECK_FALSE(v.allowed);
  CHECK(v.reason == "persona 'git-only' does not use the tool Write");
  v = check_tool(p, "Read", json{{"file_path", "/etc/passwd"}});
  CHECK_FALSE(v.allowed);
  CHECK(v.reason == "persona 'git-only' disallows Read(/etc/*)");
  // A command that only starts like an allowed one is not it.
  CHECK_FALSE(check_tool(p, "Bash", json{{"command", "git diffx"}}).allowed);
  // A missing or mistyped input field matches no pattern.
  CHECK_FALSE(check_tool(p, "Bash", json{{"command", 7}}).allowed);
}

TEST_CASE("persona: a pattern on a tool it cannot check never allows, and a deny with one denies") {
  const auto allow = parse_ok(simple("web", "tools: WebFetch(domain:example.com)\n"));
  CHECK_FALSE(check_tool(allow, "WebFetch", json{{"url", "https://example.com"}}).allowed);
  const auto deny = parse_ok(simple("noweb", "disallowedTools: WebFetch(domain:evil.com)\n"));
  CHECK_FALSE(check_tool(deny, "WebFetch", json{{"url", "https://example.com"}}).allowed);
  CHECK(check_tool(deny, "Read", json{{"file_path", "a"}}).allowed);
}

TEST_CASE("persona: the paths a prompt mentions") {
  CHECK(mentioned_paths("fix `src/main.cpp` and (docs/api.md), see https://x.io/a.html. Also "
                        "README.md, then v1.2? no: CMakeLists.txt") ==
        std::vector<std::string>{"src/main.cpp", "docs/api.md", "README.md", "v1.2",
                                 "CMakeLists.txt"});
  CHECK(mentioned_paths("nothing here").empty());
}

TEST_CASE("persona: matching scores triggers and settles conflicts by priority, score, name") {
  std::vector<persona> all{
      parse_ok(simple("reviewer",
                      "priority: 5\ntriggers:\n  keywords: [review, \"pull "
                      "request\"]\n  files: [\"*.diff\"]\n")),
      parse_ok(simple("security",
                      "priority: 10\ntriggers:\n  keywords: [CVE]\n  regex: "
                      "['\\bGHSA-[a-z0-9]{4}']\n")),
      parse_ok(simple("docs",
                      "triggers:\n  files: [\"docs/*.md\", \"*.rst\"]\n  keywords: "
                      "[review]\n")),
      parse_ok(simple("alpha", "triggers:\n  keywords: [review]\n")),
      parse_ok(simple("plain")),
  };

  auto c = match_personas(all, "Please REVIEW this pull request: changes.diff");
  REQUIRE(c.chosen);
  CHECK(*c.chosen == "reviewer");
  REQUIRE(c.candidates.size() == 3);
  CHECK(c.candidates[0].reasons ==
        std::vector<std::string>{"keyword 'review'", "keyword 'pull request'",
                                 "file 'changes.diff' matches '*.diff'"});
  CHECK(c.candidates[0].score == 3);
  // docs and alpha: same priority and score; the name settles it.
  CHECK(c.candidates[1].name == "alpha");
  CHECK(c.candidates[2].name == "docs");
  CHECK(c.rule == persona_choice_rule);

  // Higher priority wins over more triggers.
  c = match_personas(all, "review the fix for CVE-2024-1 in this pull request");
  REQUIRE(c.chosen);
  CHECK(*c.chosen == "security");

  c = match_personas(all, "see ghsa-ab12 please");
  REQUIRE(c.chosen);
  CHECK(*c.chosen == "security");
  CHECK(c.candidates[0].reasons == std::vector<std::string>{"regex '\\bGHSA-[a-z0-9]{4}'"});

  // Whole words only.
  c = match_personas(all, "the reviewers and previews");
  CHECK_FALSE(c.chosen);
  CHECK(c.candidates.empty());

  c = match_personas(all, "update docs/api.md");
  REQUIRE(c.chosen);
  CHECK(*c.chosen == "docs");
  CHECK(c.candidates[0].reasons ==
        std::vector<std::string>{"file 'docs/api.md' matches 'docs/*.md'"});

  // The order personas are given in does not change the choice.
  std::reverse(all.begin(), all.end());
  c = match_personas(all, "Please REVIEW this pull request: changes.diff");
  CHECK(*c.chosen == "reviewer");
  CHECK(c.candidates[1].name == "alpha");
}

TEST_CASE("persona: a hostile regex trigger runs in linear time") {
  const auto p = parse_ok(simple("redos", "triggers:\n  regex: ['(a+)+$']\n"));
  const std::string prompt = std::string(30000, 'a') + "!";
  // A backtracking engine would not return; RE2 answers at once.
  const auto c = match_personas({p}, prompt);
  CHECK_FALSE(c.chosen);
}

TEST_CASE("persona: catalogs load in order, override by name and report bad files") {
  test::scratch_dir dir("personas");
  const std::filesystem::path root = dir.path();
  const auto node = root / "node";
  const auto workspace = root / "ws" / ".claude" / "agents";
  write_file(node / "a-reviewer.md", simple("reviewer", "model: opus\n"));
  write_file(node / "b-writer.md", simple("writer"));
  write_file(node / "c-bad.md", "---\nname: bad\n---\n");
  write_file(node / "d-dup.md", simple("writer"));
  write_file(node / "notes.txt", "not a persona");
  write_file(workspace / "reviewer.md", simple("reviewer", "model: haiku\n"));

  const auto catalog = load_personas({node, workspace, root / "missing"});
  REQUIRE(catalog.personas.size() == 2);
  CHECK(catalog.personas[0].name == "reviewer");
  CHECK(catalog.personas[0].model == "haiku");
  CHECK(catalog.personas[0].source == (workspace / "reviewer.md").string());
  CHECK(catalog.personas[1].name == "writer");
  CHECK(catalog.personas[1].source == (node / "b-writer.md").string());
  REQUIRE(catalog.problems.size() == 2);
  CHECK(catalog.problems[0].source == (node / "c-bad.md").string());
  CHECK(catalog.problems[0].message ==
        (node / "c-bad.md").string() + ":2: description: required, says when to use this persona");
  CHECK(catalog.problems[1].message == (node / "d-dup.md").string() +
                                           ":1: the name 'writer' is taken by another file in " +
                                           node.string());
  REQUIRE(catalog.find("writer") != nullptr);
  CHECK(catalog.find("nobody") == nullptr);
}

TEST_CASE("persona: the personas shipped in configs/personas all load") {
  // tests/unit/actors/agents/<this file> -> five levels up.
  const auto root = std::filesystem::path(__FILE__)
                        .parent_path()
                        .parent_path()
                        .parent_path()
                        .parent_path()
                        .parent_path();
  const auto catalog = load_personas({root / "configs" / "personas"});
  for (const auto& problem : catalog.problems) {
    FAIL_CHECK(problem.message);
  }
  CHECK(catalog.personas.size() >= 3);
  for (const auto& p : catalog.personas) {
    INFO(p.source);
    CHECK_FALSE(p.prompt.empty());
    CHECK_FALSE(p.triggers.empty());
  }
}

TEST_CASE("persona: deeply nested YAML is refused, not followed down") {
  const auto deep = "---\nname: x\ndescription: d\nfoo: " + std::string(100000, '[') + "\n---\n";
  CHECK(parse_error(deep).rfind("p.md:4: ", 0) == 0);
}
