// Every message of the sessions family and of the terminal protocol
// round-trips through msgpack with all its fields, so any of them can go to
// an actor on another node unchanged.

#include <catch2/catch.hpp>

#include <set>

#include "actors/pty/messages.hpp"
#include "runtime/node/terminal.hpp"
#include "runtime/protocol/codec.hpp"
#include "tests/support/round_trip.hpp"

using namespace troupe;
using troupe::test::round_trips;
using namespace troupe::pty;

namespace {

session_spec a_spec() {
  return session_spec{{"/bin/sh", "-c", "echo hi"}, "/tmp", {{"A", "1"}, {"B", "two"}},
                      132, 43, "build", true};
}

session_snapshot a_snapshot() {
  session_snapshot s;
  s.id = "s-0000beef";
  s.spec = a_spec();
  s.output = std::string("\x1b[31mred\x1b[0m\r\n\xff\xfe raw bytes", 26);
  s.output_end = 123456;
  s.cast = {{0.25, "o", "hello"}, {1.5, "r", "100x30"}};
  s.age_s = 42.5;
  s.bytes_in = 7;
  s.bytes_out = 8;
  s.incarnations = 3;
  s.exit_status = 137;
  s.cols = 100;
  s.rows = 30;
  s.next_chunk = 9;
  s.chunks = {{7, 100}, {8, 200}};
  return s;
}

}  // namespace

TEST_CASE("sessions messages: every type round-trips through msgpack") {
  round_trips(a_spec());
  round_trips(session_id{"s-12345678"});
  session_info info{"s-1", "n", 4242, "waiting", 80, 24, 1, 2, 3, -1, true, 2,
                    {"/bin/bash"}, "/home"};
  round_trips(info);
  info.exit_status.reset();
  round_trips(info);
  round_trips(session_list{{info, info}});
  round_trips(session_ended{"s-1"});
  round_trips(raw_document{"application/x-asciicast", std::string("\0\x01\x02", 3)});
  round_trips(a_snapshot());
  round_trips(resume_reply{true, a_snapshot()});
  round_trips(handoff_msg{a_snapshot()});
  round_trips(recording_msg{"s-0000beef", a_spec(), a_snapshot().cast});
}

TEST_CASE("sessions messages: the terminal protocol round-trips through msgpack") {
  round_trips(term::attach_request{"s-1", true, true, 1ull << 40});
  round_trips(term::attach_reply{99, 132, 43});
  round_trips(term::bytes_msg{std::string("\x03\x04\x00\xc3", 4)});
  round_trips(term::resize_msg{1000, 1});
  round_trips(term::ack_msg{65536});
  round_trips(term::control_msg{R"({"type":"notice"})"});
  round_trips(term::close_msg{"session ended"});
}

TEST_CASE("sessions messages: a snapshot keeps its bytes and numbers exactly") {
  const auto s = a_snapshot();
  auto back = decode<session_snapshot>(encode(s), decode_limits{.body_bytes_max = 1u << 20});
  REQUIRE(back);
  CHECK(back->output == s.output);
  CHECK(back->output_end == s.output_end);
  CHECK(back->spec.env == s.spec.env);
  CHECK(back->cast.size() == 2);
  CHECK(back->cast[1].t == 1.5);
  CHECK(back->exit_status == 137);
  CHECK(back->chunks.back().bytes == 200);
}

TEST_CASE("sessions messages: type names are distinct") {
  const std::set<std::string> names{
      create_type,       list_type,          get_type,          end_type,       scrollback_type,
      cast_type,         info_type,          resume_type,       handoff_type,   recording_type,
      term::attach_type, term::input_type,   term::resize_type, term::ack_type, term::detach_type,
      term::output_type, term::control_type, term::close_type};
  CHECK(names.size() == 18);
}

TEST_CASE("sessions messages: a spec with a wrong field type is refused, naming it") {
  // What POST /v1/sessions sends the manager for {"cols": "wide"}.
  msgpack::sbuffer buffer;
  msgpack::packer<msgpack::sbuffer> pk(buffer);
  pk.pack_map(1);
  pk.pack(std::string("cols"));
  pk.pack(std::string("wide"));
  auto spec = decode<session_spec>(std::string_view(buffer.data(), buffer.size()));
  REQUIRE_FALSE(spec);
  CHECK(spec.err().code == errc::bad_body);
  CHECK(spec.err().message.find("cols") != std::string::npos);
}
