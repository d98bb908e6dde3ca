// The scrollback ring: what it keeps, in what order, and where it starts.

#include "actors/pty/scrollback.hpp"

#include <catch2/catch.hpp>

#include <cstdint>
#include <string>

using troupe::pty::scrollback;

TEST_CASE("below the bound every byte is kept in order, and memory follows the output") {
  scrollback s(1024);
  s.append("abc");
  s.append("");
  s.append("def");
  CHECK(s.contents() == "abcdef");
  CHECK(s.total_bytes() == 6);
  CHECK(s.size() == 6);
}

TEST_CASE("wrap-around keeps the newest bytes in order, for every chunk size") {
  // A model check: the ring must equal the tail of everything appended.
  for (size_t chunk = 1; chunk <= 20; ++chunk) {
    scrollback s(8);
    std::string all;
    uint32_t seed = 7;
    for (int i = 0; i < 30; ++i) {
      std::string piece;
      for (size_t k = 0; k < chunk; ++k) {
        seed = seed * 1103515245u + 12345u;
        piece += static_cast<char>('a' + (seed >> 16) % 26);  // ASCII: no UTF-8 trimming.
      }
      s.append(piece);
      all += piece;
      INFO("chunk " << chunk << " round " << i);
      REQUIRE(s.contents() == all.substr(all.size() - std::min<size_t>(all.size(), 8)));
      REQUIRE(s.total_bytes() == all.size());
    }
  }
}

TEST_CASE("a chunk larger than the bound leaves only its tail") {
  scrollback s(4);
  s.append("xy");
  s.append("0123456789");
  CHECK(s.contents() == "6789");
  CHECK(s.total_bytes() == 12);
  s.append("ab");
  CHECK(s.contents() == "89ab");
}

TEST_CASE("since gives the bytes from an absolute offset, clipped to what is kept") {
  scrollback s(8);
  s.append("0123456789ab");  // Offsets 0..11; 4..11 are kept.
  CHECK(s.since(6) == "6789ab");
  CHECK(s.since(4) == "456789ab");
  CHECK(s.since(0) == "456789ab");
  CHECK(s.since(11) == "b");
  CHECK(s.since(12).empty());
  CHECK(s.since(1000).empty());
}

TEST_CASE("after wrapping, contents never starts inside a UTF-8 character") {
  const std::string euro = "\xE2\x82\xAC";
  // 'a', the three bytes of U+20AC, 'b', 'c'. Keeping 5 bytes drops only 'a'.
  scrollback s(5);
  s.append("a" + euro + "bc");
  CHECK(s.contents() == euro + "bc");
  s.append("d");  // Drops E2: the head is now two continuation bytes.
  CHECK(s.contents() == "bcd");
  CHECK(s.since(0) == "bcd");
  CHECK(s.total_bytes() == 7);
}

TEST_CASE("head trimming skips at most three bytes, and only once output was dropped") {
  const std::string stray = "\x80";
  scrollback fresh(16);
  fresh.append(stray + "abc");  // Nothing dropped: the stream really starts like this.
  CHECK(fresh.contents() == stray + "abc");

  scrollback s(5);
  s.append("z" + std::string(5, '\x80'));  // Not UTF-8 at all; keep what is not a cut.
  CHECK(s.contents() == std::string(2, '\x80'));
}

TEST_CASE("a restored scrollback continues at the offset it was handed") {
  scrollback before(8);
  before.append("abcdefghijkl");  // keeps "efghijkl", offsets 4..12
  scrollback after(8);
  after.restore(before.contents(), before.total_bytes());
  CHECK(after.total_bytes() == 12);
  CHECK(after.contents() == "efghijkl");
  CHECK(after.since(10) == "kl");
  after.append("mn");
  CHECK(after.total_bytes() == 14);
  CHECK(after.since(12) == "mn");
  CHECK(after.contents() == "ghijklmn");
  // An end before the bytes it holds cannot be: it is taken as their size.
  after.restore("xyz", 1);
  CHECK(after.total_bytes() == 3);
}
