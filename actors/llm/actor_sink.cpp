#include "actors/llm/actor_sink.hpp"

#include <caf/send.hpp>

#include "runtime/protocol/codec.hpp"

namespace troupe::llm {

actor_sink::~actor_sink() {
  if (!done_.load(std::memory_order_acquire)) {
    send(http_msg::dropped_type, encode(empty_body{}));
  }
}

void actor_sink::send(const char* type, std::string body) {
  caf::anon_send(to_, std::string(type), std::move(body), uint64_t{0}, std::string{});
}

void actor_sink::reply(int status, http_headers headers, std::string body) {
  done_.store(true, std::memory_order_release);
  send(http_msg::reply_type,
       encode(http_msg::reply{status, http_msg::to_fields(std::move(headers)), std::move(body)}));
}

void actor_sink::begin_stream(int status, http_headers headers) {
  send(http_msg::head_type,
       encode(http_msg::head{status, http_msg::to_fields(std::move(headers))}));
}

void actor_sink::stream(std::string chunk) {
  send(http_msg::chunk_type, encode(http_msg::chunk{std::move(chunk)}));
}

void actor_sink::end_stream() {
  done_.store(true, std::memory_order_release);
  send(http_msg::end_type, encode(empty_body{}));
}

}  // namespace troupe::llm
