#include "actors/llm/anthropic.hpp"

#include <openssl/evp.h>

#include <algorithm>
#include <array>
#include <cassert>
#include <cmath>
#include <iterator>
#include <limits>
#include <utility>

#include <nlohmann/json.hpp>

#include "runtime/text/utf8.hpp"

namespace troupe::llm {

using json = nlohmann::json;

namespace {

/// Every dump of JSON that may hold client or upstream strings: invalid
/// UTF-8 must not throw, it becomes U+FFFD.
std::string dump(const json& value) {
  return value.dump(-1, ' ', false, json::error_handler_t::replace);
}

const json* member(const json& object, const char* name) {
  if (!object.is_object()) {
    return nullptr;
  }
  const auto it = object.find(name);
  return it == object.end() ? nullptr : &*it;
}

/// Optional fields sent as null count as absent, as the API's SDKs do.
const json* optional_member(const json& object, const char* name) {
  const json* value = member(object, name);
  return value == nullptr || value->is_null() ? nullptr : value;
}

const std::string* string_member(const json& object, const char* name) {
  const json* value = member(object, name);
  return value != nullptr && value->is_string() ? value->get_ptr<const std::string*>() : nullptr;
}

/// A JSON integer, or a float without fraction (the API's lax parsing takes
/// 1024.0 for 1024); nullopt for anything else or out of range.
std::optional<std::int64_t> as_int64(const json& value) {
  if (value.is_number_integer() && !value.is_number_unsigned()) {
    return value.get<std::int64_t>();
  }
  if (value.is_number_unsigned()) {
    const auto u = value.get<std::uint64_t>();
    if (u > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max())) {
      return std::nullopt;
    }
    return static_cast<std::int64_t>(u);
  }
  if (value.is_number_float()) {
    const double d = value.get<double>();
    // 2^63 is exact as a double; anything at or above it does not fit.
    if (std::isfinite(d) && std::trunc(d) == d && d >= -9223372036854775808.0 &&
        d < 9223372036854775808.0) {
      return static_cast<std::int64_t>(d);
    }
  }
  return std::nullopt;
}

std::int64_t int_member_or_zero(const json& object, const char* name) {
  const json* value = member(object, name);
  if (value == nullptr) {
    return 0;
  }
  return as_int64(*value).value_or(0);
}

std::string sha256_hex(std::string_view bytes) {
  std::array<unsigned char, EVP_MAX_MD_SIZE> digest{};
  unsigned int size = 0;
  const int ok =
      EVP_Digest(bytes.data(), bytes.size(), digest.data(), &size, EVP_sha256(), nullptr);
  // Only an allocation failure inside OpenSSL gets here; no key is better
  // than a wrong one.
  assert(ok == 1 && size == 32);
  (void)ok;
  constexpr std::string_view hex = "0123456789abcdef";
  std::string out;
  out.reserve(std::size_t{2} * size);
  for (unsigned int i = 0; i < size; ++i) {
    out.push_back(hex[digest[i] >> 4]);
    out.push_back(hex[digest[i] & 0xf]);
  }
  return out;
}

// ---- validation ------------------------------------------------------------

error invalid(std::string message) {
  return make_error(errc::bad_request, std::move(message));
}

/// Checks an optional number in [0, 1] (temperature, top_p); fills `out`.
std::optional<error> check_unit_interval(const json& body, const char* name, double& out) {
  const json* value = optional_member(body, name);
  if (value == nullptr) {
    return std::nullopt;
  }
  const std::string field = name;
  if (!value->is_number()) {
    return invalid(field + ": Input should be a valid number");
  }
  out = value->get<double>();
  if (out < 0.0) {
    return invalid(field + ": Input should be greater than or equal to 0");
  }
  if (out > 1.0) {
    return invalid(field + ": Input should be less than or equal to 1");
  }
  return std::nullopt;
}

std::optional<error> check_content(const json& content, const std::string& prefix) {
  if (content.is_string()) {
    return std::nullopt;
  }
  if (!content.is_array()) {
    return invalid(prefix + ": Input should be a valid string or a list of content blocks");
  }
  for (std::size_t i = 0; i < content.size(); ++i) {
    const std::string block = prefix + "." + std::to_string(i);
    if (!content[i].is_object()) {
      return invalid(block + ": Input should be a valid dictionary");
    }
    if (string_member(content[i], "type") == nullptr) {
      return invalid(block + ".type: Field required");
    }
  }
  return std::nullopt;
}

std::optional<error> check_messages(const json& body) {
  const json* messages = member(body, "messages");
  if (messages == nullptr) {
    return invalid("messages: Field required");
  }
  if (!messages->is_array()) {
    return invalid("messages: Input should be a valid list");
  }
  if (messages->empty()) {
    return invalid("messages: at least one message is required");
  }
  for (std::size_t i = 0; i < messages->size(); ++i) {
    const json& message = (*messages)[i];
    const std::string prefix = "messages." + std::to_string(i);
    if (!message.is_object()) {
      return invalid(prefix + ": Input should be a valid dictionary");
    }
    const json* role = member(message, "role");
    if (role == nullptr) {
      return invalid(prefix + ".role: Field required");
    }
    if (*role != "user" && *role != "assistant") {
      return invalid(prefix + ".role: Input should be 'user' or 'assistant'");
    }
    const json* content = member(message, "content");
    if (content == nullptr) {
      return invalid(prefix + ".content: Field required");
    }
    if (auto err = check_content(*content, prefix + ".content")) {
      return err;
    }
  }
  return std::nullopt;
}

std::optional<error> check_max_tokens(const json& body, std::int64_t& out) {
  const json* value = member(body, "max_tokens");
  if (value == nullptr) {
    return invalid("max_tokens: Field required");
  }
  if (value->is_number_float() && std::isfinite(value->get<double>()) &&
      std::trunc(value->get<double>()) != value->get<double>()) {
    return invalid(
        "max_tokens: Input should be a valid integer, "
        "got a number with a fractional part");
  }
  const auto tokens = as_int64(*value);
  if (!tokens) {
    return invalid("max_tokens: Input should be a valid integer");
  }
  if (*tokens < 1) {
    return invalid("max_tokens: Input should be greater than or equal to 1");
  }
  out = *tokens;
  return std::nullopt;
}

/// The optional fields whose type the API checks before anything runs.
std::optional<error> check_options(const json& body, request_info& info) {
  if (const json* stream = optional_member(body, "stream")) {
    if (!stream->is_boolean()) {
      return invalid("stream: Input should be a valid boolean");
    }
    info.stream = stream->get<bool>();
  }
  if (auto err = check_unit_interval(body, "temperature", info.temperature)) {
    return err;
  }
  double top_p = 0.0;
  if (auto err = check_unit_interval(body, "top_p", top_p)) {
    return err;
  }
  if (const json* top_k = optional_member(body, "top_k")) {
    const auto k = as_int64(*top_k);
    if (!k) {
      return invalid("top_k: Input should be a valid integer");
    }
    if (*k < 0) {
      return invalid("top_k: Input should be greater than or equal to 0");
    }
  }
  if (const json* system = optional_member(body, "system")) {
    if (auto err = check_content(*system, "system")) {
      return err;
    }
  }
  if (const json* stop = optional_member(body, "stop_sequences")) {
    if (!stop->is_array()) {
      return invalid("stop_sequences: Input should be a valid list");
    }
    for (std::size_t i = 0; i < stop->size(); ++i) {
      if (!(*stop)[i].is_string()) {
        return invalid("stop_sequences." + std::to_string(i) + ": Input should be a valid string");
      }
    }
  }
  return std::nullopt;
}

// ---- canonical form ---------------------------------------------------------

/// Why a bound: requests come from clients and recursion depth is stack.
/// Real content nests at most a few levels (tool_result > content > block).
constexpr int strip_depth_max = 32;

/// Drops prompt-caching markers from a content block and the blocks nested
/// in it. Tool inputs are conversation data, not markers: a field named
/// cache_control inside one is part of the question and stays.
void strip_cache_control(json& node, int depth) {
  if (depth > strip_depth_max) {
    return;
  }
  if (node.is_array()) {
    for (auto& child : node) {
      strip_cache_control(child, depth + 1);
    }
    return;
  }
  if (!node.is_object()) {
    return;
  }
  node.erase("cache_control");
  for (auto& item : node.items()) {
    if (item.key() != "input") {
      strip_cache_control(item.value(), depth + 1);
    }
  }
}

/// The API documents a string `content`/`system` as shorthand for one text
/// block; canonicalise to blocks so both spellings share a key.
void content_as_blocks(json& content) {
  if (content.is_string()) {
    json text = std::move(content);
    content = json::array({json{{"type", "text"}, {"text", std::move(text)}}});
  }
}

void normalise_number(json& value) {
  if (value.is_number_float()) {
    if (const auto i = as_int64(value)) {
      value = *i;
    }
  }
}

}  // namespace

// ---- validation, keys, paths, usage ----------------------------------------

namespace {

error too_many(const char* what, std::size_t count, std::size_t max) {
  return make_error(errc::too_large, std::string(what) + ": " + std::to_string(count) +
                                         " exceeds the gateway's limit of " + std::to_string(max));
}

std::optional<error> check_counts(const json& body, const request_limits& limits) {
  const json* messages = member(body, "messages");
  if (messages != nullptr && messages->is_array()) {
    if (messages->size() > limits.messages_max) {
      return too_many("messages", messages->size(), limits.messages_max);
    }
    std::size_t blocks = 0;
    for (const json& message : *messages) {
      const json* content = member(message, "content");
      blocks += content != nullptr && content->is_array() ? content->size() : 1;
    }
    if (const json* system = member(body, "system"); system != nullptr && system->is_array()) {
      blocks += system->size();
    }
    if (blocks > limits.blocks_max) {
      return too_many("content blocks", blocks, limits.blocks_max);
    }
  }
  const json* tools = member(body, "tools");
  if (tools != nullptr && tools->is_array() && tools->size() > limits.tools_max) {
    return too_many("tools", tools->size(), limits.tools_max);
  }
  return std::nullopt;
}

}  // namespace

expected<request_info> validate_request(const json& body, const request_limits& limits) {
  if (!body.is_object()) {
    return invalid("request body must be a JSON object");
  }
  if (auto err = check_counts(body, limits)) {
    return std::move(*err);
  }
  request_info info;
  const json* model = member(body, "model");
  if (model == nullptr) {
    return invalid("model: Field required");
  }
  if (!model->is_string()) {
    return invalid("model: Input should be a valid string");
  }
  info.model = model->get<std::string>();
  if (auto err = check_max_tokens(body, info.max_tokens)) {
    return std::move(*err);
  }
  if (auto err = check_messages(body)) {
    return std::move(*err);
  }
  if (auto err = check_options(body, info)) {
    return std::move(*err);
  }
  return info;
}

json canonical_request(const json& body) {
  json c = body;
  if (!c.is_object()) {
    return c;
  }
  // None of these changes the answer: delivery mode, client bookkeeping,
  // capacity tier, and a request-level prompt-caching marker.
  for (const char* name : {"stream", "metadata", "service_tier", "cache_control"}) {
    c.erase(name);
  }
  // An optional field sent as null is the field left out.
  for (auto it = c.begin(); it != c.end();) {
    it = it->is_null() ? c.erase(it) : std::next(it);
  }
  // Only top-level numbers (max_tokens, temperature, top_p, top_k) and the
  // thinking budget: numbers inside messages or tool schemas are text the
  // model reads, where "1.0" and "1" may differ.
  for (auto& item : c.items()) {
    normalise_number(item.value());
  }
  if (auto it = c.find("thinking"); it != c.end() && it->is_object()) {
    for (auto& item : it->items()) {
      normalise_number(item.value());
    }
  }
  if (auto it = c.find("system"); it != c.end()) {
    content_as_blocks(*it);
    strip_cache_control(*it, 0);
  }
  if (auto it = c.find("messages"); it != c.end() && it->is_array()) {
    for (auto& message : *it) {
      if (auto content = message.find("content"); message.is_object() && content != message.end()) {
        content_as_blocks(*content);
        strip_cache_control(*content, 0);
      }
    }
  }
  // A tool definition carries its marker at the top; its input_schema is
  // the tool's contract and may legitimately name a property cache_control.
  if (auto it = c.find("tools"); it != c.end() && it->is_array()) {
    for (auto& tool : *it) {
      if (tool.is_object()) {
        tool.erase("cache_control");
      }
    }
  }
  return c;
}

std::string canonical_key(const json& body) {
  return "llm:" + sha256_hex(dump(canonical_request(body)));
}

std::vector<std::string> referenced_paths(const json& body) {
  static constexpr std::array<const char*, 4> path_fields{"path", "file_path", "filename",
                                                          "notebook_path"};
  std::vector<std::string> paths;
  const json* messages = member(body, "messages");
  if (messages == nullptr || !messages->is_array()) {
    return paths;
  }
  for (const json& message : *messages) {
    const json* content = member(message, "content");
    if (content == nullptr || !content->is_array()) {
      continue;
    }
    for (const json& block : *content) {
      const std::string* type = string_member(block, "type");
      const json* input = member(block, "input");
      if (type == nullptr || *type != "tool_use" || input == nullptr) {
        continue;
      }
      for (const char* field : path_fields) {
        const std::string* path = string_member(*input, field);
        if (path != nullptr && !path->empty() && path->front() == '/') {
          paths.push_back(*path);
        }
      }
    }
  }
  std::sort(paths.begin(), paths.end());
  paths.erase(std::unique(paths.begin(), paths.end()), paths.end());
  return paths;
}

usage usage_of(const json& message) {
  usage u;
  const json* counts = member(message, "usage");
  if (counts == nullptr) {
    return u;
  }
  u.input_tokens = int_member_or_zero(*counts, "input_tokens");
  u.output_tokens = int_member_or_zero(*counts, "output_tokens");
  u.cache_creation_input_tokens = int_member_or_zero(*counts, "cache_creation_input_tokens");
  u.cache_read_input_tokens = int_member_or_zero(*counts, "cache_read_input_tokens");
  return u;
}

// ---- stream assembly --------------------------------------------------------

struct stream_assembler::state {
  state(std::size_t bytes_max, bool keep) : stream_bytes_max(bytes_max), keep_content(keep) {}

  std::size_t stream_bytes_max;
  bool keep_content;
  std::size_t stream_bytes = 0;
  /// Null until message_start.
  json message;
  /// input_json_delta fragments per content index, parsed at the block's stop.
  std::vector<std::string> partial_json;
  std::optional<json> error;
  bool stopped = false;

  void fail(std::string why) {
    error = json{{"type", "api_error"}, {"message", "malformed stream event: " + std::move(why)}};
  }

  void on_event(std::string_view type, json& data);
  bool on_plain_delta(std::size_t index, bool text, std::string&& piece);
  void on_message_start(json& data);
  json* block_at(const json& data, std::size_t& index);
  void on_block_start(json& data);
  void on_block_delta(const json& data);
  void on_block_stop(const json& data);
  void on_message_delta(const json& data);
  void on_error(const json& data);
};

void stream_assembler::state::on_event(std::string_view type, json& data) {
  if (type == "ping") {
    return;
  }
  if (type == "error") {
    on_error(data);
    return;
  }
  if (type == "message_start") {
    on_message_start(data);
    return;
  }
  if (message.is_null()) {
    // The API may add event types; only known ones need a message to land in.
    if (type.substr(0, 8) == "content_" || type.substr(0, 8) == "message_") {
      fail(std::string(type) + " before message_start");
    }
    return;
  }
  if (type == "content_block_start") {
    on_block_start(data);
  } else if (type == "content_block_delta") {
    on_block_delta(data);
  } else if (type == "content_block_stop") {
    on_block_stop(data);
  } else if (type == "message_delta") {
    on_message_delta(data);
  } else if (type == "message_stop") {
    stopped = true;
  }
}

/// A text or input_json delta recognised without a JSON tree (see
/// plain_delta below). False, having changed nothing, for anything the
/// general path must judge (and report).
bool stream_assembler::state::on_plain_delta(std::size_t index, bool text, std::string&& piece) {
  if (message.is_null()) {
    return false;
  }
  auto content = message.find("content");
  if (content == message.end() || !content->is_array() || index >= content->size()) {
    return false;
  }
  if (!text) {
    partial_json[index] += piece;
    return true;
  }
  json& block = (*content)[index];
  if (!block.is_object()) {
    return false;
  }
  auto target = block.find("text");
  if (target == block.end()) {
    block["text"] = std::move(piece);
    return true;
  }
  if (target->is_null()) {
    *target = std::move(piece);
    return true;
  }
  if (!target->is_string()) {
    return false;
  }
  target->get_ref<std::string&>() += piece;
  return true;
}

void stream_assembler::state::on_message_start(json& data) {
  auto it = data.find("message");
  if (it == data.end() || !it->is_object()) {
    fail("message_start without a message object");
    return;
  }
  if (!message.is_null()) {
    fail("second message_start");
    return;
  }
  message = std::move(*it);
  auto content = message.find("content");
  if (content == message.end() || !content->is_array()) {
    message["content"] = json::array();
  }
  partial_json.assign(message["content"].size(), std::string());
}

json* stream_assembler::state::block_at(const json& data, std::size_t& index) {
  const json* raw = member(data, "index");
  // A plain value, not an optional: GCC at -O1 (the TSan build) takes the
  // optional's payload for uninitialized.
  const int64_t i = raw == nullptr ? -1 : as_int64(*raw).value_or(-1);
  json& content = message["content"];
  if (i < 0 || static_cast<std::uint64_t>(i) >= content.size()) {
    fail("content block index missing or out of range");
    return nullptr;
  }
  index = static_cast<std::size_t>(i);
  assert(partial_json.size() == content.size());
  return &content[index];
}

void stream_assembler::state::on_block_start(json& data) {
  const json* raw = member(data, "index");
  const int64_t i = raw == nullptr ? -1 : as_int64(*raw).value_or(-1);
  auto block = data.find("content_block");
  json& content = message["content"];
  // Blocks arrive in order; any other index means a lost or repeated event.
  if (i < 0 || static_cast<std::uint64_t>(i) != content.size()) {
    fail("content_block_start out of order");
    return;
  }
  if (block == data.end() || !block->is_object()) {
    fail("content_block_start without a content_block object");
    return;
  }
  content.push_back(std::move(*block));
  partial_json.emplace_back();
}

/// Appends `piece` to the string field `name` of `block`, creating it.
bool append_to(json& block, const char* name, const json* piece) {
  if (piece == nullptr || !piece->is_string()) {
    return false;
  }
  json& target = block[name];
  if (target.is_null()) {
    target = "";
  }
  if (!target.is_string()) {
    return false;
  }
  target.get_ref<std::string&>() += piece->get_ref<const std::string&>();
  return true;
}

void stream_assembler::state::on_block_delta(const json& data) {
  std::size_t index = 0;
  json* block = block_at(data, index);
  const json* delta = member(data, "delta");
  const std::string* type = delta == nullptr ? nullptr : string_member(*delta, "type");
  if (block == nullptr) {
    return;
  }
  if (type == nullptr) {
    fail("content_block_delta without a delta type");
    return;
  }
  bool ok = true;
  if (*type == "text_delta") {
    ok = append_to(*block, "text", member(*delta, "text"));
  } else if (*type == "thinking_delta") {
    ok = append_to(*block, "thinking", member(*delta, "thinking"));
  } else if (*type == "input_json_delta") {
    const std::string* piece = string_member(*delta, "partial_json");
    ok = piece != nullptr;
    if (ok) {
      partial_json[index] += *piece;
    }
  } else if (*type == "signature_delta") {
    const json* signature = member(*delta, "signature");
    ok = signature != nullptr && signature->is_string();
    if (ok) {
      (*block)["signature"] = *signature;
    }
  } else if (*type == "citations_delta") {
    const json* citation = member(*delta, "citation");
    json& citations = (*block)["citations"];
    ok = citation != nullptr && (citations.is_null() || citations.is_array());
    if (ok) {
      citations.push_back(*citation);
    }
  }
  if (!ok) {
    fail(*type + " with a missing or mistyped field");
  }
}

void stream_assembler::state::on_block_stop(const json& data) {
  std::size_t index = 0;
  json* block = block_at(data, index);
  if (block == nullptr) {
    return;
  }
  std::string& partial = partial_json[index];
  if (partial.empty()) {
    // A tool called without arguments streams no fragment at all.
    auto input = block->find("input");
    if (input != block->end() && !input->is_object()) {
      *input = json::object();
    }
    return;
  }
  json input = json::parse(partial, nullptr, false);
  if (input.is_discarded()) {
    fail("content block " + std::to_string(index) + ": input_json_delta is not valid JSON");
    return;
  }
  (*block)["input"] = std::move(input);
  partial = std::string();
}

void stream_assembler::state::on_message_delta(const json& data) {
  const json* delta = member(data, "delta");
  if (delta != nullptr && delta->is_object()) {
    // stop_reason, stop_sequence and whatever top-level field the API adds
    // later; never the content being assembled nor the message's identity.
    for (const auto& item : delta->items()) {
      const std::string& key = item.key();
      if (key != "content" && key != "type" && key != "id" && key != "role") {
        message[item.key()] = item.value();
      }
    }
  }
  // Totals in message_delta are cumulative and win; a null or absent count
  // keeps message_start's.
  const json* counts = member(data, "usage");
  if (counts != nullptr && counts->is_object()) {
    json& target = message["usage"];
    if (!target.is_object()) {
      target = json::object();
    }
    for (const auto& item : counts->items()) {
      if (!item.value().is_null()) {
        target[item.key()] = item.value();
      }
    }
  }
}

void stream_assembler::state::on_error(const json& data) {
  const json* inner = member(data, "error");
  if (inner != nullptr && string_member(*inner, "type") != nullptr &&
      string_member(*inner, "message") != nullptr) {
    error = json{{"type", (*inner)["type"]}, {"message", (*inner)["message"]}};
    return;
  }
  error = json{{"type", "api_error"}, {"message", "stream error event without details"}};
}

stream_assembler::stream_assembler(std::size_t stream_bytes_max, bool keep_content)
    : state_(std::make_unique<state>(stream_bytes_max, keep_content)) {}
stream_assembler::~stream_assembler() = default;
stream_assembler::stream_assembler(stream_assembler&&) noexcept = default;
stream_assembler& stream_assembler::operator=(stream_assembler&&) noexcept = default;

namespace {

/// Most of a long stream is deltas of text or tool input, which the API
/// writes in one fixed form: {"type":"content_block_delta","index":N,
/// "delta":{"type":"text_delta","text":"..."}} (or input_json_delta with
/// partial_json). Those are recognised here by their bytes, and only the
/// string is decoded: taken as it is when it holds no escape or control
/// character and is valid UTF-8, else by nlohmann. A tree per event costs
/// about 3.5 us (0.25 s of the upstream thread for a 1 MiB answer).
/// Anything else, or anything unexpected, returns nullopt and takes the
/// general path.
struct plain_delta {
  std::size_t index = 0;
  bool text = true;
  std::string piece;
};

std::optional<plain_delta> match_plain_delta(std::string_view data) {
  constexpr std::string_view head = R"({"type":"content_block_delta","index":)";
  constexpr std::string_view delta_head = R"(,"delta":{"type":")";
  constexpr std::string_view text_kind = R"(text_delta","text":)";
  constexpr std::string_view input_kind = R"(input_json_delta","partial_json":)";
  constexpr std::string_view tail = "}}";
  constexpr std::size_t index_digits_max = 9;
  if (!data.starts_with(head)) {
    return std::nullopt;
  }
  data.remove_prefix(head.size());
  plain_delta out;
  std::size_t digits = 0;
  while (digits < data.size() && digits <= index_digits_max && data[digits] >= '0' &&
         data[digits] <= '9') {
    out.index = out.index * 10 + static_cast<std::size_t>(data[digits] - '0');
    ++digits;
  }
  if (digits == 0 || digits > index_digits_max || (digits > 1 && data[0] == '0')) {
    return std::nullopt;
  }
  data.remove_prefix(digits);
  if (!data.starts_with(delta_head)) {
    return std::nullopt;
  }
  data.remove_prefix(delta_head.size());
  if (data.starts_with(text_kind)) {
    data.remove_prefix(text_kind.size());
  } else if (data.starts_with(input_kind)) {
    out.text = false;
    data.remove_prefix(input_kind.size());
  } else {
    return std::nullopt;
  }
  // The string literal: up to the first quote no backslash escapes.
  if (data.empty() || data.front() != '"') {
    return std::nullopt;
  }
  std::size_t end = 1;
  bool plain = true;  // no escape and no control character: the bytes are the text
  while (end < data.size() && data[end] != '"') {
    plain = plain && data[end] != '\\' && static_cast<unsigned char>(data[end]) >= 0x20;
    end += data[end] == '\\' ? 2 : 1;
  }
  if (end >= data.size() || data.substr(end + 1) != tail) {
    return std::nullopt;
  }
  const std::string_view inside = data.substr(1, end - 1);
  if (plain && valid_utf8(inside)) {
    out.piece.assign(inside);
    return out;
  }
  json piece = json::parse(data.substr(0, end + 1), nullptr, false);
  if (!piece.is_string()) {
    return std::nullopt;
  }
  out.piece = std::move(piece.get_ref<std::string&>());
  return out;
}

bool is_known_event(std::string_view name) {
  static constexpr std::array<std::string_view, 7> known{"message_start",
                                                         "content_block_start",
                                                         "content_block_delta",
                                                         "content_block_stop",
                                                         "message_delta",
                                                         "message_stop",
                                                         "error"};
  return std::find(known.begin(), known.end(), name) != known.end();
}

}  // namespace

void stream_assembler::add(const sse_event& e) {
  assert(state_ != nullptr);  // used after being moved from
  state& s = *state_;
  if (s.error || s.stopped) {
    return;
  }
  // data_bytes is what a parser that skipped the data saw; an event built
  // by hand carries its data only.
  s.stream_bytes += std::max(e.data_bytes, e.data.size());
  if (s.stream_bytes > s.stream_bytes_max) {
    s.error = json{{"type", "api_error"},
                   {"message", "stream exceeds " + std::to_string(s.stream_bytes_max) + " bytes"}};
    return;
  }
  const std::string_view event = e.event;
  if (event == "ping") {
    return;
  }
  if (event == "content_block_delta") {
    if (!s.keep_content) {
      return;
    }
    if (auto plain = match_plain_delta(e.data);
        plain && s.on_plain_delta(plain->index, plain->text, std::move(plain->piece))) {
      return;
    }
  }
  json data = json::parse(e.data, nullptr, false);
  if (data.is_discarded() || !data.is_object()) {
    // The API may add event types; an unknown one is skipped whatever it holds.
    if (event.empty() || is_known_event(event)) {
      s.fail((event.empty() ? std::string("event") : e.event) + " data is not a JSON object");
    }
    return;
  }
  const std::string* named = string_member(data, "type");
  const std::string_view type = !event.empty()     ? event
                                : named != nullptr ? std::string_view(*named)
                                                   : std::string_view();
  try {
    s.on_event(type, data);
  } catch (const json::exception& ex) {
    // nlohmann reports misuse by throwing; the handlers check types first,
    // so this is a last line that keeps the no-throw promise.
    s.fail(ex.what());
  }
}

bool stream_assembler::complete() const {
  return state_->stopped && !state_->error;
}

json stream_assembler::message() const {
  return state_->message;
}

llm::usage stream_assembler::usage() const {
  return usage_of(state_->message);
}

std::optional<json> stream_assembler::error() const {
  return state_->error;
}

// ---- synthesised stream -------------------------------------------------------

namespace {

void add_event(std::string& out, std::string_view name, const json& data) {
  out += sse_format(name, dump(data));
}

json block_event(const char* type, std::size_t index) {
  return json{{"type", type}, {"index", index}};
}

json text_delta(std::size_t index, const char* delta_type, const char* field, json value) {
  json e = block_event("content_block_delta", index);
  e["delta"] = json{{"type", delta_type}, {field, std::move(value)}};
  return e;
}

/// content_block_start, the deltas that rebuild `block`, content_block_stop.
void add_block_events(std::string& out, const json& block, std::size_t index) {
  json start = block;
  std::vector<json> deltas;
  const std::string* type = string_member(block, "type");
  if (type != nullptr && *type == "text" && block.contains("text")) {
    start["text"] = "";
    deltas.push_back(text_delta(index, "text_delta", "text", block["text"]));
    if (const json* citations = member(block, "citations"); citations && citations->is_array()) {
      start["citations"] = json::array();
      for (const json& citation : *citations) {
        deltas.push_back(text_delta(index, "citations_delta", "citation", citation));
      }
    }
  } else if (type != nullptr && *type == "thinking" && block.contains("thinking")) {
    start["thinking"] = "";
    start.erase("signature");
    deltas.push_back(text_delta(index, "thinking_delta", "thinking", block["thinking"]));
    if (const json* signature = member(block, "signature")) {
      deltas.push_back(text_delta(index, "signature_delta", "signature", *signature));
    }
  } else if (const json* input = member(block, "input"); input && input->is_object()) {
    start["input"] = json::object();
    deltas.push_back(text_delta(index, "input_json_delta", "partial_json", dump(*input)));
  }
  json start_event = block_event("content_block_start", index);
  start_event["content_block"] = std::move(start);
  add_event(out, "content_block_start", start_event);
  for (const json& delta : deltas) {
    add_event(out, "content_block_delta", delta);
  }
  add_event(out, "content_block_stop", block_event("content_block_stop", index));
}

json member_or_null(const json& object, const char* name) {
  const json* value = member(object, name);
  return value == nullptr ? json(nullptr) : *value;
}

}  // namespace

std::string events_for_message(const json& message) {
  std::string out;
  json start = message.is_object() ? message : json::object();
  start["content"] = json::array();
  start["stop_reason"] = nullptr;
  start["stop_sequence"] = nullptr;
  json& start_usage = start["usage"];
  if (!start_usage.is_object()) {
    start_usage = json::object();
  }
  start_usage["output_tokens"] = 1;
  add_event(out, "message_start", json{{"type", "message_start"}, {"message", std::move(start)}});
  add_event(out, "ping", json{{"type", "ping"}});

  const json* content = member(message, "content");
  if (content != nullptr && content->is_array()) {
    for (std::size_t i = 0; i < content->size(); ++i) {
      add_block_events(out, (*content)[i], i);
    }
  }
  json delta{{"stop_reason", member_or_null(message, "stop_reason")},
             {"stop_sequence", member_or_null(message, "stop_sequence")}};
  const std::int64_t output_tokens = usage_of(message).output_tokens;
  add_event(out, "message_delta",
            json{{"type", "message_delta"},
                 {"delta", std::move(delta)},
                 {"usage", json{{"output_tokens", output_tokens}}}});
  add_event(out, "message_stop", json{{"type", "message_stop"}});
  return out;
}

// ---- OpenAI-compatible fallback --------------------------------------------------

namespace {

/// Why a bound: tool_result content may hold blocks, and recursion depth is
/// stack. Valid requests nest one level.
constexpr int text_depth_max = 4;

void collect_text(const json& content, std::vector<std::string>& parts, int depth) {
  if (content.is_string()) {
    parts.push_back(content.get<std::string>());
    return;
  }
  if (!content.is_array() || depth > text_depth_max) {
    return;
  }
  for (const json& block : content) {
    const std::string* type = string_member(block, "type");
    if (type == nullptr) {
      continue;
    }
    if (*type == "text") {
      if (const std::string* text = string_member(block, "text")) {
        parts.push_back(*text);
      }
    } else if (*type == "tool_result") {
      if (const json* inner = member(block, "content")) {
        collect_text(*inner, parts, depth + 1);
      }
    }
  }
}

/// The text of a string or block-list `content`, blocks joined with '\n'.
std::string text_of(const json& content) {
  std::vector<std::string> parts;
  collect_text(content, parts, 0);
  std::string out;
  for (std::size_t i = 0; i < parts.size(); ++i) {
    if (i > 0) {
      out.push_back('\n');
    }
    out += parts[i];
  }
  return out;
}

std::string_view stop_reason_of(const json& choice) {
  const std::string* finish = string_member(choice, "finish_reason");
  return finish != nullptr && *finish == "length" ? "max_tokens" : "end_turn";
}

}  // namespace

json to_openai_request(const json& anthropic_body, std::string_view model) {
  json messages = json::array();
  if (const json* system = optional_member(anthropic_body, "system")) {
    std::string text = text_of(*system);
    if (!text.empty()) {
      messages.push_back(json{{"role", "system"}, {"content", std::move(text)}});
    }
  }
  if (const json* source = member(anthropic_body, "messages"); source && source->is_array()) {
    for (const json& message : *source) {
      const std::string* role = string_member(message, "role");
      const json* content = member(message, "content");
      if (role == nullptr || content == nullptr) {
        continue;
      }
      messages.push_back(json{{"role", *role}, {"content", text_of(*content)}});
    }
  }
  json out{{"model", model}, {"messages", std::move(messages)}, {"stream", false}};
  for (const char* name : {"max_tokens", "temperature", "top_p"}) {
    if (const json* value = optional_member(anthropic_body, name)) {
      out[name] = *value;
    }
  }
  if (const json* stop = optional_member(anthropic_body, "stop_sequences")) {
    out["stop"] = *stop;
  }
  return out;
}

expected<json> from_openai_response(const json& openai, std::string_view model) {
  const json* choices = member(openai, "choices");
  if (choices == nullptr || !choices->is_array() || choices->empty()) {
    return make_error(errc::bad_body, "upstream chat completion has no choices");
  }
  const json& choice = (*choices)[0];
  const json* message = member(choice, "message");
  if (message == nullptr || !message->is_object()) {
    return make_error(errc::bad_body, "upstream chat completion choice has no message");
  }
  // A null content (e.g. a tool call we did not ask for) reads as no text.
  const std::string* text = string_member(*message, "content");
  const std::string* upstream_id = string_member(openai, "id");
  std::string id = upstream_id != nullptr && !upstream_id->empty()
                       ? "msg_" + *upstream_id
                       : "msg_" + sha256_hex(dump(openai)).substr(0, 24);
  const json* counts = member(openai, "usage");
  const json no_counts = json::object();
  return json{
      {"id", std::move(id)},
      {"type", "message"},
      {"role", "assistant"},
      {"model", model},
      {"content",
       json::array({json{{"type", "text"}, {"text", text != nullptr ? *text : std::string()}}})},
      {"stop_reason", stop_reason_of(choice)},
      {"stop_sequence", nullptr},
      {"usage",
       json{{"input_tokens", int_member_or_zero(counts ? *counts : no_counts, "prompt_tokens")},
            {"output_tokens",
             int_member_or_zero(counts ? *counts : no_counts, "completion_tokens")}}},
  };
}

namespace {

bool has_cache_control(const json& node, int depth) {
  if (depth > 64) {
    return false;
  }
  if (node.is_object()) {
    if (node.contains("cache_control")) {
      return true;
    }
    for (const auto& item : node.items()) {
      if (has_cache_control(item.value(), depth + 1)) {
        return true;
      }
    }
  } else if (node.is_array()) {
    for (const auto& child : node) {
      if (has_cache_control(child, depth + 1)) {
        return true;
      }
    }
  }
  return false;
}

/// Bytes of prompt a content value adds: text as it stands, anything else
/// (tool calls and results with structure, images) as its JSON. Only an
/// estimate of size is needed, so tokens are taken as bytes / 4.
size_t prompt_bytes(const json& content) {
  if (content.is_string()) {
    return content.get_ref<const std::string&>().size();
  }
  size_t n = 0;
  if (content.is_array()) {
    for (const auto& block : content) {
      const std::string* text = string_member(block, "text");
      n += text != nullptr ? text->size() : dump(block).size();
    }
  }
  return n;
}

constexpr size_t bytes_per_token = 4;

/// The API refuses a breakpoint on these blocks, and on empty text.
bool can_mark(const json& block) {
  const std::string* type = string_member(block, "type");
  if (type == nullptr || *type == "thinking" || *type == "redacted_thinking") {
    return false;
  }
  const std::string* text = string_member(block, "text");
  return *type != "text" || (text != nullptr && !text->empty());
}

/// Marks the last block of a message's content (a string becomes one text
/// block); false when that block cannot carry a mark.
bool mark_last_block(json& content, const json& mark) {
  if (content.is_string()) {
    if (content.get_ref<const std::string&>().empty()) {
      return false;
    }
    json text = std::move(content);
    content = json::array({json{{"type", "text"}, {"text", std::move(text)}}});
  }
  if (!content.is_array() || content.empty() || !content.back().is_object() ||
      !can_mark(content.back())) {
    return false;
  }
  content.back()["cache_control"] = mark;
  return true;
}

}  // namespace

size_t min_cacheable_tokens(std::string_view model) {
  return model.find("haiku") != std::string_view::npos ? 2048 : 1024;
}

int add_cache_breakpoints(json& body, size_t min_tokens) {
  if (!body.is_object() || has_cache_control(body, 0)) {
    return 0;  // the client steers caching itself
  }
  const json mark = {{"type", "ephemeral"}};
  const size_t min_bytes = min_tokens * bytes_per_token;
  // The prompt is tools, then system, then the messages; a mark caches the
  // whole prefix before it, and the API ignores a prefix shorter than the
  // model's minimum, so each mark is placed only where the prefix so far
  // reaches it.
  size_t prefix = 0;
  int added = 0;
  if (auto tools = body.find("tools");
      tools != body.end() && tools->is_array() && !tools->empty() && tools->back().is_object()) {
    prefix += dump(*tools).size();
    if (prefix >= min_bytes) {
      tools->back()["cache_control"] = mark;
      ++added;
    }
  }
  if (auto system = body.find("system"); system != body.end() && !system->is_null()) {
    prefix += prompt_bytes(*system);
    if (prefix >= min_bytes && mark_last_block(*system, mark)) {
      ++added;
    }
  }
  auto messages = body.find("messages");
  if (messages == body.end() || !messages->is_array() || messages->size() < 2) {
    // One message is a question, not yet a conversation: marking it would
    // pay the cache write premium on text that no later call repeats.
    return added;
  }
  // A conversation grows at its end. A mark on its last message stores the
  // whole of it for the next turn; a mark on the user message before that
  // finds what the previous turn stored, however many blocks this turn
  // added (the API looks back only 20 blocks from a mark).
  std::vector<size_t> ends;  // prefix bytes at the end of each message
  ends.reserve(messages->size());
  for (const auto& message : *messages) {
    const json* content = member(message, "content");
    prefix += content != nullptr ? prompt_bytes(*content) : 0;
    ends.push_back(prefix);
  }
  const size_t last = messages->size() - 1;
  std::vector<size_t> targets{last};
  for (size_t i = last; i-- > 0;) {
    const std::string* role = string_member((*messages)[i], "role");
    if (role != nullptr && *role == "user") {
      targets.push_back(i);
      break;
    }
  }
  constexpr int marks_max = 4;  // the API's limit per request
  for (const size_t i : targets) {
    auto& message = (*messages)[i];
    if (added < marks_max && ends[i] >= min_bytes && message.is_object() &&
        message.contains("content") && mark_last_block(message["content"], mark)) {
      ++added;
    }
  }
  return added;
}

}  // namespace troupe::llm
