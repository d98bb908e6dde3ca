// The Anthropic Messages API request at the gateway (actors/llm/anthropic):
// validation, the cache key, automatic prompt-caching breakpoints, the
// files a conversation names, usage, and the OpenAI fallback both ways.
// The input is read as JSON text, as the router reads a request body.
//
// Invariants: nothing throws; the key of a body is stable (same key when
// asked twice, and for the same text parsed twice); the canonical form is
// its own canonical form; breakpoints never change the key, add at most
// four, change nothing when they add none, and are not added twice.

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "actors/llm/anthropic.hpp"
#include "fuzz/support/fuzz_check.hpp"

namespace {

using json = nlohmann::json;
using namespace troupe;

/// The API's limit on cache_control breakpoints in one request.
constexpr int breakpoints_max = 4;

/// Small bounds, so the too_large paths run on the small inputs a fuzzer makes.
constexpr llm::request_limits tight_limits{.messages_max = 2, .blocks_max = 4, .tools_max = 1};

void check_validation(const json& body) {
  auto info = llm::validate_request(body);
  auto tight = llm::validate_request(body, tight_limits);
  if (tight) {
    FUZZ_CHECK(info.has_value(), "a request valid under tight limits is valid under the defaults");
  }
  if (!info) {
    FUZZ_CHECK(info.err().code == errc::bad_request || info.err().code == errc::too_large,
               "an invalid request is bad_request or too_large");
    FUZZ_CHECK(!info.err().message.empty(), "an invalid request is told why");
    return;
  }
  FUZZ_CHECK(info->max_tokens >= 1, "a valid request asks for at least one token");
  FUZZ_CHECK(info->temperature >= 0.0 && info->temperature <= 1.0,
             "a valid temperature lies in [0, 1]");
  // provider.cpp sends this with a plain dump(), which throws on invalid
  // UTF-8: a valid request must never get there with any.
  const json openai = llm::to_openai_request(body, info->model);
  (void)openai.dump();
  FUZZ_CHECK(openai.contains("messages") && openai["messages"].is_array(),
             "an OpenAI request always has its messages");
}

void check_key(const json& body, std::string_view text) {
  const std::string key = llm::canonical_key(body);
  FUZZ_CHECK(key.size() == 4 + 64 && key.starts_with("llm:"), "a key is llm: and a SHA-256");
  FUZZ_CHECK(llm::canonical_key(body) == key, "the same body has the same key");
  const json again = json::parse(text, nullptr, false);
  FUZZ_CHECK(llm::canonical_key(again) == key, "the same text parsed twice has the same key");
  const json canonical = llm::canonical_request(body);
  FUZZ_CHECK(llm::canonical_key(canonical) == key, "the canonical form is its own canonical form");
}

void check_breakpoints(const json& body, size_t min_tokens) {
  const std::string key = llm::canonical_key(body);
  json marked = body;
  const int added = llm::add_cache_breakpoints(marked, min_tokens);
  FUZZ_CHECK(added >= 0 && added <= breakpoints_max, "at most four breakpoints are added");
  FUZZ_CHECK(llm::canonical_key(marked) == key, "breakpoints never change the key");
  if (added == 0) {
    FUZZ_CHECK(marked == body, "no breakpoint added, nothing changed");
    return;
  }
  // The marks are the request's own cache_control now: the client steers.
  json twice = marked;
  FUZZ_CHECK(llm::add_cache_breakpoints(twice, min_tokens) == 0, "breakpoints are added once");
  FUZZ_CHECK(twice == marked, "a second pass changes nothing");
}

void check_paths(const json& body) {
  const auto paths = llm::referenced_paths(body);
  FUZZ_CHECK(std::is_sorted(paths.begin(), paths.end()), "referenced paths are sorted");
  FUZZ_CHECK(std::adjacent_find(paths.begin(), paths.end()) == paths.end(),
             "referenced paths hold no duplicates");
  for (const auto& path : paths) {
    FUZZ_CHECK(!path.empty() && path.front() == '/', "referenced paths are absolute");
  }
}

/// The input read as an OpenAI chat completion from a local backend.
void check_openai_response(const json& reply) {
  auto message = llm::from_openai_response(reply, "local");
  if (!message) {
    FUZZ_CHECK(message.err().code == errc::bad_body, "an unusable completion is bad_body");
    return;
  }
  FUZZ_CHECK(message->is_object() && (*message)["content"].is_array(),
             "a converted completion is a message with content");
  FUZZ_CHECK(llm::from_openai_response(reply, "local")
                     ->dump(-1, ' ', false, json::error_handler_t::replace) ==
                 message->dump(-1, ' ', false, json::error_handler_t::replace),
             "the conversion is pure: the same reply gives the same message");
  (void)llm::usage_of(*message);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  const json body = json::parse(text, nullptr, false);
  if (body.is_discarded()) {
    return 0;
  }
  check_validation(body);
  check_key(body, text);
  // 0 marks wherever a mark may go; the model's own minimum is what the
  // router uses, reached only by the larger inputs.
  const std::string* model = body.is_object() && body.contains("model")
                                 ? body["model"].get_ptr<const std::string*>()
                                 : nullptr;
  check_breakpoints(body, 0);
  check_breakpoints(body, llm::min_cacheable_tokens(model != nullptr ? *model : ""));
  check_paths(body);
  (void)llm::usage_of(body);
  check_openai_response(body);
  return 0;
}
