#include "runtime/protocol/handler_table.hpp"

#include <catch2/catch.hpp>

#include <stdexcept>

namespace {

struct add_request {
  int64_t a = 0;
  int64_t b = 0;
  TROUPE_FIELDS(a, b)
};

struct add_reply {
  int64_t sum = 0;
  TROUPE_FIELDS(sum)
};

troupe::handler_table make_table() {
  troupe::handler_table table;
  table.on<add_request>("math.add", [](const add_request& r) -> troupe::expected<add_reply> {
    if (r.a < 0) {
      return troupe::make_error(troupe::errc::bad_request, "a must not be negative");
    }
    return add_reply{r.a + r.b};
  });
  table.on<add_request>("math.fail", [](const add_request&) -> troupe::expected<add_reply> {
    throw std::runtime_error("boom");
  });
  return table;
}

}  // namespace

using namespace troupe;

TEST_CASE("a handler gets the decoded struct and its reply is encoded") {
  auto table = make_table();
  auto reply = table.dispatch(make_envelope("math.add", add_request{2, 3}, 77));
  CHECK(reply.type == "math.add.reply");
  CHECK(reply.correlation_id == 77);
  auto body = decode<add_reply>(reply.body);
  REQUIRE(body.has_value());
  CHECK(body->sum == 5);
}

TEST_CASE("a type registered twice, or with no name, is refused at registration") {
  auto table = make_table();
  auto again = [](const add_request&) -> expected<add_reply> { return add_reply{0}; };
  CHECK_THROWS_WITH(table.on<add_request>("math.add", again),
                    "message type 'math.add' is registered twice");
  CHECK_THROWS_WITH(table.on<add_request>("", again), "a message type name is empty");
  // The table is as it was.
  CHECK(table.types() == std::vector<std::string>{"math.add", "math.fail"});
}

TEST_CASE("a handler's error becomes an error envelope") {
  auto table = make_table();
  auto reply = table.dispatch(make_envelope("math.add", add_request{-1, 3}));
  REQUIRE(reply.is_error());
  auto err = read_error(reply);
  CHECK(err.code == errc::bad_request);
  CHECK(err.message == "a must not be negative");
}

TEST_CASE("an unknown type is answered with the types the actor handles") {
  auto table = make_table();
  auto reply = table.dispatch(make_envelope("math.mul", add_request{}));
  REQUIRE(reply.is_error());
  auto err = read_error(reply);
  CHECK(err.code == errc::unknown_type);
  CHECK(err.message == "this actor does not handle 'math.mul' (it handles: math.add, math.fail)");
}

TEST_CASE("a body that does not decode never reaches the handler") {
  auto table = make_table();
  envelope bad{"math.add",
               std::string("\x81\xa1"
                           "a\xa3"
                           "str",
                           7),
               0};
  auto reply = table.dispatch(bad);
  REQUIRE(reply.is_error());
  CHECK(read_error(reply).code == errc::bad_body);
}

TEST_CASE("exceptions from handlers pass through for the actor to decide") {
  auto table = make_table();
  CHECK_THROWS_AS(table.dispatch(make_envelope("math.fail", add_request{})), std::runtime_error);
}
