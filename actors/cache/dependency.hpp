#pragma once

// Fingerprints of the files and directories a cache entry depends on. The
// cache stores one record per dependency with the entry and re-checks them
// before serving it; the promise is that a hit is never stale, so an edit that
// keeps size and mtime is still caught by the content hash.
//
// Every call here does blocking disk I/O: run it on a detached actor or a
// worker thread, never on a CAF scheduler thread.
//
// A record must be taken *before* the value that depends on it is produced:
// then an edit made while the value is being computed shows up as `changed`
// at the next check instead of hiding behind a fresh fingerprint.

#include <cstdint>
#include <string>
#include <string_view>

#include "runtime/error.hpp"

namespace troupe {

/// Bounds on one fingerprint, so a dependency on a huge file or tree costs a
/// clear `too_large` error instead of minutes of hashing on every hit.
struct fingerprint_limits {
  /// Largest regular file hashed; every check of an unchanged-looking file
  /// re-reads it in full, so this caps the cost of a hit.
  uint64_t file_bytes_max = uint64_t{64} * 1024 * 1024;
  /// Entries (files, dirs, links, others) in a directory tree, in total.
  uint64_t entries_max = 10000;
  /// Nesting below the root directory (its children are at depth 1).
  uint32_t depth_max = 16;
  /// File content hashed for a whole directory tree; without it, entries_max
  /// files of file_bytes_max each would be 640 GiB per check.
  uint64_t tree_bytes_max = uint64_t{256} * 1024 * 1024;
};

/// What was true of one dependency when the entry was stored.
struct dependency_record {
  /// Absolute and lexically normal, without a trailing '/'.
  std::string path;
  bool is_dir = false;
  /// Bytes of a file; 0 for a directory.
  uint64_t size = 0;
  /// Modification time in ns since the Unix epoch (of the directory itself
  /// for a directory, which says nothing about nested edits).
  int64_t mtime_ns = 0;
  /// Lowercase hex SHA-256: of the content for a file (equals `sha256sum`),
  /// of the Merkle encoding of the tree for a directory.
  std::string sha256_hex;

  friend bool operator==(const dependency_record&, const dependency_record&) = default;
};

/// Encodes a record for storage. Format (version 1), self-delimiting:
///   "dep1" then five fields, each `<decimal length>:<bytes>`, in order
///   path, kind ("f" or "d"), size (decimal), mtime_ns (decimal, may be
///   negative), sha256_hex (64 lowercase hex digits).
/// Example, a 3-byte file /a/b: "dep1" "4:/a/b" "1:f" "1:3" "6:123456"
/// "64:<hex>", concatenated with nothing in between. Lengths let a path hold
/// any byte but '\0' (no file system path holds one), ':' included.
[[nodiscard]] std::string encode_record(const dependency_record& record);

/// Decodes exactly one record (no trailing bytes); `errc::corrupt` with the
/// reason for anything `encode_record` would not have produced.
[[nodiscard]] expected<dependency_record> decode_record(std::string_view bytes);

/// A dependency on another cache entry: its key and the generation it had
/// when the dependent entry was stored. Every put gives an entry a fresh
/// generation, so a dependent is valid only while that very put is stored.
struct key_record {
  std::string key;
  uint64_t generation = 0;

  friend bool operator==(const key_record&, const key_record&) = default;
};

/// Encodes a key record: "key1" then the fields key and generation
/// (decimal), in the same `<decimal length>:<bytes>` form as `encode_record`.
/// The magic tells the two kinds apart in one list of records.
[[nodiscard]] std::string encode_key_record(const key_record& record);

/// Decodes exactly one key record; `errc::corrupt` with the reason otherwise.
[[nodiscard]] expected<key_record> decode_key_record(std::string_view bytes);

/// Whether `bytes` claims to be a key record (starts with its magic).
[[nodiscard]] bool is_key_record(std::string_view bytes) noexcept;

/// Fingerprints `path` (made absolute against the working directory).
///
/// A file gives size, mtime and the SHA-256 of its content. A directory gives
/// a Merkle hash: its entries sorted by name bytes, each contributing its
/// name, its type and its child hash (content hash for a file, recursive hash
/// for a directory, hash of the link target string for a symlink, nothing for
/// fifos, sockets and devices). Symlinks inside a tree are never followed.
/// `path` itself is followed if it is a symlink, because the dependency is
/// on what it points at; a symlink-to-file dependency must see edits to the
/// file.
///
/// Errors: `not_found` "dependency 'X' does not exist"; `too_large` when a
/// limit is passed (naming the path and the limit); `bad_request` when `path`
/// is empty or neither a file nor a directory; `unavailable` when it cannot
/// be read or changed while it was being hashed.
[[nodiscard]] expected<dependency_record> fingerprint(const std::string& path,
                                                      const fingerprint_limits& limits);

enum class dep_status : uint8_t {
  /// Same kind, size, mtime and content hash as recorded.
  unchanged,
  /// Still there but different; the entry must not be served.
  changed,
  /// The path no longer exists; the entry must not be served.
  missing,
};

[[nodiscard]] std::string_view to_string(dep_status status) noexcept;

/// Compares `recorded` with the disk now.
///
/// A file: gone -> missing; kind, size or mtime differ -> changed without
/// reading it; otherwise it is re-hashed, which is what catches an edit that
/// kept size and mtime. So a hit on an unchanged file costs one read of it.
///
/// A directory: its own mtime does not move when a nested file is edited, so
/// the Merkle hash is always recomputed: one stat per entry plus one read of
/// every file in the tree, on every check (bounded by `limits`).
///
/// An error (unreadable, over a limit) means the state is unknown: the caller
/// must treat it as a miss, never as `unchanged`.
[[nodiscard]] expected<dep_status> check(const dependency_record& recorded,
                                         const fingerprint_limits& limits);

}  // namespace troupe
