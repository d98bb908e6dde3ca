// Mutation fuzzing of the body decoder: valid encodings flipped, truncated,
// extended and replaced by noise must decode or fail with an error, never
// crash or trip a sanitizer. Deterministic (fixed seed), so a failure repeats.

#include <catch2/catch.hpp>

#include <random>

#include "runtime/protocol/codec.hpp"

namespace {

struct nested {
  std::string name;
  std::vector<int64_t> values;
  std::map<std::string, std::string> labels;
  TROUPE_FIELDS(name, values, labels)
};

std::string mutate(std::string bytes, std::mt19937_64& rng) {
  std::uniform_int_distribution<int> op(0, 4);
  std::uniform_int_distribution<int> byte(0, 255);
  auto pos = [&] {
    return bytes.empty() ? size_t{0}
                         : std::uniform_int_distribution<size_t>(0, bytes.size() - 1)(rng);
  };
  switch (op(rng)) {
    case 0:  // flip a byte
      if (!bytes.empty()) {
        bytes[pos()] = static_cast<char>(byte(rng));
      }
      break;
    case 1:  // truncate
      bytes.resize(pos());
      break;
    case 2:  // insert noise
      bytes.insert(pos(), 1 + static_cast<size_t>(byte(rng)) % 8, static_cast<char>(byte(rng)));
      break;
    case 3:  // duplicate a slice
      if (!bytes.empty()) {
        auto p = pos();
        bytes += bytes.substr(p, 16);
      }
      break;
    default:  // pure noise
      bytes.assign(static_cast<size_t>(byte(rng)) % 64, '\0');
      for (auto& c : bytes) {
        c = static_cast<char>(byte(rng));
      }
      break;
  }
  return bytes;
}

}  // namespace

TEST_CASE("mutated bodies decode or fail cleanly, never crash") {
  std::mt19937_64 rng(0x7b0f);
  const std::vector<std::string> seeds{
      troupe::encode(nested{"alpha", {1, -2, 300000}, {{"k", "v"}, {"x", ""}}}),
      troupe::encode(nested{}),
      troupe::encode(troupe::error_body{"bad_body", "message"}),
  };
  size_t decoded = 0;
  size_t refused = 0;
  for (int i = 0; i < 40000; ++i) {
    auto bytes = seeds[static_cast<size_t>(i) % seeds.size()];
    for (int rounds = 1 + i % 4; rounds > 0; --rounds) {
      bytes = mutate(std::move(bytes), rng);
    }
    auto out = troupe::decode<nested>(
        bytes, troupe::decode_limits{.body_bytes_max = 4096, .depth_max = 8, .elements_max = 256});
    if (out) {
      ++decoded;
    } else {
      ++refused;
      REQUIRE_FALSE(out.err().message.empty());
    }
  }
  // Both outcomes must occur, or the mutations are not reaching the decoder.
  CHECK(decoded > 100);
  CHECK(refused > 100);
}
