#include "runtime/supervisor/actor_registry.hpp"

#include <catch2/catch.hpp>

using namespace troupe;

namespace {

actor_info entry(std::string path, std::string parent, actor_kind kind, actor_state state) {
  auto name = path.substr(path.rfind('/') + 1);
  return actor_info{path, name, parent, kind, state, 0, {}, 0, 0, false};
}

}  // namespace

TEST_CASE("the tree is ready only when complete, running, and every supervisor has started") {
  actor_registry r;
  r.put(entry("", "", actor_kind::supervisor, actor_state::running), {}, {});
  r.put(entry("sys", "", actor_kind::worker, actor_state::running), {}, {});
  CHECK_FALSE(r.tree_ready(2));  // the root has not started its children
  r.set_children_started("", true);
  CHECK_FALSE(r.tree_ready(2));  // only one of two top-level children so far
  r.put(entry("cache", "", actor_kind::supervisor, actor_state::running), {}, {});
  CHECK_FALSE(r.tree_ready(2));  // cache has not started its shards
  r.set_children_started("cache", true);
  CHECK(r.tree_ready(2));
  r.put(entry("cache/shard-0", "cache", actor_kind::worker, actor_state::restarting), {}, {});
  CHECK_FALSE(r.tree_ready(2));
  r.update("cache/shard-0", actor_state::running, {}, 1, "x", 0);
  CHECK(r.tree_ready(2));
}

TEST_CASE("removing a subtree keeps its siblings and the root") {
  actor_registry r;
  r.put(entry("", "", actor_kind::supervisor, actor_state::running), {}, {});
  r.put(entry("a", "", actor_kind::supervisor, actor_state::running), {}, {});
  r.put(entry("a/x", "a", actor_kind::worker, actor_state::running), {}, {});
  r.put(entry("ab", "", actor_kind::worker, actor_state::running), {}, {});
  r.remove_below("a");
  CHECK(r.find("a").has_value());
  CHECK_FALSE(r.find("a/x").has_value());
  CHECK(r.find("ab").has_value());  // a sibling whose name only starts with "a"
  CHECK(r.find("").has_value());
}

TEST_CASE("a path under a supervisor that is rebuilding its subtree is coming back") {
  actor_registry r;
  r.put(entry("", "", actor_kind::supervisor, actor_state::running), {}, {});
  r.set_children_started("", true);
  r.put(entry("cache", "", actor_kind::supervisor, actor_state::running), {}, {});
  r.set_children_started("cache", true);
  r.put(entry("cache/shard-0", "cache", actor_kind::worker, actor_state::running), {}, {});
  CHECK_FALSE(r.coming_back("cache/shard-0"));  // it is there
  CHECK_FALSE(r.coming_back("cache/shard-9"));  // never was: unknown
  CHECK_FALSE(r.coming_back("nobody/at/all"));

  // The cache supervisor crashed: its subtree is gone until it restarts.
  r.remove_below("cache");
  r.update("cache", actor_state::restarting, {}, 1, "killed", 0);
  CHECK(r.coming_back("cache/shard-0"));
  CHECK(r.coming_back("cache/shard-0/deeper"));
  // Running again but its children not started yet: still coming back.
  r.update("cache", actor_state::running, {}, 1, "killed", 0);
  r.set_children_started("cache", false);
  CHECK(r.coming_back("cache/shard-0"));
  r.set_children_started("cache", true);
  CHECK_FALSE(r.coming_back("cache/shard-0"));
}
