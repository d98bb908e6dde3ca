#pragma once

// The one percent-encoding codec (RFC 3986) of the node and its clients:
// troupectl encodes what it puts in a path or a query, the gateway decodes
// path segments and query values with the same rules.

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace troupe {

/// Every byte outside RFC 3986's unreserved set (A-Z a-z 0-9 - . _ ~), and
/// outside `keep`, becomes %XX (upper-case hex).
[[nodiscard]] std::string percent_encode(std::string_view text, std::string_view keep = {});

/// Decodes %XX escapes, and nothing else ('+' stays '+'); nullopt when an
/// escape is malformed (not two hex digits).
[[nodiscard]] std::optional<std::string> percent_decode(std::string_view text);

/// Every value of `key` in the query of `target`, percent-decoded, in
/// order (a malformed escape drops that value; a key without `=` has none).
[[nodiscard]] std::vector<std::string> query_values(std::string_view target, std::string_view key);

}  // namespace troupe
