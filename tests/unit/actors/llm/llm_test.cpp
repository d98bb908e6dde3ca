// The LLM family as the node starts it: its tree, and a configuration it
// refuses with the key at fault.

#include "actors/llm/llm.hpp"

#include <catch2/catch.hpp>

#include "runtime/node/node_context.hpp"
#include "tests/support/actor_harness.hpp"
#include "tests/support/wait.hpp"

using namespace troupe;
using troupe::test::actor_harness;
using troupe::test::wait_until;

namespace {

/// True once `paths` all run.
bool runs(actor_harness& h, std::initializer_list<const char*> paths) {
  return wait_until([&] {
    for (const auto* path : paths) {
      if (h.state_of(path) != actor_state::running) {
        return false;
      }
    }
    return true;
  });
}

/// The family under a root of its own, as the node starts it.
void start_family(actor_harness& h) {
  auto family = llm::llm_child(h.ctx(), nullptr);
  REQUIRE(family);
  CHECK(family->name == "llm");
  supervisor_spec root;
  root.children = {std::move(*family)};
  h.ctx()->top_level_children = 1;
  h.start_root(std::move(root));
}

}  // namespace

TEST_CASE("llm: a provider for the Anthropic API and the router") {
  actor_harness h;
  start_family(h);
  CHECK(runs(h, {"llm", "llm/anthropic", "llm/router"}));
  CHECK_FALSE(h.registry().find("llm/local"));
}

TEST_CASE("llm: an OpenAI-compatible fallback gets a provider of its own") {
  node_config c;
  c.llm.local_base_url = "http://127.0.0.1:9/v1";
  actor_harness h(c);
  start_family(h);
  CHECK(runs(h, {"llm/anthropic", "llm/local", "llm/router"}));
}

TEST_CASE("llm: a base URL it cannot use is refused, naming the key") {
  node_config c;
  c.llm_anthropic.base_url = "ftp://example.com";
  actor_harness bad_anthropic(c);
  auto refused = llm::llm_child(bad_anthropic.ctx(), nullptr);
  REQUIRE_FALSE(refused);
  CHECK(refused.err().code == errc::config_invalid);
  CHECK(refused.err().message.starts_with("llm.anthropic.base_url: "));

  node_config d;
  d.llm.local_base_url = "not a url";
  actor_harness bad_local(d);
  refused = llm::llm_child(bad_local.ctx(), nullptr);
  REQUIRE_FALSE(refused);
  CHECK(refused.err().message.starts_with("llm.local_base_url: "));
}
