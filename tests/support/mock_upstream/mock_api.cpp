// The mock upstream's endpoints: what each request is answered, decided from
// the request alone so that replays get the same answer (and, for prompt
// caching, what earlier requests left in the cache). Reading order: limits;
// text and token counting; prompt cache; faults; stats; replies; request
// validation; mock_api.

#include "tests/support/mock_upstream/mock_api.hpp"

#include <algorithm>
#include <atomic>
#include <cassert>
#include <cstdio>
#include <ctime>
#include <deque>
#include <exception>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <sstream>
#include <unordered_map>

#include <nlohmann/json.hpp>

namespace troupe::mock {
namespace {

using json = nlohmann::json;
// Replies keep the API's key order so that a person reading a capture sees
// what the real service sends.
using ojson = nlohmann::ordered_json;
using std::chrono::milliseconds;

// ---------------------------------------------------------------- limits

/// Longest retry-after a rate_limit fault may announce (one day).
constexpr std::uint64_t retry_after_s_max = 86'400;
/// Faults one POST /mock/faults may script.
constexpr std::size_t faults_max = 100'000;
/// Distinct models kept apart in /mock/stats; the rest are summed under
/// other_models, so a client sending random names cannot grow the map.
constexpr std::size_t models_tracked_max = 1024;
/// Model names longer than this are summed under other_models too.
constexpr std::size_t model_name_bytes_max = 256;
constexpr std::string_view other_models = "(other)";
/// Code points of the last user message echoed back in an answer.
constexpr std::size_t echo_code_points_max = 200;
/// Bytes per streamed delta: about what the real API sends in one event.
constexpr std::size_t stream_piece_bytes = 16;

// Plausible rate limits, as a build-tier organisation sees them.
constexpr std::uint64_t requests_per_minute = 4'000;
constexpr std::uint64_t input_tokens_per_minute = 400'000;
constexpr std::uint64_t output_tokens_per_minute = 80'000;

/// The API's rule of thumb for token counts.
constexpr std::uint64_t bytes_per_token = 4;

// Prompt caching, as the API documents it.
/// Cached prefixes kept at once, over all models: the mock outlives many
/// tests, and a client sending random prompts must not grow it without end.
constexpr std::size_t prompt_cache_entries_max = 100'000;
/// Lifetime of a cached prefix, renewed by each read: the default
/// "ephemeral" 5 minutes, or an hour for "ttl": "1h".
constexpr std::uint64_t cache_ttl_default_s = 300;
constexpr std::uint64_t cache_ttl_1h_s = 3'600;
/// Shortest prefix, in tokens, that a breakpoint caches; shorter ones are
/// ignored. Haiku models need twice as much.
constexpr std::uint64_t cache_prefix_tokens_min = 1'024;
constexpr std::uint64_t cache_prefix_tokens_min_haiku = 2'048;
/// Block boundaries before a breakpoint where a read also looks for a hit.
constexpr std::size_t cache_lookback_blocks = 20;

// ---------------------------------------------------------------- text and tokens

/// The API's rule of thumb, four bytes a token, rounded up.
std::uint64_t tokens_for_bytes(std::uint64_t bytes) {
  return (bytes + bytes_per_token - 1) / bytes_per_token;
}

/// A prompt's input tokens: the API never says 0.
std::uint64_t prompt_tokens_for_bytes(std::uint64_t bytes) {
  return std::max<std::uint64_t>(1, tokens_for_bytes(bytes));
}

/// The tokens of one model call, named as the API's `usage` names them.
struct token_usage {
  std::uint64_t input_tokens = 0;  ///< neither read from nor written to the cache
  std::uint64_t cache_creation_input_tokens = 0;
  std::uint64_t cache_read_input_tokens = 0;
  std::uint64_t output_tokens = 0;

  void add(const token_usage& u) {
    input_tokens += u.input_tokens;
    cache_creation_input_tokens += u.cache_creation_input_tokens;
    cache_read_input_tokens += u.cache_read_input_tokens;
    output_tokens += u.output_tokens;
  }
};

bool is_utf8_continuation(char c) {
  return (static_cast<unsigned char>(c) & 0xC0u) == 0x80u;
}

/// The first `code_points_max` code points of UTF-8 `text`.
std::string_view utf8_prefix(std::string_view text, std::size_t code_points_max) {
  std::size_t seen = 0;
  for (std::size_t i = 0; i < text.size(); ++i) {
    if (is_utf8_continuation(text[i])) {
      continue;
    }
    if (seen == code_points_max) {
      return text.substr(0, i);
    }
    ++seen;
  }
  return text;
}

/// `text` cut into pieces of about `piece_bytes`, never inside a code point
/// (a client decodes each delta on its own).
std::vector<std::string_view> utf8_pieces(std::string_view text, std::size_t piece_bytes) {
  assert(piece_bytes > 0);
  std::vector<std::string_view> pieces;
  std::size_t start = 0;
  while (start < text.size()) {
    std::size_t end = std::min(text.size(), start + piece_bytes);
    while (end < text.size() && is_utf8_continuation(text[end])) {
      ++end;
    }
    pieces.push_back(text.substr(start, end - start));
    start = end;
  }
  return pieces;
}

/// The string under `key`, or "" when `object` has none (or not a string).
std::string_view string_field(const json& object, const char* key) {
  if (!object.is_object()) {
    return {};
  }
  const auto it = object.find(key);
  if (it == object.end() || !it->is_string()) {
    return {};
  }
  return it->get_ref<const std::string&>();
}

/// Calls `visit(text)` for each piece of text in a content value: the string
/// itself, or each text block's text.
template <class Visit>
void for_each_text(const json& content, const Visit& visit) {
  if (content.is_string()) {
    visit(content.get_ref<const std::string&>());
    return;
  }
  if (!content.is_array()) {
    return;
  }
  for (const auto& block : content) {
    if (string_field(block, "type") == "text") {
      visit(string_field(block, "text"));
    }
  }
}

/// Compact JSON, as the prompt holds a tool or a non-text block. Request
/// text is valid UTF-8 (the parser checks), so replacing never happens; it
/// only keeps dump() from throwing on a broken invariant.
std::string compact_json(const json& j) {
  return j.dump(-1, ' ', false, json::error_handler_t::replace);
}

/// `object` as compact JSON without its top-level cache_control: the marker
/// steers the cache and is no part of the prompt.
std::string compact_without_cache_control(const json& object) {
  if (!object.is_object() || !object.contains("cache_control")) {
    return compact_json(object);
  }
  json copy = object;
  copy.erase("cache_control");
  return compact_json(copy);
}

/// The prompt bytes of a content block that is not a text block: the text
/// of a tool_result, the input of a tool_use, any other block as JSON.
std::string non_text_block_bytes(const json& block) {
  const std::string_view type = string_field(block, "type");
  if (type == "tool_result") {
    std::string text;
    if (const auto content = block.find("content"); content != block.end()) {
      for_each_text(*content, [&text](std::string_view t) { text += t; });
    }
    return text;
  }
  if (type == "tool_use") {
    const auto input = block.find("input");
    return input == block.end() ? std::string() : compact_json(*input);
  }
  return compact_without_cache_control(block);
}

/// Calls `visit(tag, bytes, holder)` for each block of one message's content.
/// `tag` marks the turn's first block apart from the rest, so that the cache
/// tells the same blocks in other turns apart.
template <class Visit>
void for_each_message_block(const json& message, const Visit& visit) {
  const auto content = message.find("content");
  if (content == message.end()) {
    return;
  }
  const bool user = string_field(message, "role") == "user";
  char tag = user ? 'U' : 'A';
  if (content->is_string()) {
    visit(tag, content->get_ref<const std::string&>(), nullptr);
    return;
  }
  if (!content->is_array()) {
    return;
  }
  for (const auto& block : *content) {
    if (string_field(block, "type") == "text") {
      visit(tag, string_field(block, "text"), &block);
    } else {
      visit(tag, non_text_block_bytes(block), &block);
    }
    tag = user ? 'u' : 'a';
  }
}

/// Calls `visit(tag, bytes, holder)` for each block of a request's prompt in
/// the API's order: each tool, then `system`, then every message's content.
/// `holder` is the object whose cache_control makes the block a breakpoint
/// (nullptr for string content, which cannot carry one); `tag` keeps the
/// sections apart in the cache's hash.
template <class Visit>
void for_each_prompt_block(const json& body, const Visit& visit) {
  if (const auto tools = body.find("tools"); tools != body.end() && tools->is_array()) {
    for (const auto& tool : *tools) {
      visit('T', compact_without_cache_control(tool), &tool);
    }
  }
  if (const auto system = body.find("system"); system != body.end()) {
    if (system->is_string()) {
      visit('S', system->get_ref<const std::string&>(), nullptr);
    } else if (system->is_array()) {
      for (const auto& block : *system) {
        visit('S', string_field(block, "text"), &block);
      }
    }
  }
  if (const auto messages = body.find("messages"); messages != body.end() && messages->is_array()) {
    for (const auto& message : *messages) {
      for_each_message_block(message, visit);
    }
  }
}

/// Input tokens of a request: every block of its prompt, tools included, as
/// the API counts them.
std::uint64_t prompt_tokens(const json& body) {
  std::uint64_t bytes = 0;
  for_each_prompt_block(
      body, [&bytes](char, std::string_view block, const json*) { bytes += block.size(); });
  return prompt_tokens_for_bytes(bytes);
}

/// The text of the last message whose role is "user" ("" when none).
std::string last_user_text(const json& messages) {
  std::string text;
  for (auto it = messages.rbegin(); it != messages.rend(); ++it) {
    if (string_field(*it, "role") != "user") {
      continue;
    }
    if (const auto content = it->find("content"); content != it->end()) {
      for_each_text(*content, [&text](std::string_view t) { text += t; });
    }
    break;
  }
  return text;
}

// ---------------------------------------------------------------- prompt cache

constexpr std::uint64_t fnv_offset_basis = 0xcbf29ce484222325ULL;
constexpr std::uint64_t fnv_prime = 0x100000001b3ULL;

/// FNV-1a 64 continued from `h` over `bytes`.
std::uint64_t fnv_extend(std::uint64_t h, std::string_view bytes) {
  for (const char c : bytes) {
    h ^= static_cast<std::uint8_t>(c);
    h *= fnv_prime;
  }
  return h;
}

/// `h` continued over one field framed as tag, length, ':', bytes: the
/// framing keeps blocks "ab" + "c" apart from "a" + "bc".
std::uint64_t fnv_extend_framed(std::uint64_t h, char tag, std::string_view bytes) {
  h = fnv_extend(h, std::string_view(&tag, 1));
  h = fnv_extend(h, std::to_string(bytes.size()));
  h = fnv_extend(h, ":");
  return fnv_extend(h, bytes);
}

/// The lifetime a block's cache_control asks for, or 0 when the block
/// carries none (it is no breakpoint).
std::uint64_t breakpoint_ttl_s(const json* holder) {
  if (holder == nullptr || !holder->is_object()) {
    return 0;
  }
  const auto marker = holder->find("cache_control");
  if (marker == holder->end() || !marker->is_object()) {
    return 0;
  }
  return string_field(*marker, "ttl") == "1h" ? cache_ttl_1h_s : cache_ttl_default_s;
}

/// One block of a prompt, as the cache sees it.
struct prompt_block {
  std::uint64_t end_bytes = 0;   ///< bytes of blocks 0..i: the prefix this block ends
  std::uint64_t prefix_key = 0;  ///< hash of the model and blocks 0..i
  std::uint64_t ttl_s = 0;       ///< its cache_control's lifetime; 0: no breakpoint
};

/// A Messages prompt as the cache sees it: its blocks in the API's order.
/// Bounded by the request body's size limit (main.cpp).
struct prompt_plan {
  std::vector<prompt_block> blocks;
  std::uint64_t bytes = 0;
  std::size_t breakpoints = 0;

  std::uint64_t input_tokens() const { return prompt_tokens_for_bytes(bytes); }
};

/// The prompt of a validated Messages request, with a hash of every prefix
/// at a block boundary, each continuing the last, so that looking a prefix
/// up costs no more hashing.
prompt_plan plan_prompt(const json& body) {
  prompt_plan plan;
  std::uint64_t key = fnv_extend_framed(fnv_offset_basis, 'M', string_field(body, "model"));
  for_each_prompt_block(body, [&](char tag, std::string_view bytes, const json* holder) {
    key = fnv_extend_framed(key, tag, bytes);
    plan.bytes += bytes.size();
    const std::uint64_t ttl_s = breakpoint_ttl_s(holder);
    plan.breakpoints += ttl_s > 0 ? 1 : 0;
    plan.blocks.push_back(prompt_block{plan.bytes, key, ttl_s});
  });
  return plan;
}

/// The shortest prefix a breakpoint caches for `model`, in tokens.
std::uint64_t cache_prefix_tokens_min_for(std::string_view model) {
  return model.find("haiku") != std::string_view::npos ? cache_prefix_tokens_min_haiku
                                                       : cache_prefix_tokens_min;
}

/// Cached prompt prefixes and when each expires, shared by all requests as
/// the API shares an organisation's cache. Not thread-safe: the caller holds
/// the api's lock.
class prompt_cache {
 public:
  using clock = std::chrono::steady_clock;

  /// Whether the prefix `key` is cached. A hit lives its lifetime again from
  /// `now`, as a read refreshes an entry in the API.
  bool read(std::uint64_t key, clock::time_point now) {
    forget_expired(now);
    const auto it = entries_.find(key);
    if (it == entries_.end()) {
      return false;
    }
    reschedule(key, it->second, now + it->second.ttl);
    return true;
  }

  /// Caches the prefix `key` for `ttl` from `now`. When the cache is full,
  /// the entry closest to expiring (the oldest, for one lifetime) goes.
  void write(std::uint64_t key, std::chrono::seconds ttl, clock::time_point now) {
    forget_expired(now);
    if (const auto it = entries_.find(key); it != entries_.end()) {
      it->second.ttl = ttl;
      reschedule(key, it->second, now + ttl);
      return;
    }
    if (by_expiry_.size() >= prompt_cache_entries_max) {
      entries_.erase(by_expiry_.begin()->second);
      by_expiry_.erase(by_expiry_.begin());
    }
    // The schedule first: should the map then fail to grow, an entry in the
    // schedule alone is harmless (forgetting it erases nothing).
    by_expiry_.emplace(now + ttl, key);
    entries_.emplace(key, entry{now + ttl, ttl});
  }

  void clear() {
    entries_.clear();
    by_expiry_.clear();
  }

 private:
  struct entry {
    clock::time_point expires_at;
    std::chrono::seconds ttl;
  };

  void forget_expired(clock::time_point now) {
    while (!by_expiry_.empty() && by_expiry_.begin()->first <= now) {
      entries_.erase(by_expiry_.begin()->second);
      by_expiry_.erase(by_expiry_.begin());
    }
  }

  /// Moves an entry in the schedule; reuses the schedule's node, so it
  /// cannot fail halfway.
  void reschedule(std::uint64_t key, entry& e, clock::time_point expires_at) {
    auto node = by_expiry_.extract({e.expires_at, key});
    assert(!node.empty() && "every cached entry is scheduled");
    e.expires_at = expires_at;
    if (!node.empty()) {
      node.value() = {expires_at, key};
      by_expiry_.insert(std::move(node));
    }
  }

  std::unordered_map<std::uint64_t, entry> entries_;
  /// Entries by expiry, soonest first: what to forget, and what to evict.
  std::set<std::pair<clock::time_point, std::uint64_t>> by_expiry_;
};

/// The last block of the longest prefix `cache` holds among those a request
/// may read: each breakpoint and the cache_lookback_blocks block boundaries
/// before it, as the API looks back. Only that hit is refreshed.
std::optional<std::size_t> longest_cached(const prompt_plan& plan, prompt_cache& cache,
                                          prompt_cache::clock::time_point now) {
  const auto& blocks = plan.blocks;
  std::vector<bool> candidate(blocks.size(), false);
  for (std::size_t i = 0; i < blocks.size(); ++i) {
    if (blocks[i].ttl_s > 0) {
      const std::size_t first = i - std::min(i, cache_lookback_blocks);
      std::fill(candidate.begin() + static_cast<std::ptrdiff_t>(first),
                candidate.begin() + static_cast<std::ptrdiff_t>(i + 1), true);
    }
  }
  for (std::size_t i = blocks.size(); i-- > 0;) {
    if (candidate[i] && cache.read(blocks[i].prefix_key, now)) {
      return i;
    }
  }
  return std::nullopt;
}

/// Settles a Messages request's breakpoints against `cache` as the API
/// does and charges `usage` for it: the longest cached prefix is read;
/// every breakpoint beyond it whose prefix reaches the model's minimum is
/// written (shorter ones are ignored). Whole tokens of the bytes each way;
/// the rest of the prompt stays in input_tokens.
void settle_cache(const prompt_plan& plan, std::string_view model, prompt_cache& cache,
                  prompt_cache::clock::time_point now, token_usage& usage) {
  if (plan.breakpoints == 0) {
    return;
  }
  const std::optional<std::size_t> hit = longest_cached(plan, cache, now);
  const std::uint64_t read_tokens = hit ? plan.blocks[*hit].end_bytes / bytes_per_token : 0;
  const std::uint64_t tokens_min = cache_prefix_tokens_min_for(model);
  std::uint64_t written_tokens = read_tokens;
  for (std::size_t i = hit ? *hit + 1 : 0; i < plan.blocks.size(); ++i) {
    const prompt_block& b = plan.blocks[i];
    if (b.ttl_s > 0 && tokens_for_bytes(b.end_bytes) >= tokens_min) {
      cache.write(b.prefix_key, std::chrono::seconds(b.ttl_s), now);
      written_tokens = b.end_bytes / bytes_per_token;
    }
  }
  assert(written_tokens >= read_tokens && "a later prefix is no shorter");
  usage.cache_read_input_tokens = read_tokens;
  usage.cache_creation_input_tokens = written_tokens - std::min(written_tokens, read_tokens);
  const std::uint64_t cached = read_tokens + usage.cache_creation_input_tokens;
  usage.input_tokens -= std::min(usage.input_tokens, cached);
}

// ---------------------------------------------------------------- faults

enum class fault_kind : std::uint8_t {
  overloaded,       ///< 529 overloaded_error
  rate_limit,       ///< 429 rate_limit_error with retry-after
  spend_limit,      ///< 429 rate_limit_error without retry-after: waiting will not help
  server_error,     ///< 500 api_error
  slow,             ///< the normal answer, after delay_ms
  midstream_error,  ///< a stream that turns into an error event; non-streaming: overloaded
  cut,              ///< the connection closes mid-stream, or with no reply at all
  malformed,        ///< 200 with truncated JSON
};

constexpr std::pair<fault_kind, std::string_view> fault_names[] = {
    {fault_kind::overloaded, "overloaded"},
    {fault_kind::rate_limit, "rate_limit"},
    {fault_kind::spend_limit, "spend_limit"},
    {fault_kind::server_error, "server_error"},
    {fault_kind::slow, "slow"},
    {fault_kind::midstream_error, "midstream_error"},
    {fault_kind::cut, "cut"},
    {fault_kind::malformed, "malformed"},
};

std::string_view to_string(fault_kind kind) {
  for (const auto& [k, name] : fault_names) {
    if (k == kind) {
      return name;
    }
  }
  assert(false && "every fault_kind has a name");
  return "unknown";
}

std::optional<fault_kind> fault_kind_from(std::string_view name) {
  for (const auto& [k, n] : fault_names) {
    if (n == name) {
      return k;
    }
  }
  return std::nullopt;
}

/// One scripted failure.
struct fault {
  fault_kind kind = fault_kind::overloaded;
  std::string model;                ///< applies only to requests for this model; "" for any
  std::uint64_t retry_after_s = 1;  ///< rate_limit: the retry-after it announces
  std::uint64_t delay_ms = 2000;    ///< slow: wait before the answer starts
  std::uint64_t interval_ms = 0;    ///< slow: wait between streamed events

  bool applies_to(std::string_view request_model) const {
    return model.empty() || model == request_model;
  }

  ojson to_json() const {
    ojson j{{"kind", to_string(kind)}};
    if (!model.empty()) {
      j["model"] = model;
    }
    if (kind == fault_kind::rate_limit) {
      j["retry_after_s"] = retry_after_s;
    }
    if (kind == fault_kind::slow) {
      j["delay_ms"] = delay_ms;
      j["interval_ms"] = interval_ms;
    }
    return j;
  }
};

/// Reads a count field of a fault into `out`; why it is refused, or "".
std::string read_count(const json& value, std::string_view key, std::uint64_t max,
                       std::uint64_t& out) {
  if (!value.is_number_unsigned() || value.get<std::uint64_t>() > max) {
    return std::string(key) + ": must be an integer from 0 to " + std::to_string(max);
  }
  out = value.get<std::uint64_t>();
  return {};
}

/// Reads one fault object into `out`; why it is refused, or "". Unknown keys
/// are refused so that a typo in a test shows instead of silently not failing.
[[nodiscard]] std::string parse_fault(const json& j, fault& out) {
  if (!j.is_object() || !j.contains("kind")) {
    return "each fault must be an object with a \"kind\"";
  }
  for (const auto& [key, value] : j.items()) {
    std::string why;
    if (key == "kind") {
      const auto kind =
          fault_kind_from(value.is_string() ? value.get_ref<const std::string&>() : "");
      if (!kind) {
        return "kind: unknown fault kind " + value.dump();
      }
      out.kind = *kind;
    } else if (key == "model") {
      if (!value.is_string()) {
        return "model: must be a string";
      }
      out.model = value.get<std::string>();
    } else if (key == "retry_after_s") {
      why = read_count(value, key, retry_after_s_max, out.retry_after_s);
    } else if (key == "delay_ms") {
      why = read_count(value, key, delay_ms_max, out.delay_ms);
    } else if (key == "interval_ms") {
      why = read_count(value, key, delay_ms_max, out.interval_ms);
    } else {
      why = "unknown fault field \"" + key + "\"";
    }
    if (!why.empty()) {
      return why;
    }
  }
  return {};
}

/// The scripted faults, and which request meets which. Not thread-safe: the
/// caller holds the api's lock.
class fault_script {
 public:
  enum class mode : std::uint8_t { queue, always };

  void set(std::vector<fault> faults, mode m) {
    mode_ = m;
    faults_.assign(std::make_move_iterator(faults.begin()), std::make_move_iterator(faults.end()));
    if (mode_ == mode::always && faults_.size() > 1) {
      faults_.resize(1);  // "always" repeats the first fault; the rest never apply
    }
  }

  void clear() { set({}, mode::queue); }

  /// The fault a request for `model` meets. In queue mode the first queued
  /// fault that applies to the model is used up; faults for other models wait.
  std::optional<fault> take(std::string_view model) {
    const auto it = std::find_if(faults_.begin(), faults_.end(),
                                 [model](const fault& f) { return f.applies_to(model); });
    if (it == faults_.end()) {
      return std::nullopt;
    }
    fault f = *it;
    if (mode_ == mode::queue) {
      faults_.erase(it);
    }
    return f;
  }

  std::size_t pending() const { return faults_.size(); }

  ojson to_json() const {
    ojson list = ojson::array();
    for (const auto& f : faults_) {
      list.push_back(f.to_json());
    }
    return ojson{{"mode", mode_ == mode::queue ? "queue" : "always"}, {"faults", std::move(list)}};
  }

 private:
  mode mode_ = mode::queue;
  std::deque<fault> faults_;
};

// ---------------------------------------------------------------- stats

struct usage_totals {
  std::uint64_t requests = 0;
  token_usage tokens;
};

/// What the mock answered since start or the last reset. Not thread-safe: the
/// caller holds the api's lock.
class stats {
 public:
  static constexpr std::string_view messages_path = "/v1/messages";
  static constexpr std::string_view chat_path = "/v1/chat/completions";
  static constexpr std::string_view count_tokens_path = "/v1/messages/count_tokens";

  stats() {
    for (const auto path : {messages_path, chat_path, count_tokens_path}) {
      by_path_.emplace(path, 0);
    }
  }

  /// A model call answered 200 with its content.
  void answered(std::string_view path, std::string_view model, const token_usage& usage) {
    for (usage_totals* t : {&total_, &model_totals(model)}) {
      t->requests += 1;
      t->tokens.add(usage);
    }
    by_path_[std::string(path)] += 1;
  }

  /// A count_tokens call answered: it is no model call, so only its path counts.
  void counted() { by_path_[std::string(count_tokens_path)] += 1; }
  /// A model call answered by a fault.
  void faulted() { errors_ += 1; }
  /// A request refused as invalid (401, 400, 413, ...).
  void rejected() { rejected_ += 1; }

  ojson to_json() const {
    ojson models = ojson::object();
    for (const auto& [name, t] : by_model_) {
      ojson model{{"requests", t.requests}};
      add_tokens(model, t.tokens);
      models[name] = std::move(model);
    }
    ojson paths = ojson::object();
    for (const auto& [path, n] : by_path_) {
      paths[path] = n;
    }
    ojson out{{"requests", total_.requests}, {"errors", errors_}, {"rejected", rejected_}};
    add_tokens(out, total_.tokens);
    out["by_path"] = std::move(paths);
    out["by_model"] = std::move(models);
    return out;
  }

 private:
  static void add_tokens(ojson& out, const token_usage& t) {
    out["input_tokens"] = t.input_tokens;
    out["cache_creation_input_tokens"] = t.cache_creation_input_tokens;
    out["cache_read_input_tokens"] = t.cache_read_input_tokens;
    out["output_tokens"] = t.output_tokens;
  }

  usage_totals& model_totals(std::string_view model) {
    if (const auto it = by_model_.find(model); it != by_model_.end()) {
      return it->second;
    }
    const bool trackable =
        by_model_.size() < models_tracked_max && model.size() <= model_name_bytes_max;
    return by_model_[std::string(trackable ? model : other_models)];
  }

  usage_totals total_;
  std::uint64_t errors_ = 0;
  std::uint64_t rejected_ = 0;
  std::map<std::string, std::uint64_t, std::less<>> by_path_;
  std::map<std::string, usage_totals, std::less<>> by_model_;
};

// ---------------------------------------------------------------- replies

/// Error bodies differ by API: Anthropic's for /v1/messages and the rest,
/// OpenAI's for /v1/chat/completions.
enum class dialect : std::uint8_t { anthropic, openai };

std::string dump(const ojson& j) {
  // Request text is valid UTF-8 (the parser checks), so replacing never
  // happens; it only keeps dump() from throwing on a broken invariant.
  return j.dump(-1, ' ', false, ojson::error_handler_t::replace);
}

reply json_reply(unsigned status, std::string body) {
  reply r;
  r.status = status;
  r.body = std::move(body);
  return r;
}

reply error_reply(dialect d, unsigned status, std::string_view type, std::string_view message) {
  if (d == dialect::openai) {
    return json_reply(
        status,
        dump(ojson{
            {"error",
             ojson{{"message", message}, {"type", type}, {"param", nullptr}, {"code", nullptr}}}}));
  }
  return json_reply(status, dump(ojson{{"type", "error"},
                                       {"error", ojson{{"type", type}, {"message", message}}}}));
}

reply sse_reply(std::vector<std::string> events, delivery how) {
  assert(how == delivery::stream || how == delivery::stream_then_cut);
  reply r;
  r.how = how;
  r.content_type = "text/event-stream";
  r.headers.emplace_back("cache-control", "no-cache");
  r.events = std::move(events);
  return r;
}

std::string sse_event(std::string_view name, const ojson& data) {
  std::string out = "event: ";
  out.append(name).append("\ndata: ").append(dump(data)).append("\n\n");
  return out;
}

/// RFC 3339 time `ahead_s` seconds from now, as the rate-limit reset headers carry.
std::string rfc3339_in(std::uint64_t ahead_s) {
  const std::time_t at = std::time(nullptr) + static_cast<std::time_t>(ahead_s);
  std::tm utc{};
  gmtime_r(&at, &utc);
  char text[32];
  const std::size_t n = std::strftime(text, sizeof text, "%Y-%m-%dT%H:%M:%SZ", &utc);
  return std::string(text, n);
}

/// What the mock says to a model call: decided from the request alone, so a
/// replayed request gets the same answer (only the ids, named after the
/// request's number, differ).
struct answer {
  std::uint64_t n = 0;  ///< the request's number
  std::string model;
  std::string text;       ///< a text answer: T
  std::string tool_name;  ///< set instead for a tool call
  ojson tool_args;        ///< its input
  /// A scripted call's step, named in its id.
  std::optional<std::size_t> tool_step;
  token_usage usage;  ///< the cache's share is settled when the call is admitted

  bool is_tool_call() const { return !tool_name.empty(); }
};

/// The input of every tool call the mock makes.
const ojson& tool_input() {
  static const ojson input{{"path", "/tmp/x"}};
  return input;
}

void add_rate_limit_headers(reply& r, const answer& a) {
  const std::string reset = rfc3339_in(60);
  const auto remaining = [](std::uint64_t limit, std::uint64_t used) {
    return std::to_string(limit - std::min(limit, used));
  };
  r.headers.emplace_back("anthropic-ratelimit-requests-limit", std::to_string(requests_per_minute));
  r.headers.emplace_back("anthropic-ratelimit-requests-remaining",
                         remaining(requests_per_minute, 1));
  r.headers.emplace_back("anthropic-ratelimit-requests-reset", reset);
  r.headers.emplace_back("anthropic-ratelimit-input-tokens-limit",
                         std::to_string(input_tokens_per_minute));
  // Cache reads do not count against the input-token limit; writes do, as
  // the API documents for current models.
  r.headers.emplace_back("anthropic-ratelimit-input-tokens-remaining",
                         remaining(input_tokens_per_minute,
                                   a.usage.input_tokens + a.usage.cache_creation_input_tokens));
  r.headers.emplace_back("anthropic-ratelimit-input-tokens-reset", reset);
  r.headers.emplace_back("anthropic-ratelimit-output-tokens-limit",
                         std::to_string(output_tokens_per_minute));
  r.headers.emplace_back("anthropic-ratelimit-output-tokens-remaining",
                         remaining(output_tokens_per_minute, a.usage.output_tokens));
  r.headers.emplace_back("anthropic-ratelimit-output-tokens-reset", reset);
}

/// FNV-1a 64 of `text`, as 16 hex digits.
std::string fnv_digest(std::string_view text) {
  const std::uint64_t h = fnv_extend(fnv_offset_basis, text);
  char out[17];
  std::snprintf(out, sizeof out, "%016llx", static_cast<unsigned long long>(h));
  return out;
}

/// Like a model with a file-reading tool, the answer depends on the files
/// the question names: " [file PATH fnv:DIGEST]" for every absolute path in
/// it that is a readable file. Benchmarks compare the digest with the file
/// on disk to count stale answers.
std::string files_seen(std::string_view asked) {
  std::string out;
  for (size_t at = asked.find('/'); at != std::string_view::npos; at = asked.find('/', at)) {
    if (at > 0 && asked[at - 1] != ' ' && asked[at - 1] != '\n') {
      ++at;
      continue;
    }
    auto end = asked.find_first_of(" \n\t:?,;", at);
    end = end == std::string_view::npos ? asked.size() : end;
    const std::string path(asked.substr(at, end - at));
    at = end;
    std::error_code ec;
    if (!std::filesystem::is_regular_file(path, ec)) {
      continue;
    }
    std::ifstream in(path, std::ios::binary);
    std::stringstream content;
    content << in.rdbuf();
    out += " [file " + path + " fnv:" + fnv_digest(content.str()) + "]";
  }
  return out;
}

/// The step a scripted tool call answered, from its id ("toolu_mock_N_sK").
std::optional<std::size_t> step_of_call(const json& message) {
  const auto content = message.find("content");
  if (content == message.end() || !content->is_array()) {
    return std::nullopt;
  }
  for (const auto& block : *content) {
    const auto id = string_field(block, "id");
    const auto at = id.rfind("_s");
    if (string_field(block, "type") != "tool_use" || !id.starts_with("toolu_mock_") ||
        at == std::string::npos || at + 2 >= id.size()) {
      continue;
    }
    std::size_t step = 0;
    for (std::size_t i = at + 2; i < id.size(); ++i) {
      if (id[i] < '0' || id[i] > '9') {
        return std::nullopt;
      }
      step = step * 10 + static_cast<std::size_t>(id[i] - '0');
    }
    return step;
  }
  return std::nullopt;
}

/// The step of a scripted conversation this request is at, if it is one:
/// the first user message whose text has a line "mock-script: [...]"
/// carries the steps, and the assistant messages after it say which step is
/// due: one step each, except that a scripted tool call names its own step
/// in its id, so a conversation whose middle was compacted away goes on
/// where it was. Past the last step the answer is "mock script done".
std::optional<ojson> scripted_step(const json& messages) {
  constexpr std::string_view marker = "mock-script:";
  std::size_t answered = 0;
  std::optional<ojson> steps;
  for (const auto& message : messages) {
    if (steps) {
      if (string_field(message, "role") == "assistant") {
        const auto step = step_of_call(message);
        answered = step ? *step + 1 : answered + 1;
      }
      continue;
    }
    if (string_field(message, "role") != "user") {
      continue;
    }
    // Each text block on lines of its own: a block after the script's line
    // (a hook's added context) does not run into it.
    std::string text;
    if (const auto content = message.find("content"); content != message.end()) {
      for_each_text(*content, [&text](std::string_view t) {
        text += t;
        text += '\n';
      });
    }
    const auto at = text.find(marker);
    if (at == std::string::npos || (at > 0 && text[at - 1] != '\n')) {
      continue;
    }
    const auto end = text.find('\n', at);
    auto parsed = ojson::parse(
        text.substr(at + marker.size(), end == std::string::npos ? end : end - at - marker.size()),
        nullptr, false);
    steps = parsed.is_array() ? std::move(parsed)
                              : ojson::array({ojson{{"text", "mock script unreadable"}}});
  }
  if (!steps) {
    return std::nullopt;
  }
  if (answered < steps->size() && (*steps)[answered].is_object()) {
    auto step = (*steps)[answered];
    step["step"] = answered;
    return step;
  }
  return ojson{{"text", "mock script done"}};
}

/// A scripted step's `"fill": {FIELD: N}`: each named string field of the
/// call's input is filled up to N bytes (at most 1 MiB) with its own text
/// repeated, so a script can make large calls without spelling them out.
void fill_inputs(ojson& input, const ojson& step) {
  constexpr std::size_t fill_max = std::size_t{1} << 20;
  const auto fill = step.find("fill");
  if (fill == step.end() || !fill->is_object()) {
    return;
  }
  for (const auto& [field, size] : fill->items()) {
    const auto it = input.find(field);
    if (it == input.end() || !it->is_string() || it->get_ref<const std::string&>().empty() ||
        !size.is_number_unsigned()) {
      continue;
    }
    const auto want = std::min(fill_max, size.get<std::size_t>());
    const std::string seed = it->get<std::string>();
    std::string text = seed;
    while (text.size() < want) {
      text += seed;
    }
    text.resize(std::max(want, seed.size()));
    *it = std::move(text);
  }
}

/// The answer to a validated Messages request whose prompt is `plan`, before
/// the cache has its say.
answer message_answer(const json& body, std::uint64_t n, const prompt_plan& plan) {
  answer a;
  a.n = n;
  a.model = body.at("model").get<std::string>();
  a.usage.input_tokens = plan.input_tokens();
  if (auto step = scripted_step(body.at("messages"))) {
    if (const auto tool = step->find("tool"); tool != step->end() && tool->is_string()) {
      a.tool_name = tool->get<std::string>();
      a.tool_step = step->value("step", std::size_t{0});
      const auto input = step->find("input");
      a.tool_args = input != step->end() && input->is_object() ? *input : ojson::object();
      fill_inputs(a.tool_args, *step);
      a.usage.output_tokens = tokens_for_bytes(dump(a.tool_args).size());
      return a;
    }
    const auto text = step->find("text");
    a.text = text != step->end() && text->is_string() ? text->get<std::string>() : "mock step";
    a.usage.output_tokens = tokens_for_bytes(a.text.size());
    return a;
  }
  const std::string asked = last_user_text(body.at("messages"));
  const auto tools = body.find("tools");
  if (tools != body.end() && !tools->empty() && asked.find("use tool") != std::string::npos) {
    a.tool_name = tools->at(0).at("name").get<std::string>();
    a.tool_args = tool_input();
    a.usage.output_tokens = tokens_for_bytes(dump(tool_input()).size());
    return a;
  }
  a.text = "mock answer to: ";
  a.text += utf8_prefix(asked, echo_code_points_max);
  a.text += files_seen(asked);
  a.usage.output_tokens = tokens_for_bytes(a.text.size());
  return a;
}

/// `usage` as the API writes it; `output_tokens` so far (a stream's
/// message_start says 1).
ojson usage_json(const token_usage& usage, std::uint64_t output_tokens) {
  return ojson{{"input_tokens", usage.input_tokens},
               {"cache_creation_input_tokens", usage.cache_creation_input_tokens},
               {"cache_read_input_tokens", usage.cache_read_input_tokens},
               {"output_tokens", output_tokens}};
}

/// A Message object; `content` empty and no stop reason for message_start.
ojson message_json(const answer& a, ojson content, bool finished, std::uint64_t output_tokens) {
  const char* stop_reason = a.is_tool_call() ? "tool_use" : "end_turn";
  return ojson{{"id", "msg_mock_" + std::to_string(a.n)},
               {"type", "message"},
               {"role", "assistant"},
               {"model", a.model},
               {"content", std::move(content)},
               {"stop_reason", finished ? ojson(stop_reason) : ojson(nullptr)},
               {"stop_sequence", nullptr},
               {"usage", usage_json(a.usage, output_tokens)}};
}

/// The content block of an answer; a stream starts it with no text and input.
ojson content_block(const answer& a, bool streaming) {
  if (a.is_tool_call()) {
    return ojson{{"type", "tool_use"},
                 {"id", "toolu_mock_" + std::to_string(a.n) +
                            (a.tool_step ? "_s" + std::to_string(*a.tool_step) : std::string())},
                 {"name", a.tool_name},
                 {"input", streaming ? ojson::object() : a.tool_args}};
  }
  return ojson{{"type", "text"}, {"text", streaming ? std::string() : a.text}};
}

std::string message_body(const answer& a) {
  return dump(
      message_json(a, ojson::array({content_block(a, false)}), true, a.usage.output_tokens));
}

/// The full event sequence of a streamed answer, as the API sends it.
std::vector<std::string> message_events(const answer& a) {
  std::vector<std::string> events;
  events.push_back(sse_event(
      "message_start",
      ojson{{"type", "message_start"}, {"message", message_json(a, ojson::array(), false, 1)}}));
  events.push_back(sse_event("ping", ojson{{"type", "ping"}}));
  events.push_back(
      sse_event("content_block_start", ojson{{"type", "content_block_start"},
                                             {"index", 0},
                                             {"content_block", content_block(a, true)}}));
  const std::string input = a.is_tool_call() ? dump(a.tool_args) : std::string();
  // The deltas are most of a long answer's events: spelled out around the
  // piece (the bytes sse_event would make), not built as JSON objects each.
  const std::string delta_head =
      std::string(R"(event: content_block_delta)"
                  "\n"
                  R"(data: {"type":"content_block_delta","index":0,"delta":{"type":")") +
      (a.is_tool_call() ? R"(input_json_delta","partial_json":)" : R"(text_delta","text":)");
  const auto pieces = utf8_pieces(a.is_tool_call() ? input : a.text, stream_piece_bytes);
  events.reserve(events.size() + pieces.size() + 3);
  for (const auto piece : pieces) {
    events.push_back(delta_head + dump(ojson(piece)) + "}}\n\n");
  }
  events.push_back(
      sse_event("content_block_stop", ojson{{"type", "content_block_stop"}, {"index", 0}}));
  events.push_back(sse_event("message_delta",
                             ojson{{"type", "message_delta"},
                                   {"delta",
                                    {{"stop_reason", a.is_tool_call() ? "tool_use" : "end_turn"},
                                     {"stop_sequence", nullptr}}},
                                   {"usage", {{"output_tokens", a.usage.output_tokens}}}}));
  events.push_back(sse_event("message_stop", ojson{{"type", "message_stop"}}));
  return events;
}

/// The answer to a validated chat completion request.
answer chat_answer(const json& body, std::uint64_t n) {
  answer a;
  a.n = n;
  a.model = body.at("model").get<std::string>();
  a.usage.input_tokens = prompt_tokens(body);
  a.text = "mock chat answer to: ";
  a.text += utf8_prefix(last_user_text(body.at("messages")), echo_code_points_max);
  a.usage.output_tokens = tokens_for_bytes(a.text.size());
  return a;
}

std::string chat_body(const answer& a) {
  const auto created = std::chrono::duration_cast<std::chrono::seconds>(
                           std::chrono::system_clock::now().time_since_epoch())
                           .count();
  const ojson choice{{"index", 0},
                     {"message", {{"role", "assistant"}, {"content", a.text}}},
                     {"finish_reason", "stop"}};
  return dump(ojson{{"id", "chatcmpl-mock-" + std::to_string(a.n)},
                    {"object", "chat.completion"},
                    {"created", created},
                    {"model", a.model},
                    {"choices", ojson::array({choice})},
                    {"usage",
                     {{"prompt_tokens", a.usage.input_tokens},
                      {"completion_tokens", a.usage.output_tokens},
                      {"total_tokens", a.usage.input_tokens + a.usage.output_tokens}}}});
}

/// The events a broken stream still sends: everything up to the first delta.
std::vector<std::string> stream_prefix(const std::vector<std::string>& events) {
  constexpr std::size_t prefix_events = 4;  // message_start, ping, content_block_start, a delta
  assert(events.size() > prefix_events);
  return {events.begin(), events.begin() + prefix_events};
}

reply rate_limited(dialect d, std::uint64_t retry_after_s) {
  reply r = error_reply(d, 429, "rate_limit_error",
                        "This request would exceed your organization's rate limit of " +
                            std::to_string(requests_per_minute) + " requests per minute.");
  r.headers.emplace_back("retry-after", std::to_string(retry_after_s));
  r.headers.emplace_back("anthropic-ratelimit-requests-limit", std::to_string(requests_per_minute));
  r.headers.emplace_back("anthropic-ratelimit-requests-remaining", "0");
  r.headers.emplace_back("anthropic-ratelimit-requests-reset", rfc3339_in(retry_after_s));
  return r;
}

/// The reply a fault makes of a model call. `events` are what the call would
/// have streamed; empty when it did not ask to stream.
reply fault_reply(const fault& f, dialect d, const std::vector<std::string>& events) {
  assert(f.kind != fault_kind::slow && "a slow fault answers normally");
  switch (f.kind) {
    case fault_kind::rate_limit:
      return rate_limited(d, f.retry_after_s);
    case fault_kind::spend_limit:
      return error_reply(d, 429, "rate_limit_error",
                         "You have reached your specified API usage limits. You will regain "
                         "access on 2027-01-01 at 00:00 UTC.");
    case fault_kind::server_error:
      return error_reply(d, 500, "api_error", "Internal server error");
    case fault_kind::midstream_error: {
      if (events.empty()) {
        break;  // answered as overloaded
      }
      auto broken = stream_prefix(events);
      broken.push_back(sse_event(
          "error", ojson{{"type", "error"},
                         {"error", {{"type", "overloaded_error"}, {"message", "Overloaded"}}}}));
      return sse_reply(std::move(broken), delivery::stream);
    }
    case fault_kind::cut: {
      if (events.empty()) {
        reply r;
        r.how = delivery::drop;
        return r;
      }
      return sse_reply(stream_prefix(events), delivery::stream_then_cut);
    }
    case fault_kind::malformed:
      return json_reply(200, R"({"id": "msg_broken", "content": [)");
    case fault_kind::overloaded:
    case fault_kind::slow:
      break;
  }
  return error_reply(d, 529, "overloaded_error", "Overloaded");
}

// ---------------------------------------------------------------- request validation

/// Why `body[key]` is refused as a string, or "".
std::string string_error(const json& body, const char* key) {
  const auto it = body.find(key);
  if (it == body.end()) {
    return std::string(key) + ": Field required";
  }
  return it->is_string() ? std::string() : std::string(key) + ": Input should be a valid string";
}

/// Why a content value (string or list of typed blocks) is refused, or "".
std::string content_error(const json& content, const std::string& where) {
  if (content.is_string()) {
    return {};
  }
  if (!content.is_array()) {
    return where + ": Input should be a valid string or list";
  }
  for (std::size_t i = 0; i < content.size(); ++i) {
    const json& block = content[i];
    const std::string at = where + "." + std::to_string(i);
    if (!block.is_object() || !block.contains("type") || !block.at("type").is_string()) {
      return at + ".type: Field required";
    }
    const bool text_ok = block.contains("text") && block.at("text").is_string();
    if (block.at("type") == "text" && !text_ok) {
      return at + ".text: Input should be a valid string";
    }
  }
  return {};
}

/// Why the top-level fields of a Messages request are refused, or "".
std::string messages_fields_error(const json& body, bool max_tokens_required) {
  if (body.is_discarded()) {
    return "There was an error parsing the body of your request: it is not valid JSON";
  }
  if (!body.is_object()) {
    return "Input should be a valid dictionary";
  }
  if (auto why = string_error(body, "model"); !why.empty()) {
    return why;
  }
  if (max_tokens_required) {
    if (!body.contains("max_tokens")) {
      return "max_tokens: Field required";
    }
    const json& max_tokens = body.at("max_tokens");
    if (!max_tokens.is_number_integer() || max_tokens.get<std::int64_t>() < 1) {
      return "max_tokens: Input should be an integer greater than or equal to 1";
    }
  }
  if (body.contains("system")) {
    if (auto why = content_error(body.at("system"), "system"); !why.empty()) {
      return why;
    }
  }
  if (body.contains("stream") && !body.at("stream").is_boolean()) {
    return "stream: Input should be a valid boolean";
  }
  if (body.contains("tools")) {
    const json& tools = body.at("tools");
    if (!tools.is_array()) {
      return "tools: Input should be a valid list";
    }
    for (std::size_t i = 0; i < tools.size(); ++i) {
      if (string_field(tools[i], "name").empty()) {
        return "tools." + std::to_string(i) + ".name: Field required";
      }
    }
  }
  return {};
}

/// Why the messages list of a request is refused, or "".
std::string messages_list_error(const json& body, bool openai_roles) {
  if (!body.contains("messages")) {
    return "messages: Field required";
  }
  const json& messages = body.at("messages");
  if (!messages.is_array()) {
    return "messages: Input should be a valid list";
  }
  if (messages.empty()) {
    return "messages: at least one message is required";
  }
  for (std::size_t i = 0; i < messages.size(); ++i) {
    const std::string at = "messages." + std::to_string(i);
    const std::string_view role = string_field(messages[i], "role");
    const bool role_ok = openai_roles ? !role.empty() : (role == "user" || role == "assistant");
    if (!role_ok) {
      return at + ".role: Input should be 'user' or 'assistant'";
    }
    const auto content = messages[i].find("content");
    if (content == messages[i].end()) {
      if (openai_roles) {
        continue;  // an assistant turn with tool_calls has no content
      }
      return at + ".content: Field required";
    }
    if (openai_roles && content->is_null()) {
      continue;
    }
    if (auto why = content_error(*content, at + ".content"); !why.empty()) {
      return why;
    }
  }
  return {};
}

/// Why a Messages (or, without max_tokens, count_tokens) request body is
/// refused, in the API's words, or "" when it is acceptable.
std::string messages_body_error(const json& body, bool max_tokens_required) {
  if (auto why = messages_fields_error(body, max_tokens_required); !why.empty()) {
    return why;
  }
  return messages_list_error(body, false);
}

/// Why a chat completion request body is refused, or "".
std::string chat_request_error(const json& body) {
  if (body.is_discarded()) {
    return "We could not parse the JSON body of your request.";
  }
  if (!body.is_object()) {
    return "The request body must be a JSON object.";
  }
  if (auto why = string_error(body, "model"); !why.empty()) {
    return why;
  }
  if (body.contains("stream")) {
    const json& stream = body.at("stream");
    if (!stream.is_null() && !stream.is_boolean()) {
      return "stream: Input should be a valid boolean";
    }
    if (stream == true) {
      return "stream: this mock answers chat completions without streaming only";
    }
  }
  return messages_list_error(body, true);
}

}  // namespace

// ---------------------------------------------------------------- mock_api

/// Routing, and the state the endpoints share. Replies are built outside the
/// lock; only counting, taking a fault and the prompt cache hold it.
struct mock_api::impl {
  impl(milliseconds delay, std::uint64_t answer_bytes)
      : delay_(delay), answer_bytes_(answer_bytes) {}

  reply handle(const request_view& req) {
    const std::uint64_t n = next_request_.fetch_add(1, std::memory_order_relaxed);
    reply r;
    try {
      r = route(req, n);
    } catch (const std::exception& e) {
      // Validation runs first, so this is a bug; answer it rather than let it
      // escape into Asio and end the process.
      std::cerr << "troupe-mock-upstream: request " << n << " failed: " << e.what() << "\n";
      r = error_reply(dialect::anthropic, 500, "api_error",
                      "mock failure: " + std::string(e.what()));
    }
    stamp(r, n);
    return r;
  }

  void connection_opened() {
    const auto open = open_connections_.fetch_add(1, std::memory_order_relaxed) + 1;
    auto peak = peak_connections_.load(std::memory_order_relaxed);
    while (open > peak && !peak_connections_.compare_exchange_weak(peak, open)) {
    }
  }
  void connection_closed() { open_connections_.fetch_sub(1, std::memory_order_relaxed); }

  reply refuse_unparsed(reply r) {
    stamp(r, next_request_.fetch_add(1, std::memory_order_relaxed));
    return rejected(std::move(r));
  }

 private:
  reply route(const request_view& req, std::uint64_t n) {
    const bool post = req.method == "POST";
    const bool get = req.method == "GET";
    if (post && req.path == stats::messages_path) {
      return messages(req, n);
    }
    if (post && req.path == stats::count_tokens_path) {
      return count_tokens(req);
    }
    if (post && req.path == stats::chat_path) {
      return chat(req, n);
    }
    if (get && req.path == "/mock/stats") {
      return locked_json([this] {
        auto out = stats_.to_json();
        out["connections"] =
            ojson{{"open", open_connections_.load()}, {"peak", peak_connections_.load()}};
        return out;
      });
    }
    if (get && req.path == "/mock/faults") {
      return locked_json([this] { return faults_.to_json(); });
    }
    if (post && req.path == "/mock/faults") {
      return set_faults(req.body);
    }
    if (post && req.path == "/mock/reset") {
      return locked_json([this] {
        stats_ = stats{};
        faults_.clear();
        prompt_cache_.clear();
        peak_connections_.store(open_connections_.load());
        return ojson{{"reset", true}};
      });
    }
    return error_reply(dialect::anthropic, 404, "not_found_error", "Not found");
  }

  reply messages(const request_view& req, std::uint64_t n) {
    if (auto refused = header_error(req, true)) {
      return *refused;
    }
    const json body = json::parse(req.body, nullptr, false);
    if (auto why = messages_body_error(body, true); !why.empty()) {
      return rejected(error_reply(dialect::anthropic, 400, "invalid_request_error", why));
    }
    const prompt_plan plan = plan_prompt(body);
    answer a = message_answer(body, n, plan);
    pad_answer(a);
    const std::optional<fault> f = admit(stats::messages_path, a, &plan);
    // Built after admit, which settles the cache's share of the usage; a
    // faulted call leaves the cache alone, so its events show none.
    const bool streaming = body.contains("stream") && body.at("stream").get<bool>();
    std::vector<std::string> events = streaming ? message_events(a) : std::vector<std::string>{};
    reply normal =
        streaming ? sse_reply(events, delivery::stream) : json_reply(200, message_body(a));
    add_rate_limit_headers(normal, a);
    return deliver(f, dialect::anthropic, events, std::move(normal));
  }

  reply count_tokens(const request_view& req) {
    if (auto refused = header_error(req, false)) {
      return *refused;
    }
    const json body = json::parse(req.body, nullptr, false);
    if (auto why = messages_body_error(body, false); !why.empty()) {
      return rejected(error_reply(dialect::anthropic, 400, "invalid_request_error", why));
    }
    {
      const std::lock_guard lock(mutex_);
      stats_.counted();
    }
    return json_reply(200, dump(ojson{{"input_tokens", prompt_tokens(body)}}));
  }

  reply chat(const request_view& req, std::uint64_t n) {
    const json body = json::parse(req.body, nullptr, false);
    if (auto why = chat_request_error(body); !why.empty()) {
      return rejected(error_reply(dialect::openai, 400, "invalid_request_error", why));
    }
    answer a = chat_answer(body, n);
    // The chat endpoint knows no prompt caching: no plan.
    const std::optional<fault> f = admit(stats::chat_path, a, nullptr);
    return deliver(f, dialect::openai, {}, json_reply(200, chat_body(a)));
  }

  /// Takes the fault a model call meets. Unless it stops the call, settles
  /// the call's prompt cache (given a `plan`) into `a.usage` and counts the
  /// call. One lock for both, so concurrent calls meet the cache in one order.
  std::optional<fault> admit(std::string_view path, answer& a, const prompt_plan* plan) {
    const std::lock_guard lock(mutex_);
    std::optional<fault> f = faults_.take(a.model);
    if (f && f->kind != fault_kind::slow) {
      stats_.faulted();
      return f;
    }
    if (plan != nullptr) {
      settle_cache(*plan, a.model, prompt_cache_, prompt_cache::clock::now(), a.usage);
    }
    stats_.answered(path, a.model, a.usage);
    return f;
  }

  /// A model call's reply: the one fault `f` makes, or `normal`.
  reply deliver(const std::optional<fault>& f, dialect d, const std::vector<std::string>& events,
                reply normal) {
    reply r = (f && f->kind != fault_kind::slow) ? fault_reply(*f, d, events) : std::move(normal);
    r.delay = delay_;
    if (f && f->kind == fault_kind::slow) {
      r.delay += milliseconds(f->delay_ms);
      r.interval = milliseconds(f->interval_ms);
    }
    return r;
  }

  std::optional<reply> header_error(const request_view& req, bool version_required) {
    if (req.api_key.empty()) {
      return rejected(error_reply(dialect::anthropic, 401, "authentication_error",
                                  "x-api-key header is required"));
    }
    if (version_required && req.anthropic_version.empty()) {
      return rejected(error_reply(dialect::anthropic, 400, "invalid_request_error",
                                  "anthropic-version: header is required"));
    }
    return std::nullopt;
  }

  static void stamp(reply& r, std::uint64_t n) {
    r.headers.emplace_back("request-id", "req_mock_" + std::to_string(n));
    r.headers.emplace_back("x-mock-request", std::to_string(n));
  }

  reply rejected(reply r) {
    const std::lock_guard lock(mutex_);
    stats_.rejected();
    return r;
  }

  reply set_faults(std::string_view text) {
    const json body = json::parse(text, nullptr, false);
    const auto bad = [](std::string why) {
      return error_reply(dialect::anthropic, 400, "invalid_request_error", why);
    };
    if (!body.is_object() || !body.contains("faults") || !body.at("faults").is_array()) {
      return bad("expected {\"faults\": [...], \"mode\": \"queue\"|\"always\"}");
    }
    const std::string_view mode_name = string_field(body, "mode");
    if (body.contains("mode") && mode_name != "queue" && mode_name != "always") {
      return bad("mode: must be \"queue\" or \"always\"");
    }
    const json& list = body.at("faults");
    if (list.size() > faults_max) {
      return bad("faults: at most " + std::to_string(faults_max) + " per script");
    }
    std::vector<fault> faults(list.size());
    for (std::size_t i = 0; i < list.size(); ++i) {
      if (auto why = parse_fault(list[i], faults[i]); !why.empty()) {
        return bad("faults." + std::to_string(i) + ": " + why);
      }
    }
    const auto mode =
        mode_name == "always" ? fault_script::mode::always : fault_script::mode::queue;
    return locked_json([&] {
      faults_.set(std::move(faults), mode);
      return faults_.to_json();
    });
  }

  template <class Make>
  reply locked_json(const Make& make) {
    const std::lock_guard lock(mutex_);
    return json_reply(200, dump(make()));
  }

  /// A text answer shorter than --answer-bytes is filled up with its own
  /// text repeated (cut at a code point), and its output tokens follow.
  void pad_answer(answer& a) const {
    if (a.is_tool_call() || a.text.empty() || a.text.size() >= answer_bytes_) {
      return;
    }
    const std::string unit = " " + a.text;
    a.text.reserve(answer_bytes_);
    while (a.text.size() < answer_bytes_) {
      a.text += utf8_prefix(unit, answer_bytes_ - a.text.size());
    }
    a.usage.output_tokens = tokens_for_bytes(a.text.size());
  }

  const milliseconds delay_;          ///< --delay-ms: before every model call's reply
  const std::uint64_t answer_bytes_;  ///< --answer-bytes
  std::atomic<std::uint64_t> next_request_{1};
  std::atomic<std::size_t> open_connections_{0};
  std::atomic<std::size_t> peak_connections_{0};
  std::mutex mutex_;  ///< guards stats_, faults_ and prompt_cache_
  stats stats_;
  fault_script faults_;
  prompt_cache prompt_cache_;
};

mock_api::mock_api(milliseconds delay, std::uint64_t answer_bytes)
    : impl_(std::make_unique<impl>(delay, answer_bytes)) {}

mock_api::~mock_api() = default;

void mock_api::connection_opened() {
  impl_->connection_opened();
}

void mock_api::connection_closed() {
  impl_->connection_closed();
}

reply mock_api::handle(const request_view& req) {
  return impl_->handle(req);
}

reply mock_api::refuse_unparsed(unsigned status, std::string_view type, std::string_view message) {
  return impl_->refuse_unparsed(error_reply(dialect::anthropic, status, type, message));
}

}  // namespace troupe::mock
