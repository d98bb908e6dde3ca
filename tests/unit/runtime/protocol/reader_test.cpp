// The msgpack reader on its own: every form of each type, and every bound
// (bytes left, depth, element counts) failing cleanly.

#include "runtime/protocol/reader.hpp"

#include <catch2/catch.hpp>

#include <msgpack.hpp>

using namespace troupe;
using troupe::detail::decode_failure;
using troupe::detail::msgpack_reader;
using troupe::detail::value_kind;

namespace {

template <class T>
std::string packed(const T& value) {
  msgpack::sbuffer out;
  msgpack::pack(out, value);
  return std::string(out.data(), out.size());
}

errc failure_of(const std::string& bytes, void (*read)(msgpack_reader&),
                const decode_limits& limits = {}) {
  msgpack_reader r(bytes, limits);
  try {
    read(r);
  } catch (const decode_failure& e) {
    return e.code;
  }
  FAIL("the read did not fail");
  return errc::internal;
}

}  // namespace

TEST_CASE("reader: integers in every width, strings in every length form") {
  for (uint64_t v : {0ull, 127ull, 128ull, 255ull, 256ull, 65535ull, 65536ull, 4294967295ull,
                     4294967296ull, 18446744073709551615ull}) {
    const auto bytes = packed(v);
    msgpack_reader r(bytes, {});
    CHECK(r.peek_kind() == value_kind::integer);
    CHECK(r.read_uint() == v);
    CHECK(r.at_end());
  }
  for (int64_t v :
       {-1ll, -32ll, -33ll, -128ll, -129ll, -32768ll, -32769ll, -2147483648ll, -2147483649ll}) {
    const auto bytes = packed(v);
    msgpack_reader r(bytes, {});
    CHECK(r.read_int() == v);
  }
  for (size_t n : {0u, 31u, 32u, 255u, 256u, 65535u, 65536u}) {
    const std::string s(n, 'x');
    const auto bytes = packed(s);
    msgpack_reader r(bytes, decode_limits{.body_bytes_max = 1u << 20});
    CHECK(r.next_is_str());
    CHECK(r.read_str() == s);
    CHECK(r.at_end());
  }
}

TEST_CASE("reader: a negative number is not an unsigned field, nor a string an integer") {
  CHECK(failure_of(packed(int64_t{-1}), [](msgpack_reader& r) { (void)r.read_uint(); }) ==
        errc::bad_body);
  CHECK(failure_of(packed(std::string("7")), [](msgpack_reader& r) { (void)r.read_int(); }) ==
        errc::bad_body);
}

TEST_CASE("reader: truncated input, deep nesting and huge counts fail without reading past") {
  // A str8 announcing 200 bytes with 3 present.
  const std::string cut(
      "\xd9\xc8"
      "abc",
      5);
  CHECK(failure_of(cut, [](msgpack_reader& r) { (void)r.read_str(); }) == errc::bad_body);
  // An array32 announcing 4 billion elements in 5 bytes.
  const std::string huge("\xdd\xff\xff\xff\xff", 5);
  CHECK(failure_of(huge, [](msgpack_reader& r) { (void)r.read_array_header(); }) != errc::internal);
  // 40 nested arrays against a depth bound of 32, skipped as an unknown field.
  const std::string deep(40, '\x91');
  CHECK(failure_of(deep + '\x01', [](msgpack_reader& r) { r.skip(); }) == errc::too_large);
  // Reading at the end.
  CHECK(failure_of("", [](msgpack_reader& r) { (void)r.read_bool(); }) == errc::bad_body);
}

TEST_CASE("reader: skip passes over any value and leaves the next one in place") {
  msgpack::sbuffer out;
  msgpack::packer<msgpack::sbuffer> pk(out);
  pk.pack_map(2);
  pk.pack(std::string("nested"));
  pk.pack_array(3);
  pk.pack(1.5);
  pk.pack_nil();
  pk.pack(std::string("x"));
  pk.pack(std::string("bin"));
  pk.pack_bin(3);
  pk.pack_bin_body("\x00\x01\x02", 3);
  pk.pack(true);
  const std::string bytes(out.data(), out.size());
  msgpack_reader r(bytes, {});
  r.skip();
  CHECK(r.read_bool());
  CHECK(r.at_end());
}
