#include "actors/agents/personas.hpp"

#include <algorithm>
#include <filesystem>
#include <map>
#include <system_error>
#include <utility>
#include <vector>

#include <spdlog/logger.h>
#include <caf/all.hpp>

#include "actors/agents/messages.hpp"
#include "actors/agents/persona.hpp"
#include "runtime/actor/serve.hpp"
#include "runtime/log/log.hpp"
#include "runtime/node/node_context.hpp"

namespace troupe::agents {

namespace {

namespace fs = std::filesystem;

/// A persona file as last seen: its catalog is read again when any changes.
struct file_stamp {
  std::string path;
  int64_t mtime_ns = 0;
  uintmax_t size = 0;
  bool operator==(const file_stamp&) const = default;
};

std::vector<file_stamp> stamp_of(const std::vector<fs::path>& dirs) {
  std::vector<file_stamp> out;
  for (const auto& dir : dirs) {
    std::error_code ec;
    if (!fs::is_directory(dir, ec)) {
      out.push_back({dir.string(), -1, 0});  // one that appears later is news
      continue;
    }
    for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
      if (it->path().extension() != ".md") {
        continue;
      }
      std::error_code stat_ec;
      const auto when = it->last_write_time(stat_ec);
      const auto size = it->file_size(stat_ec);
      out.push_back({it->path().string(),
                     stat_ec ? -1 : static_cast<int64_t>(when.time_since_epoch().count()),
                     stat_ec ? 0 : size});
    }
  }
  std::sort(out.begin(), out.end(),
            [](const file_stamp& a, const file_stamp& b) { return a.path < b.path; });
  return out;
}

persona_info to_info(const persona& p, bool with_prompt) {
  auto texts = [](const std::vector<tool_rule>& rules) {
    std::vector<std::string> out;
    for (const auto& r : rules) {
      out.push_back(r.text());
    }
    return out;
  };
  persona_info info;
  info.name = p.name;
  info.description = p.description;
  if (p.tools) {
    info.tools = texts(*p.tools);
  }
  info.disallowed_tools = texts(p.disallowed);
  info.model = p.model;
  info.priority = p.priority;
  info.context_tokens = p.context_tokens;
  info.triggers = {p.triggers.keywords, p.triggers.regex, p.triggers.files};
  info.source = p.source;
  if (with_prompt) {
    info.prompt = p.prompt;
  }
  return info;
}

/// The catalogs this actor has read, by workspace ("" = the node's alone).
/// Owned by one actor incarnation; nothing else touches it.
class catalogs {
 public:
  explicit catalogs(fs::path node_dir) : node_dir_(std::move(node_dir)) {}

  expected<const persona_catalog*> get(const std::string& workspace) {
    std::vector<fs::path> dirs{node_dir_};
    if (!workspace.empty()) {
      const fs::path ws(workspace);
      std::error_code ec;
      if (!ws.is_absolute() || !fs::is_directory(ws, ec)) {
        return make_error(errc::bad_request,
                          "workspace: '" + workspace + "' is not an absolute path to a directory");
      }
      dirs.push_back(ws / ".claude" / "agents");
    }
    auto stamp = stamp_of(dirs);
    auto& e = entries_[workspace];
    e.used = ++clock_;
    if (!e.loaded || e.stamp != stamp) {
      e.catalog = load_personas(dirs);
      e.stamp = std::move(stamp);
      e.loaded = true;
      for (const auto& problem : e.catalog.problems) {
        logger("agents")->warn("persona file skipped: {}", problem.message);
      }
    }
    evict();
    return &entries_[workspace].catalog;
  }

 private:
  struct entry {
    std::vector<file_stamp> stamp;
    persona_catalog catalog;
    uint64_t used = 0;
    bool loaded = false;
  };

  void evict() {
    while (entries_.size() > workspaces_cached_max) {
      auto oldest = std::min_element(
          entries_.begin(), entries_.end(),
          [](const auto& a, const auto& b) { return a.second.used < b.second.used; });
      entries_.erase(oldest);
    }
  }

  fs::path node_dir_;
  std::map<std::string, entry> entries_;
  uint64_t clock_ = 0;
};

std::shared_ptr<const handler_table> persona_handlers(const std::shared_ptr<node_context>& ctx,
                                                      std::shared_ptr<catalogs> known) {
  auto table = std::make_shared<handler_table>(
      decode_limits{.body_bytes_max = ctx->config.limits.message_bytes_max});
  table->on<persona_scope>(persona_list_type,
                           [known](const persona_scope& req) -> expected<persona_list> {
                             auto catalog = known->get(req.workspace);
                             if (!catalog) {
                               return std::move(catalog).err();
                             }
                             persona_list out;
                             for (const auto& p : (*catalog)->personas) {
                               out.personas.push_back(to_info(p, false));
                             }
                             for (const auto& problem : (*catalog)->problems) {
                               out.problems.push_back({problem.source, problem.message});
                             }
                             return out;
                           });
  table->on<persona_name>(
      persona_get_type, [known](const persona_name& req) -> expected<persona_info> {
        auto catalog = known->get(req.workspace);
        if (!catalog) {
          return std::move(catalog).err();
        }
        const auto* p = (*catalog)->find(req.name);
        if (p == nullptr) {
          return make_error(errc::not_found,
                            "no persona '" + req.name + "'" +
                                (req.workspace.empty() ? std::string(" on this node")
                                                       : " for workspace '" + req.workspace + "'"));
        }
        return to_info(*p, true);
      });
  table->on<match_request>(persona_match_type,
                           [known](const match_request& req) -> expected<match_reply> {
                             auto catalog = known->get(req.workspace);
                             if (!catalog) {
                               return std::move(catalog).err();
                             }
                             const auto choice = match_personas((*catalog)->personas, req.prompt);
                             match_reply out;
                             out.chosen = choice.chosen;
                             out.rule = choice.rule;
                             for (const auto& c : choice.candidates) {
                               out.candidates.push_back({c.name, c.priority, c.score, c.reasons});
                             }
                             return out;
                           });
  return table;
}

}  // namespace

child_spec personas_child(std::shared_ptr<node_context> ctx) {
  child_spec spec;
  spec.name = "personas";
  spec.kind = actor_kind::worker;
  spec.restart = restart_type::permanent;
  spec.start = [ctx](caf::actor_system& system, const std::string&) {
    // Detached: it reads files. Each incarnation reads them afresh.
    return system.spawn<caf::detached>([ctx](caf::event_based_actor* self) -> caf::behavior {
      auto known = std::make_shared<catalogs>(ctx->config.agents.personas_dir);
      return serve(self, persona_handlers(ctx, std::move(known)));
    });
  };
  return spec;
}

}  // namespace troupe::agents
