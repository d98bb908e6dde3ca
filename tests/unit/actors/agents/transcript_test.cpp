// The conversation an agent derives from its transcript: what the model is
// sent, what a crash leaves, and what compaction elides.

#include <catch2/catch.hpp>

#include <string>

#include <nlohmann/json.hpp>

#include "actors/agents/transcript.hpp"

using namespace troupe::agents;
using json = nlohmann::json;

namespace {

json tool_use(const std::string& id, const std::string& name, json input) {
  return json{{"type", "tool_use"}, {"id", id}, {"name", name}, {"input", std::move(input)}};
}

conversation replay(const std::vector<json>& entries) {
  conversation c;
  for (const auto& e : entries) {
    apply_entry(c, e);
  }
  return c;
}

}  // namespace

TEST_CASE("transcript: a tool step becomes assistant and tool_result messages") {
  const auto c = replay({
      {{"kind", "prompt"}, {"text", "read it"}},
      {{"kind", "persona"}, {"name", "reviewer"}},
      {{"kind", "assistant"},
       {"content", json::array({{{"type", "text"}, {"text", "reading"}},
                                tool_use("t1", "Read", {{"file_path", "a.txt"}}),
                                tool_use("t2", "Glob", {{"pattern", "*"}})})}},
      {{"kind", "tool_call"}, {"id", "t1"}, {"name", "Read"}},
      {{"kind", "tool_result"},
       {"id", "t1"},
       {"content", "1\talpha"},
       {"is_error", false},
       {"read_paths", {"/w/a.txt"}}},
  });
  REQUIRE(c.messages.size() == 3);
  CHECK(c.messages[0]["role"] == "user");
  CHECK(c.messages[0]["content"][0]["text"] == "read it");
  CHECK(c.messages[1]["role"] == "assistant");
  CHECK(c.messages[2]["content"][0]["tool_use_id"] == "t1");
  CHECK_FALSE(c.messages[2]["content"][0].contains("is_error"));
  CHECK(c.in_turn);
  CHECK(c.turn_calls == 1);
  CHECK(c.read_paths == std::vector<std::string>{"/w/a.txt"});
  // t2 has no result yet: the model cannot be asked.
  REQUIRE(c.pending.size() == 1);
  CHECK(c.pending[0]["id"] == "t2");
  CHECK_FALSE(c.pending[0].value("started", false));
  CHECK_FALSE(ready_for_model(c));

  auto done = c;
  apply_entry(done, {{"kind", "tool_result"}, {"id", "t2"}, {"content", "a.txt"}});
  CHECK(ready_for_model(done));
  // Both results answer the one assistant message, in one user message.
  REQUIRE(done.messages.size() == 3);
  CHECK(done.messages[2]["content"].size() == 2);
  apply_entry(done, {{"kind", "turn_end"}, {"stop_reason", "end_turn"}});
  CHECK_FALSE(done.in_turn);
}

TEST_CASE("transcript: a call that started and has no result is answered interrupted") {
  auto c = replay({
      {{"kind", "prompt"}, {"text", "build"}},
      {{"kind", "assistant"},
       {"content", json::array({tool_use("t1", "Bash", {{"command", "make"}})})}},
      {{"kind", "tool_call"}, {"id", "t1"}, {"name", "Bash"}},
  });
  REQUIRE(c.pending.size() == 1);
  CHECK(c.pending[0]["started"] == true);
  apply_entry(c, {{"kind", "interrupted"}, {"id", "t1"}, {"name", "Bash"}});
  CHECK(ready_for_model(c));
  const auto& result = c.messages.back()["content"][0];
  CHECK(result["tool_use_id"] == "t1");
  CHECK(result["is_error"] == true);
  CHECK(result["content"].get<std::string>().find("not run again") != std::string::npos);
}

TEST_CASE("transcript: unknown kinds change nothing") {
  auto c = replay({{{"kind", "prompt"}, {"text", "x"}}});
  const auto before = c.messages;
  apply_entry(c, {{"kind", "from_a_newer_node"}, {"x", 1}});
  apply_entry(c, json::array());
  CHECK(c.messages == before);
}

TEST_CASE("transcript: elision takes the oldest results first and keeps the latest turns") {
  const std::string big(4000, 'x');
  std::vector<json> entries{{{"kind", "prompt"}, {"text", "go"}}};
  for (int i = 1; i <= 4; ++i) {
    const auto id = "t" + std::to_string(i);
    entries.push_back({{"kind", "assistant"},
                       {"content", json::array({tool_use(id, "Read", {{"file_path", "f"}})})}});
    entries.push_back({{"kind", "tool_result"}, {"id", id}, {"content", big}});
  }
  auto c = replay(entries);
  json request{{"model", "m"}, {"messages", c.messages}};
  const auto before = estimate_tokens(request);
  CHECK(before > 4000);

  CHECK(plan_elision(request, before, 1.0, 2).empty());  // it fits

  const auto ids = plan_elision(request, before - 1500, 1.0, 2);
  CHECK(ids == std::vector<std::string>{"t1", "t2"});

  // However small the budget, the last answer and its result stay whole.
  const auto all = plan_elision(request, 10, 1.0, 2);
  CHECK(all == std::vector<std::string>{"t1", "t2", "t3"});

  apply_entry(c, {{"kind", "compaction"}, {"elided", ids}});
  request["messages"] = c.messages;
  CHECK(estimate_tokens(request) <= before - 1500);
  CHECK(c.messages.back()["content"][0]["content"] == big);
  CHECK(c.messages[2]["content"][0]["content"].get<std::string>().find("elided") !=
        std::string::npos);
}

TEST_CASE("transcript: tool definitions carry Claude Code's names and inputs") {
  const auto defs = tool_definitions({"Read", "Bash", "Edit"});
  REQUIRE(defs.size() == 3);
  CHECK(defs[0]["name"] == "Read");
  CHECK(defs[0]["input_schema"]["required"] == json::array({"file_path"}));
  CHECK(defs[1]["input_schema"]["properties"].contains("timeout"));
  CHECK(defs[2]["input_schema"]["properties"].contains("replace_all"));
}

TEST_CASE("transcript: hook context, a Stop hook's continuation, and approvals") {
  auto c = replay({
      {{"kind", "prompt"}, {"text", "deploy"}, {"context", "Today is a holiday."}},
      {{"kind", "assistant"},
       {"content", json::array({tool_use("t1", "Bash", {{"command", "deploy.sh"}})})}},
      {{"kind", "tool_call"}, {"id", "t1"}, {"name", "Bash"}},
      {{"kind", "approval"}, {"id", "t1"}, {"name", "Bash"}, {"reason", "sure?"}},
  });
  REQUIRE(c.messages[0]["content"].size() == 2);
  CHECK(c.messages[0]["content"][1]["text"] == "Today is a holiday.");
  // Waiting for a person: nothing ran, so a restart must not call it
  // interrupted.
  REQUIRE(c.pending.size() == 1);
  CHECK(c.pending[0]["awaiting"] == true);
  CHECK(c.pending[0]["started"] == false);

  auto approved = c;
  apply_entry(approved, {{"kind", "approval_decision"}, {"id", "t1"}, {"decision", "approved"}});
  CHECK(approved.pending[0]["awaiting"] == false);
  CHECK(approved.pending[0]["started"] == true);
  apply_entry(c, {{"kind", "approval_decision"}, {"id", "t1"}, {"decision", "denied"}});
  CHECK(c.pending[0]["started"] == false);

  apply_entry(c,
              {{"kind", "tool_result"}, {"id", "t1"}, {"content", "denied"}, {"is_error", true}});
  apply_entry(
      c, {{"kind", "assistant"}, {"content", json::array({{{"type", "text"}, {"text", "ok"}}})}});
  apply_entry(c, {{"kind", "continue"}, {"text", "run the tests first"}});
  CHECK(ready_for_model(c));
  CHECK(c.messages.back()["content"][0]["text"] == "run the tests first");
}
