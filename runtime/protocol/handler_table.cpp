#include "runtime/protocol/handler_table.hpp"

#include <algorithm>
#include <stdexcept>

namespace troupe {

namespace {

/// Where `type` is or would go in the sorted handlers.
template <class Handlers>
auto position(Handlers& handlers, std::string_view type) {
  return std::lower_bound(handlers.begin(), handlers.end(), type,
                          [](const auto& entry, std::string_view t) { return entry.first < t; });
}

/// The entry for `type`. A linear scan: an actor handles a handful of types,
/// most differ from `type` in length and are passed over on that alone, and
/// this beats a binary search's full string compares.
template <class Handlers>
auto find_handler(Handlers& handlers, std::string_view type) {
  return std::find_if(handlers.begin(), handlers.end(),
                      [type](const auto& entry) { return std::string_view(entry.first) == type; });
}

}  // namespace

void handler_table::add(std::string type, raw_handler fn) {
  if (type.empty() || find_handler(handlers_, type) != handlers_.end()) {
    // A programming error, caught where the actor sets up its table.
    throw std::invalid_argument(type.empty() ? "a message type name is empty"
                                             : "message type '" + type + "' is registered twice");
  }
  handlers_.emplace(position(handlers_, type), std::move(type), std::move(fn));
}

envelope handler_table::dispatch(const envelope_view& in) const {
  auto it = find_handler(handlers_, in.type);
  if (it == handlers_.end()) {
    std::string known;
    for (const auto& name : types()) {
      known += known.empty() ? name : ", " + name;
    }
    return make_error_envelope(
        make_error(errc::unknown_type, "this actor does not handle '" + std::string(in.type) +
                                           "' (it handles: " + known + ")"),
        in.correlation_id);
  }
  return it->second(in);
}

std::vector<std::string> handler_table::types() const {
  std::vector<std::string> names;
  names.reserve(handlers_.size());
  for (const auto& [name, fn] : handlers_) {
    names.push_back(name);
  }
  return names;
}

}  // namespace troupe
