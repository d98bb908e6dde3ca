// CAF errors as the tree, the logs and error replies show them.

#include "runtime/actor/error_text.hpp"

#include <catch2/catch.hpp>

#include <caf/all.hpp>

using namespace troupe;

TEST_CASE("error_text: exit reasons by name, a failure by its message, nothing as normal") {
  caf::actor_system_config cfg;
  caf::actor_system system{cfg};
  CHECK(error_text(system, caf::error{}) == "normal");
  CHECK(error_text(system, caf::make_error(caf::exit_reason::user_shutdown)) == "user_shutdown");
  CHECK(error_text(system, caf::make_error(caf::exit_reason::kill)) == "kill");
  CHECK(error_text(system, caf::make_error(caf::sec::runtime_error,
                                           std::string("killed by chaos"))) == "killed by chaos");
  CHECK(error_text(system, caf::make_error(caf::sec::request_timeout)) == "request_timeout");
  // Anything else: CAF's own rendering, which names the code.
  const auto rendered =
      error_text(system, caf::make_error(caf::sec::runtime_error, std::string("a"), 2));
  CHECK(rendered.find("runtime_error") != std::string::npos);
}
