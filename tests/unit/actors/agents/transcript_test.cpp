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
  // What is elided is not elided again.
  CHECK(plan_elision(request, 10, 1.0, 2) == std::vector<std::string>{"t3"});
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

namespace {

/// A turn of `steps` Write calls, each carrying `bytes` in its input.
std::vector<json> writing_turn(int steps, size_t bytes, const std::string& ids = "t") {
  std::vector<json> entries{{{"kind", "prompt"}, {"text", "write the files"}}};
  for (int i = 0; i < steps; ++i) {
    const auto id = ids + std::to_string(i);
    entries.push_back(
        {{"kind", "assistant"},
         {"content",
          json::array({tool_use(
              id, "Write", {{"file_path", id + ".txt"}, {"content", std::string(bytes, 'x')}})})}});
    entries.push_back({{"kind", "tool_call"}, {"id", id}, {"name", "Write"}});
    entries.push_back({{"kind", "tool_result"}, {"id", id}, {"content", "written"}});
  }
  return entries;
}

}  // namespace

TEST_CASE("transcript: a summary cuts at an answer and keeps the latest turns whole") {
  auto c = replay(writing_turn(10, 4000));  // about 1,000 tokens a step
  // (The summary call may read it all here; an agent's reads no more than
  // its budget, and goes in rounds.)
  const summary_budget b{4000, 500, 400, 100000};
  const auto plan = plan_summary(c, b, 2);
  REQUIRE(plan);
  // At an assistant message, never within the last two messages.
  CHECK(c.messages[plan->upto]["role"] == "assistant");
  CHECK(plan->upto + 2 <= c.messages.size());
  CHECK(plan->keep_prompt);
  // The summary call reads only what it replaces.
  const auto request = summary_request(c, *plan, "claude-x", 400);
  CHECK(request["max_tokens"] == 400);
  CHECK(request["messages"].size() == 1);
  CHECK(estimate_tokens(request) <= b.request);

  const auto last_call = c.messages[c.messages.size() - 2];
  const auto kept = c.messages.size() - plan->upto;
  apply_entry(c, {{"kind", "compaction"},
                  {"summary", "wrote t0 to t5"},
                  {"upto", plan->upto},
                  {"keep_prompt", plan->keep_prompt}});
  REQUIRE(c.messages.size() == kept + 1);
  // One user message: the prompt word for word, then the summary.
  CHECK(c.messages[0]["role"] == "user");
  CHECK(c.messages[0]["content"][0]["text"] == "write the files");
  CHECK(c.messages[0]["content"][1]["text"].get<std::string>().ends_with("wrote t0 to t5"));
  CHECK(c.messages[1]["role"] == "assistant");
  CHECK(c.messages[c.messages.size() - 2] == last_call);
  CHECK(c.turn_start == 0);
  // Within 3/5 of the budget, with the summary's bound.
  CHECK(estimate_tokens_of(c.messages.dump().size()) + b.fixed <= b.context * 3 / 5 + b.summary);

  // Nothing left to summarise: the summary and the latest call alone.
  CHECK(c.messages.size() == 3);
  CHECK_FALSE(plan_summary(c, b, 2));
  // More steps; a second summary replaces the first: the prompt stays once.
  const auto more = writing_turn(4, 4000, "m");
  for (size_t i = 1; i < more.size(); ++i) {  // the steps, not the prompt
    apply_entry(c, more[i]);
  }
  const auto again = plan_summary(c, b, 2);
  REQUIRE(again);
  apply_entry(c, {{"kind", "compaction"},
                  {"summary", "wrote t0 to t7"},
                  {"upto", again->upto},
                  {"keep_prompt", again->keep_prompt}});
  CHECK(c.messages[0]["content"].size() == 2);
  CHECK(c.messages[0]["content"][0]["text"] == "write the files");
}

TEST_CASE("transcript: no summary when the latest turns alone are over the budget") {
  const auto c = replay(writing_turn(3, 20000));  // 5,000 tokens a step
  CHECK_FALSE(plan_summary(c, summary_budget{4000, 500, 400, 4000}, 2));
  // Nor when the oldest message alone is more than one call can read.
  auto entries = writing_turn(6, 2000);
  entries[0]["text"] = std::string(2000, 'p');
  CHECK_FALSE(plan_summary(replay(entries), summary_budget{4000, 500, 400, 300}, 2));
  // Less than would fit is summarised when one call cannot read it all.
  const auto d = replay(writing_turn(10, 4000));
  const auto whole = plan_summary(d, summary_budget{4000, 500, 400, 100000}, 2);
  const auto part = plan_summary(d, summary_budget{4000, 500, 400, 2500}, 2);
  REQUIRE(whole);
  REQUIRE(part);
  CHECK(part->upto < whole->upto);
  CHECK(estimate_tokens(summary_request(d, *part, "m", 400)) <= 2500);
}

TEST_CASE("transcript: calibration scales the estimate from then on") {
  auto c = replay({{{"kind", "prompt"}, {"text", "hello"}}});
  CHECK(c.calibration == 1.0);
  apply_entry(c,
              {{"kind", "calibration"}, {"estimated", 1000}, {"counted", 700}, {"factor", 0.735}});
  CHECK(c.calibration == 0.735);
  CHECK(c.calibrated_at == 1000);
  CHECK(estimate_tokens_of(4000, c.calibration) == 735);
  apply_entry(c, {{"kind", "calibration"}, {"factor", 0}});  // unreadable: ignored
  CHECK(c.calibration == 0.735);
}
