#include "runtime/actor/error_text.hpp"

#include <caf/all.hpp>

namespace troupe {

std::string error_text(caf::actor_system& system, const caf::error& err) {
  if (!err) {
    return "normal";
  }
  if (err.category() == caf::atom("exit")) {
    return caf::to_string(static_cast<caf::exit_reason>(err.code()));
  }
  if (err.category() == caf::atom("system")) {
    const auto& context = err.context();
    if (context.size() == 1 && context.match_element<std::string>(0)) {
      return context.get_as<std::string>(0);
    }
    if (context.empty()) {
      return caf::to_string(static_cast<caf::sec>(err.code()));
    }
  }
  return system.render(err);
}

}  // namespace troupe
