// The upstream's event stream (actors/llm/sse): sse_parser over the input
// cut in two (at the first byte's value modulo the size, as a socket may
// cut it), stream_assembler over the events, and the stream the gateway
// replays for a cached message (events_for_message).
//
// Invariants: where the stream is cut never changes the events or whether
// the parser gave up; a parsed event written back with sse_format parses
// to itself; the assembler never throws; a complete message replayed
// through events_for_message assembles to the same message, when it has
// the shape of the API's messages.

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "actors/llm/anthropic.hpp"
#include "actors/llm/sse.hpp"
#include "fuzz/support/fuzz_check.hpp"

namespace {

using json = nlohmann::json;
using namespace troupe;

/// Small enough that the fuzzer's inputs reach the parser's size limit.
constexpr size_t small_event_bytes_max = 64;

bool same(const llm::sse_event& a, const llm::sse_event& b) {
  return a.event == b.event && a.data == b.data && a.data_bytes == b.data_bytes;
}

bool same(const std::vector<llm::sse_event>& a, const std::vector<llm::sse_event>& b) {
  if (a.size() != b.size()) {
    return false;
  }
  for (size_t i = 0; i < a.size(); ++i) {
    if (!same(a[i], b[i])) {
      return false;
    }
  }
  return true;
}

/// What a parser made of some slices: its events, and whether it gave up.
struct parse_outcome {
  std::vector<llm::sse_event> events;
  bool failed = false;
};

parse_outcome parse_slices(const std::vector<std::string_view>& slices, size_t event_bytes_max,
                           const std::string& skipped = {}) {
  llm::sse_parser parser(event_bytes_max);
  parser.skip_data_of(skipped);
  parse_outcome out;
  for (const auto slice : slices) {
    const size_t before = out.events.size();
    auto emitted =
        parser.feed(slice, [&out](llm::sse_event&& e) { out.events.push_back(std::move(e)); });
    if (!emitted) {
      FUZZ_CHECK(emitted.err().code == errc::too_large, "the parser only gives up on size");
      out.failed = true;
      break;
    }
    FUZZ_CHECK(*emitted == out.events.size() - before, "feed counts the events it emits");
  }
  return out;
}

void check_cuts(std::string_view stream, size_t event_bytes_max, const parse_outcome& whole) {
  const size_t cut = stream.empty() ? 0 : static_cast<uint8_t>(stream[0]) % stream.size();
  const auto halves = parse_slices({stream.substr(0, cut), stream.substr(cut)}, event_bytes_max);
  FUZZ_CHECK(same(halves.events, whole.events), "a cut stream gives the same events");
  FUZZ_CHECK(halves.failed == whole.failed, "a cut stream fails alike");
}

/// Every byte its own slice: every '\r' / '\n' pair is cut apart.
void check_bytewise(std::string_view stream, size_t event_bytes_max, const parse_outcome& whole) {
  std::vector<std::string_view> bytes;
  bytes.reserve(stream.size());
  for (size_t i = 0; i < stream.size(); ++i) {
    bytes.push_back(stream.substr(i, 1));
  }
  const auto bytewise = parse_slices(bytes, event_bytes_max);
  FUZZ_CHECK(same(bytewise.events, whole.events), "a stream fed bytewise gives the same events");
  FUZZ_CHECK(bytewise.failed == whole.failed, "a stream fed bytewise fails alike");
}

/// Skipping the data of the first event's name changes nothing but that
/// the data of such events may be left out; their sizes stay.
void check_skipped(std::string_view stream, const parse_outcome& whole) {
  if (whole.events.empty() || whole.events[0].event.empty()) {
    return;
  }
  const std::string name = whole.events[0].event;
  const auto skipped = parse_slices({stream}, llm::sse_parser::event_bytes_max_default, name);
  FUZZ_CHECK(skipped.failed == whole.failed, "skipping data fails alike");
  FUZZ_CHECK(skipped.events.size() == whole.events.size(), "skipping data keeps every event");
  for (size_t i = 0; i < whole.events.size(); ++i) {
    const auto& a = skipped.events[i];
    const auto& b = whole.events[i];
    FUZZ_CHECK(a.event == b.event && a.data_bytes == b.data_bytes,
               "a skipped event keeps its size");
    FUZZ_CHECK(a.data == b.data || (a.event == name && a.data.empty()),
               "only the named events lose their data");
  }
}

void check_format(const llm::sse_event& e) {
  // A parsed event name never holds a line break: sse_format's precondition.
  FUZZ_CHECK(e.event.find_first_of("\r\n") == std::string::npos, "event names hold no line break");
  const std::string wire = llm::sse_format(e.event, e.data);
  const auto back = parse_slices({wire}, llm::sse_parser::event_bytes_max_default);
  FUZZ_CHECK(!back.failed && back.events.size() == 1, "a formatted event parses as one event");
  FUZZ_CHECK(same(back.events[0], e), "sse_format then parse gives the event back");
}

llm::stream_assembler assemble(const std::vector<llm::sse_event>& events) {
  llm::stream_assembler assembler;
  for (const auto& e : events) {
    assembler.add(e);
  }
  return assembler;
}

bool is_string_member(const json& object, const char* name) {
  return object.contains(name) && object[name].is_string();
}

/// Whether a content block has the shape the API streams: the fields its
/// deltas rebuild hold the types the deltas carry.
bool api_shaped_block(const json& block) {
  if (!block.is_object() || !is_string_member(block, "type")) {
    return false;
  }
  const auto& type = block["type"].get_ref<const std::string&>();
  if (type == "text" && block.contains("text")) {
    return block["text"].is_string() &&
           (!block.contains("citations") || block["citations"].is_array());
  }
  if (type == "thinking" && block.contains("thinking")) {
    return block["thinking"].is_string() &&
           (!block.contains("signature") || block["signature"].is_string());
  }
  return !block.contains("input") || block["input"].is_object();
}

/// Whether `message` has the shape of the API's Message objects: only for
/// those does the replay give the very same JSON back. An assembled message
/// keeps whatever the upstream sent, and the replay of an odd one differs
/// (a missing output_tokens comes back as 0, a missing stop_reason as null)
/// or breaks off (a text block whose text is not a string): it must not
/// crash, nothing more is checked.
bool api_shaped(const json& message) {
  if (!message.contains("stop_reason") || !message.contains("stop_sequence") ||
      !message.contains("usage") || !message["usage"].is_object()) {
    return false;
  }
  const json& usage = message["usage"];
  if (!usage.contains("output_tokens") || !usage["output_tokens"].is_number_integer() ||
      (usage["output_tokens"].is_number_unsigned() &&
       usage["output_tokens"].get<uint64_t>() >
           static_cast<uint64_t>(std::numeric_limits<int64_t>::max()))) {
    return false;
  }
  if (!message.contains("content") || !message["content"].is_array()) {
    return false;
  }
  const json& content = message["content"];
  return std::all_of(content.begin(), content.end(), api_shaped_block);
}

/// The replay of a cached answer (router.cpp) must be the answer.
void check_replay(const json& message) {
  const std::string replay = llm::events_for_message(message);
  const auto parsed = parse_slices({replay}, llm::sse_parser::event_bytes_max_default);
  FUZZ_CHECK(!parsed.failed, "a replayed stream parses");
  const auto again = assemble(parsed.events);
  if (!api_shaped(message)) {
    return;
  }
  FUZZ_CHECK(again.complete(), "a replayed stream assembles to a complete message");
  FUZZ_CHECK(again.message() == message, "a replayed message is the message");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view stream(reinterpret_cast<const char*>(data), size);
  const auto whole = parse_slices({stream}, llm::sse_parser::event_bytes_max_default);
  check_cuts(stream, llm::sse_parser::event_bytes_max_default, whole);
  const auto small = parse_slices({stream}, small_event_bytes_max);
  check_cuts(stream, small_event_bytes_max, small);
  check_bytewise(stream, small_event_bytes_max, small);
  check_skipped(stream, whole);
  for (const auto& e : whole.events) {
    check_format(e);
  }

  const auto assembler = assemble(whole.events);
  (void)assembler.usage();
  if (const auto err = assembler.error()) {
    FUZZ_CHECK(!assembler.complete(), "a stream with an error is not complete");
    FUZZ_CHECK(err->is_object() && err->contains("type") && err->contains("message"),
               "a stream error has a type and a message");
  }
  if (assembler.complete()) {
    check_replay(assembler.message());
  }
  return 0;
}
