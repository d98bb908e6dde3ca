#include "runtime/protocol/handler_table.hpp"

#include <algorithm>
#include <cassert>

namespace troupe {

void handler_table::add(std::string type, raw_handler fn) {
  assert(!type.empty());
  auto [it, inserted] = handlers_.emplace(std::move(type), std::move(fn));
  assert(inserted && "a message type is registered twice");
  (void)it;
  (void)inserted;
}

envelope handler_table::dispatch(const envelope& in) const {
  auto it = handlers_.find(std::string_view{in.type});
  if (it == handlers_.end()) {
    std::string known;
    for (const auto& name : types()) {
      known += known.empty() ? name : ", " + name;
    }
    return make_error_envelope(
        make_error(errc::unknown_type,
                   "this actor does not handle '" + in.type + "' (it handles: " + known + ")"),
        in.correlation_id);
  }
  return it->second(in);
}

bool handler_table::handles(std::string_view type) const {
  return handlers_.find(type) != handlers_.end();
}

std::vector<std::string> handler_table::types() const {
  std::vector<std::string> names;
  names.reserve(handlers_.size());
  for (const auto& [name, fn] : handlers_) {
    names.push_back(name);
  }
  std::sort(names.begin(), names.end());
  return names;
}

}  // namespace troupe
