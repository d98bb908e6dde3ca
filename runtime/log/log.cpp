#include "runtime/log/log.hpp"

#include <spdlog/formatter.h>
#include <spdlog/logger.h>
#include <spdlog/sinks/base_sink.h>

#include <array>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <iterator>
#include <map>
#include <mutex>
#include <optional>
#include <ostream>
#include <utility>

namespace troupe {

namespace {

using spdlog::memory_buf_t;
using spdlog::level::level_enum;

constexpr std::array<std::pair<std::string_view, level_enum>, 7> level_names{{
    {"trace", level_enum::trace},
    {"debug", level_enum::debug},
    {"info", level_enum::info},
    {"warn", level_enum::warn},
    {"error", level_enum::err},
    {"critical", level_enum::critical},
    {"off", level_enum::off},
}};

// log_level's values, in order, are these levels.
static_assert([] {
  for (size_t i = 0; i < level_names.size(); ++i) {
    if (level_names[i].first != choice_names<log_level>::names[i]) {
      return false;
    }
  }
  return true;
}());

std::string_view level_name(level_enum level) {
  for (const auto& [text, candidate] : level_names) {
    if (candidate == level) {
      return text;
    }
  }
  return "unknown";
}

void append(memory_buf_t& dest, std::string_view text) {
  dest.append(text.data(), text.data() + text.size());
}

// 2026-11-24T13:00:00.123Z
void append_timestamp(memory_buf_t& dest, spdlog::log_clock::time_point time) {
  auto secs = std::chrono::floor<std::chrono::seconds>(time);
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(time - secs).count();
  std::time_t t = spdlog::log_clock::to_time_t(secs);
  std::tm utc{};
  gmtime_r(&t, &utc);
  fmt::format_to(std::back_inserter(dest), "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
                 utc.tm_year + 1900, utc.tm_mon + 1, utc.tm_mday, utc.tm_hour, utc.tm_min,
                 utc.tm_sec, ms);
}

// Length of the well-formed UTF-8 sequence starting at s[i] (RFC 3629: no
// overlongs, no surrogates, nothing above U+10FFFF), or 0 if ill-formed.
std::size_t utf8_sequence_size(std::string_view s, std::size_t i) {
  auto byte = [&](std::size_t k) -> unsigned {
    return i + k < s.size() ? static_cast<unsigned char>(s[i + k]) : 0x100U;
  };
  unsigned lead = byte(0);
  if (lead < 0x80) {
    return 1;
  }
  std::size_t size = lead >= 0xF0 ? 4 : lead >= 0xE0 ? 3 : 2;
  unsigned lo = lead == 0xE0 ? 0xA0 : lead == 0xF0 ? 0x90 : 0x80;
  unsigned hi = lead == 0xED ? 0x9F : lead == 0xF4 ? 0x8F : 0xBF;
  if (lead < 0xC2 || lead > 0xF4 || byte(1) < lo || byte(1) > hi) {
    return 0;
  }
  for (std::size_t k = 2; k < size; ++k) {
    if (byte(k) < 0x80 || byte(k) > 0xBF) {
      return 0;
    }
  }
  return size;
}

// RFC 8259 string contents; ill-formed UTF-8 becomes U+FFFD.
void append_json_escaped(memory_buf_t& dest, std::string_view s) {
  for (std::size_t i = 0; i < s.size();) {
    auto c = static_cast<unsigned char>(s[i]);
    if (c >= 0x80) {
      std::size_t size = utf8_sequence_size(s, i);
      append(dest, size == 0 ? std::string_view("\\ufffd") : s.substr(i, size));
      i += size == 0 ? 1 : size;
      continue;
    }
    if (c == '"' || c == '\\') {
      dest.push_back('\\');
      dest.push_back(static_cast<char>(c));
    } else if (c == '\n') {
      append(dest, "\\n");
    } else if (c == '\r') {
      append(dest, "\\r");
    } else if (c == '\t') {
      append(dest, "\\t");
    } else if (c < 0x20) {
      fmt::format_to(std::back_inserter(dest), "\\u{:04x}", c);
    } else {
      dest.push_back(static_cast<char>(c));
    }
    ++i;
  }
}

// Text keeps a record on one line: control characters other than tab are
// shown escaped; everything else (UTF-8 included) passes through.
void append_text_escaped(memory_buf_t& dest, std::string_view s) {
  for (char ch : s) {
    auto c = static_cast<unsigned char>(ch);
    if (c == '\n') {
      append(dest, "\\n");
    } else if (c == '\r') {
      append(dest, "\\r");
    } else if ((c < 0x20 && c != '\t') || c == 0x7F) {
      fmt::format_to(std::back_inserter(dest), "\\x{:02x}", c);
    } else {
      dest.push_back(ch);
    }
  }
}

std::string_view view(spdlog::string_view_t s) {
  return {s.data(), s.size()};
}

class text_formatter final : public spdlog::formatter {
 public:
  void format(const spdlog::details::log_msg& msg, memory_buf_t& dest) override {
    append_timestamp(dest, msg.time);
    fmt::format_to(std::back_inserter(dest), " {:<5} [", level_name(msg.level));
    append_text_escaped(dest, view(msg.logger_name));
    append(dest, "] ");
    append_text_escaped(dest, view(msg.payload));
    dest.push_back('\n');
  }
  [[nodiscard]] std::unique_ptr<spdlog::formatter> clone() const override {
    return std::make_unique<text_formatter>();
  }
};

class json_formatter final : public spdlog::formatter {
 public:
  void format(const spdlog::details::log_msg& msg, memory_buf_t& dest) override {
    append(dest, "{\"ts\":\"");
    append_timestamp(dest, msg.time);
    append(dest, "\",\"level\":\"");
    append(dest, level_name(msg.level));
    append(dest, "\",\"logger\":\"");
    append_json_escaped(dest, view(msg.logger_name));
    append(dest, "\",\"msg\":\"");
    append_json_escaped(dest, view(msg.payload));
    append(dest, "\"}\n");
  }
  [[nodiscard]] std::unique_ptr<spdlog::formatter> clone() const override {
    return std::make_unique<json_formatter>();
  }
};

std::unique_ptr<spdlog::formatter> make_formatter(log_format format) {
  if (format == log_format::json) {
    return std::make_unique<json_formatter>();
  }
  return std::make_unique<text_formatter>();
}

// The one sink every logger holds. Loggers never change sinks (their sink
// list is not thread-safe); reconfiguring swaps what is inside this one,
// under the sink's own mutex, so a record is never torn between formats.
class shared_sink final : public spdlog::sinks::base_sink<std::mutex> {
 public:
  shared_sink() : base_sink(std::make_unique<text_formatter>()) {}

  void reconfigure(std::unique_ptr<spdlog::formatter> formatter, std::ostream* out) {
    std::lock_guard lock(mutex_);
    formatter_ = std::move(formatter);
    out_ = out;
  }

 protected:
  void sink_it_(const spdlog::details::log_msg& msg) override {
    memory_buf_t line;
    formatter_->format(msg, line);
    if (out_ != nullptr) {
      out_->write(line.data(), static_cast<std::streamsize>(line.size()));
    } else {
      // stderr is unbuffered: one fwrite is one write(2) of a whole line.
      std::fwrite(line.data(), 1, line.size(), stderr);
    }
  }
  void flush_() override {
    if (out_ != nullptr) {
      out_->flush();
    } else {
      std::fflush(stderr);
    }
  }

 private:
  std::ostream* out_ = nullptr;  // nullptr: stderr
};

struct logging_state {
  std::mutex mutex;
  std::shared_ptr<shared_sink> sink = std::make_shared<shared_sink>();
  level_enum level = level_enum::info;
  std::map<std::string, std::shared_ptr<spdlog::logger>, std::less<>> loggers;
};

// Never destroyed: threads and static destructors may still log during exit.
logging_state& state() {
  static auto* s = new logging_state();
  return *s;
}

}  // namespace

void init_logging(const log_options& opts, std::ostream* out) {
  // The names of log_level are spdlog's, in the same order.
  const auto level = level_names[static_cast<size_t>(opts.level)].second;
  logging_state& s = state();
  std::lock_guard lock(s.mutex);
  s.level = level;
  s.sink->reconfigure(make_formatter(opts.format), out);
  for (const auto& [name, l] : s.loggers) {
    l->set_level(level);
  }
}

std::shared_ptr<spdlog::logger> logger(std::string_view subsystem) {
  logging_state& s = state();
  std::lock_guard lock(s.mutex);
  auto it = s.loggers.find(subsystem);
  if (it == s.loggers.end()) {
    auto l = std::make_shared<spdlog::logger>(std::string(subsystem), s.sink);
    l->set_level(s.level);
    it = s.loggers.emplace(std::string(subsystem), std::move(l)).first;
  }
  return it->second;
}

}  // namespace troupe
