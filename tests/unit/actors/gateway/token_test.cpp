// The node's bearer token: configured, or generated once into the data dir
// and read back; a file others may read is refused.

#include "actors/gateway/token.hpp"

#include <sys/stat.h>

#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>

#include "tests/support/scratch_dir.hpp"

using namespace troupe;

using troupe::test::scratch_dir;

TEST_CASE("a configured token is used as it is") {
  scratch_dir dir("troupe-token");
  auto token = load_or_create_token("from-config", dir.path());
  REQUIRE(token);
  CHECK(token->value == "from-config");
  CHECK(token->source == "config");
  CHECK_FALSE(std::filesystem::exists(dir.path() + "/token"));
}

TEST_CASE("a generated token is written 0600 once and read back on the next start") {
  scratch_dir dir("troupe-token");
  const auto data = dir.path() + "/data";  // created on the way
  auto first = load_or_create_token("", data);
  REQUIRE(first);
  CHECK(first->value.size() == 64);
  CHECK(first->value.find_first_not_of("0123456789abcdef") == std::string::npos);
  CHECK(first->source == data + "/token");
  struct stat st {};
  REQUIRE(::stat((data + "/token").c_str(), &st) == 0);
  CHECK((st.st_mode & 0777) == 0600);
  auto again = load_or_create_token("", data);
  REQUIRE(again);
  CHECK(again->value == first->value);
}

TEST_CASE("a token file others may read, or an empty one, stops start-up with the fix") {
  scratch_dir dir("troupe-token");
  const auto file = dir.path() + "/token";
  std::ofstream(file) << "abc\n";
  ::chmod(file.c_str(), 0644);
  auto open = load_or_create_token("", dir.path());
  REQUIRE_FALSE(open);
  CHECK(open.err().code == errc::config_invalid);
  CHECK(open.err().message.find("chmod 600") != std::string::npos);

  ::chmod(file.c_str(), 0600);
  std::ofstream(file, std::ios::trunc) << "  \n";
  auto empty = load_or_create_token("", dir.path());
  REQUIRE_FALSE(empty);
  CHECK(empty.err().message.find("is empty") != std::string::npos);
}
