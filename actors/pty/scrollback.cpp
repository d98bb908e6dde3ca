#include "actors/pty/scrollback.hpp"

#include <algorithm>
#include <cassert>
#include <cstring>

namespace troupe::pty {

namespace {

/// A UTF-8 character has at most three continuation bytes; skipping more
/// would eat bytes that were never part of a cut character.
constexpr size_t utf8_continuations_max = 3;

bool is_continuation(char c) noexcept {
  return (static_cast<unsigned char>(c) & 0xC0) == 0x80;
}

}  // namespace

scrollback::scrollback(size_t bytes_max) : bytes_max_(bytes_max) {
  assert(bytes_max_ > 0);
}

void scrollback::restore(std::string_view bytes, uint64_t end) {
  ring_.clear();
  head_ = 0;
  total_bytes_ = 0;
  append(bytes);
  total_bytes_ = std::max<uint64_t>(end, total_bytes_);
}

void scrollback::append(std::string_view bytes) {
  total_bytes_ += bytes.size();
  if (bytes.size() >= bytes_max_) {
    // Only the tail survives; start the ring over with it.
    ring_.assign(bytes.substr(bytes.size() - bytes_max_));
    head_ = 0;
    return;
  }
  if (ring_.size() < bytes_max_) {
    assert(head_ == 0);
    const size_t direct = std::min(bytes_max_ - ring_.size(), bytes.size());
    const size_t needed = ring_.size() + direct;
    if (needed > ring_.capacity()) {
      // Grow geometrically, but never past the bound.
      ring_.reserve(std::min(bytes_max_, std::max(needed, 2 * ring_.capacity())));
    }
    ring_.append(bytes.substr(0, direct));
    bytes.remove_prefix(direct);
  }
  // Full from here on: overwrite the oldest bytes, in at most two pieces.
  while (!bytes.empty()) {
    assert(ring_.size() == bytes_max_);
    const size_t n = std::min(bytes.size(), bytes_max_ - head_);
    std::memcpy(ring_.data() + head_, bytes.data(), n);
    head_ = (head_ + n) % bytes_max_;
    bytes.remove_prefix(n);
  }
}

std::string scrollback::linear_from(size_t skip) const {
  assert(skip <= ring_.size());
  std::string out;
  if (skip == ring_.size()) {
    return out;
  }
  out.reserve(ring_.size() - skip);
  const size_t start = (head_ + skip) % ring_.size();
  if (start < head_) {
    out.append(ring_, start, head_ - start);  // Only the newer half remains.
    return out;
  }
  out.append(ring_, start, std::string::npos);
  out.append(ring_, 0, head_);
  return out;
}

std::string scrollback::contents() const {
  return since(0);
}

std::string scrollback::since(uint64_t offset) const {
  const uint64_t kept_from = total_bytes_ - ring_.size();
  if (offset >= total_bytes_) {
    return {};
  }
  if (offset >= kept_from) {
    return linear_from(static_cast<size_t>(offset - kept_from));
  }
  std::string out = linear_from(0);
  if (kept_from > 0) {
    // Older output was dropped, so the head may be the tail of a character.
    size_t cut = 0;
    while (cut < out.size() && cut < utf8_continuations_max && is_continuation(out[cut])) {
      ++cut;
    }
    out.erase(0, cut);
  }
  return out;
}

}  // namespace troupe::pty
