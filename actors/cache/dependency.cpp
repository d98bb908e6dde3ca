#include "actors/cache/dependency.hpp"

#include <fcntl.h>
#include <openssl/evp.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <filesystem>
#include <memory>
#include <system_error>
#include <utility>
#include <vector>

namespace troupe {

namespace {

namespace fs = std::filesystem;

using digest = std::array<unsigned char, 32>;

// 64 KiB per read: a 64 MiB file is ~1000 syscalls, and the buffer is small
// enough to allocate per file.
constexpr std::size_t read_chunk_bytes = 64 * 1024;
// PATH_MAX on Linux: a longer path cannot be opened, so it is bad input.
constexpr std::size_t path_bytes_max = 4096;
// Bumping the version changes every directory hash, so a change of the
// encoding can never make an old record look unchanged.
constexpr std::string_view merkle_domain = "troupe.merkle.v1\n";
constexpr std::string_view record_magic = "dep1";
constexpr std::string_view key_record_magic = "key1";
// Digits of UINT64_MAX; longer length prefixes are garbage.
constexpr std::size_t length_digits_max = 20;

/// Streaming SHA-256 over OpenSSL's EVP interface; remembers the first failure
/// so callers check once, at finish().
class sha256 {
 public:
  sha256() : ctx_(EVP_MD_CTX_new()) {
    ok_ = ctx_ != nullptr && EVP_DigestInit_ex(ctx_.get(), EVP_sha256(), nullptr) == 1;
  }
  void update(const void* data, std::size_t size_bytes) {
    if (ok_) {
      ok_ = EVP_DigestUpdate(ctx_.get(), data, size_bytes) == 1;
    }
  }
  void update(std::string_view bytes) { update(bytes.data(), bytes.size()); }
  expected<digest> finish() {
    digest out{};
    unsigned int size_bytes = 0;
    if (!ok_ || EVP_DigestFinal_ex(ctx_.get(), out.data(), &size_bytes) != 1 ||
        size_bytes != out.size()) {
      return make_error(errc::internal, "SHA-256 through OpenSSL failed");
    }
    return out;
  }

 private:
  struct ctx_free {
    void operator()(EVP_MD_CTX* ctx) const { EVP_MD_CTX_free(ctx); }
  };
  std::unique_ptr<EVP_MD_CTX, ctx_free> ctx_;
  bool ok_ = false;
};

class fd_guard {
 public:
  explicit fd_guard(int fd) : fd_(fd) {}
  fd_guard(const fd_guard&) = delete;
  fd_guard& operator=(const fd_guard&) = delete;
  ~fd_guard() {
    if (fd_ >= 0) {
      ::close(fd_);
    }
  }
  int get() const { return fd_; }

 private:
  int fd_;
};

std::string to_hex(const digest& sum) {
  constexpr std::string_view digits = "0123456789abcdef";
  std::string out;
  out.reserve(sum.size() * 2);
  for (unsigned char byte : sum) {
    out += digits[byte >> 4];
    out += digits[byte & 0xf];
  }
  return out;
}

enum class node_kind : char { file = 'f', dir = 'd', symlink = 'l', other = 'o' };

struct node_meta {
  node_kind kind = node_kind::other;
  uint64_t size_bytes = 0;
  int64_t mtime_ns = 0;
  // Not settable by users (unlike mtime), so it exposes a write during hashing
  // even when the writer restores the mtime.
  int64_t ctime_ns = 0;

  friend bool operator==(const node_meta&, const node_meta&) = default;
};

node_meta meta_of(const struct stat& st) {
  node_meta meta;
  if (S_ISREG(st.st_mode)) {
    meta.kind = node_kind::file;
  } else if (S_ISDIR(st.st_mode)) {
    meta.kind = node_kind::dir;
  } else if (S_ISLNK(st.st_mode)) {
    meta.kind = node_kind::symlink;
  }
  meta.size_bytes = meta.kind == node_kind::file ? static_cast<uint64_t>(st.st_size) : 0;
  meta.mtime_ns = int64_t{st.st_mtim.tv_sec} * 1'000'000'000 + st.st_mtim.tv_nsec;
  meta.ctime_ns = int64_t{st.st_ctim.tv_sec} * 1'000'000'000 + st.st_ctim.tv_nsec;
  return meta;
}

bool is_absent(int err) {
  return err == ENOENT || err == ENOTDIR;
}

error not_found_error(const std::string& path) {
  return make_error(errc::not_found, "dependency '" + path + "' does not exist");
}

error io_error(std::string_view what, const std::string& path, int err) {
  return make_error(errc::unavailable, "cannot " + std::string(what) + " dependency '" + path +
                                           "': " + std::strerror(err));
}

error changed_while_hashing(const std::string& path) {
  return make_error(errc::unavailable,
                    "dependency '" + path + "' changed while being hashed; try again");
}

error file_too_large(const std::string& path, uint64_t bytes_max) {
  return make_error(errc::too_large, "dependency '" + path + "' is larger than file_bytes_max (" +
                                         std::to_string(bytes_max) + " bytes)");
}

expected<node_meta> stat_node(const std::string& path, bool follow) {
  struct stat st {};
  const int rc = follow ? ::stat(path.c_str(), &st) : ::lstat(path.c_str(), &st);
  if (rc != 0) {
    const int err = errno;
    if (is_absent(err)) {
      return not_found_error(path);
    }
    return io_error("stat", path, err);
  }
  return meta_of(st);
}

struct file_hash {
  digest sum{};
  node_meta meta;
};

/// Hashes what `fd` reads up to its end; more than `bytes_max` is refused
/// while reading, because the file may grow after it was measured.
expected<std::pair<digest, uint64_t>> read_and_hash(int fd, const std::string& path,
                                                    uint64_t bytes_max) {
  sha256 hasher;
  std::vector<unsigned char> buffer(read_chunk_bytes);
  uint64_t total_bytes = 0;
  for (;;) {
    const ssize_t got = ::read(fd, buffer.data(), buffer.size());
    if (got < 0) {
      if (errno == EINTR) {
        continue;
      }
      return io_error("read", path, errno);
    }
    if (got == 0) {
      break;
    }
    total_bytes += static_cast<uint64_t>(got);
    if (total_bytes > bytes_max) {
      return file_too_large(path, bytes_max);
    }
    hasher.update(buffer.data(), static_cast<std::size_t>(got));
  }
  auto sum = hasher.finish();
  if (!sum) {
    return std::move(sum).err();
  }
  return std::pair{*sum, total_bytes};
}

/// Size, mtime and content hash of one regular file, all from the same open
/// file. Inside a tree `follow` is false: O_NOFOLLOW refuses a file that was
/// swapped for a symlink after lstat instead of following it out of the tree.
expected<file_hash> hash_file(const std::string& path, bool follow, uint64_t bytes_max) {
  // O_NONBLOCK: a path swapped for a fifo since it was stat'ed must not hang
  // the worker in open(); it is refused below as not a regular file.
  const int flags = O_RDONLY | O_CLOEXEC | O_NONBLOCK | (follow ? 0 : O_NOFOLLOW);
  const fd_guard fd{::open(path.c_str(), flags)};
  if (fd.get() < 0) {
    const int err = errno;
    return is_absent(err) ? not_found_error(path) : io_error("open", path, err);
  }
  struct stat before {};
  if (::fstat(fd.get(), &before) != 0) {
    return io_error("stat", path, errno);
  }
  if (!S_ISREG(before.st_mode)) {
    return changed_while_hashing(path);
  }
  if (static_cast<uint64_t>(before.st_size) > bytes_max) {
    return file_too_large(path, bytes_max);
  }
  auto read = read_and_hash(fd.get(), path, bytes_max);
  if (!read) {
    return std::move(read).err();
  }
  struct stat after {};
  if (::fstat(fd.get(), &after) != 0) {
    return io_error("stat", path, errno);
  }
  // A write during the read would give a hash of neither version.
  if (meta_of(before) != meta_of(after) || read->second != meta_of(before).size_bytes) {
    return changed_while_hashing(path);
  }
  return file_hash{read->first, meta_of(before)};
}

/// State of one directory fingerprint: its limits and what it has used.
struct tree_walk {
  const fingerprint_limits& limits;
  const std::string& root;
  uint64_t entries = 0;
  uint64_t content_bytes = 0;
};

error tree_too_large(const tree_walk& walk, std::string_view limit, uint64_t value) {
  return make_error(errc::too_large, "dependency '" + walk.root + "' exceeds " +
                                         std::string(limit) + " (" + std::to_string(value) + ")");
}

/// The names in `dir`, sorted by bytes so the hash does not depend on the
/// order the file system lists them in.
expected<std::vector<std::string>> list_names(tree_walk& walk, const std::string& dir) {
  std::error_code ec;
  fs::directory_iterator it(dir, ec);
  if (ec) {
    return is_absent(ec.value()) ? not_found_error(dir) : io_error("list", dir, ec.value());
  }
  std::vector<std::string> names;
  const fs::directory_iterator end;
  while (it != end) {
    // Counted while listing, so a huge directory is refused before its names
    // are all held in memory.
    walk.entries += 1;
    if (walk.entries > walk.limits.entries_max) {
      return tree_too_large(walk, "entries_max", walk.limits.entries_max);
    }
    names.push_back(it->path().filename().string());
    it.increment(ec);
    if (ec) {
      return io_error("list", dir, ec.value());
    }
  }
  std::sort(names.begin(), names.end());
  return names;
}

expected<digest> hash_dir(tree_walk& walk, const std::string& dir, uint32_t depth);

struct entry_hash {
  node_kind kind = node_kind::other;
  digest sum{};
};

/// The child hash of one entry, by kind; links are hashed, never followed.
expected<entry_hash> hash_entry_by_kind(tree_walk& walk, const std::string& path,
                                        const node_meta& meta, uint32_t depth) {
  entry_hash out{meta.kind, digest{}};
  if (meta.kind == node_kind::file) {
    if (walk.content_bytes + meta.size_bytes > walk.limits.tree_bytes_max) {
      return tree_too_large(walk, "tree_bytes_max", walk.limits.tree_bytes_max);
    }
    auto file = hash_file(path, /*follow=*/false, walk.limits.file_bytes_max);
    if (!file) {
      return std::move(file).err();
    }
    walk.content_bytes += file->meta.size_bytes;
    out.sum = file->sum;
  } else if (meta.kind == node_kind::dir) {
    auto sum = hash_dir(walk, path, depth);
    if (!sum) {
      return std::move(sum).err();
    }
    out.sum = *sum;
  } else if (meta.kind == node_kind::symlink) {
    std::error_code ec;
    const fs::path target = fs::read_symlink(path, ec);
    if (ec) {
      return is_absent(ec.value()) ? not_found_error(path)
                                   : io_error("read link", path, ec.value());
    }
    sha256 hasher;
    hasher.update(target.native());
    auto sum = hasher.finish();
    if (!sum) {
      return std::move(sum).err();
    }
    out.sum = *sum;
  }
  // Fifos, sockets and devices: name and kind only; reading them could block
  // or never end.
  return out;
}

expected<entry_hash> hash_entry(tree_walk& walk, const std::string& path, uint32_t depth) {
  auto meta = stat_node(path, /*follow=*/false);
  auto out = meta ? hash_entry_by_kind(walk, path, *meta, depth) : expected<entry_hash>(meta.err());
  // An entry listed a moment ago and gone now means the tree moved under us;
  // not_found is kept for the dependency itself being gone.
  if (!out && out.err().code == errc::not_found) {
    return changed_while_hashing(walk.root);
  }
  return out;
}

void update_u64_le(sha256& hasher, uint64_t value) {
  std::array<unsigned char, 8> bytes{};
  for (std::size_t i = 0; i < bytes.size(); ++i) {
    bytes[i] = static_cast<unsigned char>(value >> (8 * i));
  }
  hasher.update(bytes.data(), bytes.size());
}

/// Merkle hash of `dir` (at `depth` below the root): SHA-256 of the domain tag
/// followed by, per entry in name order, u64-le name length, name, kind byte
/// and the 32-byte child hash. Lengths keep names from running together.
expected<digest> hash_dir(tree_walk& walk, const std::string& dir, uint32_t depth) {
  auto names = list_names(walk, dir);
  if (!names) {
    return std::move(names).err();
  }
  if (!names->empty() && depth + 1 > walk.limits.depth_max) {
    return tree_too_large(walk, "depth_max", walk.limits.depth_max);
  }
  const std::string prefix = dir.back() == '/' ? dir : dir + "/";
  sha256 hasher;
  hasher.update(merkle_domain);
  for (const std::string& name : *names) {
    auto entry = hash_entry(walk, prefix + name, depth + 1);
    if (!entry) {
      return std::move(entry).err();
    }
    update_u64_le(hasher, name.size());
    hasher.update(name);
    const char kind = static_cast<char>(entry->kind);
    hasher.update(&kind, 1);
    hasher.update(entry->sum.data(), entry->sum.size());
  }
  return hasher.finish();
}

expected<std::string> normalize_path(const std::string& path) {
  if (path.empty()) {
    return make_error(errc::bad_request, "dependency path is empty");
  }
  // c_str() would cut the path at the NUL and fingerprint another file.
  if (path.find('\0') != std::string::npos) {
    return make_error(errc::bad_request, "dependency path contains a NUL byte");
  }
  std::error_code ec;
  const fs::path absolute = fs::absolute(path, ec);
  if (ec) {
    return io_error("make absolute", path, ec.value());
  }
  std::string out = absolute.lexically_normal().string();
  while (out.size() > 1 && out.back() == '/') {
    out.pop_back();
  }
  if (out.size() > path_bytes_max) {
    return make_error(errc::too_large, "dependency path is longer than " +
                                           std::to_string(path_bytes_max) + " bytes");
  }
  return out;
}

expected<dependency_record> fingerprint_absolute(const std::string& path,
                                                 const fingerprint_limits& limits) {
  // Followed: a dependency on a link is a dependency on what it points at.
  auto meta = stat_node(path, /*follow=*/true);
  if (!meta) {
    return std::move(meta).err();
  }
  if (meta->kind == node_kind::file) {
    auto file = hash_file(path, /*follow=*/true, limits.file_bytes_max);
    if (!file) {
      return std::move(file).err();
    }
    return dependency_record{path, false, file->meta.size_bytes, file->meta.mtime_ns,
                             to_hex(file->sum)};
  }
  if (meta->kind == node_kind::dir) {
    tree_walk walk{limits, path};
    auto sum = hash_dir(walk, path, 0);
    if (!sum) {
      return std::move(sum).err();
    }
    return dependency_record{path, true, 0, meta->mtime_ns, to_hex(*sum)};
  }
  return make_error(errc::bad_request,
                    "dependency '" + path + "' is neither a regular file nor a directory");
}

// ---- record encoding ----

error corrupt(std::string_view why) {
  return make_error(errc::corrupt, "dependency record is corrupt: " + std::string(why));
}

void put_field(std::string& out, std::string_view value) {
  out += std::to_string(value.size());
  out += ':';
  out += value;
}

/// Reads `<decimal length>:<bytes>` fields off the front of an input.
class field_reader {
 public:
  explicit field_reader(std::string_view input) : rest_(input) {}

  expected<std::string_view> next(std::string_view field) {
    const std::size_t colon = rest_.substr(0, length_digits_max + 1).find(':');
    if (colon == std::string_view::npos || colon == 0) {
      return corrupt(std::string(field) + " has no length prefix");
    }
    const std::string_view digits = rest_.substr(0, colon);
    uint64_t size_bytes = 0;
    const auto [end, ec] =
        std::from_chars(digits.data(), digits.data() + digits.size(), size_bytes);
    // Leading zeros are refused so each record has exactly one encoding.
    if (ec != std::errc{} || end != digits.data() + digits.size() ||
        (digits.size() > 1 && digits.front() == '0')) {
      return corrupt(std::string(field) + " has a bad length prefix");
    }
    rest_.remove_prefix(colon + 1);
    if (size_bytes > rest_.size()) {
      return corrupt(std::string(field) + " is cut short");
    }
    const std::string_view value = rest_.substr(0, size_bytes);
    rest_.remove_prefix(size_bytes);
    return value;
  }

  bool at_end() const { return rest_.empty(); }

 private:
  std::string_view rest_;
};

template <class T>
expected<T> parse_integer(std::string_view text, std::string_view field) {
  T value{};
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (text.empty() || ec != std::errc{} || end != text.data() + text.size()) {
    return corrupt(std::string(field) + " is not a decimal integer");
  }
  return value;
}

bool is_sha256_hex(std::string_view text) {
  return text.size() == 64 && std::all_of(text.begin(), text.end(), [](char c) {
           return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
         });
}

/// The checks decode_record applies once the fields are split.
expected<dependency_record> validate_fields(std::string_view path, std::string_view kind,
                                            std::string_view size, std::string_view mtime,
                                            std::string_view sha) {
  if (path.empty() || path.front() != '/' || path.find('\0') != std::string_view::npos ||
      path.size() > path_bytes_max) {
    return corrupt("path is not an absolute path");
  }
  if (kind != "f" && kind != "d") {
    return corrupt("kind is neither 'f' nor 'd'");
  }
  auto size_bytes = parse_integer<uint64_t>(size, "size");
  if (!size_bytes) {
    return std::move(size_bytes).err();
  }
  auto mtime_ns = parse_integer<int64_t>(mtime, "mtime_ns");
  if (!mtime_ns) {
    return std::move(mtime_ns).err();
  }
  if (kind == "d" && *size_bytes != 0) {
    return corrupt("a directory record has a non-zero size");
  }
  if (!is_sha256_hex(sha)) {
    return corrupt("sha256_hex is not 64 lowercase hex digits");
  }
  return dependency_record{std::string(path), kind == "d", *size_bytes, *mtime_ns,
                           std::string(sha)};
}

}  // namespace

std::string encode_record(const dependency_record& record) {
  std::string out(record_magic);
  put_field(out, record.path);
  put_field(out, record.is_dir ? "d" : "f");
  put_field(out, std::to_string(record.size));
  put_field(out, std::to_string(record.mtime_ns));
  put_field(out, record.sha256_hex);
  return out;
}

expected<dependency_record> decode_record(std::string_view bytes) {
  if (bytes.substr(0, record_magic.size()) != record_magic) {
    return corrupt("it does not start with \"dep1\"");
  }
  field_reader reader(bytes.substr(record_magic.size()));
  constexpr std::array<std::string_view, 5> names{"path", "kind", "size", "mtime_ns", "sha256_hex"};
  std::array<std::string_view, 5> fields{};
  for (std::size_t i = 0; i < names.size(); ++i) {
    auto field = reader.next(names[i]);
    if (!field) {
      return std::move(field).err();
    }
    fields[i] = *field;
  }
  if (!reader.at_end()) {
    return corrupt("bytes follow the last field");
  }
  return validate_fields(fields[0], fields[1], fields[2], fields[3], fields[4]);
}

std::string encode_key_record(const key_record& record) {
  std::string out(key_record_magic);
  put_field(out, record.key);
  put_field(out, std::to_string(record.generation));
  return out;
}

bool is_key_record(std::string_view bytes) noexcept {
  return bytes.substr(0, key_record_magic.size()) == key_record_magic;
}

expected<key_record> decode_key_record(std::string_view bytes) {
  if (!is_key_record(bytes)) {
    return corrupt("it does not start with \"key1\"");
  }
  field_reader reader(bytes.substr(key_record_magic.size()));
  auto key = reader.next("key");
  if (!key) {
    return std::move(key).err();
  }
  auto generation_text = reader.next("generation");
  if (!generation_text) {
    return std::move(generation_text).err();
  }
  if (!reader.at_end()) {
    return corrupt("bytes follow the last field");
  }
  auto generation = parse_integer<uint64_t>(*generation_text, "generation");
  if (!generation) {
    return std::move(generation).err();
  }
  return key_record{std::string(*key), *generation};
}

expected<dependency_record> fingerprint(const std::string& path, const fingerprint_limits& limits) {
  auto absolute = normalize_path(path);
  if (!absolute) {
    return std::move(absolute).err();
  }
  return fingerprint_absolute(*absolute, limits);
}

std::string_view to_string(dep_status status) noexcept {
  switch (status) {
    case dep_status::unchanged:
      return "unchanged";
    case dep_status::changed:
      return "changed";
    case dep_status::missing:
      return "missing";
  }
  return "unknown";
}

expected<dep_status> check(const dependency_record& recorded, const fingerprint_limits& limits) {
  // Records come from storage: a damaged one is an error, never a lookup of
  // some other path.
  if (recorded.path.empty() || recorded.path.front() != '/' ||
      recorded.path.find('\0') != std::string::npos) {
    return make_error(errc::bad_request,
                      "dependency record path '" + recorded.path + "' is not absolute");
  }
  auto meta = stat_node(recorded.path, /*follow=*/true);
  if (!meta) {
    if (meta.err().code == errc::not_found) {
      return dep_status::missing;
    }
    return std::move(meta).err();
  }
  const bool is_dir = meta->kind == node_kind::dir;
  if (is_dir != recorded.is_dir || (!is_dir && meta->kind != node_kind::file)) {
    return dep_status::changed;
  }
  // The cheap answer: a file whose size or mtime moved has changed, no read.
  if (!is_dir && (meta->size_bytes != recorded.size || meta->mtime_ns != recorded.mtime_ns)) {
    return dep_status::changed;
  }
  auto now = fingerprint_absolute(recorded.path, limits);
  if (!now) {
    if (now.err().code == errc::not_found) {
      return dep_status::missing;
    }
    return std::move(now).err();
  }
  // A directory's own mtime moves on create+delete of a temp file, which
  // leaves the tree as it was; its hash alone decides.
  const bool same =
      now->is_dir == recorded.is_dir && now->sha256_hex == recorded.sha256_hex &&
      (recorded.is_dir || (now->size == recorded.size && now->mtime_ns == recorded.mtime_ns));
  return same ? dep_status::unchanged : dep_status::changed;
}

}  // namespace troupe
