// Error codes: each has a name that reads back and an HTTP error status,
// and docs/api.md names every one of them.

#include "runtime/error.hpp"

#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>
#include <sstream>

using namespace troupe;

namespace {

constexpr size_t code_count = static_cast<size_t>(errc::internal) + 1;

}  // namespace

TEST_CASE("errc: every code has a name that reads back, and an HTTP error status") {
  for (size_t i = 0; i < code_count; ++i) {
    const auto code = static_cast<errc>(i);
    const auto name = to_string(code);
    INFO(name);
    CHECK_FALSE(name.empty());
    CHECK(errc_from_string(name) == code);
    CHECK(http_status(code) >= 400);
    CHECK(http_status(code) <= 599);
  }
  CHECK(http_status(errc::not_found) == 404);
  CHECK(http_status(errc::shutting_down) == 503);
  // A name no code has reads as `internal`, never as a success.
  CHECK(errc_from_string("no_such_code") == errc::internal);
  CHECK(errc_from_string("") == errc::internal);
  const auto e = make_error(errc::conflict, "taken");
  CHECK(e.code == errc::conflict);
  CHECK(e.message == "taken");
}

TEST_CASE("errc: docs/api.md names every code") {
  // tests/unit/runtime/<this file> -> four levels up.
  const auto root =
      std::filesystem::path(__FILE__).parent_path().parent_path().parent_path().parent_path();
  std::ifstream in(root / "docs" / "api.md");
  REQUIRE(in);
  std::stringstream text;
  text << in.rdbuf();
  for (size_t i = 0; i < code_count; ++i) {
    const auto name = std::string(to_string(static_cast<errc>(i)));
    INFO(name);
    CHECK(text.str().find("`" + name + "`") != std::string::npos);
  }
}
