#include "actors/llm/requester.hpp"

#include <caf/send.hpp>

#include "runtime/protocol/codec.hpp"

namespace troupe::llm {

namespace {

void send(const answer_to& to, const char* type, std::string body) {
  caf::anon_send(to.actor, std::string(type), std::move(body), to.correlation);
}

}  // namespace

void send_reply(const answer_to& to, int status, http_headers headers, std::string body) {
  send(to, http_msg::reply_type,
       encode(http_msg::reply{status, http_msg::to_fields(std::move(headers)), std::move(body)}));
}

void send_head(const answer_to& to, int status, http_headers headers) {
  send(to, http_msg::head_type,
       encode(http_msg::head{status, http_msg::to_fields(std::move(headers))}));
}

void send_chunk(const answer_to& to, std::string_view bytes) {
  send(to, http_msg::chunk_type, encode(http_msg::chunk_view{bytes}));
}

void send_packed_chunk(const answer_to& to, std::string packed) {
  send(to, http_msg::chunk_type, std::move(packed));
}

void send_end(const answer_to& to) {
  send(to, http_msg::end_type, encode(empty_body{}));
}

void send_dropped(const answer_to& to) {
  send(to, http_msg::dropped_type, encode(empty_body{}));
}

}  // namespace troupe::llm
