#include "actors/llm/requester.hpp"

#include <caf/send.hpp>

#include "runtime/protocol/codec.hpp"

namespace troupe::llm {

namespace {

void send(const caf::actor& to, const char* type, std::string body) {
  caf::anon_send(to, std::string(type), std::move(body), uint64_t{0});
}

}  // namespace

void send_reply(const caf::actor& to, int status, http_headers headers, std::string body) {
  send(to, http_msg::reply_type,
       encode(http_msg::reply{status, http_msg::to_fields(std::move(headers)), std::move(body)}));
}

void send_head(const caf::actor& to, int status, http_headers headers) {
  send(to, http_msg::head_type,
       encode(http_msg::head{status, http_msg::to_fields(std::move(headers))}));
}

void send_chunk(const caf::actor& to, std::string bytes) {
  send(to, http_msg::chunk_type, encode(http_msg::chunk{std::move(bytes)}));
}

void send_end(const caf::actor& to) {
  send(to, http_msg::end_type, encode(empty_body{}));
}

void send_dropped(const caf::actor& to) {
  send(to, http_msg::dropped_type, encode(empty_body{}));
}

}  // namespace troupe::llm
