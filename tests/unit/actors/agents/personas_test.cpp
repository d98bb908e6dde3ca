// agents/personas alone, on a real actor system (it is a detached actor)
// over real files in a temp dir: list, get, match, a workspace that
// overrides the node, an edit that counts from the next request, and the
// errors callers get.

#include "actors/agents/personas.hpp"
#include "actors/agents/agents.hpp"

#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>

#include "actors/agents/messages.hpp"
#include "actors/agents/persona.hpp"
#include "tests/support/actor_harness.hpp"
#include "tests/support/round_trip.hpp"
#include "tests/support/scratch_dir.hpp"

using namespace troupe;
using namespace troupe::agents;
using troupe::test::actor_harness;
using troupe::test::wait_until;
namespace fs = std::filesystem;

namespace {

void write_file(const fs::path& path, const std::string& text) {
  fs::create_directories(path.parent_path());
  std::ofstream(path) << text;
}

std::string persona_file(const std::string& name, const std::string& extra = "",
                         const std::string& prompt = "Be useful.") {
  return "---\nname: " + name + "\ndescription: The " + name + " persona.\n" + extra + "---\n" +
         prompt + "\n";
}

node_config config_with(const fs::path& personas) {
  node_config c;
  c.agents.personas_dir = personas.string();
  return c;
}

struct family {
  explicit family(const fs::path& personas) : h(config_with(personas)) {
    supervisor_spec spec;
    spec.children = {agents_family(h.ctx(), nullptr)};
    h.ctx()->top_level_children = spec.children.size();
    h.start_root(std::move(spec));
    REQUIRE(wait_until([&] { return h.state_of(personas_path) == actor_state::running; }));
  }
  ~family() { (void)h.stop_root(); }

  template <class Reply, class Req>
  Reply ask(const char* type, const Req& body) {
    auto reply = h.call(personas_path, make_envelope(type, body));
    INFO(reply.type << " " << (reply.is_error() ? read_error(reply).message : std::string()));
    REQUIRE_FALSE(reply.is_error());
    auto out = decode<Reply>(reply.body);
    REQUIRE(out);
    return std::move(*out);
  }
  template <class Req>
  error refused(const char* type, const Req& body) {
    auto reply = h.call(personas_path, make_envelope(type, body));
    REQUIRE(reply.is_error());
    return read_error(reply);
  }

  actor_harness h;
};

}  // namespace

TEST_CASE("agents messages round-trip through msgpack") {
  test::round_trips(persona_scope{"/w"});
  test::round_trips(persona_name{"reviewer", "/w"});
  test::round_trips(match_request{"review this", "/w"});
  persona_info info{"reviewer",
                    "d",
                    std::vector<std::string>{"Read", "Bash(git diff *)"},
                    {"Write"},
                    "sonnet",
                    10,
                    {{"review"}, {"\\bPR\\b"}, {"*.diff"}},
                    "/a.md",
                    std::string("prompt")};
  test::round_trips(info);
  test::round_trips(persona_list{{info, persona_info{}}, {{"/b.md", "/b.md:2: why"}}});
  test::round_trips(
      match_reply{std::string("reviewer"), {{"reviewer", 10, 2, {"keyword 'review'"}}}, "rule"});
  test::round_trips(match_reply{});
}

TEST_CASE("agents/personas: lists, shows and matches the node's personas") {
  test::scratch_dir dir("personas");
  const fs::path node = fs::path(dir.path()) / "node";
  write_file(node / "reviewer.md",
             persona_file("reviewer",
                          "tools: Read, Bash(git diff *)\npriority: 5\ntriggers:\n"
                          "  keywords: [review]\n",
                          "Review carefully."));
  write_file(node / "broken.md", "---\nname: broken\n---\n");
  family f(node);

  auto list = f.ask<persona_list>(persona_list_type, persona_scope{});
  REQUIRE(list.personas.size() == 1);
  CHECK(list.personas[0].name == "reviewer");
  CHECK(list.personas[0].tools == std::vector<std::string>{"Read", "Bash(git diff *)"});
  CHECK(list.personas[0].priority == 5);
  CHECK_FALSE(list.personas[0].prompt);
  REQUIRE(list.problems.size() == 1);
  CHECK(list.problems[0].message ==
        (node / "broken.md").string() + ":2: description: required, says when to use this persona");

  auto shown = f.ask<persona_info>(persona_get_type, persona_name{"reviewer", ""});
  CHECK(shown.prompt == std::optional<std::string>("Review carefully."));
  CHECK(shown.source == (node / "reviewer.md").string());

  auto matched = f.ask<match_reply>(persona_match_type, match_request{"please review it", ""});
  CHECK(matched.chosen == std::optional<std::string>("reviewer"));
  REQUIRE(matched.candidates.size() == 1);
  CHECK(matched.candidates[0].reasons == std::vector<std::string>{"keyword 'review'"});
  CHECK(matched.rule == persona_choice_rule);

  matched = f.ask<match_reply>(persona_match_type, match_request{"nothing to see", ""});
  CHECK_FALSE(matched.chosen);
  CHECK(matched.candidates.empty());
}

TEST_CASE("agents/personas: a workspace overrides the node by name, and edits count at once") {
  test::scratch_dir dir("personas");
  const fs::path node = fs::path(dir.path()) / "node";
  const fs::path ws = fs::path(dir.path()) / "ws";
  write_file(node / "reviewer.md", persona_file("reviewer", "model: opus\n"));
  write_file(node / "writer.md", persona_file("writer"));
  fs::create_directories(ws);
  family f(node);

  CHECK(f.ask<persona_info>(persona_get_type, persona_name{"reviewer", ws.string()}).model ==
        "opus");
  write_file(ws / ".claude" / "agents" / "reviewer.md", persona_file("reviewer", "model: haiku\n"));
  CHECK(f.ask<persona_info>(persona_get_type, persona_name{"reviewer", ws.string()}).model ==
        "haiku");
  // The node's own view is unchanged.
  CHECK(f.ask<persona_info>(persona_get_type, persona_name{"reviewer", ""}).model == "opus");

  // An edit (here: a longer file) is read on the next request; so is a new file.
  write_file(node / "writer.md", persona_file("writer", "priority: 7\n"));
  write_file(node / "tester.md", persona_file("tester"));
  auto list = f.ask<persona_list>(persona_list_type, persona_scope{});
  REQUIRE(list.personas.size() == 3);
  CHECK(list.personas[0].name == "reviewer");
  CHECK(list.personas[1].name == "tester");
  CHECK(list.personas[2].name == "writer");
  CHECK(list.personas[2].priority == 7);
  // And a file that goes away.
  fs::remove(node / "tester.md");
  CHECK(f.ask<persona_list>(persona_list_type, persona_scope{}).personas.size() == 2);
}

TEST_CASE("agents/personas: unknown personas, bad workspaces and bad bodies get clear errors") {
  test::scratch_dir dir("personas");
  const fs::path node = fs::path(dir.path()) / "node";
  write_file(node / "reviewer.md", persona_file("reviewer"));
  family f(node);

  auto e = f.refused(persona_get_type, persona_name{"nobody", ""});
  CHECK(e.code == errc::not_found);
  CHECK(e.message == "no persona 'nobody' on this node");
  e = f.refused(persona_list_type, persona_scope{"relative/dir"});
  CHECK(e.code == errc::bad_request);
  CHECK(e.message == "workspace: 'relative/dir' is not an absolute path to a directory");
  e = f.refused(persona_match_type,
                match_request{"x", (fs::path(dir.path()) / "missing").string()});
  CHECK(e.code == errc::bad_request);
  const auto garbage = f.h.call(personas_path, envelope{persona_list_type, "\xc1", 0});
  REQUIRE(garbage.is_error());
  CHECK(read_error(garbage).code == errc::bad_body);
  // The actor goes on serving.
  CHECK(f.ask<persona_list>(persona_list_type, persona_scope{}).personas.size() == 1);
}
