// The agents family alone on a real actor system, over a real store in a
// temp dir: the journal, the manager, and an agent's loop against a fake
// llm/router that answers like the real one (http.request, then http.reply
// with a Messages response). A crash in the middle of a tool call and a
// restart of the whole family come back from the transcript.

#include "actors/agents/agents.hpp"

#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>
#include <future>

#include <caf/all.hpp>
#include <nlohmann/json.hpp>

#include "actors/agents/agent.hpp"
#include "actors/agents/messages.hpp"
#include "runtime/actor/envelope_message.hpp"
#include "runtime/node/http_exchange.hpp"
#include "storage/db.hpp"
#include "tests/support/actor_harness.hpp"
#include "tests/support/round_trip.hpp"
#include "tests/support/scratch_dir.hpp"

using namespace troupe;
using namespace troupe::agents;
using troupe::test::actor_harness;
using troupe::test::wait_until;
using json = nlohmann::json;
namespace fs = std::filesystem;

namespace {

/// Plays llm/router: the first call of a turn gets a tool call of
/// `first_tool` (with `first_input`), the next a text answer. An agent
/// named "slow" gets a Bash call that waits for a file named "release"
/// (20 s at most) instead.
struct fake_router {
  std::string first_tool = "Read";
  json first_input = {{"file_path", "notes.txt"}};
  /// Set: the router answers no call by itself but counts them here; a
  /// "test.answer" {text (a tool call if "tool"), the call's index} answers one.
  std::shared_ptr<std::atomic<size_t>> held;
};

/// A Messages answer: a text, or a tool call.
std::string answer_body(const json& content, const std::string& model, bool tool) {
  return json{{"id", "msg_1"},
              {"type", "message"},
              {"role", "assistant"},
              {"model", model},
              {"content", content},
              {"stop_reason", tool ? "tool_use" : "end_turn"},
              {"usage", {{"input_tokens", 10}, {"output_tokens", 5}}}}
      .dump();
}

child_spec router_child(fake_router script) {
  child_spec spec;
  spec.name = "router";
  spec.start = [script](caf::actor_system& system, const std::string&) {
    // Held calls: their requester, and the correlation id answers carry.
    auto waiting = std::make_shared<std::vector<std::pair<caf::actor, uint64_t>>>();
    return system.spawn([script, waiting](caf::event_based_actor* self) -> caf::behavior {
      return {[self, script, waiting](std::string& type, std::string& body, uint64_t index) {
        if (type == "test.answer") {
          const bool tool = body == "tool";
          const auto content =
              tool ? json::array({{{"type", "tool_use"},
                                   {"id", "toolu_late"},
                                   {"name", "Write"},
                                   {"input", {{"file_path", "late.txt"}, {"content", "x"}}}}})
                   : json::array({{{"type", "text"}, {"text", body}}});
          const auto& [to, correlation] = waiting->at(index);
          self->send(to, std::string(http_msg::reply_type),
                     encode(http_msg::reply{200, {}, answer_body(content, "m", tool)}),
                     correlation);
          return;
        }
        auto req = decode<http_msg::request>(body);
        auto to = caf::actor_cast<caf::actor>(self->current_sender());
        if (type != http_msg::request_type || !req) {
          return;
        }
        auto taken = self->make_response_promise();
        taken.deliver(std::string(http_msg::request_type) + ".reply", encode(empty_body{}),
                      uint64_t{0});
        const auto correlation = index;  // the request's, carried back
        if (script.held) {
          waiting->emplace_back(to, correlation);
          ++*script.held;
          return;
        }
        const auto doc = json::parse(req->body);
        bool slow = false;
        for (const auto& h : req->headers) {
          slow = slow || (h.name == "x-troupe-agent" && h.value == "slow");
        }
        const bool after_tool =
            doc["messages"].back()["content"][0].value("type", "") == "tool_result";
        json content =
            after_tool
                ? json::array({{{"type", "text"}, {"text", "ok"}}})
                : json::array({{{"type", "tool_use"},
                                {"id", "toolu_" + std::to_string(doc["messages"].size())},
                                {"name", slow ? "Bash" : script.first_tool},
                                {"input", slow ? json{{"command",
                                                       "for i in $(seq 400); do "
                                                       "[ -f release ] && break; sleep 0.05; done"}}
                                               : script.first_input}}});
        json answer{{"id", "msg_1"},
                    {"type", "message"},
                    {"role", "assistant"},
                    {"model", doc["model"]},
                    {"content", content},
                    {"stop_reason", after_tool ? "end_turn" : "tool_use"},
                    {"usage", {{"input_tokens", 10}, {"output_tokens", 5}}}};
        self->send(to, std::string(http_msg::reply_type),
                   encode(http_msg::reply{200, {}, answer.dump()}), correlation);
      }};
    });
  };
  return spec;
}

struct family {
  explicit family(fake_router script = {}, std::string data = {})
      : h(config_for(data.empty() ? dir.path() : data)) {
    auto opened = db::open(storage_options{h.ctx()->config.node.data_dir + "/store", false});
    REQUIRE(opened);
    store = std::move(*opened);
    supervisor_spec llm;
    llm.children = {router_child(std::move(script))};
    supervisor_spec spec;
    spec.children = {supervisor_child("llm", h.ctx(), std::move(llm)),
                     agents_family(h.ctx(), store)};
    h.ctx()->top_level_children = spec.children.size();
    h.start_root(std::move(spec));
    REQUIRE(wait_until([&] { return h.state_of(manager_path) == actor_state::running; }));
  }
  ~family() { (void)h.stop_root(); }

  static node_config config_for(const std::string& data) {
    node_config c;
    c.node.data_dir = data;
    c.agents.personas_dir = data + "/no-personas";
    return c;
  }

  template <class Reply, class Req>
  Reply ask(const std::string& path, const char* type, const Req& body) {
    auto reply = h.call(path, make_envelope(type, body), std::chrono::seconds(20));
    INFO(reply.type << " " << (reply.is_error() ? read_error(reply).message : std::string()));
    REQUIRE_FALSE(reply.is_error());
    auto out = decode<Reply>(reply.body, decode_limits{.body_bytes_max = 64u << 20});
    REQUIRE(out);
    return std::move(*out);
  }
  template <class Req>
  error refused(const std::string& path, const char* type, const Req& body) {
    auto reply = h.call(path, make_envelope(type, body));
    REQUIRE(reply.is_error());
    return read_error(reply);
  }

  troupe::test::scratch_dir dir;
  actor_harness h;
  std::shared_ptr<db> store;
};

agent_spec spec_of(std::string name, std::string workspace, std::string persona = {}) {
  agent_spec s;
  s.name = std::move(name);
  s.workspace = std::move(workspace);
  s.persona = std::move(persona);
  return s;
}

std::vector<std::string> kinds(const std::vector<transcript_entry>& entries) {
  std::vector<std::string> out;
  for (const auto& e : entries) {
    out.push_back(json::parse(e.data)["kind"]);
  }
  return out;
}

}  // namespace

TEST_CASE("agents: agent, transcript and tool messages round-trip through msgpack") {
  agent_spec spec{"a", "/w", "reviewer", "sonnet", 1000, 5, 3, 100, "lead", 1};
  test::round_trips(spec);
  test::round_trips(agent_name{"a"});
  usage_info usage{1, 2, 3, 4};
  test::round_trips(usage);
  agent_info info{spec, "idle", "reviewer", 7, 2, usage, "end_turn"};
  test::round_trips(info);
  test::round_trips(agent_list{{info, agent_info{}}});
  test::round_trips(agent_deleted{"a"});
  test::round_trips(prompt_request{"hi"});
  transcript_entry entry{3, R"({"kind":"prompt"})"};
  test::round_trips(entry);
  test::round_trips(prompt_reply{"ok", "end_turn", usage, {entry}});
  test::round_trips(transcript_query{"a", 2, 10});
  test::round_trips(transcript_page{{entry}, 4});
  test::round_trips(append_request{"a", {entry}});
  test::round_trips(append_reply{1});
  test::round_trips(read_request{"a", 1, 2});
  test::round_trips(drop_reply{"a"});
  test::round_trips(tool_job{"a", "/w", "/t.jsonl", "t1", "Read", "{}", true, "/h.json"});
  test::round_trips(hook_job{"a", "/w", "/t.jsonl", "Stop", "", "{}", 3, "/h.json"});
  test::round_trips(hooks_done{3, "block", "why", "ctx", {hook_note{}}});
  approval_info approval{"t1", "Bash", "{}", "sure?", 100, "approved"};
  test::round_trips(approval);
  test::round_trips(approval_list{{approval}});
  test::round_trips(decide_request{"t1", true, "ok"});
  test::round_trips(end_request{"deleted"});
  test::round_trips(hook_note{"PreToolUse", "deny", "no", ""});
  test::round_trips(
      tool_done{"t1", "Read", "x", true, {"/a"}, {"/b"}, {hook_note{}}, "{}", true, "why", true});
}

TEST_CASE("agents: names and store keys") {
  CHECK(agent_name_problem("scribe-1.a_b").empty());
  CHECK_FALSE(agent_name_problem("").empty());
  CHECK_FALSE(agent_name_problem(".hidden").empty());
  CHECK_FALSE(agent_name_problem("a/b").empty());
  CHECK_FALSE(agent_name_problem(std::string(65, 'a')).empty());
  CHECK(entry_key("a", 255) == "t/a/00000000000000ff");
}

TEST_CASE("agents/journal: append, page, drop") {
  family f;
  append_request req{"x", {}};
  for (uint64_t seq = 1; seq <= 3; ++seq) {
    req.entries.push_back({seq, json{{"kind", "prompt"}, {"seq", seq}}.dump()});
  }
  CHECK(f.ask<append_reply>(journal_path, transcript_append_type, req).written == 3);
  auto page = f.ask<transcript_page>(journal_path, transcript_read_type, read_request{"x", 0, 2});
  REQUIRE(page.entries.size() == 2);
  CHECK(page.entries[0].seq == 1);
  CHECK(page.next == 2);
  page = f.ask<transcript_page>(journal_path, transcript_read_type, read_request{"x", 2, 2});
  REQUIRE(page.entries.size() == 1);
  CHECK(page.entries[0].seq == 3);
  CHECK(page.next == 0);
  // Another agent's entries are its own ("x" is a prefix of "xy").
  (void)f.ask<append_reply>(journal_path, transcript_append_type,
                            append_request{"xy", {{1, "{}"}}});
  page = f.ask<transcript_page>(journal_path, transcript_read_type, read_request{"x", 0, 0});
  CHECK(page.entries.size() == 3);

  const auto jsonl = fs::path(f.dir.path()) / "transcripts" / "x.jsonl";
  std::ifstream in(jsonl);
  size_t lines = 0;
  for (std::string line; std::getline(in, line);) {
    ++lines;
  }
  CHECK(lines == 3);

  CHECK(f.ask<drop_reply>(journal_path, transcript_drop_type, agent_name{"x"}).dropped == "x");
  page = f.ask<transcript_page>(journal_path, transcript_read_type, read_request{"x", 0, 0});
  CHECK(page.entries.empty());
  CHECK_FALSE(fs::exists(jsonl));
  CHECK(f.refused(journal_path, transcript_read_type, read_request{"../x", 0, 0}).code ==
        errc::bad_request);
}

TEST_CASE("agents/manager: create, refuse, list, get, delete") {
  family f;
  const auto ws = f.dir.path();
  auto info = f.ask<agent_info>(manager_path, agent_create_type, spec_of("a", ws));
  CHECK(info.spec.max_turns == 50);
  CHECK(info.spec.context_tokens == 100000);
  CHECK(f.refused(manager_path, agent_create_type, spec_of("a", ws)).code == errc::conflict);
  CHECK(f.refused(manager_path, agent_create_type, spec_of("b", "rel")).code == errc::bad_request);
  CHECK(f.refused(manager_path, agent_create_type, spec_of("b", ws, "nobody")).code ==
        errc::not_found);
  auto bad_turns = spec_of("b", ws);
  bad_turns.max_turns = -1;
  CHECK(f.refused(manager_path, agent_create_type, bad_turns).code == errc::bad_request);

  REQUIRE(wait_until([&] {
    return f.ask<agent_info>(manager_path, agent_get_type, agent_name{"a"}).state == "idle";
  }));
  auto list = f.ask<agent_list>(manager_path, agent_list_type, empty_body{});
  REQUIRE(list.agents.size() == 1);
  CHECK(list.agents[0].spec.name == "a");

  CHECK(f.ask<agent_deleted>(manager_path, agent_delete_type, agent_name{"a"}).deleted == "a");
  CHECK(f.refused(manager_path, agent_get_type, agent_name{"a"}).code == errc::not_found);
  CHECK(f.refused(manager_path, agent_delete_type, agent_name{"a"}).code == errc::not_found);
  REQUIRE(wait_until([&] { return !f.h.registry().find("agents/live/a"); }));
}

TEST_CASE("agents: a turn against the router, and the transcript it leaves") {
  family f;
  std::ofstream(fs::path(f.dir.path()) / "notes.txt") << "alpha\n";
  (void)f.ask<agent_info>(manager_path, agent_create_type, spec_of("a", f.dir.path()));
  auto turn = f.ask<prompt_reply>("agents/live/a", agent_prompt_type, prompt_request{"read"});
  CHECK(turn.text == "ok");
  CHECK(turn.stop_reason == "end_turn");
  CHECK(turn.usage.input_tokens == 20);
  CHECK(kinds(turn.events) == std::vector<std::string>{"prompt", "persona", "assistant",
                                                       "tool_call", "tool_result", "assistant",
                                                       "turn_end"});
  const auto result = json::parse(turn.events[4].data);
  CHECK(result["content"].get<std::string>().find("alpha") != std::string::npos);
  auto info = f.ask<agent_info>("agents/live/a", agent_info_type, empty_body{});
  CHECK(info.calls == 2);
  CHECK(info.entries == 7);
  CHECK(info.last_stop == "end_turn");
  // A prompt that is empty is refused, and writes nothing.
  CHECK(f.refused("agents/live/a", agent_prompt_type, prompt_request{""}).code ==
        errc::bad_request);
  CHECK(f.ask<agent_info>("agents/live/a", agent_info_type, empty_body{}).entries == 7);
}

TEST_CASE("agents: a crash mid-tool resumes from the transcript, the call interrupted") {
  // The tool hangs (a Bash sleep) so the agent can be crashed while it runs.
  family f{fake_router{"Bash", {{"command", "echo ran >> runs.txt; sleep 5"}}, nullptr}};
  (void)f.ask<agent_info>(manager_path, agent_create_type, spec_of("a", f.dir.path()));
  // The prompt's caller is left without an answer (it gives up after its
  // timeout); the turn goes on.
  auto asked = std::async(std::launch::async, [&] {
    return f.h.call("agents/live/a", make_envelope(agent_prompt_type, prompt_request{"go"}),
                    std::chrono::seconds(5));
  });
  REQUIRE(wait_until([&] { return fs::exists(fs::path(f.dir.path()) / "runs.txt"); },
                     std::chrono::seconds(10)));
  f.h.crash("agents/live/a");
  REQUIRE(wait_until(
      [&] {
        auto reply = f.h.call("agents/live/a", make_envelope(agent_info_type, empty_body{}));
        auto info = decode<agent_info>(reply.body);
        return !reply.is_error() && info && info->last_stop == "end_turn";
      },
      std::chrono::seconds(10)));
  auto page = f.ask<transcript_page>(journal_path, transcript_read_type, read_request{"a", 0, 0});
  CHECK(kinds(page.entries) == std::vector<std::string>{"prompt", "persona", "assistant",
                                                        "tool_call", "interrupted", "assistant",
                                                        "turn_end"});
  asked.wait();
  std::ifstream runs(fs::path(f.dir.path()) / "runs.txt");
  std::string all((std::istreambuf_iterator<char>(runs)), std::istreambuf_iterator<char>());
  CHECK(all == "ran\n");
}

TEST_CASE("agents: the family restarted on the same store brings its agents back") {
  troupe::test::scratch_dir data;
  {
    family f{{}, data.path()};
    (void)f.ask<agent_info>(manager_path, agent_create_type, spec_of("keep", data.path()));
    std::ofstream(fs::path(data.path()) / "notes.txt") << "alpha\n";
    (void)f.ask<prompt_reply>("agents/live/keep", agent_prompt_type, prompt_request{"read"});
  }
  family again{{}, data.path()};
  // Running, then idle once it has read its transcript back.
  agent_info info;
  REQUIRE(wait_until([&] {
    info = again.ask<agent_info>(manager_path, agent_get_type, agent_name{"keep"});
    return info.state == "idle";
  }));
  CHECK(info.entries == 7);
  CHECK(info.calls == 2);
  CHECK(info.last_stop == "end_turn");
}

TEST_CASE("agents/tools: a tool that blocks holds its own thread, not another agent's job") {
  family f;
  std::ofstream(fs::path(f.dir.path()) / "notes.txt") << "alpha\n";
  (void)f.ask<agent_info>(manager_path, agent_create_type, spec_of("slow", f.dir.path()));
  (void)f.ask<agent_info>(manager_path, agent_create_type, spec_of("quick", f.dir.path()));
  auto slow = std::async(std::launch::async, [&] {
    return f.h.call("agents/live/slow", make_envelope(agent_prompt_type, prompt_request{"go"}),
                    std::chrono::seconds(30));
  });
  REQUIRE(wait_until([&] {
    auto reply = f.h.call("agents/live/slow", make_envelope(agent_info_type, empty_body{}));
    auto info = decode<agent_info>(reply.body);
    return info && info->entries >= 4;  // its Bash call was written and runs
  }));
  // The slow agent's call holds a worker until the file exists; the quick
  // agent's whole turn runs meanwhile.
  auto turn = f.ask<prompt_reply>("agents/live/quick", agent_prompt_type, prompt_request{"read"});
  CHECK(turn.text == "ok");
  CHECK(slow.wait_for(std::chrono::seconds(0)) == std::future_status::timeout);
  std::ofstream(fs::path(f.dir.path()) / "release") << "go\n";
  auto slow_reply = slow.get();
  CHECK_FALSE(slow_reply.is_error());
}

TEST_CASE("agents: a stopped call's late answer is dropped, not taken for the next call's") {
  fake_router script;
  script.held = std::make_shared<std::atomic<size_t>>(0);
  family f{script};
  (void)f.ask<agent_info>(manager_path, agent_create_type, spec_of("a", f.dir.path()));
  auto prompt = [&](const std::string& text) {
    return std::async(std::launch::async, [&f, text] {
      return f.h.call("agents/live/a", make_envelope(agent_prompt_type, prompt_request{text}),
                      std::chrono::seconds(20));
    });
  };
  auto first = prompt("one");
  REQUIRE(wait_until([&] { return *script.held == 1; }));
  (void)f.ask<agent_info>("agents/live/a", agent_stop_type, empty_body{});
  auto stopped = decode<prompt_reply>(first.get().body);
  REQUIRE(stopped);
  CHECK(stopped->stop_reason == "stopped");

  auto second = prompt("two");
  REQUIRE(wait_until([&] { return *script.held == 2; }));
  // The first call's answer comes now, late, and would call a tool.
  auto router = f.h.ctx()->registry.current("llm/router");
  caf::anon_send(router, std::string("test.answer"), std::string("tool"), uint64_t{0});
  caf::anon_send(router, std::string("test.answer"), std::string("second"), uint64_t{1});
  auto answered = decode<prompt_reply>(second.get().body);
  REQUIRE(answered);
  CHECK(answered->stop_reason == "end_turn");
  CHECK(answered->text == "second");
  auto page = f.ask<transcript_page>(journal_path, transcript_read_type, read_request{"a", 0, 0});
  CHECK(kinds(page.entries) == std::vector<std::string>{"prompt", "persona", "turn_end", "prompt",
                                                        "persona", "assistant", "turn_end"});
  CHECK_FALSE(fs::exists(fs::path(f.dir.path()) / "late.txt"));
}

TEST_CASE("agents: only the exchange a turn answers can say its client left") {
  fake_router script;
  script.held = std::make_shared<std::atomic<size_t>>(0);
  family f{script};
  (void)f.ask<agent_info>(manager_path, agent_create_type, spec_of("a", f.dir.path()));
  auto agent = f.h.ctx()->registry.current("agents/live/a");
  REQUIRE(agent);
  // The turn answers an exchange (exchange 7 of this actor), as a
  // connection's exchange actor would ask.
  caf::scoped_actor exchange{f.h.system()};
  bool taken = false;
  exchange
      ->request(agent, std::chrono::seconds(20), std::string(http_msg::request_type),
                encode(http_msg::request{"POST",
                                         "/v1/agents/a/prompt",
                                         {{"accept", "application/json"}},
                                         R"({"prompt":"go"})",
                                         "token-1"}),
                uint64_t{7})
      .receive([&](const std::string& type, const std::string&,
                   uint64_t) { taken = type == std::string(http_msg::request_type) + ".reply"; },
               [&](const caf::error&) {});
  REQUIRE(taken);
  REQUIRE(wait_until([&] { return *script.held == 1; }));
  // A late word about its exchange 6, and one about 7 from someone else:
  // neither is this turn's client leaving.
  exchange->send(agent, std::string(http_msg::gone_type), encode(empty_body{}), uint64_t{6});
  caf::anon_send(agent, std::string(http_msg::gone_type), encode(empty_body{}), uint64_t{7});
  // Then the model answers (its reply reaches the agent after them).
  auto router = f.h.ctx()->registry.current("llm/router");
  caf::anon_send(router, std::string("test.answer"), std::string("done"), uint64_t{0});
  // The answer still reaches the exchange.
  bool answered = false;
  bool timed_out = false;
  while (!answered && !timed_out) {
    exchange->receive(
        [&](const std::string& type, const std::string& body, uint64_t correlation) {
          if (type == http_msg::reply_type && correlation == 7) {
            auto reply = decode<http_msg::reply>(body);
            REQUIRE(reply);
            CHECK(reply->status == 200);
            CHECK(json::parse(reply->bytes)["text"] == "done");
            answered = true;
          }
        },
        caf::after(std::chrono::seconds(20)) >> [&] { timed_out = true; });
  }
  CHECK(answered);
}
