#pragma once

// The node's durable store: one RocksDB in data_dir with a column family per
// concern. Values carry a small header (format version, expiry), so expired
// entries are never returned and foreign or damaged bytes are reported, not
// misread. Every call blocks on disk: call it from a detached actor or an
// I/O thread, never from a CAF scheduler thread.

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "runtime/error.hpp"

namespace troupe {

/// One column family per concern.
enum class column : uint8_t {
  /// Store format, node identity, boot count.
  meta,
  /// Cold tier of the cache.
  cache,
  /// Dependency index of cache entries.
  deps,
  /// PTY session scrollback and descriptors.
  sessions,
  /// Agent conversations.
  transcripts,
  /// Token ledger.
  ledger,
};

inline constexpr size_t column_count = 6;

[[nodiscard]] std::string_view to_string(column c);

struct storage_options {
  std::string path;
  /// fsync the write-ahead log on every write. Off: a killed process loses
  /// nothing (the OS has the log), a power loss may lose the last writes.
  bool sync_writes = false;
  /// RocksDB's memory: one block cache of this size for every column
  /// family, with the memtables of all of them charged to it (they flush
  /// once they hold half of it), so reads and a write flood stay within it.
  uint64_t memory_bytes = uint64_t{64} << 20;
};

/// The value format this build writes and reads.
inline constexpr uint8_t value_format_version = 1;

class db {
 public:
  /// Opens (creating if missing) the store at `options.path`. Errors name the
  /// path and the reason: locked by another node, written by a newer format,
  /// damaged.
  [[nodiscard]] static expected<std::unique_ptr<db>> open(const storage_options& options);

  ~db();
  db(const db&) = delete;
  db& operator=(const db&) = delete;

  /// Stores `value` under `key`; `expires_at_ms` (ms since the Unix epoch)
  /// of 0 means never.
  [[nodiscard]] expected<bool> put(column c, std::string_view key, std::string_view value,
                                   uint64_t expires_at_ms = 0);

  /// The value, or nullopt when absent or expired at `now_ms`. A value that
  /// is not in troupe's format is an error of code `corrupt`.
  [[nodiscard]] expected<std::optional<std::string>> get(column c, std::string_view key,
                                                         uint64_t now_ms);

  [[nodiscard]] expected<bool> remove(column c, std::string_view key);

  /// Up to `limit` unexpired entries of `c` whose key starts with `prefix`,
  /// in key order, as (key, value) pairs, starting at the first key not
  /// below `from` (empty: the prefix's first). Bounded so a scan never runs
  /// long; `from` pages through a long one.
  [[nodiscard]] expected<std::vector<std::pair<std::string, std::string>>> scan_prefix(
      column c, std::string_view prefix, uint64_t now_ms, size_t limit, std::string_view from = {});

  /// Deletes up to `limit` entries of `c` that expired at `now_ms`; returns
  /// how many went. Bounded so a sweep never holds the disk for long.
  [[nodiscard]] expected<size_t> sweep_expired(column c, uint64_t now_ms, size_t limit);

  /// How many times a node has opened this store (1 on the first start).
  [[nodiscard]] uint64_t boot_count() const { return boot_count_; }

  [[nodiscard]] const std::string& path() const { return path_; }

  /// How writing goes: failed writes (every caller's, counted here) and
  /// what RocksDB says of itself. Thread-safe.
  struct health_report {
    uint64_t failed_writes = 0;
    std::string last_error;
    /// When the last write failed (ms since the Unix epoch), or 0.
    uint64_t last_error_ms = 0;
    /// Errors of RocksDB's background work (flush, compaction); one leaves
    /// the store read-only.
    uint64_t background_errors = 0;
    /// RocksDB stopped writes (too much waiting to be compacted).
    bool writes_stopped = false;
  };
  [[nodiscard]] health_report health() const;

 private:
  struct impl;
  db(std::unique_ptr<impl> p, std::string path);
  /// Counts a failed write and keeps its error for health().
  void record_failure(const error& e);

  std::unique_ptr<impl> impl_;
  std::string path_;
  uint64_t boot_count_ = 0;
};

/// Encodes the stored form of a value (header + payload); exposed for tests.
[[nodiscard]] std::string encode_stored(std::string_view value, uint64_t expires_at_ms);

struct stored_value {
  std::string_view payload;
  uint64_t expires_at_ms = 0;
};

/// Reads the stored form; errors (code `corrupt`) say what is wrong.
[[nodiscard]] expected<stored_value> decode_stored(std::string_view bytes);

}  // namespace troupe
