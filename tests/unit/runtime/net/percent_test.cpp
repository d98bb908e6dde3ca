// The percent-encoding codec that troupectl and the gateway share.

#include "runtime/net/percent.hpp"

#include <catch2/catch.hpp>

using namespace troupe;

TEST_CASE("percent: every byte survives encode then decode") {
  std::string all;
  for (int b = 0; b < 256; ++b) {
    all.push_back(static_cast<char>(b));
  }
  const auto encoded = percent_encode(all);
  CHECK(encoded.find_first_not_of(
            "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~%") ==
        std::string::npos);
  CHECK(percent_decode(encoded) == all);
  CHECK(percent_encode("cache/shard-0", "/") == "cache/shard-0");
  CHECK(percent_encode("a b/c") == "a%20b%2Fc");
}

TEST_CASE("percent: malformed escapes are refused, '+' is not a space") {
  for (const char* bad : {"%", "%2", "a%zz", "%g0", "%-1", "%+1", "x%"}) {
    INFO(bad);
    CHECK_FALSE(percent_decode(bad));
  }
  CHECK(percent_decode("a+b%2b") == "a+b+");
  CHECK(percent_decode("%e2%9c%93") == "\xe2\x9c\x93");
}

TEST_CASE("query_values: every value of the key, decoded, in order") {
  const auto target = "/v1/cache/k?dep=%2Ftmp%2Fa&ttl=5&dep=/b&dep=%zz&depx=1&dep";
  CHECK(query_values(target, "dep") == std::vector<std::string>{"/tmp/a", "/b"});
  CHECK(query_values(target, "ttl") == std::vector<std::string>{"5"});
  CHECK(query_values(target, "missing").empty());
  CHECK(query_values("/no/query", "dep").empty());
  CHECK(query_values("/v1?a=&a=x", "a") == std::vector<std::string>{"", "x"});
}
