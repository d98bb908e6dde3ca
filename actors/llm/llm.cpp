#include "actors/llm/llm.hpp"

#include <caf/all.hpp>

#include "actors/llm/internal.hpp"
#include "actors/llm/provider.hpp"
#include "actors/llm/router.hpp"
#include "runtime/node/node_context.hpp"

namespace troupe::llm {

expected<child_spec> llm_child(std::shared_ptr<node_context> ctx, std::shared_ptr<db> store) {
  const auto& cfg = ctx->config;
  auto anthropic_url = parse_base_url(cfg.llm_anthropic.base_url);
  if (!anthropic_url) {
    return make_error(errc::config_invalid,
                      "llm.anthropic.base_url: " + anthropic_url.err().message);
  }
  const std::string& key = cfg.llm_anthropic.api_key;
  supervisor_spec spec{strategy::one_for_one, make_restart_policy(cfg.supervisor), {}, 100, 0x11a};
  spec.children.push_back(
      provider_child(ctx, provider_spec{"anthropic", provider_kind::anthropic, *anthropic_url,
                                        cfg.llm.connections_max, cfg.llm.io_threads, key,
                                        cfg.llm_anthropic.version, {}}));
  if (!cfg.llm.local_base_url.empty()) {
    auto local_url = parse_base_url(cfg.llm.local_base_url);
    if (!local_url) {
      return make_error(errc::config_invalid, "llm.local_base_url: " + local_url.err().message);
    }
    spec.children.push_back(
        provider_child(ctx, provider_spec{"local", provider_kind::openai, *local_url,
                                          cfg.llm.connections_max, cfg.llm.io_threads, {}, {}, {}}));
  }
  spec.children.push_back(router_child(ctx, std::move(store)));
  return supervisor_child("llm", ctx, std::move(spec));
}

}  // namespace troupe::llm
