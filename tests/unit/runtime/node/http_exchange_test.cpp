// The HTTP exchange messages: each round-trips through msgpack, and the
// conversions to and from the gateway's own types keep every field.

#include "runtime/node/http_exchange.hpp"

#include <catch2/catch.hpp>

#include "runtime/protocol/codec.hpp"
#include "tests/support/round_trip.hpp"

using namespace troupe;
using troupe::test::round_trips;

TEST_CASE("http exchange messages round-trip through msgpack") {
  const http_headers headers{{"content-type", "application/json"}, {"x-a", "1"}, {"x-a", "2"}};
  round_trips(http_msg::request{"POST", "/v1/messages?beta=true", http_msg::to_fields(headers),
                                std::string("{\"model\":\"m\"}\0tail", 18), "token-1234abcd"});
  round_trips(http_msg::reply{529, http_msg::to_fields(headers), "{}"});
  round_trips(http_msg::head{200, http_msg::to_fields(headers)});
  round_trips(http_msg::chunk{"event: ping\ndata: {}\n\n"});
}

namespace {

/// `packed` decodes to `bytes` as a chunk, and as a view into itself.
void decodes_to(const std::string& packed, const std::string& bytes) {
  auto back = decode<http_msg::chunk>(packed);
  REQUIRE(back);
  CHECK(back->bytes == bytes);
  auto view = decode<http_msg::chunk_view>(packed);
  REQUIRE(view);
  CHECK(view->bytes == bytes);
  // No copy: the view points into the packed body.
  CHECK((bytes.empty() ||
         (view->bytes.data() >= packed.data() &&
          view->bytes.data() + view->bytes.size() <= packed.data() + packed.size())));
}

}  // namespace

TEST_CASE("a chunk packed from a view is a chunk on the wire, and decodes to a view into it") {
  for (const std::string& bytes :
       {std::string(), std::string("event: ping\ndata: {}\n\n"), std::string(70000, 'x')}) {
    const auto packed = encode(http_msg::chunk_view{bytes});
    CHECK(packed == encode(http_msg::chunk{bytes}));
    decodes_to(packed, bytes);
  }
}

TEST_CASE("a chunk packed in place is a chunk on the wire, read by both decoders") {
  http_msg::chunk_packer packer;
  for (const std::string& bytes :
       {std::string(), std::string("x"), std::string("event: ping\ndata: {}\n\n"),
        std::string(70000, 'y')}) {
    // Appended in pieces, as a reader appends a stream's chunks.
    packer.reserve(bytes.size());
    for (size_t at = 0; at < bytes.size(); at += 1000) {
      packer.append(std::string_view(bytes).substr(at, 1000));
    }
    CHECK(packer.size() == bytes.size());
    CHECK(packer.bytes() == bytes);
    const auto packed = packer.take();
    CHECK(packer.size() == 0);  // it starts over
    decodes_to(packed, bytes);
    // msgpack's own reader (what a node on the other end of a link uses).
    msgpack::zone zone;
    auto object = detail::parse(packed, zone, decode_limits{});
    REQUIRE(object);
    REQUIRE(object->type == msgpack::type::MAP);
    REQUIRE(object->via.map.size == 1);
    CHECK(object->via.map.ptr[0].key.as<std::string>() == "bytes");
    CHECK(object->via.map.ptr[0].val.as<std::string>() == bytes);
  }
  // Cleared, it drops what it held and packs what comes next alone.
  packer.append("dropped");
  packer.clear();
  CHECK(packer.size() == 0);
  packer.append("kept");
  decodes_to(packer.take(), "kept");
}

TEST_CASE("an exchange request survives the trip to a message and back") {
  exchange_request in{
      "POST", "/v1/messages", {{"x-api-key", "k"}, {"accept", "*/*"}}, "body", "token-1"};
  auto message = http_msg::to_message(in);
  auto bytes = encode(message);
  auto decoded = decode<http_msg::request>(bytes);
  REQUIRE(decoded);
  auto out = http_msg::from_message(std::move(*decoded));
  CHECK(out.method == in.method);
  CHECK(out.target == in.target);
  CHECK(out.headers == in.headers);  // repeated names and order kept
  CHECK(out.body == in.body);
  CHECK(out.client == in.client);
  CHECK(out.header("accept") == "*/*");
}
