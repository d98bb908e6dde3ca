// The msgpack edge: the bytes an actor decodes into its message types, and
// the envelope {"type": ..., "body": {...}} the gateway takes as
// application/msgpack and turns into an actor message.
//
// Invariants: every decode ends in a value or an error, never a crash; a
// decoded message re-encodes to bytes that decode to the same value;
// tighter limits only refuse more; a body the actors' reader accepts is one
// the gateway's msgpack parser accepts too.

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "actors/cache/messages.hpp"
#include "actors/system/messages.hpp"
#include "fuzz/support/fuzz_check.hpp"
#include "runtime/protocol/codec.hpp"

namespace {

using namespace troupe;
using json = nlohmann::json;

/// What an actor decodes with (limits.message_bytes_max and the defaults).
constexpr decode_limits actor_limits{};

/// Small bounds, so the limit paths run on the small inputs a fuzzer makes.
constexpr decode_limits tight_limits{.body_bytes_max = 4096, .depth_max = 3, .elements_max = 8};

/// The gateway's bounds on a msgpack request body (routes.cpp:
/// parse_msgpack_body with gateway.body_bytes_max and json_depth_max).
constexpr decode_limits gateway_limits{
    .body_bytes_max = 8u << 20, .depth_max = 64, .elements_max = 65536};

/// Bounds at least as loose as the actors' in every respect, for the
/// cross-check against msgpack-c (whose depth count may differ by one).
constexpr decode_limits loose_limits{
    .body_bytes_max = 8u << 20, .depth_max = 2 * actor_limits.depth_max, .elements_max = 65536};

template <class T>
void check_round_trip(std::string_view bytes) {
  auto first = decode<T>(bytes, actor_limits);
  auto tight = decode<T>(bytes, tight_limits);
  if (tight) {
    FUZZ_CHECK(first.has_value(),
               "a body accepted under tight limits is accepted under looser ones");
    FUZZ_CHECK(encode(*tight) == encode(*first), "the limits do not change a decoded value");
  }
  if (!first) {
    FUZZ_CHECK(!first.err().message.empty(), "a decode error says why");
    return;
  }
  const std::string encoded = encode(*first);
  // Defaults of missing fields make the encoding longer than the input.
  decode_limits again = actor_limits;
  again.body_bytes_max = std::max(again.body_bytes_max, encoded.size());
  auto second = decode<T>(encoded, again);
  FUZZ_CHECK(second.has_value(), "a re-encoded message decodes");
  FUZZ_CHECK(encode(*second) == encoded, "decode(encode(v)) == v");
}

/// Every message type the families declare in their schema headers, and
/// the runtime's own bodies.
void check_all_types(std::string_view bytes) {
  check_round_trip<empty_body>(bytes);
  check_round_trip<error_body>(bytes);
  check_round_trip<sys::ping_reply>(bytes);
  check_round_trip<sys::echo_message>(bytes);
  check_round_trip<sys::info_reply>(bytes);
  check_round_trip<cache::get_request>(bytes);
  check_round_trip<cache::get_reply>(bytes);
  check_round_trip<cache::put_request>(bytes);
  check_round_trip<cache::put_reply>(bytes);
  check_round_trip<cache::del_request>(bytes);
  check_round_trip<cache::del_reply>(bytes);
  check_round_trip<cache::invalidate_request>(bytes);
  check_round_trip<cache::invalidate_reply>(bytes);
}

/// The actors' reader and msgpack-c must agree on what is msgpack: a body
/// empty_body accepts (a map, every value skipped) is parsed by the
/// gateway's parser, given limits no tighter.
void check_parsers_agree(std::string_view bytes) {
  if (!decode<empty_body>(bytes, actor_limits)) {
    return;
  }
  msgpack::zone zone(512);
  auto parsed = detail::parse(bytes, zone, loose_limits);
  FUZZ_CHECK(parsed.has_value(), "msgpack the actors' reader accepts, msgpack-c accepts");
}

/// An actor's error reply, as the bridge and the gateway read it.
void check_error_reply(std::string_view bytes) {
  const envelope reply{error_type, std::string(bytes), 7};
  const error err = read_error(reply);
  FUZZ_CHECK(!err.message.empty() || decode<error_body>(bytes).has_value(),
             "an unreadable error reply is reported with a message");
  (void)http_status(err.code);
}

std::string as_string(const std::vector<uint8_t>& bytes) {
  return {bytes.begin(), bytes.end()};
}

/// router::parse_actor_call for an application/msgpack body, then what the
/// addressed actor does with the body it is handed.
void check_gateway_envelope(std::string_view bytes) {
  msgpack::zone zone(512);
  if (!detail::parse(bytes, zone, gateway_limits)) {
    return;
  }
  json doc;
  try {
    doc = json::from_msgpack(bytes.begin(), bytes.end());
  } catch (const json::exception&) {
    return;  // the gateway answers bad_body
  }
  if (!doc.is_object() || !doc.contains("type") || !doc["type"].is_string()) {
    return;
  }
  const json body = doc.value("body", json::object());
  if (!body.is_object()) {
    return;
  }
  const std::string packed = as_string(json::to_msgpack(body));
  check_all_types(packed);
  // The reply path reads an actor's body back with from_msgpack; nlohmann's
  // own encoding must read back to the same bytes (compared as bytes: NaN).
  const json back = json::from_msgpack(packed.begin(), packed.end());
  FUZZ_CHECK(as_string(json::to_msgpack(back)) == packed, "to_msgpack/from_msgpack round trip");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view bytes(reinterpret_cast<const char*>(data), size);
  check_all_types(bytes);
  check_parsers_agree(bytes);
  check_error_reply(bytes);
  check_gateway_envelope(bytes);
  return 0;
}
