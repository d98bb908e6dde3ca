#pragma once

// Server-Sent Events (the text/event-stream format of the HTML Living
// Standard), read incrementally and written. The upstream LLM streams its
// answer this way; the gateway both consumes and produces such streams. A
// plain class, no I/O: the caller feeds whatever slices the socket yields.

#include <cstddef>
#include <functional>
#include <string>
#include <string_view>

#include "runtime/error.hpp"

namespace troupe::llm {

/// One dispatched event. `event` is empty when the stream named none (the
/// standard's default type "message" is left for the caller to apply).
struct sse_event {
  std::string event;
  std::string data;
  /// The length of the event's data: data.size(), unless the parser was
  /// told to skip the data of events of this name (`skip_data_of`).
  std::size_t data_bytes = 0;
};

/// Splits a byte stream into events. Events may be cut anywhere between two
/// `feed` calls, even between the '\r' and '\n' of one line ending.
class sse_parser {
 public:
  /// Why 4 MiB: one streamed LLM event is a delta of a few bytes to a few
  /// KiB; a tool input or a cached whole message replayed as one event stays
  /// far below this. Anything larger is a broken or hostile upstream.
  static constexpr std::size_t event_bytes_max_default = std::size_t{4} << 20;

  /// `event_bytes_max` bounds what one event may hold in memory: its data,
  /// its name and the unfinished line being read.
  explicit sse_parser(std::size_t event_bytes_max = event_bytes_max_default);

  /// Parses the next slice of the stream and calls `on_event` once per
  /// complete event (ended by a blank line) that carried a data field or an
  /// event name. Line endings may be "\n", "\r\n" or "\r". Lines starting
  /// with ':' are comments; several "data:" lines are joined with '\n'; one
  /// space after the colon is dropped; "id", "retry" and unknown fields are
  /// ignored. An unfinished event at the end of the stream is never emitted.
  ///
  /// Returns the number of events emitted by this call, or `too_large` when
  /// an event outgrows `event_bytes_max`; after that every call fails.
  [[nodiscard]] expected<std::size_t> feed(std::string_view bytes,
                                           const std::function<void(sse_event&&)>& on_event);

  /// Events named `name` may be dispatched with their data left out (only
  /// `data_bytes` says how long it was): for a reader that needs only the
  /// size of the events it does not read, such as the gateway relaying a
  /// stream it does not keep (most of a long answer is content deltas).
  /// Events of the common one-line form are skipped without a copy; any
  /// other form is read whole, so `data` may still be set.
  void skip_data_of(std::string name) { skipped_ = std::move(name); }

 private:
  /// Handles one complete line (without its ending); true if it dispatched.
  bool on_line(std::string_view line, const std::function<void(sse_event&&)>& on_event);
  /// The event at the start of `rest` when it has the form every API event
  /// takes ("event: NAME\ndata: DATA\n\n", '\n' endings, within the size
  /// limit) and the slice holds all of it: dispatches it and returns its
  /// length. Otherwise 0, and the line-by-line path reads it (with the same
  /// outcome, only slower).
  std::size_t simple_event(std::string_view rest, const std::function<void(sse_event&&)>& on_event);
  [[nodiscard]] error fail();

  std::size_t event_bytes_max_;
  /// The start of a line whose ending has not arrived yet.
  std::string line_;
  std::string event_;
  std::string data_;
  /// What is handed to the callback: its strings trade buffers with event_
  /// and data_, so a stream of events does not allocate per event.
  sse_event out_;
  std::string skipped_;
  /// A "data:" field was seen; distinguishes an empty data field from none.
  bool has_data_ = false;
  /// The previous slice ended on '\r': a '\n' opening the next one belongs
  /// to the same line ending and must not count as a blank line.
  bool skip_lf_ = false;
  bool failed_ = false;
};

/// One event as the wire carries it: "event: <event>\n" (left out when
/// `event` is empty), one "data: " line per line of `data`, and a blank line.
/// "\r\n" and "\r" in `data` are line breaks too (a parser would read them
/// so), so they come back as '\n' and can never inject a field.
/// Precondition: `event` holds no '\r' or '\n'.
[[nodiscard]] std::string sse_format(std::string_view event, std::string_view data);

}  // namespace troupe::llm
