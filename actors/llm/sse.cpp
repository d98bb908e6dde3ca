#include "actors/llm/sse.hpp"

#include <cassert>
#include <cstring>
#include <utility>

namespace troupe::llm {

namespace {

/// Where the line starting at `pos` ends (its CR or LF), or npos. Two
/// memchr scans (LF, then CR before it): find_first_of with a two-byte set
/// calls memchr once per byte.
std::size_t line_end(std::string_view bytes, std::size_t pos) {
  const char* from = bytes.data() + pos;
  const std::size_t left = bytes.size() - pos;
  const auto* lf = static_cast<const char*>(std::memchr(from, '\n', left));
  const std::size_t before_lf = lf == nullptr ? left : static_cast<std::size_t>(lf - from);
  if (const auto* cr = static_cast<const char*>(std::memchr(from, '\r', before_lf))) {
    return pos + static_cast<std::size_t>(cr - from);
  }
  return lf == nullptr ? std::string_view::npos : pos + before_lf;
}

}  // namespace

sse_parser::sse_parser(std::size_t event_bytes_max) : event_bytes_max_(event_bytes_max) {
  assert(event_bytes_max_ > 0);
}

error sse_parser::fail() {
  failed_ = true;
  // The parser is dead from here on: give the memory back at once.
  line_ = std::string();
  event_ = std::string();
  data_ = std::string();
  out_ = sse_event{};
  return make_error(errc::too_large,
                    "server-sent event exceeds " + std::to_string(event_bytes_max_) + " bytes");
}

expected<std::size_t> sse_parser::feed(std::string_view bytes,
                                       const std::function<void(sse_event&&)>& on_event) {
  if (failed_) {
    return make_error(errc::too_large,
                      "server-sent event stream was abandoned after an "
                      "event exceeded its size limit");
  }
  std::size_t emitted = 0;
  std::size_t pos = 0;
  while (pos < bytes.size()) {
    if (line_.empty() && !skip_lf_ && event_.empty() && !has_data_) {
      if (const std::size_t taken = simple_event(bytes.substr(pos), on_event); taken > 0) {
        pos += taken;
        ++emitted;
        continue;
      }
    }
    if (skip_lf_) {
      skip_lf_ = false;
      if (bytes[pos] == '\n') {
        ++pos;
        continue;
      }
    }
    const std::size_t end = line_end(bytes, pos);
    if (end == std::string_view::npos) {
      line_.append(bytes.substr(pos));
      if (line_.size() + data_.size() + event_.size() > event_bytes_max_) {
        return fail();
      }
      break;
    }
    std::string_view line = bytes.substr(pos, end - pos);
    if (!line_.empty()) {
      line_.append(line);
      line = line_;
    }
    // Checked per line, not per slice, so the outcome does not depend on
    // where the stream was cut.
    if (line.size() + data_.size() + event_.size() > event_bytes_max_) {
      return fail();
    }
    pos = end + 1;
    if (bytes[end] == '\r') {
      if (pos == bytes.size()) {
        skip_lf_ = true;
      } else if (bytes[pos] == '\n') {
        ++pos;
      }
    }
    if (on_line(line, on_event)) {
      ++emitted;
    }
    line_.clear();
  }
  return emitted;
}

std::size_t sse_parser::simple_event(std::string_view rest,
                                     const std::function<void(sse_event&&)>& on_event) {
  constexpr std::string_view event_field = "event: ";
  constexpr std::string_view data_field = "data: ";
  if (!rest.starts_with(event_field)) {
    return 0;
  }
  const auto* name_end = static_cast<const char*>(
      std::memchr(rest.data() + event_field.size(), '\n', rest.size() - event_field.size()));
  if (name_end == nullptr) {
    return 0;
  }
  const std::size_t name_line = static_cast<std::size_t>(name_end - rest.data());
  if (rest[name_line - 1] == '\r') {
    return 0;  // "\r\n" endings: the line path reads them
  }
  const std::size_t data_from = name_line + 1 + data_field.size();
  if (rest.substr(name_line + 1, data_field.size()) != data_field) {
    return 0;
  }
  const auto* data_end =
      static_cast<const char*>(std::memchr(rest.data() + data_from, '\n', rest.size() - data_from));
  if (data_end == nullptr) {
    return 0;
  }
  const std::size_t data_line_end = static_cast<std::size_t>(data_end - rest.data());
  if (data_line_end + 1 >= rest.size() || rest[data_line_end + 1] != '\n' ||
      std::memchr(rest.data(), '\r', data_line_end) != nullptr) {
    return 0;
  }
  const std::string_view name = rest.substr(event_field.size(), name_line - event_field.size());
  const std::string_view data = rest.substr(data_from, data_line_end - data_from);
  // The limits the line-by-line path applies: on a breach it reports it.
  if (name_line > event_bytes_max_ ||
      data_line_end - (name_line + 1) + name.size() > event_bytes_max_) {
    return 0;
  }
  out_.event.assign(name);
  if (!skipped_.empty() && name == skipped_) {
    out_.data.clear();
  } else {
    out_.data.assign(data);
  }
  out_.data_bytes = data.size();
  on_event(std::move(out_));
  return data_line_end + 2;
}

bool sse_parser::on_line(std::string_view line, const std::function<void(sse_event&&)>& on_event) {
  if (line.empty()) {
    const bool dispatch = has_data_ || !event_.empty();
    out_.event.swap(event_);
    out_.data.swap(data_);
    out_.data_bytes = out_.data.size();
    event_.clear();
    data_.clear();
    has_data_ = false;
    if (dispatch) {
      on_event(std::move(out_));
    }
    return dispatch;
  }
  if (line.front() == ':') {
    return false;
  }
  const std::size_t colon = line.find(':');
  const std::string_view name = line.substr(0, colon);
  std::string_view value;
  if (colon != std::string_view::npos) {
    value = line.substr(colon + 1);
    if (!value.empty() && value.front() == ' ') {
      value.remove_prefix(1);
    }
  }
  if (name == "event") {
    event_.assign(value);
  } else if (name == "data") {
    if (has_data_) {
      data_.push_back('\n');
    }
    data_.append(value);
    has_data_ = true;
  }
  return false;
}

std::string sse_format(std::string_view event, std::string_view data) {
  assert(event.find_first_of("\r\n") == std::string_view::npos);
  std::string out;
  out.reserve(event.size() + data.size() + 16);
  if (!event.empty()) {
    out.append("event: ").append(event).push_back('\n');
  }
  std::size_t pos = 0;
  while (true) {
    const std::size_t end = data.find_first_of("\r\n", pos);
    out.append("data: ").append(data.substr(pos, end - pos)).push_back('\n');
    if (end == std::string_view::npos) {
      break;
    }
    pos = end + 1;
    if (data[end] == '\r' && pos < data.size() && data[pos] == '\n') {
      ++pos;
    }
  }
  out.push_back('\n');
  return out;
}

}  // namespace troupe::llm
