#pragma once

// The Anthropic Messages API wire format, apart from any socket: request
// validation, the cache key of a request, the files a conversation depends
// on, the streamed event sequence in both directions, error bodies, and a
// translation to and from OpenAI-style chat completions for local backends
// (llama.cpp, Ollama). Pure functions and one plain class; no I/O.

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "actors/llm/sse.hpp"
#include "runtime/error.hpp"

namespace troupe::llm {

/// What the gateway needs of a valid request to route and cache it.
struct request_info {
  std::string model;
  bool stream = false;
  /// The API's default when the request names none.
  double temperature = 1.0;
  std::int64_t max_tokens = 0;
};

/// Bounds on what one request may hold, beyond its size in bytes: each
/// message, block and tool costs the gateway work (validation, the key,
/// breakpoints), so a body of many tiny ones must not cost seconds.
struct request_limits {
  std::size_t messages_max = 10'000;
  /// Content blocks over all messages and the system prompt.
  std::size_t blocks_max = 100'000;
  std::size_t tools_max = 1'000;
};

/// Checks `body` the way the API does and answers `bad_request` with the
/// API's wording ("max_tokens: Field required", "messages.0.role: Input
/// should be 'user' or 'assistant'", ...), so clients see the error they
/// would have seen upstream without a round trip. Checks only what decides
/// routing and caching plus cheap shape checks; the upstream judges the rest.
/// Past `limits`: `too_large`, naming the count and the bound.
[[nodiscard]] expected<request_info> validate_request(const nlohmann::json& body,
                                                      const request_limits& limits = {});

/// The form of `body` that `canonical_key` hashes: without `stream`,
/// `metadata`, `service_tier` and prompt-caching `cache_control` markers;
/// string `system`/`content` as the one text block the API reads them as;
/// top-level numbers with no fraction as integers (1.0 and 1 ask the same).
/// Exposed so a surprising cache miss can be explained.
[[nodiscard]] nlohmann::json canonical_request(const nlohmann::json& body);

/// "llm:" + lowercase hex SHA-256 of `canonical_request(body)` dumped
/// compactly (keys sorted): equal for requests that ask the same question,
/// whatever their key order, whitespace or streaming mode.
[[nodiscard]] std::string canonical_key(const nlohmann::json& body);

/// The shortest prefix, in tokens, the provider caches for `model`: 1024,
/// and 2048 for Haiku models.
[[nodiscard]] std::size_t min_cacheable_tokens(std::string_view model);

/// Automatic prompt caching: when the request sets no `cache_control` of
/// its own, adds {"type": "ephemeral"} breakpoints at the end of the tool
/// definitions, of the system prompt and, in a conversation (two messages
/// or more), of the last message and of the user message before it — each
/// only where the prompt up to it holds an estimated `min_tokens` tokens
/// (4 bytes a token), at most four. Returns how many it added. Marks never
/// change the request's `canonical_key`.
int add_cache_breakpoints(nlohmann::json& body, std::size_t min_tokens);

/// Absolute paths named by the conversation's `tool_use` blocks in their
/// `input` fields `path`, `file_path`, `filename` or `notebook_path`: the
/// files the answer depends on. Sorted, without duplicates.
[[nodiscard]] std::vector<std::string> referenced_paths(const nlohmann::json& body);

/// Token counts of one message, as billed.
struct usage {
  std::int64_t input_tokens = 0;
  std::int64_t output_tokens = 0;
  std::int64_t cache_creation_input_tokens = 0;
  std::int64_t cache_read_input_tokens = 0;
};

/// `message["usage"]`; absent or non-integer fields read as 0.
[[nodiscard]] usage usage_of(const nlohmann::json& message);

/// Rebuilds the final Message object from a streamed event sequence, one
/// event at a time, as `sse_parser` delivers them. Never throws on bad
/// input: a malformed event is recorded as an `api_error` and ends assembly
/// (later events are ignored), as do an in-stream `error` event and
/// `message_stop`.
class stream_assembler {
 public:
  /// Why 64 MiB: a message is bounded by max_tokens (at most some 10^5
  /// tokens, well under 1 MiB of text); the sum of event data adds JSON
  /// framing per delta, a few times the text. More is a runaway stream.
  static constexpr std::size_t stream_bytes_max_default = std::size_t{64} << 20;

  /// `stream_bytes_max` bounds the summed data of all events added (each
  /// counted at its `data_bytes`, so a skipped delta counts too). Without
  /// `keep_content` the deltas of content blocks are counted but not
  /// applied: message() has the blocks as started, while usage, stop
  /// reason, errors and complete() are whole (for a stream nobody keeps).
  explicit stream_assembler(std::size_t stream_bytes_max = stream_bytes_max_default,
                            bool keep_content = true);
  ~stream_assembler();
  stream_assembler(stream_assembler&&) noexcept;
  stream_assembler& operator=(stream_assembler&&) noexcept;
  stream_assembler(const stream_assembler&) = delete;
  stream_assembler& operator=(const stream_assembler&) = delete;

  void add(const sse_event& e);

  /// `message_stop` was seen and no error.
  [[nodiscard]] bool complete() const;
  /// The message as assembled so far; null before `message_start`. A
  /// tool_use block whose `content_block_stop` has not arrived keeps the
  /// input of its `content_block_start`.
  [[nodiscard]] nlohmann::json message() const;
  /// Current totals; meaningful for an unfinished stream too.
  [[nodiscard]] llm::usage usage() const;
  /// The stream's error, `{"type": ..., "message": ...}`, if any.
  [[nodiscard]] std::optional<nlohmann::json> error() const;

 private:
  struct state;
  std::unique_ptr<state> state_;
};

/// The SSE bytes the API would have streamed for the complete `message`:
/// message_start, one ping, start/delta(s)/stop per content block,
/// message_delta, message_stop. Each text, input or thinking arrives as one
/// delta. Like the API, message_start counts `output_tokens` as 1 and
/// message_delta carries the real total. Block types without deltas (e.g.
/// redacted_thinking) are sent whole in content_block_start.
/// `stream_assembler` over the result gives `message` back.
[[nodiscard]] std::string events_for_message(const nlohmann::json& message);

/// An OpenAI `/v1/chat/completions` request asking what `anthropic_body`
/// (a request `validate_request` accepted) asks, for backends without the
/// Messages API. Text only: system becomes a leading system message, each
/// message's text and tool_result blocks are joined with '\n', images and
/// tool calls are dropped; max_tokens, temperature, top_p and stop_sequences
/// (as "stop") carry over. Always non-streaming.
[[nodiscard]] nlohmann::json to_openai_request(const nlohmann::json& anthropic_body,
                                               std::string_view model);

/// An Anthropic Message built from an OpenAI chat completion (its first
/// choice), labelled with `model`. `bad_body` if the reply has no choice or
/// message. Without an upstream id, the id is derived from the reply's hash
/// so the function stays pure and repeatable.
[[nodiscard]] expected<nlohmann::json> from_openai_response(const nlohmann::json& openai,
                                                            std::string_view model);

}  // namespace troupe::llm
