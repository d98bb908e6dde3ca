// The Messages API wire format: validation wording, cache keys, referenced
// files, stream assembly (on a hand-written stream in the API's real
// format), synthesised streams, error bodies and the OpenAI translation.

#include "actors/llm/anthropic.hpp"

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <functional>
#include <string>
#include <string_view>
#include <vector>

using namespace troupe;
using namespace troupe::llm;
using json = nlohmann::json;

namespace {

json minimal_request() {
  return json::parse(R"({
    "model": "claude-sonnet-4-20250514",
    "max_tokens": 1024,
    "messages": [{"role": "user", "content": "Hello"}]
  })");
}

/// The error message validate_request gives for `body`; "" if it accepts.
std::string rejection(const json& body) {
  auto r = validate_request(body);
  if (r.has_value()) {
    return "";
  }
  CHECK(r.err().code == errc::bad_request);
  return r.err().message;
}

json with(json body, const std::string& field, json value) {
  body[field] = std::move(value);
  return body;
}

json without(json body, const std::string& field) {
  body.erase(field);
  return body;
}

std::vector<sse_event> parse_events(std::string_view stream) {
  sse_parser parser;
  std::vector<sse_event> events;
  auto n = parser.feed(stream, [&](sse_event&& e) { events.push_back(std::move(e)); });
  REQUIRE(n.has_value());
  return events;
}

stream_assembler assemble(std::string_view stream) {
  stream_assembler assembler;
  for (const auto& e : parse_events(stream)) {
    assembler.add(e);
  }
  return assembler;
}

// Written by hand in the shape the API streams: "type" first, a ping with a
// space after the colon, an empty first input_json_delta, the tool input
// cut in the middle of a string, cumulative usage in message_delta.
const std::string recorded_stream = R"(event: message_start
data: {"type":"message_start","message":{"id":"msg_01XFDUDYJgAACzvnptvVoYEL","type":"message","role":"assistant","content":[],"model":"claude-sonnet-4-20250514","stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":472,"cache_creation_input_tokens":0,"cache_read_input_tokens":2048,"output_tokens":2}}}

event: ping
data: {"type": "ping"}

event: content_block_start
data: {"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}

event: content_block_delta
data: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Let me read"}}

event: content_block_delta
data: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":" the file."}}

event: content_block_stop
data: {"type":"content_block_stop","index":0}

event: content_block_start
data: {"type":"content_block_start","index":1,"content_block":{"type":"tool_use","id":"toolu_01T1x1fJ34qAmk2tNTrN7Up6","name":"Read","input":{}}}

event: content_block_delta
data: {"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":""}}

event: content_block_delta
data: {"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":"{\"file_path\": \"/srv/app/ma"}}

event: content_block_delta
data: {"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":"in.py\", \"limit\": 200}"}}

event: content_block_stop
data: {"type":"content_block_stop","index":1}

event: message_delta
data: {"type":"message_delta","delta":{"stop_reason":"tool_use","stop_sequence":null},"usage":{"output_tokens":89}}

event: message_stop
data: {"type":"message_stop"}

)";

const json recorded_message = json::parse(R"({
  "id": "msg_01XFDUDYJgAACzvnptvVoYEL",
  "type": "message",
  "role": "assistant",
  "model": "claude-sonnet-4-20250514",
  "content": [
    {"type": "text", "text": "Let me read the file."},
    {"type": "tool_use", "id": "toolu_01T1x1fJ34qAmk2tNTrN7Up6", "name": "Read",
     "input": {"file_path": "/srv/app/main.py", "limit": 200}}
  ],
  "stop_reason": "tool_use",
  "stop_sequence": null,
  "usage": {"input_tokens": 472, "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 2048, "output_tokens": 89}
})");

std::string event_line(const std::string& type, const std::string& data) {
  return "event: " + type + "\ndata: " + data + "\n\n";
}

const std::string message_start_event = event_line(
    "message_start",
    R"({"type":"message_start","message":{"id":"msg_1","type":"message","role":"assistant","content":[],"model":"m","stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":10,"output_tokens":1}}})");

}  // namespace

// ---- validate_request ---------------------------------------------------------

TEST_CASE("a minimal valid request is accepted with the API's defaults") {
  auto info = validate_request(minimal_request());
  REQUIRE(info.has_value());
  CHECK(info->model == "claude-sonnet-4-20250514");
  CHECK(info->max_tokens == 1024);
  CHECK_FALSE(info->stream);
  CHECK(info->temperature == 1.0);
}

TEST_CASE("validate_request reads stream, temperature and an integral float max_tokens") {
  json body = minimal_request();
  body["stream"] = true;
  body["temperature"] = 0.25;
  body["max_tokens"] = 2048.0;
  body["system"] = json::array({{{"type", "text"}, {"text", "be brief"}}});
  body["stop_sequences"] = json::array({"END"});
  body["top_k"] = 5;
  auto info = validate_request(body);
  REQUIRE(info.has_value());
  CHECK(info->stream);
  CHECK(info->temperature == 0.25);
  CHECK(info->max_tokens == 2048);
  CHECK(validate_request(with(minimal_request(), "temperature", 0)).has_value());
  CHECK(validate_request(with(minimal_request(), "temperature", 1)).has_value());
  CHECK(validate_request(with(minimal_request(), "stream", nullptr)).has_value());
}

TEST_CASE("validate_request answers missing and mistyped fields in the API's words") {
  CHECK(rejection(json::array()) == "request body must be a JSON object");
  CHECK(rejection(json("text")) == "request body must be a JSON object");
  CHECK(rejection(without(minimal_request(), "model")) == "model: Field required");
  CHECK(rejection(with(minimal_request(), "model", 7)) == "model: Input should be a valid string");
  CHECK(rejection(without(minimal_request(), "max_tokens")) == "max_tokens: Field required");
  CHECK(rejection(with(minimal_request(), "max_tokens", "1024")) ==
        "max_tokens: Input should be a valid integer");
  CHECK(rejection(with(minimal_request(), "max_tokens", true)) ==
        "max_tokens: Input should be a valid integer");
  CHECK(rejection(with(minimal_request(), "max_tokens", 10.5)) ==
        "max_tokens: Input should be a valid integer, got a number with a fractional part");
  CHECK(rejection(with(minimal_request(), "max_tokens", 0)) ==
        "max_tokens: Input should be greater than or equal to 1");
  CHECK(rejection(without(minimal_request(), "messages")) == "messages: Field required");
  CHECK(rejection(with(minimal_request(), "messages", "hi")) ==
        "messages: Input should be a valid list");
  CHECK(rejection(with(minimal_request(), "messages", json::array())) ==
        "messages: at least one message is required");
  CHECK(rejection(with(minimal_request(), "stream", "yes")) ==
        "stream: Input should be a valid boolean");
  CHECK(rejection(with(minimal_request(), "temperature", "hot")) ==
        "temperature: Input should be a valid number");
  CHECK(rejection(with(minimal_request(), "temperature", 1.5)) ==
        "temperature: Input should be less than or equal to 1");
  CHECK(rejection(with(minimal_request(), "temperature", -0.1)) ==
        "temperature: Input should be greater than or equal to 0");
  CHECK(rejection(with(minimal_request(), "top_p", 2)) ==
        "top_p: Input should be less than or equal to 1");
  CHECK(rejection(with(minimal_request(), "top_k", -1)) ==
        "top_k: Input should be greater than or equal to 0");
  CHECK(rejection(with(minimal_request(), "system", 5)) ==
        "system: Input should be a valid string or a list of content blocks");
  CHECK(rejection(with(minimal_request(), "stop_sequences", json::array({"a", 1}))) ==
        "stop_sequences.1: Input should be a valid string");
}

TEST_CASE("validate_request names the offending message by index") {
  auto messages_of = [](json messages) { return with(minimal_request(), "messages", messages); };
  const json ok = {{"role", "user"}, {"content", "hi"}};
  CHECK(rejection(messages_of(json::array({ok, "text"}))) ==
        "messages.1: Input should be a valid dictionary");
  CHECK(rejection(messages_of(json::array({ok, {{"content", "x"}}}))) ==
        "messages.1.role: Field required");
  CHECK(rejection(messages_of(json::array({{{"role", "system"}, {"content", "x"}}}))) ==
        "messages.0.role: Input should be 'user' or 'assistant'");
  CHECK(rejection(messages_of(json::array({{{"role", "user"}}}))) ==
        "messages.0.content: Field required");
  CHECK(rejection(messages_of(json::array({{{"role", "user"}, {"content", 3}}}))) ==
        "messages.0.content: Input should be a valid string or a list of content blocks");
  CHECK(rejection(messages_of(json::array({{{"role", "user"}, {"content", json::array({1})}}}))) ==
        "messages.0.content.0: Input should be a valid dictionary");
  CHECK(rejection(messages_of(
            json::array({{{"role", "user"}, {"content", json::array({{{"text", "x"}}})}}}))) ==
        "messages.0.content.0.type: Field required");
}

// ---- canonical_key -----------------------------------------------------------

TEST_CASE("canonical_key is llm: and the SHA-256 of the sorted compact dump") {
  // Golden values, computed with sha256sum, pin the key format: changing it
  // silently would orphan every cached answer.
  CHECK(canonical_key(json{{"model", "m"}}) ==
        "llm:548f58d1c36c715b44f0863472074a97c448d5b8d18164b92adf55592b127f86");
  CHECK(
      canonical_key(json::parse(
          R"({"model":"claude-x","max_tokens":1024,"messages":[{"role":"user","content":"hi"}]})")) ==
      "llm:2b422971f40176c79b167212bdee2e8b4aa30aef3915098149be77777d3835fb");
}

TEST_CASE("canonical_key ignores key order and whitespace") {
  const json a = json::parse(
      R"({"model":"m","max_tokens":100,"messages":[{"role":"user","content":[{"type":"text","text":"hi"}]}]})");
  const json b = json::parse(R"({
      "messages" : [ { "content" : [ { "text" : "hi", "type" : "text" } ], "role" : "user" } ],
      "max_tokens" : 100,
      "model" : "m"
  })");
  CHECK(canonical_key(a) == canonical_key(b));
}

TEST_CASE("canonical_key ignores stream, metadata, service_tier, nulls and cache_control") {
  const json base = json::parse(R"({
    "model": "m", "max_tokens": 100,
    "system": [{"type": "text", "text": "You are terse."}],
    "tools": [{"name": "Read", "description": "read", "input_schema": {"type": "object"}}],
    "messages": [
      {"role": "user", "content": [{"type": "text", "text": "hi"}]},
      {"role": "assistant", "content": [{"type": "tool_use", "id": "t1", "name": "Read", "input": {"file_path": "/a"}}]},
      {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1",
                                     "content": [{"type": "text", "text": "data"}]}]}
    ]
  })");
  json marked = base;
  marked["stream"] = true;
  marked["metadata"] = {{"user_id", "u-42"}};
  marked["service_tier"] = "auto";
  marked["top_k"] = nullptr;
  const json ephemeral = {{"type", "ephemeral"}};
  marked["system"][0]["cache_control"] = ephemeral;
  marked["tools"][0]["cache_control"] = ephemeral;
  marked["messages"][0]["content"][0]["cache_control"] = ephemeral;
  marked["messages"][2]["content"][0]["cache_control"] = ephemeral;
  marked["messages"][2]["content"][0]["content"][0]["cache_control"] = ephemeral;
  CHECK(canonical_key(marked) == canonical_key(base));
  CHECK(canonical_key(with(base, "stream", false)) == canonical_key(base));
}

TEST_CASE("canonical_key treats the API's equivalent spellings alike") {
  const json blocks = json::parse(
      R"({"model":"m","max_tokens":100,"temperature":1,"system":[{"type":"text","text":"S"}],
          "messages":[{"role":"user","content":[{"type":"text","text":"hi"}]}]})");
  const json strings = json::parse(
      R"({"model":"m","max_tokens":100.0,"temperature":1.0,"system":"S",
          "messages":[{"role":"user","content":"hi"}]})");
  CHECK(canonical_key(blocks) == canonical_key(strings));
}

TEST_CASE("canonical_key tells different questions apart") {
  const json base = json::parse(R"({"model":"m","max_tokens":100,"temperature":0.5,
      "messages":[{"role":"user","content":"hi"}]})");
  const std::string key = canonical_key(base);
  CHECK(canonical_key(with(base, "model", "m2")) != key);
  CHECK(canonical_key(with(base, "temperature", 0.7)) != key);
  CHECK(canonical_key(without(base, "temperature")) != key);
  CHECK(canonical_key(with(base, "max_tokens", 101)) != key);
  CHECK(canonical_key(with(base, "system", "be brief")) != key);
  CHECK(canonical_key(
            with(base, "messages", json::parse(R"([{"role":"user","content":"hello"}])"))) != key);
  CHECK(canonical_key(with(base, "messages", json::parse(R"([{"role":"user","content":"hi"},
                                          {"role":"assistant","content":"yo"},
                                          {"role":"user","content":"hi"}])"))) != key);
  CHECK(canonical_key(with(base, "tools", json::parse(R"([{"name":"t","input_schema":{}}])"))) !=
        key);
}

TEST_CASE("a cache_control field inside tool data is part of the question") {
  const json base = json::parse(R"({"model":"m","max_tokens":10,"messages":[
      {"role":"assistant","content":[{"type":"tool_use","id":"t","name":"Set","input":{"cache_control":"off"}}]}],
      "tools":[{"name":"Set","input_schema":{"type":"object","properties":{"cache_control":{"type":"string"}}}}]})");
  json stripped_input = base;
  stripped_input["messages"][0]["content"][0]["input"] = json::object();
  json stripped_schema = base;
  stripped_schema["tools"][0]["input_schema"]["properties"] = json::object();
  CHECK(canonical_key(stripped_input) != canonical_key(base));
  CHECK(canonical_key(stripped_schema) != canonical_key(base));
}

TEST_CASE("canonical_key survives invalid UTF-8 in the request") {
  json body = minimal_request();
  body["messages"][0]["content"] = std::string("bad \xff\xfe bytes");
  const std::string key = canonical_key(body);
  CHECK(key.size() == 4 + 64);
  CHECK(key.rfind("llm:", 0) == 0);
}

// ---- referenced_paths -----------------------------------------------------------

TEST_CASE("referenced_paths lists absolute tool_use paths, sorted and unique") {
  const json body = json::parse(R"({"model":"m","max_tokens":1,"messages":[
    {"role":"user","content":"look at /etc/passwd"},
    {"role":"assistant","content":[
      {"type":"text","text":"reading","path":"/not/a/tool"},
      {"type":"tool_use","id":"1","name":"Read","input":{"file_path":"/srv/b.py"}},
      {"type":"tool_use","id":"2","name":"Grep","input":{"path":"/srv","pattern":"/x"}},
      {"type":"tool_use","id":"3","name":"Nb","input":{"notebook_path":"/n/a.ipynb","filename":"/srv/b.py"}},
      {"type":"tool_use","id":"4","name":"Read","input":{"file_path":"relative/c.py"}},
      {"type":"tool_use","id":"5","name":"Read","input":{"file_path":42,"filename":""}},
      {"type":"tool_use","id":"6","name":"Odd","input":"not an object"}]},
    {"role":"user","content":[{"type":"tool_result","tool_use_id":"1","content":"ok","path":"/nope"}]},
    {"role":"assistant","content":[{"type":"tool_use","id":"7","name":"Edit","input":{"file_path":"/a/z.txt"}}]}
  ]})");
  CHECK(referenced_paths(body) ==
        std::vector<std::string>{"/a/z.txt", "/n/a.ipynb", "/srv", "/srv/b.py"});
  CHECK(referenced_paths(minimal_request()).empty());
  CHECK(referenced_paths(json("x")).empty());
}

// ---- usage_of -----------------------------------------------------------------

TEST_CASE("usage_of reads the four counts and treats missing ones as 0") {
  auto u = usage_of(json::parse(R"({"usage":{"input_tokens":12,"output_tokens":34,
      "cache_creation_input_tokens":5,"cache_read_input_tokens":6}})"));
  CHECK(u.input_tokens == 12);
  CHECK(u.output_tokens == 34);
  CHECK(u.cache_creation_input_tokens == 5);
  CHECK(u.cache_read_input_tokens == 6);
  auto partial = usage_of(json::parse(R"({"usage":{"output_tokens":3,"input_tokens":"x"}})"));
  CHECK(partial.output_tokens == 3);
  CHECK(partial.input_tokens == 0);
  CHECK(usage_of(json::object()).output_tokens == 0);
  CHECK(usage_of(json()).input_tokens == 0);
}

// ---- stream_assembler -------------------------------------------------------------

TEST_CASE("the assembler rebuilds a recorded text and tool_use stream") {
  auto assembler = assemble(recorded_stream);
  CHECK(assembler.complete());
  CHECK_FALSE(assembler.error().has_value());
  CHECK(assembler.message() == recorded_message);
  auto u = assembler.usage();
  CHECK(u.input_tokens == 472);
  CHECK(u.output_tokens == 89);
  CHECK(u.cache_read_input_tokens == 2048);
}

TEST_CASE("the assembler reports usage and partial content mid-stream") {
  auto events = parse_events(recorded_stream);
  stream_assembler assembler;
  CHECK(assembler.message().is_null());
  // message_start, ping, block 0 start and its first delta.
  for (std::size_t i = 0; i < 4; ++i) {
    assembler.add(events[i]);
  }
  CHECK_FALSE(assembler.complete());
  CHECK(assembler.usage().input_tokens == 472);
  CHECK(assembler.usage().output_tokens == 2);
  CHECK(assembler.message()["content"][0]["text"] == "Let me read");
  for (std::size_t i = 4; i + 1 < events.size(); ++i) {
    assembler.add(events[i]);
  }
  CHECK(assembler.usage().output_tokens == 89);
  CHECK_FALSE(assembler.complete());
  assembler.add(events.back());
  CHECK(assembler.complete());
}

TEST_CASE("an in-stream error event is kept and the stream is not complete") {
  const std::string stream =
      message_start_event +
      event_line(
          "content_block_start",
          R"({"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}})") +
      event_line(
          "content_block_delta",
          R"({"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Hal"}})") +
      event_line(
          "error",
          R"({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}})") +
      event_line(
          "content_block_delta",
          R"({"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"f"}})") +
      event_line("message_stop", R"({"type":"message_stop"})");
  auto assembler = assemble(stream);
  CHECK_FALSE(assembler.complete());
  REQUIRE(assembler.error().has_value());
  CHECK(*assembler.error() == json{{"type", "overloaded_error"}, {"message", "Overloaded"}});
  // Nothing after the error is applied.
  CHECK(assembler.message()["content"][0]["text"] == "Hal");
}

TEST_CASE("malformed events become an api_error instead of an exception") {
  const std::vector<std::string> bad_tails{
      event_line("content_block_delta", "{not json"),
      event_line(
          "content_block_delta",
          R"({"type":"content_block_delta","index":3,"delta":{"type":"text_delta","text":"x"}})"),
      event_line("content_block_start", R"({"type":"content_block_start","index":0})"),
      event_line("content_block_start",
                 R"({"type":"content_block_start","index":"0","content_block":{"type":"text"}})"),
      event_line(
          "content_block_start",
          R"({"type":"content_block_start","index":0,"content_block":{"type":"text","text":7}})") +
          event_line(
              "content_block_delta",
              R"({"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"x"}})"),
      event_line(
          "content_block_start",
          R"({"type":"content_block_start","index":0,"content_block":{"type":"tool_use","input":{}}})") +
          event_line(
              "content_block_delta",
              R"({"type":"content_block_delta","index":0,"delta":{"type":"input_json_delta","partial_json":"{\"a\":"}})") +
          event_line("content_block_stop", R"({"type":"content_block_stop","index":0})"),
      event_line("message_start", R"({"type":"message_start","message":{"content":[]}})"),
      event_line("message_delta", "[1, 2]"),
      "data: {\"no\": \"type\"}\n\ndata: plain text\n\n",
  };
  for (const auto& tail : bad_tails) {
    INFO(tail);
    stream_assembler assembler;
    for (const auto& e : parse_events(message_start_event + tail)) {
      REQUIRE_NOTHROW(assembler.add(e));
    }
    CHECK_FALSE(assembler.complete());
    REQUIRE(assembler.error().has_value());
    CHECK((*assembler.error())["type"] == "api_error");
    CHECK((*assembler.error())["message"].get<std::string>().rfind("malformed stream event: ", 0) ==
          0);
  }
}

TEST_CASE("events before message_start are an error, pings and unknown events are not") {
  stream_assembler early;
  early.add({"content_block_stop", R"({"type":"content_block_stop","index":0})"});
  CHECK(early.error().has_value());

  auto tolerant =
      assemble(event_line("ping", "") + event_line("future_event", "whatever") +
               message_start_event + event_line("future_event", R"({"type":"future_event"})") +
               event_line("message_stop", R"({"type":"message_stop"})"));
  CHECK(tolerant.complete());
  CHECK_FALSE(tolerant.error().has_value());
}

TEST_CASE("thinking, signature and citation deltas build their fields") {
  const std::string stream =
      message_start_event +
      event_line(
          "content_block_start",
          R"({"type":"content_block_start","index":0,"content_block":{"type":"thinking","thinking":""}})") +
      event_line(
          "content_block_delta",
          R"({"type":"content_block_delta","index":0,"delta":{"type":"thinking_delta","thinking":"Step 1. "}})") +
      event_line(
          "content_block_delta",
          R"({"type":"content_block_delta","index":0,"delta":{"type":"thinking_delta","thinking":"Step 2."}})") +
      event_line(
          "content_block_delta",
          R"({"type":"content_block_delta","index":0,"delta":{"type":"signature_delta","signature":"EqQBCgIYAhIM"}})") +
      event_line("content_block_stop", R"({"type":"content_block_stop","index":0})") +
      event_line(
          "content_block_start",
          R"({"type":"content_block_start","index":1,"content_block":{"type":"text","text":""}})") +
      event_line(
          "content_block_delta",
          R"({"type":"content_block_delta","index":1,"delta":{"type":"citations_delta","citation":{"type":"char_location","cited_text":"x"}}})") +
      event_line(
          "content_block_delta",
          R"({"type":"content_block_delta","index":1,"delta":{"type":"text_delta","text":"Done"}})") +
      event_line("content_block_stop", R"({"type":"content_block_stop","index":1})") +
      event_line(
          "content_block_start",
          R"({"type":"content_block_start","index":2,"content_block":{"type":"tool_use","id":"t","name":"Now","input":{}}})") +
      event_line("content_block_stop", R"({"type":"content_block_stop","index":2})") +
      event_line(
          "message_delta",
          R"({"type":"message_delta","delta":{"stop_reason":"end_turn","stop_sequence":null},"usage":{"input_tokens":11,"cache_read_input_tokens":7,"cache_creation_input_tokens":null,"output_tokens":30}})") +
      event_line("message_stop", R"({"type":"message_stop"})");
  auto assembler = assemble(stream);
  REQUIRE(assembler.complete());
  const json m = assembler.message();
  CHECK(m["content"][0] ==
        json{{"type", "thinking"}, {"thinking", "Step 1. Step 2."}, {"signature", "EqQBCgIYAhIM"}});
  CHECK(m["content"][1]["text"] == "Done");
  CHECK(m["content"][1]["citations"] ==
        json::array({{{"type", "char_location"}, {"cited_text", "x"}}}));
  CHECK(m["content"][2]["input"] == json::object());
  CHECK(m["stop_reason"] == "end_turn");
  // message_delta totals win; a null count keeps the earlier (absent) one.
  CHECK(m["usage"] ==
        json{{"input_tokens", 11}, {"output_tokens", 30}, {"cache_read_input_tokens", 7}});
}

namespace {

/// A stream of one text block (index 0) and one tool_use block (index 1)
/// whose deltas carry `texts` and `inputs`, each delta written by `write`
/// (its event data from the kind, the index and the piece as a JSON string).
std::string delta_stream(const std::vector<std::string>& texts,
                         const std::vector<std::string>& inputs,
                         const std::function<std::string(const char* kind, int index,
                                                         const std::string& piece)>& write) {
  std::string out = sse_format("message_start", R"({"type":"message_start","message":{"id":"m",)"
                                                R"("type":"message","role":"assistant",)"
                                                R"("content":[],"usage":{"input_tokens":3}}})");
  out += sse_format(
      "content_block_start",
      R"({"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}})");
  out += sse_format("content_block_start",
                    R"({"type":"content_block_start","index":1,"content_block":)"
                    R"({"type":"tool_use","id":"t","name":"Read","input":{}}})");
  for (const auto& t : texts) {
    out += sse_format("content_block_delta", write("text", 0, t));
  }
  for (const auto& piece : inputs) {
    out += sse_format("content_block_delta", write("input", 1, piece));
  }
  out += sse_format("content_block_stop", R"({"type":"content_block_stop","index":0})");
  out += sse_format("content_block_stop", R"({"type":"content_block_stop","index":1})");
  out += sse_format("message_stop", R"({"type":"message_stop"})");
  return out;
}

/// The API's own spelling of a delta (what the assembler's fast path reads).
std::string api_delta(const char* kind, int index, const std::string& piece) {
  const bool text = std::string_view(kind) == "text";
  return std::string(R"({"type":"content_block_delta","index":)") + std::to_string(index) +
         R"(,"delta":{"type":")" +
         (text ? "text_delta\",\"text\":" : "input_json_delta\",\"partial_json\":") + piece + "}}";
}

/// The same delta with its keys in another order and spaces (the general path).
std::string other_delta(const char* kind, int index, const std::string& piece) {
  const bool text = std::string_view(kind) == "text";
  return std::string(R"({ "index": )") + std::to_string(index) + R"(, "delta": {")" +
         (text ? "text\": " : "partial_json\": ") + piece + R"(, "type": ")" +
         (text ? "text_delta" : "input_json_delta") + R"("}, "type": "content_block_delta"})";
}

}  // namespace

TEST_CASE("deltas in the API's spelling assemble exactly as any other spelling of them") {
  // Each piece is a JSON string literal as it would appear on the wire.
  const std::vector<std::string> texts{
      R"("plain ")",
      R"("quote \" backslash \\ slash \/ ")",
      R"("lines\n\ttab\r\n")",
      R"("\u00e9t\u00e9 \ud83d\ude00 ")",
      "\"raw UTF-8: \xc3\xa9t\xc3\xa9 \xf0\x9f\x98\x80\"",
      R"("ends in a backslash \\")",
      R"("")",
  };
  const std::vector<std::string> inputs{R"("{\"file_path\":")", R"("\"/tmp/x\"}")"};
  auto fast = assemble(delta_stream(texts, inputs, api_delta));
  auto general = assemble(delta_stream(texts, inputs, other_delta));
  REQUIRE_FALSE(general.error().has_value());
  CHECK_FALSE(fast.error().has_value());
  CHECK(fast.complete());
  CHECK(fast.message() == general.message());
  CHECK(fast.message()["content"][0]["text"] ==
        "plain quote \" backslash \\ slash / lines\n\ttab\r\n\xc3\xa9t\xc3\xa9 \xf0\x9f\x98\x80 "
        "raw UTF-8: \xc3\xa9t\xc3\xa9 \xf0\x9f\x98\x80"
        "ends in a backslash \\");
  CHECK(fast.message()["content"][1]["input"] == json{{"file_path", "/tmp/x"}});
}

TEST_CASE("a delta the fast path cannot take is judged by the general path") {
  const auto judged = [](const std::string& data) {
    std::string stream = delta_stream({}, {}, api_delta);
    // Before the blocks stop: splice the delta in after the second block start.
    const auto at = stream.find("event: content_block_stop");
    stream.insert(at, sse_format("content_block_delta", data));
    return assemble(stream);
  };
  SECTION("invalid UTF-8 in the text is an error either way") {
    auto a = judged(api_delta("text", 0, "\"bad \xff byte\""));
    REQUIRE(a.error().has_value());
    CHECK(a.error()->at("message").get<std::string>().find("content_block_delta") !=
          std::string::npos);
  }
  SECTION("a raw control character is not JSON") {
    CHECK(judged(api_delta("text", 0, "\"tab\there\"")).error().has_value());
  }
  SECTION("an index out of range") {
    auto a = judged(api_delta("text", 7, R"("x")"));
    REQUIRE(a.error().has_value());
    CHECK(a.error()->at("message").get<std::string>().find("out of range") != std::string::npos);
  }
  SECTION("a leading zero in the index is not JSON") {
    CHECK(judged(api_delta("text", 0, R"("x")").replace(38, 1, "00")).error().has_value());
  }
  SECTION("something after the delta object") {
    CHECK(judged(api_delta("text", 0, R"("x")") + "x").error().has_value());
  }
  SECTION("text on a block whose text is not a string") {
    std::string stream = delta_stream({}, {}, api_delta);
    const auto start = stream.find(R"("text":""})");
    stream.replace(start, 10, R"("text":5})");
    const auto at = stream.find("event: content_block_stop");
    stream.insert(at, sse_format("content_block_delta", api_delta("text", 0, R"("x")")));
    CHECK(assemble(stream).error().has_value());
  }
}

TEST_CASE("an assembler that keeps no content still reports usage, the end and errors") {
  std::string stream = delta_stream({R"("hello")"}, {R"("{}")"}, api_delta);
  stream.insert(
      stream.find("event: message_stop"),
      sse_format("message_delta", R"({"type":"message_delta","delta":{"stop_reason":"end_turn"},)"
                                  R"("usage":{"output_tokens":9}})"));
  stream_assembler kept;
  stream_assembler counted(stream_assembler::stream_bytes_max_default, false);
  for (const auto& e : parse_events(stream)) {
    kept.add(e);
    counted.add(e);
  }
  CHECK(kept.complete());
  CHECK(counted.complete());
  CHECK(counted.usage().input_tokens == 3);
  CHECK(counted.usage().output_tokens == 9);
  CHECK(kept.usage().output_tokens == 9);
  CHECK(kept.message()["content"][0]["text"] == "hello");
  CHECK(counted.message()["content"][0]["text"] == "");
  CHECK(counted.message()["stop_reason"] == "end_turn");
  SECTION("an error event still fails it") {
    stream_assembler broken(stream_assembler::stream_bytes_max_default, false);
    for (const auto& e : parse_events(
             stream.substr(0, stream.find("event: message_stop")) +
             sse_format("error",
                        R"({"type":"error","error":{"type":"overloaded_error","message":"o"}})"))) {
      broken.add(e);
    }
    REQUIRE(broken.error().has_value());
    CHECK(broken.error()->at("type") == "overloaded_error");
  }
}

TEST_CASE("the assembler stops at its byte budget") {
  stream_assembler assembler(200);
  for (const auto& e : parse_events(recorded_stream)) {
    assembler.add(e);
  }
  CHECK_FALSE(assembler.complete());
  REQUIRE(assembler.error().has_value());
  CHECK((*assembler.error())["type"] == "api_error");
}

TEST_CASE("the byte budget counts the deltas a parser skipped") {
  const std::string long_piece = "\"" + std::string(100, 'x') + "\"";
  const std::string stream =
      delta_stream({long_piece, long_piece, long_piece, long_piece}, {}, api_delta);
  std::size_t all = 0;
  std::size_t deltas = 0;
  for (const auto& e : parse_events(stream)) {
    all += e.data.size();
    deltas += e.event == "content_block_delta" ? e.data.size() : 0;
  }
  REQUIRE(deltas > all / 2);
  auto run = [&](std::size_t budget) {
    sse_parser parser;
    parser.skip_data_of("content_block_delta");
    stream_assembler assembler(budget, false);
    std::size_t skipped = 0;
    REQUIRE(parser.feed(stream, [&](sse_event&& e) {
      skipped += e.event == "content_block_delta" && e.data.empty() ? 1 : 0;
      assembler.add(e);
    }));
    CHECK(skipped == 4);  // the deltas' text was left out
    return assembler;
  };
  auto within = run(all);
  CHECK(within.complete());
  CHECK_FALSE(within.error().has_value());
  auto over = run(all - deltas / 2);
  CHECK_FALSE(over.complete());
  REQUIRE(over.error().has_value());
  CHECK((*over.error())["type"] == "api_error");
}

// ---- events_for_message -------------------------------------------------------------

TEST_CASE("events_for_message streams what the API would, in order") {
  const auto events = parse_events(events_for_message(recorded_message));
  std::vector<std::string> names;
  for (const auto& e : events) {
    names.push_back(e.event);
    CHECK(json::parse(e.data)["type"] == e.event);
  }
  CHECK(names == std::vector<std::string>{"message_start", "ping", "content_block_start",
                                          "content_block_delta", "content_block_stop",
                                          "content_block_start", "content_block_delta",
                                          "content_block_stop", "message_delta", "message_stop"});
  const json start = json::parse(events[0].data)["message"];
  CHECK(start["content"] == json::array());
  CHECK(start["stop_reason"].is_null());
  CHECK(start["usage"]["output_tokens"] == 1);
  CHECK(start["usage"]["input_tokens"] == 472);
  CHECK(start["usage"]["cache_read_input_tokens"] == 2048);
  CHECK(json::parse(events[5].data)["content_block"]["input"] == json::object());
  CHECK(json::parse(events[8].data) ==
        json::parse(
            R"({"type":"message_delta","delta":{"stop_reason":"tool_use","stop_sequence":null},
                        "usage":{"output_tokens":89}})"));
}

TEST_CASE("stream_assembler over events_for_message gives the message back") {
  const std::vector<json> messages{
      recorded_message,
      json::parse(R"({"id":"msg_t","type":"message","role":"assistant","model":"m",
        "content":[{"type":"text","text":"Hello\nworld \"quoted\" \u00e9"}],
        "stop_reason":"end_turn","stop_sequence":null,
        "usage":{"input_tokens":3,"output_tokens":5}})"),
      json::parse(R"({"id":"msg_th","type":"message","role":"assistant","model":"m",
        "content":[{"type":"thinking","thinking":"Consider\n\nthe options.","signature":"sig=="},
                   {"type":"redacted_thinking","data":"opaque"},
                   {"type":"text","text":"Answer","citations":[{"type":"char_location","cited_text":"c"}]},
                   {"type":"tool_use","id":"t0","name":"NoArgs","input":{}},
                   {"type":"tool_use","id":"t1","name":"Bash","input":{"command":"ls -l\n","nested":{"a":[1,2.5,null]}}}],
        "stop_reason":"stop_sequence","stop_sequence":"END",
        "usage":{"input_tokens":30,"output_tokens":50,"cache_creation_input_tokens":4,
                 "cache_read_input_tokens":0}})"),
      json::parse(R"({"id":"msg_e","type":"message","role":"assistant","model":"m","content":[],
        "stop_reason":"max_tokens","stop_sequence":null,"usage":{"input_tokens":1,"output_tokens":0}})"),
  };
  for (const json& m : messages) {
    INFO(m.dump());
    auto assembler = assemble(events_for_message(m));
    CHECK(assembler.complete());
    CHECK(assembler.message() == m);
  }
}

// ---- OpenAI fallback --------------------------------------------------------------

TEST_CASE("to_openai_request flattens an Anthropic request into chat messages") {
  const json body = json::parse(R"({
    "model": "claude-x", "max_tokens": 300, "temperature": 0.2, "top_p": 0.9, "top_k": 40,
    "stream": true, "stop_sequences": ["END", "STOP"],
    "system": [{"type":"text","text":"Be brief."},{"type":"text","text":"Be kind.","cache_control":{"type":"ephemeral"}}],
    "messages": [
      {"role":"user","content":"Hi"},
      {"role":"assistant","content":[{"type":"text","text":"Reading."},{"type":"tool_use","id":"t","name":"Read","input":{}}]},
      {"role":"user","content":[
        {"type":"tool_result","tool_use_id":"t","content":[{"type":"text","text":"file body"},{"type":"image","source":{}}]},
        {"type":"tool_result","tool_use_id":"u","content":"plain result"},
        {"type":"image","source":{"type":"base64","media_type":"image/png","data":"AAAA"}},
        {"type":"text","text":"Summarise."}]}
    ]
  })");
  const json expected = json::parse(R"({
    "model": "qwen2.5:7b", "stream": false, "max_tokens": 300, "temperature": 0.2, "top_p": 0.9,
    "stop": ["END", "STOP"],
    "messages": [
      {"role":"system","content":"Be brief.\nBe kind."},
      {"role":"user","content":"Hi"},
      {"role":"assistant","content":"Reading."},
      {"role":"user","content":"file body\nplain result\nSummarise."}
    ]
  })");
  CHECK(to_openai_request(body, "qwen2.5:7b") == expected);
}

TEST_CASE("to_openai_request takes a string system and leaves out absent options") {
  json body = minimal_request();
  body["system"] = "You are a cat.";
  const json out = to_openai_request(body, "llama");
  CHECK(out == json::parse(R"({"model":"llama","stream":false,"max_tokens":1024,
      "messages":[{"role":"system","content":"You are a cat."},{"role":"user","content":"Hello"}]})"));
}

TEST_CASE("from_openai_response builds an Anthropic message") {
  const json reply = json::parse(R"({
    "id": "chatcmpl-123", "object": "chat.completion", "created": 1700000000, "model": "qwen",
    "choices": [{"index": 0, "message": {"role": "assistant", "content": "Meow."}, "finish_reason": "stop"}],
    "usage": {"prompt_tokens": 12, "completion_tokens": 3, "total_tokens": 15}
  })");
  auto m = from_openai_response(reply, "claude-x");
  REQUIRE(m.has_value());
  CHECK(*m == json::parse(R"({"id":"msg_chatcmpl-123","type":"message","role":"assistant",
      "model":"claude-x","content":[{"type":"text","text":"Meow."}],"stop_reason":"end_turn",
      "stop_sequence":null,"usage":{"input_tokens":12,"output_tokens":3}})"));
  // The result streams and assembles like any message.
  CHECK(assemble(events_for_message(*m)).message() == *m);
}

TEST_CASE("from_openai_response maps finish reasons and fills gaps") {
  json reply = json::parse(R"({"choices":[{"message":{"role":"assistant","content":null},
                                           "finish_reason":"length"}]})");
  auto m = from_openai_response(reply, "m");
  REQUIRE(m.has_value());
  CHECK((*m)["stop_reason"] == "max_tokens");
  CHECK((*m)["content"][0]["text"] == "");
  CHECK((*m)["usage"] == json{{"input_tokens", 0}, {"output_tokens", 0}});
  const std::string id = (*m)["id"];
  CHECK(id.rfind("msg_", 0) == 0);
  CHECK(id.size() > 4);
  // Derived from the reply, so repeatable.
  CHECK((*from_openai_response(reply, "m"))["id"] == id);

  reply["choices"][0]["finish_reason"] = "tool_calls";
  CHECK((*from_openai_response(reply, "m"))["stop_reason"] == "end_turn");
}

TEST_CASE("from_openai_response rejects replies without a choice") {
  for (const char* text : {R"({})", R"({"choices":[]})", R"({"choices":"x"})",
                           R"({"choices":[{"finish_reason":"stop"}]})", R"([1])"}) {
    INFO(text);
    auto m = from_openai_response(json::parse(text), "m");
    REQUIRE_FALSE(m.has_value());
    CHECK(m.err().code == errc::bad_body);
    CHECK_FALSE(m.err().message.empty());
  }
}

TEST_CASE("message_delta sets top-level fields but never replaces the assembled content") {
  const std::string stream =
      message_start_event +
      event_line(
          "content_block_start",
          R"({"type":"content_block_start","index":0,"content_block":{"type":"text","text":"kept"}})") +
      event_line("content_block_stop", R"({"type":"content_block_stop","index":0})") +
      event_line(
          "message_delta",
          R"({"type":"message_delta","delta":{"stop_reason":"end_turn","content":[],"type":"x","id":"y","container":{"id":"c1"}},"usage":{"output_tokens":4}})") +
      event_line("message_stop", R"({"type":"message_stop"})");
  auto assembler = assemble(stream);
  REQUIRE(assembler.complete());
  const json m = assembler.message();
  CHECK(m["content"] == json::array({{{"type", "text"}, {"text", "kept"}}}));
  CHECK(m["container"] == json{{"id", "c1"}});
  CHECK(m["type"] == "message");
  CHECK(m["id"] == "msg_1");
  CHECK(m["stop_reason"] == "end_turn");
  CHECK(assembler.usage().output_tokens == 4);
}

TEST_CASE("add_cache_breakpoints marks long stable prefixes, and only when the client did not") {
  using nlohmann::json;
  const std::string long_text(5000, 's');
  json body = {{"model", "m"},
               {"max_tokens", 10},
               {"system", long_text},
               {"tools", json::array({{{"name", "read"},
                                       {"input_schema", {{"type", "object"}}},
                                       {"description", long_text}}})},
               {"messages", json::array({{{"role", "user"}, {"content", "hi"}}})}};
  const auto key_before = troupe::llm::canonical_key(body);
  CHECK(troupe::llm::add_cache_breakpoints(body, 1024) == 2);
  CHECK(body["system"][0]["text"] == long_text);
  CHECK(body["system"][0]["cache_control"]["type"] == "ephemeral");
  CHECK(body["tools"][0]["cache_control"]["type"] == "ephemeral");
  // One message is a question, not a conversation: it stays unmarked.
  CHECK(body["messages"][0]["content"] == "hi");
  // The marks steer the provider's cache only: the answer's key is the same.
  CHECK(troupe::llm::canonical_key(body) == key_before);
  // Once marked (by us or by the client), nothing more is added.
  CHECK(troupe::llm::add_cache_breakpoints(body, 1024) == 0);

  json short_body = {{"model", "m"},
                     {"max_tokens", 10},
                     {"system", "be brief"},
                     {"messages", json::array({{{"role", "user"}, {"content", "hi"}}})}};
  CHECK(troupe::llm::add_cache_breakpoints(short_body, 1024) == 0);
  CHECK(short_body["system"] == "be brief");
}

TEST_CASE("add_cache_breakpoints counts the prefix so far and the model's minimum") {
  using nlohmann::json;
  // Tools of ~750 tokens alone are too short; with a ~750-token system
  // prompt the prefix reaches 1024 tokens, so only the system is marked.
  json body = {{"model", "claude-sonnet-4-5"},
               {"max_tokens", 10},
               {"system", std::string(3000, 'y')},
               {"tools", json::array({{{"name", "t"}, {"description", std::string(3000, 'x')}}})},
               {"messages", json::array({{{"role", "user"}, {"content", "hi"}}})}};
  auto haiku = body;
  CHECK(troupe::llm::add_cache_breakpoints(
            body, troupe::llm::min_cacheable_tokens(body["model"].get<std::string>())) == 1);
  CHECK_FALSE(body["tools"][0].contains("cache_control"));
  CHECK(body["system"][0]["cache_control"]["type"] == "ephemeral");
  // Haiku models cache prefixes of 2048 tokens and more.
  haiku["model"] = "claude-haiku-4-5";
  CHECK(troupe::llm::min_cacheable_tokens("claude-haiku-4-5") == 2048);
  CHECK(troupe::llm::add_cache_breakpoints(haiku, 2048) == 0);
}

TEST_CASE("add_cache_breakpoints marks a conversation's end and the turn before, four at most") {
  using nlohmann::json;
  const std::string text(5000, 'c');
  json body = {{"model", "m"},
               {"max_tokens", 10},
               {"system", text},
               {"tools", json::array({{{"name", "t"}, {"description", text}}})},
               {"messages",
                json::array({{{"role", "user"}, {"content", "read the file"}},
                             {{"role", "assistant"},
                              {"content", json::array({{{"type", "thinking"}, {"thinking", "hmm"}},
                                                       {{"type", "tool_use"},
                                                        {"id", "t1"},
                                                        {"name", "Read"},
                                                        {"input", {{"file_path", "/a"}}}}})}},
                             {{"role", "user"},
                              {"content", json::array({{{"type", "tool_result"},
                                                        {"tool_use_id", "t1"},
                                                        {"content", text}}})}}})}};
  const auto key_before = troupe::llm::canonical_key(body);
  CHECK(troupe::llm::add_cache_breakpoints(body, 1024) == 4);
  const auto& messages = body["messages"];
  CHECK(messages[2]["content"][0]["cache_control"]["type"] == "ephemeral");
  // The previous user turn: what the last call stored is read back.
  CHECK(messages[0]["content"][0]["cache_control"]["type"] == "ephemeral");
  CHECK(messages[0]["content"][0]["text"] == "read the file");
  CHECK_FALSE(messages[1]["content"][1].contains("cache_control"));
  CHECK(troupe::llm::canonical_key(body) == key_before);

  // A conversation ending on a block that cannot carry a mark is left as is.
  json thinking_end = {
      {"model", "m"},
      {"max_tokens", 10},
      {"messages",
       json::array({{{"role", "user"}, {"content", text}},
                    {{"role", "assistant"},
                     {"content", json::array({{{"type", "thinking"}, {"thinking", "hmm"}}})}}})}};
  CHECK(troupe::llm::add_cache_breakpoints(thinking_end, 1024) == 1);
  CHECK(thinking_end["messages"][0]["content"][0].contains("cache_control"));
  CHECK_FALSE(thinking_end["messages"][1]["content"][0].contains("cache_control"));
}
