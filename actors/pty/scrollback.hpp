#pragma once

// The recent output of a terminal session, so a client that attaches late (or
// reconnects) can repaint. A bounded byte ring: memory stays at `bytes_max`
// however long the session runs. A plain class, not thread-safe.

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace troupe::pty {

class scrollback {
 public:
  /// Keeps at most the last `bytes_max` bytes (> 0). Memory grows with the
  /// output up to that bound, so a quiet session does not pay for it.
  explicit scrollback(size_t bytes_max);

  /// Appends output; the oldest bytes fall out once `bytes_max` is reached.
  void append(std::string_view bytes);

  /// The kept bytes, oldest to newest. When older output has been dropped, a
  /// UTF-8 sequence cut at the head is skipped (at most 3 bytes), so a
  /// terminal replaying it does not start on a broken character.
  [[nodiscard]] std::string contents() const;

  /// Starts over with `bytes` as the kept output, ending at absolute offset
  /// `end` (at least `bytes.size()`): how a session's next incarnation takes
  /// over the output of the one before.
  void restore(std::string_view bytes, uint64_t end);
  /// Bytes ever appended: the absolute offset just past the newest byte.
  [[nodiscard]] uint64_t total_bytes() const noexcept { return total_bytes_; }

  /// The bytes from absolute offset `offset` to the newest. An offset older
  /// than what is kept is clipped to the oldest kept byte (with a cut UTF-8
  /// sequence skipped, as in `contents`); one at or past `total_bytes()`
  /// gives "". The result always ends at `total_bytes()`, so its start is
  /// `total_bytes() - result.size()`.
  [[nodiscard]] std::string since(uint64_t offset) const;

  /// Bytes kept now (<= bytes_max).
  [[nodiscard]] size_t size() const noexcept { return ring_.size(); }
  [[nodiscard]] size_t bytes_max() const noexcept { return bytes_max_; }

 private:
  /// The kept bytes from the `skip`-th oldest on, in order.
  [[nodiscard]] std::string linear_from(size_t skip) const;

  size_t bytes_max_;
  /// Grows until full; from then on a ring whose oldest byte is at `head_`.
  std::string ring_;
  size_t head_ = 0;
  uint64_t total_bytes_ = 0;
};

}  // namespace troupe::pty
