#include "runtime/supervisor/actor_registry.hpp"

#include <algorithm>
#include <mutex>

namespace troupe {

std::string_view to_string(actor_kind k) {
  return k == actor_kind::supervisor ? "supervisor" : "worker";
}

std::string_view to_string(actor_state s) {
  switch (s) {
    case actor_state::starting:
      return "starting";
    case actor_state::running:
      return "running";
    case actor_state::restarting:
      return "restarting";
    case actor_state::stopped:
      return "stopped";
    case actor_state::failed:
      return "failed";
  }
  return "?";
}

std::string child_path(std::string_view parent, std::string_view name) {
  std::string out;
  out.reserve(parent.size() + name.size() + 1);
  out.append(parent);
  if (!parent.empty()) {
    out.push_back('/');
  }
  out.append(name);
  return out;
}

void actor_registry::put(actor_info info, caf::actor current, caf::actor supervisor) {
  std::unique_lock lock(mutex_);
  info.order = next_order_++;
  actor_route route{std::move(current), std::move(supervisor), info.name, info.state};
  auto path = info.path;
  entries_.insert_or_assign(std::move(path), entry{std::move(info), std::move(route)});
  generation_.fetch_add(1, std::memory_order_release);
}

void actor_registry::update(std::string_view path, actor_state state, caf::actor current,
                            uint32_t restarts, std::string last_failure, uint32_t stashed) {
  std::unique_lock lock(mutex_);
  auto it = entries_.find(path);
  if (it == entries_.end()) {
    return;
  }
  it->second.info.state = state;
  it->second.info.restarts = restarts;
  it->second.info.last_failure = std::move(last_failure);
  it->second.info.stashed = stashed;
  it->second.route.state = state;
  if (it->second.route.current != current) {
    it->second.route.current = std::move(current);
    generation_.fetch_add(1, std::memory_order_release);
  }
}

void actor_registry::remove(std::string_view path) {
  std::unique_lock lock(mutex_);
  if (auto it = entries_.find(path); it != entries_.end()) {
    entries_.erase(it);
  }
  erase_below(path);
  generation_.fetch_add(1, std::memory_order_release);
}

void actor_registry::remove_below(std::string_view path) {
  std::unique_lock lock(mutex_);
  erase_below(path);
  generation_.fetch_add(1, std::memory_order_release);
}

void actor_registry::erase_below(std::string_view path) {
  // Descendants sort right after "path/" in the ordered map.
  const std::string prefix = path.empty() ? std::string{} : std::string(path) + "/";
  auto it = entries_.lower_bound(prefix);
  while (it != entries_.end() && it->first.compare(0, prefix.size(), prefix) == 0) {
    if (it->first.empty()) {
      ++it;  // the root itself is not below anything
      continue;
    }
    it = entries_.erase(it);
  }
}

std::optional<actor_route> actor_registry::find(std::string_view path) const {
  std::shared_lock lock(mutex_);
  auto it = entries_.find(path);
  if (it == entries_.end()) {
    return std::nullopt;
  }
  return it->second.route;
}

bool actor_registry::coming_back(std::string_view path) const {
  std::shared_lock lock(mutex_);
  if (entries_.find(path) != entries_.end()) {
    return false;
  }
  // Paths are '/'-separated; the root is "".
  while (!path.empty()) {
    const auto slash = path.rfind('/');
    path = slash == std::string_view::npos ? std::string_view() : path.substr(0, slash);
    auto it = entries_.find(path);
    if (it == entries_.end()) {
      continue;
    }
    const auto& info = it->second.info;
    return info.kind == actor_kind::supervisor &&
           (info.state == actor_state::restarting || info.state == actor_state::starting ||
            !info.children_started);
  }
  return false;
}

caf::actor actor_registry::current(std::string_view path) const {
  std::shared_lock lock(mutex_);
  auto it = entries_.find(path);
  return it == entries_.end() ? caf::actor{} : it->second.route.current;
}

std::optional<actor_info> actor_registry::info(std::string_view path) const {
  std::shared_lock lock(mutex_);
  auto it = entries_.find(path);
  if (it == entries_.end()) {
    return std::nullopt;
  }
  return it->second.info;
}

std::vector<actor_info> actor_registry::snapshot() const {
  std::vector<actor_info> out;
  {
    std::shared_lock lock(mutex_);
    out.reserve(entries_.size());
    for (const auto& [path, e] : entries_) {
      out.push_back(e.info);
    }
  }
  std::stable_sort(out.begin(), out.end(),
                   [](const actor_info& a, const actor_info& b) { return a.order < b.order; });
  return out;
}

actor_counts actor_registry::counts() const {
  actor_counts c;
  std::shared_lock lock(mutex_);
  for (const auto& [path, e] : entries_) {
    ++c.total;
    switch (e.info.state) {
      case actor_state::running:
        ++c.running;
        break;
      case actor_state::starting:
      case actor_state::restarting:
        ++c.restarting;
        break;
      case actor_state::stopped:
      case actor_state::failed:
        ++c.stopped;
        break;
    }
  }
  return c;
}

void actor_registry::set_children_started(std::string_view path, bool started) {
  std::unique_lock lock(mutex_);
  if (auto it = entries_.find(path); it != entries_.end()) {
    it->second.info.children_started = started;
  }
}

bool actor_registry::tree_ready(size_t top_level) const {
  std::shared_lock lock(mutex_);
  size_t top = 0;
  for (const auto& [path, e] : entries_) {
    if (e.info.state != actor_state::running) {
      return false;
    }
    if (e.info.kind == actor_kind::supervisor && !e.info.children_started) {
      return false;
    }
    top += (!path.empty() && e.info.parent.empty()) ? 1 : 0;
  }
  return top >= top_level;
}

std::vector<actor_info> actor_registry::children(std::string_view path) const {
  std::vector<actor_info> out;
  {
    std::shared_lock lock(mutex_);
    for (const auto& [p, e] : entries_) {
      if (e.info.parent == path && !e.info.path.empty()) {
        out.push_back(e.info);
      }
    }
  }
  std::sort(out.begin(), out.end(),
            [](const actor_info& a, const actor_info& b) { return a.order < b.order; });
  return out;
}

}  // namespace troupe
