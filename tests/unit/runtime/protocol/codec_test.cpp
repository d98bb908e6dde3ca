#include "runtime/protocol/codec.hpp"

#include <catch2/catch.hpp>

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace {

struct sample {
  std::string text;
  uint64_t count = 0;
  std::vector<std::string> tags;
  bool flag = false;
  TROUPE_FIELDS(text, count, tags, flag)
};

// The same message as an older sender knows it: one field fewer.
struct sample_v0 {
  std::string text;
  TROUPE_FIELDS(text)
};

struct wide {
  int8_t small = 0;
  uint16_t port = 0;
  double ratio = 0;
  std::optional<std::string> maybe;
  std::map<std::string, std::vector<int32_t>> table;
  sample_v0 inner;
  TROUPE_FIELDS(small, port, ratio, maybe, table, inner)
};

// Fields named like the macro's own helpers, and the longest name allowed.
struct awkward_names {
  std::vector<std::string> keys;
  std::string names;
  uint32_t r = 0;
  uint32_t pk = 0;
  uint32_t a_name_thirty_one_chars_long_xy = 0;
  TROUPE_FIELDS(keys, names, r, pk, a_name_thirty_one_chars_long_xy)
};

struct too_big {
  int64_t small = 1000;
  TROUPE_FIELDS(small)
};

std::string bytes(std::initializer_list<int> values) {
  std::string out;
  for (int v : values) {
    out.push_back(static_cast<char>(v));
  }
  return out;
}

}  // namespace

using namespace troupe;

TEST_CASE("field names come from the one field list") {
  constexpr auto names = sample::troupe_field_names();
  STATIC_REQUIRE(names.size() == 4);
  STATIC_REQUIRE(names[0] == "text");
  STATIC_REQUIRE(names[3] == "flag");
}

TEST_CASE("a message round-trips through msgpack") {
  sample in{"hello", 42, {"a", "b"}, true};
  auto out = decode<sample>(encode(in));
  REQUIRE(out.has_value());
  CHECK(out->text == "hello");
  CHECK(out->count == 42);
  CHECK(out->tags == std::vector<std::string>{"a", "b"});
  CHECK(out->flag);
}

TEST_CASE("the wire format is a map keyed by field name (golden bytes)") {
  // {"text": "hi"}: fixmap(1), fixstr(4) "text", fixstr(2) "hi".
  CHECK(encode(sample_v0{"hi"}) == bytes({0x81, 0xa4, 't', 'e', 'x', 't', 0xa2, 'h', 'i'}));
  CHECK(encode(empty_body{}) == bytes({0x80}));
}

TEST_CASE("fields may be named like anything the macro uses inside") {
  awkward_names in{{"k1", "k2"}, "n", 3, 4, 5};
  auto packed = encode(in);
  // The longest key: fixstr header 0xa0 | 31, then the name.
  CHECK(packed.find(std::string(1, static_cast<char>(0xbf)) + "a_name_thirty_one_chars_long_xy") !=
        std::string::npos);
  auto out = decode<awkward_names>(packed);
  REQUIRE(out.has_value());
  CHECK(out->keys == std::vector<std::string>{"k1", "k2"});
  CHECK(out->names == "n");
  CHECK(out->r == 3);
  CHECK(out->pk == 4);
  CHECK(out->a_name_thirty_one_chars_long_xy == 5);
}

TEST_CASE("old and new senders interoperate: unknown keys skipped, missing keys default") {
  auto newer = decode<sample_v0>(encode(sample{"x", 7, {"t"}, true}));
  REQUIRE(newer.has_value());
  CHECK(newer->text == "x");
  auto older = decode<sample>(encode(sample_v0{"y"}));
  REQUIRE(older.has_value());
  CHECK(older->text == "y");
  CHECK(older->count == 0);
  CHECK_FALSE(older->flag);
}

TEST_CASE("a field of the wrong type is a bad_body error naming the field") {
  // {"text": 5}
  auto out = decode<sample_v0>(bytes({0x81, 0xa4, 't', 'e', 'x', 't', 0x05}));
  REQUIRE_FALSE(out.has_value());
  CHECK(out.err().code == errc::bad_body);
  CHECK(out.err().message == "field 'text' has the wrong type (int)");
}

TEST_CASE("bodies that are not msgpack maps are refused with a reason") {
  SECTION("empty") {
    auto out = decode<sample_v0>("");
    REQUIRE_FALSE(out.has_value());
    CHECK(out.err().code == errc::bad_body);
  }
  SECTION("an array instead of a map") {
    auto out = decode<sample_v0>(bytes({0x91, 0x01}));
    REQUIRE_FALSE(out.has_value());
    CHECK(out.err().message == "body must be a map, got array");
  }
  SECTION("truncated") {
    auto out = decode<sample_v0>(bytes({0x81, 0xa4, 't', 'e'}));
    REQUIRE_FALSE(out.has_value());
    CHECK(out.err().message == "body is truncated msgpack");
  }
  SECTION("trailing bytes") {
    auto out = decode<sample_v0>(bytes({0x80, 0x80}));
    REQUIRE_FALSE(out.has_value());
    CHECK(out.err().message == "body has 1 trailing bytes after the first msgpack value");
  }
  SECTION("a non-string key") {
    auto out = decode<sample_v0>(bytes({0x81, 0x01, 0x02}));
    REQUIRE_FALSE(out.has_value());
    CHECK(out.err().message == "map keys must be strings, got int");
  }
  SECTION("a reserved byte") {
    auto out = decode<sample_v0>(bytes({0xc1}));
    REQUIRE_FALSE(out.has_value());
    CHECK(out.err().code == errc::bad_body);
  }
}

TEST_CASE("decoding is bounded: size, depth and element counts") {
  SECTION("over the size limit") {
    auto body = encode(sample_v0{std::string(100, 'x')});
    auto out = decode<sample_v0>(body, decode_limits{.body_bytes_max = 50});
    REQUIRE_FALSE(out.has_value());
    CHECK(out.err().code == errc::too_large);
  }
  SECTION("nested deeper than allowed, even inside a field nobody reads") {
    // {"x": [[[...40 levels...]]]}
    std::string deep = bytes({0x81, 0xa1, 'x'});
    deep += std::string(40, static_cast<char>(0x91));
    deep.push_back(0x00);
    auto out = decode<sample_v0>(deep, decode_limits{.depth_max = 32});
    REQUIRE_FALSE(out.has_value());
    CHECK(out.err().code == errc::too_large);
    CHECK(out.err().message == "body nests deeper than 32 levels");
  }
  SECTION("a container claiming more elements than allowed is refused before allocating") {
    // {"x": array32 of 2^31 elements} in a 9-byte body.
    auto out = decode<sample_v0>(bytes({0x81, 0xa1, 'x', 0xdd, 0x80, 0x00, 0x00, 0x00}),
                                 decode_limits{.elements_max = 1000});
    REQUIRE_FALSE(out.has_value());
    CHECK(out.err().code == errc::too_large);
  }
  SECTION("a string claiming more bytes than the body has") {
    auto out =
        decode<sample_v0>(bytes({0x81, 0xa4, 't', 'e', 'x', 't', 0xdb, 0x7f, 0xff, 0xff, 0xff}));
    REQUIRE_FALSE(out.has_value());
    CHECK(out.err().message == "body is truncated msgpack");
  }
}

TEST_CASE("fields of every supported kind round-trip, and values out of range are refused") {
  wide in{-5, 7700, 0.25, std::string("m"), {{"a", {1, -1}}}, {"nested"}};
  auto out = decode<wide>(encode(in));
  REQUIRE(out.has_value());
  CHECK(out->small == -5);
  CHECK(out->port == 7700);
  CHECK(out->ratio == 0.25);
  CHECK(out->maybe == std::optional<std::string>("m"));
  CHECK(out->table.at("a") == std::vector<int32_t>{1, -1});
  CHECK(out->inner.text == "nested");

  auto overflow = decode<wide>(encode(too_big{}));
  REQUIRE_FALSE(overflow.has_value());
  CHECK(overflow.err().message == "field 'small': integer out of range");
}

TEST_CASE("a bad value inside a field is named with the field, not blamed on its type") {
  // {"tags": ["a", 5]}: the field is an array, as it should be; its second
  // element is not a string.
  auto element = decode<sample>(bytes({0x81, 0xa4, 't', 'a', 'g', 's', 0x92, 0xa1, 'a', 0x05}));
  REQUIRE_FALSE(element.has_value());
  CHECK(element.err().message == "field 'tags': expected str, got int");
  // {"count": -1} for an unsigned field.
  auto negative = decode<sample>(bytes({0x81, 0xa5, 'c', 'o', 'u', 'n', 't', 0xff}));
  REQUIRE_FALSE(negative.has_value());
  CHECK(negative.err().message == "field 'count': negative integer for an unsigned field");
  // {"tags": "a"}: the field itself has the wrong type.
  auto whole = decode<sample>(bytes({0x81, 0xa4, 't', 'a', 'g', 's', 0xa1, 'a'}));
  REQUIRE_FALSE(whole.has_value());
  CHECK(whole.err().message == "field 'tags' has the wrong type (str)");
}

TEST_CASE("keys and values of zero bytes round-trip") {
  auto out = decode<sample_v0>(encode(sample_v0{""}));
  REQUIRE(out.has_value());
  CHECK(out->text.empty());
}

TEST_CASE("error envelopes carry code and message") {
  auto env = make_error_envelope(make_error(errc::unknown_actor, "no actor at 'x'"), 9);
  CHECK(env.is_error());
  CHECK(env.correlation_id == 9);
  auto err = read_error(env);
  CHECK(err.code == errc::unknown_actor);
  CHECK(err.message == "no actor at 'x'");
}

TEST_CASE("every error code has a distinct wire name that parses back") {
  for (int i = 0; i <= static_cast<int>(errc::internal); ++i) {
    auto code = static_cast<errc>(i);
    CHECK(errc_from_string(to_string(code)) == code);
    CHECK(http_status(code) >= 400);
  }
  CHECK(errc_from_string("no_such_code") == errc::internal);
}
