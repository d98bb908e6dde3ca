// The SSE reader and writer. Streams are cut at every possible place because
// a socket may deliver any slice; the events seen must never depend on it.

#include "actors/llm/sse.hpp"

#include <catch2/catch.hpp>

#include <string>
#include <string_view>
#include <vector>

using namespace troupe;
using namespace troupe::llm;

namespace {

/// `a` is what the parser gave (nothing skipped: its data_bytes is its
/// data's size), `b` what was expected.
bool same_event(const sse_event& a, const sse_event& b) {
  return a.event == b.event && a.data == b.data && a.data_bytes == a.data.size();
}

bool same_events(const std::vector<sse_event>& a, const std::vector<sse_event>& b) {
  if (a.size() != b.size()) {
    return false;
  }
  for (std::size_t i = 0; i < a.size(); ++i) {
    if (!same_event(a[i], b[i])) {
      return false;
    }
  }
  return true;
}

/// Feeds `pieces` in order and returns every event, checking each feed's
/// count against the events it delivered.
std::vector<sse_event> parse_pieces(const std::vector<std::string_view>& pieces,
                                    std::size_t event_bytes_max = 1 << 20) {
  sse_parser parser(event_bytes_max);
  std::vector<sse_event> events;
  for (std::string_view piece : pieces) {
    const std::size_t before = events.size();
    auto n = parser.feed(piece, [&](sse_event&& e) { events.push_back(std::move(e)); });
    REQUIRE(n.has_value());
    REQUIRE(*n == events.size() - before);
  }
  return events;
}

std::vector<sse_event> parse_all(std::string_view stream) {
  return parse_pieces({stream});
}

std::string replace_all(std::string s, std::string_view from, std::string_view to) {
  std::size_t pos = 0;
  while ((pos = s.find(from, pos)) != std::string::npos) {
    s.replace(pos, from.size(), to);
    pos += to.size();
  }
  return s;
}

// Several events exercising every rule at once, with '\n' endings.
const std::string sample_stream =
    ": a comment before anything\n"
    "event: message_start\n"
    "data: {\"type\": \"message_start\"}\n"
    "\n"
    "event: ping\n"
    "id: 7\n"
    "retry: 1000\n"
    "data:{\"type\":\"ping\"}\n"
    "\n"
    ": keep-alive\n"
    "\n"
    "data: line one\n"
    "data:  two with a kept space\n"
    "data\n"
    "nonsense: ignored\n"
    "\n"
    "event: only_a_name\n"
    "\n"
    "event: last\n"
    "data: x: y\n"
    "\n";

const std::vector<sse_event> sample_events{
    {"message_start", "{\"type\": \"message_start\"}"},
    {"ping", "{\"type\":\"ping\"}"},
    {"", "line one\n two with a kept space\n"},
    {"only_a_name", ""},
    {"last", "x: y"},
};

}  // namespace

TEST_CASE("one feed yields every event with fields, comments and data lines applied") {
  CHECK(same_events(parse_all(sample_stream), sample_events));
}

TEST_CASE("cutting the stream at any byte offset yields the same events") {
  for (const std::string_view ending : {"\n", "\r\n", "\r"}) {
    const std::string stream = replace_all(sample_stream, "\n", ending);
    for (std::size_t cut = 0; cut <= stream.size(); ++cut) {
      const std::string_view s = stream;
      INFO("ending size " << ending.size() << ", cut at " << cut);
      REQUIRE(same_events(parse_pieces({s.substr(0, cut), s.substr(cut)}), sample_events));
    }
  }
}

TEST_CASE("cutting the stream in three anywhere, or byte by byte, yields the same events") {
  const std::string stream = replace_all(sample_stream, "\n", "\r\n");
  const std::string_view s = stream;
  for (std::size_t a = 0; a <= s.size(); ++a) {
    for (std::size_t b = a; b <= s.size(); b += 3) {
      INFO("cuts at " << a << " and " << b);
      REQUIRE(same_events(parse_pieces({s.substr(0, a), s.substr(a, b - a), s.substr(b)}),
                          sample_events));
    }
  }
  std::vector<std::string_view> bytes;
  for (std::size_t i = 0; i < s.size(); ++i) {
    bytes.push_back(s.substr(i, 1));
  }
  CHECK(same_events(parse_pieces(bytes), sample_events));
}

TEST_CASE("a CR ending one slice and an LF opening the next are one line ending") {
  // Were the LF read as a blank line, the event would be dispatched early
  // and the second data line would start a new event.
  auto events = parse_pieces({"data: a\r", "\ndata: b\r\n\r\n"});
  REQUIRE(events.size() == 1);
  CHECK(events[0].data == "a\nb");
}

TEST_CASE("CR-only line endings: a CR opening a slice is a blank line, not a skipped LF") {
  auto events = parse_pieces({"data: a\r", "\r", "data: b\r\r"});
  REQUIRE(events.size() == 2);
  CHECK(events[0].data == "a");
  CHECK(events[1].data == "b");
}

TEST_CASE("blocks with no data and no name, and comment-only blocks, dispatch nothing") {
  CHECK(parse_all("\n\n: hi\n\nid: 3\n\nretry: 5\n\n").empty());
}

TEST_CASE("an unfinished event at the end of the input is held back") {
  sse_parser parser;
  std::vector<sse_event> events;
  auto sink = [&](sse_event&& e) { events.push_back(std::move(e)); };
  auto n = parser.feed("event: a\ndata: 1\n", sink);
  REQUIRE(n.has_value());
  CHECK(*n == 0);
  CHECK(events.empty());
  n = parser.feed("\n", sink);
  REQUIRE(n.has_value());
  CHECK(*n == 1);
  REQUIRE(events.size() == 1);
  CHECK(events[0].event == "a");
  CHECK(events[0].data == "1");
}

TEST_CASE("the event name does not leak into the next event") {
  auto events = parse_all("event: a\ndata: 1\n\ndata: 2\n\n");
  REQUIRE(events.size() == 2);
  CHECK(events[1].event.empty());
  CHECK(events[1].data == "2");
}

TEST_CASE(
    "an event larger than event_bytes_max fails with too_large, and so does every later feed") {
  sse_parser parser(64);
  std::size_t seen = 0;
  auto sink = [&](sse_event&&) { ++seen; };

  auto ok = parser.feed("data: " + std::string(40, 'a') + "\n\n", sink);
  REQUIRE(ok.has_value());
  CHECK(*ok == 1);

  // Many small lines add up: the limit is on the event, not on a line.
  std::string big;
  for (int i = 0; i < 10; ++i) {
    big += "data: " + std::string(10, 'b') + "\n";
  }
  auto bad = parser.feed(big, sink);
  REQUIRE_FALSE(bad.has_value());
  CHECK(bad.err().code == errc::too_large);

  auto after = parser.feed("data: small\n\n", sink);
  REQUIRE_FALSE(after.has_value());
  CHECK(after.err().code == errc::too_large);
  CHECK(seen == 1);
}

TEST_CASE("a line that never ends fails with too_large instead of growing") {
  sse_parser parser(64);
  auto sink = [](sse_event&&) {};
  std::string chunk(16, 'x');
  bool failed = false;
  for (int i = 0; i < 10 && !failed; ++i) {
    auto n = parser.feed(chunk, sink);
    failed = !n.has_value();
    if (failed) {
      CHECK(n.err().code == errc::too_large);
    }
  }
  CHECK(failed);
}

TEST_CASE("the size limit fails the same stream wherever it is cut") {
  // Two data lines (read line by line), and the one-line form read whole.
  for (const std::string& stream :
       {"data: " + std::string(50, 'a') + "\ndata: " + std::string(50, 'b') + "\n\n",
        "event: " + std::string(30, 'n') + "\ndata: " + std::string(60, 'a') + "\n\n"}) {
    for (std::size_t cut = 0; cut <= stream.size(); ++cut) {
      sse_parser parser(80);
      auto sink = [](sse_event&&) {};
      auto first = parser.feed(std::string_view(stream).substr(0, cut), sink);
      const bool failed = !first.has_value() ||
                          !parser.feed(std::string_view(stream).substr(cut), sink).has_value();
      INFO(stream.size() << "-byte stream cut at " << cut);
      REQUIRE(failed);
    }
  }
}

TEST_CASE("an event of the one-line form just within the limit is read whole") {
  const std::string stream = "event: " + std::string(30, 'n') + "\ndata: " + std::string(44, 'a') +
                             "\n\n";  // data line 50 + name 30 = 80
  sse_parser parser(80);
  std::vector<sse_event> events;
  REQUIRE(parser.feed(stream, [&](sse_event&& e) { events.push_back(std::move(e)); }));
  REQUIRE(events.size() == 1);
  CHECK(events[0].data == std::string(44, 'a'));
  // Read in one step: only that path leaves a skipped event's data out.
  sse_parser skipping(80);
  skipping.skip_data_of(std::string(30, 'n'));
  std::vector<sse_event> skipped;
  REQUIRE(skipping.feed(stream, [&](sse_event&& e) { skipped.push_back(std::move(e)); }));
  REQUIRE(skipped.size() == 1);
  CHECK(skipped[0].data.empty());
  CHECK(skipped[0].data_bytes == 44);
}

TEST_CASE("skipped data: the events keep their names and sizes, other events their data") {
  const std::string stream =
      "event: delta\ndata: 12345\n\n"
      "event: other\ndata: abc\n\n"
      "event: delta\ndata: 1\ndata: 2\n\n"  // two data lines: read line by line
      "event: delta\ndata: 6789\n\n";
  const std::vector<std::string> delta_texts{"12345", "1\n2", "6789"};
  for (std::size_t cut = 0; cut <= stream.size(); ++cut) {
    INFO("cut at " << cut);
    sse_parser parser;
    parser.skip_data_of("delta");
    std::vector<sse_event> events;
    auto sink = [&](sse_event&& e) { events.push_back(std::move(e)); };
    REQUIRE(parser.feed(std::string_view(stream).substr(0, cut), sink));
    REQUIRE(parser.feed(std::string_view(stream).substr(cut), sink));
    REQUIRE(events.size() == 4);
    CHECK(events[1].event == "other");
    CHECK(events[1].data == "abc");
    CHECK(events[1].data_bytes == 3);
    std::size_t d = 0;
    for (const auto& e : events) {
      if (e.event != "delta") {
        continue;
      }
      CHECK(e.data_bytes == delta_texts[d].size());
      // Left out, or (where the cut or the form sent it down the line path) whole.
      CHECK((e.data.empty() || e.data == delta_texts[d]));
      ++d;
    }
  }
  sse_parser parser;
  parser.skip_data_of("delta");
  std::vector<sse_event> whole;
  REQUIRE(parser.feed(stream, [&](sse_event&& e) { whole.push_back(std::move(e)); }));
  REQUIRE(whole.size() == 4);
  CHECK(whole[0].data.empty());  // the one-line form in one slice: no copy
  CHECK(whole[2].data == "1\n2");
  CHECK(whole[3].data.empty());
}

TEST_CASE("sse_format writes the wire form byte for byte") {
  CHECK(sse_format("ping", "{\"type\":\"ping\"}") == "event: ping\ndata: {\"type\":\"ping\"}\n\n");
  CHECK(sse_format("e", "a\nb") == "event: e\ndata: a\ndata: b\n\n");
  CHECK(sse_format("", "x") == "data: x\n\n");
  CHECK(sse_format("e", "") == "event: e\ndata: \n\n");
  CHECK(sse_format("e", "a\r\nb\rc") == "event: e\ndata: a\ndata: b\ndata: c\n\n");
}

TEST_CASE("sse_format output parses back to the same event") {
  const std::vector<sse_event> cases{
      {"message_start", "{\"a\": 1}"},
      {"e", ""},
      {"e", "\n"},
      {"e", "multi\nline\n\ndata"},
      {"e", " leading space"},
      {"e", ": looks like a comment"},
      {"e", "data: looks like a field"},
  };
  for (const auto& c : cases) {
    auto events = parse_all(sse_format(c.event, c.data));
    REQUIRE(events.size() == 1);
    CHECK(events[0].event == c.event);
    CHECK(events[0].data == c.data);
  }
}

TEST_CASE("a CR in the data cannot inject a field into the formatted event") {
  auto events = parse_all(sse_format("safe", "x\revent: evil\r\rdata: more"));
  REQUIRE(events.size() == 1);
  CHECK(events[0].event == "safe");
  CHECK(events[0].data == "x\nevent: evil\n\ndata: more");
}
