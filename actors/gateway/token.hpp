#pragma once

// The node's bearer token: from config, or generated once into
// <data_dir>/token (mode 0600) and read back on later starts.

#include <string>

#include "runtime/error.hpp"

namespace troupe {

struct node_token {
  std::string value;
  /// Where the token came from: "config" or the file path.
  std::string source;
};

[[nodiscard]] expected<node_token> load_or_create_token(const std::string& configured,
                                                        const std::string& data_dir);

}  // namespace troupe
