// The JSON request body: parse_json_body with the gateway's depth bound
// (routes.cpp, 64) and the LLM router's (router.cpp, 128), then what the
// gateway does to a parsed body to make it an actor message: to_msgpack.
//
// Invariants: a parse ends in a document or an error, never a throw; the
// two bounds agree wherever the lower one accepts; the msgpack form reads
// back to the same document, and troupe's own msgpack parser accepts it.

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "fuzz/support/fuzz_check.hpp"
#include "runtime/node/json_body.hpp"
#include "runtime/protocol/codec.hpp"

namespace {

using json = nlohmann::json;

/// The depth bounds the callers pass (routes.cpp, router.cpp).
constexpr int gateway_depth_max = 64;
constexpr int router_depth_max = 128;

void check_refusal(const troupe::error& err) {
  FUZZ_CHECK(err.code == troupe::errc::bad_request || err.code == troupe::errc::too_large,
             "a refused body is bad_request or too_large");
  FUZZ_CHECK(!err.message.empty(), "a refused body says why");
}

/// Compact text of `doc`, as the gateway writes JSON replies (routes.cpp
/// dump(): invalid UTF-8 replaced, never thrown).
std::string dump(const json& doc) {
  return doc.dump(-1, ' ', false, json::error_handler_t::replace);
}

void check_msgpack_form(const json& doc, size_t text_bytes) {
  const std::vector<uint8_t> packed = json::to_msgpack(doc);
  const json back = json::from_msgpack(packed);
  FUZZ_CHECK(back == doc, "from_msgpack(to_msgpack(doc)) == doc");
  FUZZ_CHECK(json::to_msgpack(back) == packed, "the msgpack form is stable");
  // Bounds no tighter than the document itself: the check is that both
  // libraries read the same bytes as msgpack, not the gateway's limits.
  const troupe::decode_limits everything{.body_bytes_max = packed.size(),
                                         .depth_max = 2 * router_depth_max + 2,
                                         .elements_max = text_bytes + 1};
  msgpack::zone zone(512);
  const std::string_view bytes(reinterpret_cast<const char*>(packed.data()), packed.size());
  auto parsed = troupe::detail::parse(bytes, zone, everything);
  FUZZ_CHECK(parsed.has_value(), "msgpack-c reads what nlohmann writes");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  auto gateway = troupe::parse_json_body(text, gateway_depth_max);
  auto router = troupe::parse_json_body(text, router_depth_max);
  if (!gateway) {
    check_refusal(gateway.err());
  }
  if (!router) {
    check_refusal(router.err());
    FUZZ_CHECK(!gateway.has_value(), "a deeper bound accepts what a shallower one does");
    return 0;
  }
  if (gateway) {
    FUZZ_CHECK(*gateway == *router, "the depth bound does not change the document");
  } else {
    FUZZ_CHECK(gateway.err().code == troupe::errc::too_large, "the bounds disagree only on depth");
  }
  const json& doc = *router;
  // Text the parser accepted is valid UTF-8: its plain dump cannot throw,
  // and reads back to the same document.
  const std::string compact = doc.dump();
  FUZZ_CHECK(compact == dump(doc), "nothing in a parsed body needs replacing");
  FUZZ_CHECK(json::parse(compact) == doc, "dump then parse gives the document back");
  check_msgpack_form(doc, size);
  return 0;
}
