#include "storage/db.hpp"

#include <algorithm>
#include <array>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <mutex>

#include <rocksdb/cache.h>
#include <rocksdb/db.h>
#include <rocksdb/options.h>
#include <rocksdb/table.h>
#include <rocksdb/write_buffer_manager.h>

#include "runtime/wall_clock.hpp"

namespace troupe {

namespace {

/// Held around every RocksDB write in the ThreadSanitizer build, and only
/// there. RocksDB is Debian's library, not built with TSan: when threads
/// write at once, one of them (the write group's leader) copies the others'
/// batches into the log, ordered by code TSan cannot see, so each such copy
/// looked like a race, with no RocksDB frame to suppress it by (the copy runs
/// in libstdc++'s string code). Letting one write in at a time gives TSan an
/// order it sees. Every other build leaves the ordering to RocksDB.
struct write_order {
#if defined(__SANITIZE_THREAD__)
  static inline std::mutex one_at_a_time;
  std::lock_guard<std::mutex> held{one_at_a_time};
#endif
};

constexpr std::array<std::string_view, column_count> column_names{
    "meta", "cache", "deps", "sessions", "transcripts", "ledger"};

/// First byte of every stored value: tells troupe's values from foreign ones.
constexpr uint8_t value_magic = 0x54;  // 'T'
constexpr size_t header_bytes = 1 + 1 + 8;

constexpr std::string_view format_key = "store_format";
constexpr std::string_view boot_count_key = "boot_count";
constexpr std::string_view store_format = "1";

error from_status(const rocksdb::Status& s, std::string_view what) {
  const auto code = s.IsCorruption() ? errc::corrupt : errc::unavailable;
  return make_error(code, std::string(what) + ": " + s.ToString());
}

uint64_t read_le64(const char* p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i) {
    v = (v << 8) | static_cast<uint8_t>(p[i]);
  }
  return v;
}

}  // namespace

std::string_view to_string(column c) {
  return column_names[static_cast<size_t>(c)];
}

std::string encode_stored(std::string_view value, uint64_t expires_at_ms) {
  std::string out;
  out.reserve(header_bytes + value.size());
  out.push_back(static_cast<char>(value_magic));
  out.push_back(static_cast<char>(value_format_version));
  for (int i = 0; i < 8; ++i) {
    out.push_back(static_cast<char>((expires_at_ms >> (8 * i)) & 0xffu));
  }
  out.append(value);
  return out;
}

expected<stored_value> decode_stored(std::string_view bytes) {
  if (bytes.size() < header_bytes || static_cast<uint8_t>(bytes[0]) != value_magic) {
    return make_error(errc::corrupt, "not a troupe value (foreign or damaged bytes)");
  }
  const auto version = static_cast<uint8_t>(bytes[1]);
  if (version != value_format_version) {
    return make_error(errc::corrupt, "value format " + std::to_string(version) +
                                         " is not the format this build reads (" +
                                         std::to_string(value_format_version) + ")");
  }
  return stored_value{bytes.substr(header_bytes), read_le64(bytes.data() + 2)};
}

struct db::impl {
  std::unique_ptr<rocksdb::DB> rocks;
  std::vector<rocksdb::ColumnFamilyHandle*> handles;  // column order; owned by rocks
  rocksdb::ColumnFamilyHandle* default_cf = nullptr;
  std::vector<rocksdb::ColumnFamilyHandle*> extra;  // families a newer build made
  rocksdb::WriteOptions write;
  mutable std::mutex health_mutex;
  uint64_t failed_writes = 0;
  std::string last_error;
  uint64_t last_error_ms = 0;

  rocksdb::ColumnFamilyHandle* cf(column c) const { return handles[static_cast<size_t>(c)]; }

  ~impl() {
    for (auto* h : handles) {
      rocks->DestroyColumnFamilyHandle(h);
    }
    for (auto* h : extra) {
      rocks->DestroyColumnFamilyHandle(h);
    }
    if (default_cf != nullptr) {
      rocks->DestroyColumnFamilyHandle(default_cf);
    }
    if (rocks) {
      (void)rocks->Close();
    }
  }
};

db::db(std::unique_ptr<impl> p, std::string path) : impl_(std::move(p)), path_(std::move(path)) {}

db::~db() = default;

namespace {

/// Checks (or, on a new store, writes) the store format, and counts boots.
expected<uint64_t> check_format(rocksdb::DB& rocks, rocksdb::ColumnFamilyHandle* meta,
                                const rocksdb::WriteOptions& write, const std::string& path) {
  std::string format;
  auto s = rocks.Get(rocksdb::ReadOptions(), meta, std::string(format_key), &format);
  if (s.IsNotFound()) {
    s = rocks.Put(write, meta, std::string(format_key), std::string(store_format));
  } else if (s.ok() && format != store_format) {
    return make_error(errc::unavailable, "store at " + path + " has format '" + format +
                                             "'; this build reads format " +
                                             std::string(store_format) +
                                             " (written by a newer troupe?)");
  }
  if (!s.ok()) {
    return from_status(s, "store at " + path + ": reading its format");
  }
  std::string boots;
  s = rocks.Get(rocksdb::ReadOptions(), meta, std::string(boot_count_key), &boots);
  uint64_t count = s.ok() ? std::strtoull(boots.c_str(), nullptr, 10) + 1 : 1;
  s = rocks.Put(write, meta, std::string(boot_count_key), std::to_string(count));
  if (!s.ok()) {
    return from_status(s, "store at " + path + ": writing its boot count");
  }
  return count;
}

}  // namespace

expected<std::unique_ptr<db>> db::open(const storage_options& options) {
  std::error_code ec;
  std::filesystem::create_directories(options.path, ec);
  if (ec) {
    return make_error(errc::unavailable,
                      "cannot create store directory " + options.path + ": " + ec.message());
  }
  rocksdb::DBOptions db_options;
  db_options.create_if_missing = true;
  db_options.create_missing_column_families = true;
  db_options.max_open_files = 512;  // a node shares the fd limit with sockets and PTYs
  // One memory bound for the whole store (RocksDB's defaults give every
  // column family its own 8 MiB block cache and two 64 MiB memtables).
  auto memory = rocksdb::NewLRUCache(static_cast<size_t>(options.memory_bytes));
  db_options.write_buffer_manager =
      std::make_shared<rocksdb::WriteBufferManager>(options.memory_bytes / 2, memory);
  rocksdb::BlockBasedTableOptions table;
  table.block_cache = memory;
  // Index and filter blocks live in that cache too, not beside it.
  table.cache_index_and_filter_blocks = true;
  table.pin_l0_filter_and_index_blocks_in_cache = true;
  rocksdb::ColumnFamilyOptions family;
  family.table_factory.reset(rocksdb::NewBlockBasedTableFactory(table));
  family.write_buffer_size =
      static_cast<size_t>(std::max<uint64_t>(uint64_t{64} << 10, options.memory_bytes / 8));

  // Every family the store has must be opened, including ones a newer build
  // added: list them first.
  std::vector<std::string> existing;
  (void)rocksdb::DB::ListColumnFamilies(db_options, options.path, &existing);
  std::vector<rocksdb::ColumnFamilyDescriptor> descriptors;
  descriptors.emplace_back(rocksdb::kDefaultColumnFamilyName, rocksdb::ColumnFamilyOptions());
  for (auto name : column_names) {
    descriptors.emplace_back(std::string(name), rocksdb::ColumnFamilyOptions());
  }
  for (const auto& name : existing) {
    const bool known =
        name == rocksdb::kDefaultColumnFamilyName ||
        std::find(column_names.begin(), column_names.end(), name) != column_names.end();
    if (!known) {
      descriptors.emplace_back(name, rocksdb::ColumnFamilyOptions());
    }
  }
  std::vector<rocksdb::ColumnFamilyHandle*> handles;
  rocksdb::DB* raw = nullptr;
  auto s = rocksdb::DB::Open(db_options, options.path, descriptors, &handles, &raw);
  if (!s.ok()) {
    return from_status(s, "cannot open store at " + options.path);
  }
  auto p = std::make_unique<impl>();
  p->rocks.reset(raw);
  p->default_cf = handles[0];
  p->handles.assign(handles.begin() + 1, handles.begin() + 1 + column_count);
  p->extra.assign(handles.begin() + 1 + column_count, handles.end());
  p->write.sync = options.sync_writes;
  auto boots = check_format(*p->rocks, p->cf(column::meta), p->write, options.path);
  if (!boots) {
    return std::move(boots).err();
  }
  auto store = std::unique_ptr<db>(new db(std::move(p), options.path));
  store->boot_count_ = *boots;
  return store;
}

void db::record_failure(const error& e) {
  const auto now = wall_ms();
  std::lock_guard lock(impl_->health_mutex);
  ++impl_->failed_writes;
  impl_->last_error = e.message;
  impl_->last_error_ms = now;
}

db::health_report db::health() const {
  health_report out;
  {
    std::lock_guard lock(impl_->health_mutex);
    out.failed_writes = impl_->failed_writes;
    out.last_error = impl_->last_error;
    out.last_error_ms = impl_->last_error_ms;
  }
  uint64_t n = 0;
  if (impl_->rocks->GetIntProperty("rocksdb.background-errors", &n)) {
    out.background_errors = n;
  }
  if (impl_->rocks->GetIntProperty("rocksdb.is-write-stopped", &n)) {
    out.writes_stopped = n != 0;
  }
  return out;
}

expected<bool> db::put(column c, std::string_view key, std::string_view value,
                       uint64_t expires_at_ms) {
  [[maybe_unused]] const write_order ordered;
  auto s = impl_->rocks->Put(impl_->write, impl_->cf(c), rocksdb::Slice(key.data(), key.size()),
                             encode_stored(value, expires_at_ms));
  if (!s.ok()) {
    auto failed = from_status(s, "write to " + std::string(to_string(c)));
    record_failure(failed);
    return failed;
  }
  return true;
}

expected<std::optional<std::string>> db::get(column c, std::string_view key, uint64_t now_ms) {
  std::string bytes;
  auto s = impl_->rocks->Get(rocksdb::ReadOptions(), impl_->cf(c),
                             rocksdb::Slice(key.data(), key.size()), &bytes);
  if (s.IsNotFound()) {
    return std::optional<std::string>{};
  }
  if (!s.ok()) {
    return from_status(s, "read from " + std::string(to_string(c)));
  }
  auto stored = decode_stored(bytes);
  if (!stored) {
    return make_error(errc::corrupt, "value in " + std::string(to_string(c)) +
                                         " is unreadable: " + stored.err().message);
  }
  if (stored->expires_at_ms != 0 && stored->expires_at_ms <= now_ms) {
    return std::optional<std::string>{};
  }
  return std::optional<std::string>{std::string(stored->payload)};
}

expected<bool> db::remove(column c, std::string_view key) {
  [[maybe_unused]] const write_order ordered;
  auto s = impl_->rocks->Delete(impl_->write, impl_->cf(c), rocksdb::Slice(key.data(), key.size()));
  if (!s.ok()) {
    auto failed = from_status(s, "delete from " + std::string(to_string(c)));
    record_failure(failed);
    return failed;
  }
  return true;
}

expected<std::vector<std::pair<std::string, std::string>>> db::scan_prefix(
    column c, std::string_view prefix, uint64_t now_ms, size_t limit, std::string_view from) {
  std::vector<std::pair<std::string, std::string>> out;
  std::unique_ptr<rocksdb::Iterator> it(
      impl_->rocks->NewIterator(rocksdb::ReadOptions(), impl_->cf(c)));
  const rocksdb::Slice start(prefix.data(), prefix.size());
  const auto seek = from > prefix ? from : prefix;
  for (it->Seek(rocksdb::Slice(seek.data(), seek.size()));
       it->Valid() && out.size() < limit && it->key().starts_with(start); it->Next()) {
    auto stored = decode_stored(std::string_view(it->value().data(), it->value().size()));
    if (!stored || (stored->expires_at_ms != 0 && stored->expires_at_ms <= now_ms)) {
      continue;  // unreadable or expired: not part of the answer
    }
    out.emplace_back(it->key().ToString(), std::string(stored->payload));
  }
  if (!it->status().ok()) {
    return from_status(it->status(), "scan of " + std::string(to_string(c)));
  }
  return out;
}

expected<size_t> db::sweep_expired(column c, uint64_t now_ms, size_t limit) {
  std::unique_ptr<rocksdb::Iterator> it(
      impl_->rocks->NewIterator(rocksdb::ReadOptions(), impl_->cf(c)));
  size_t removed = 0;
  for (it->SeekToFirst(); it->Valid() && removed < limit; it->Next()) {
    auto value = it->value();
    auto stored = decode_stored(std::string_view(value.data(), value.size()));
    if (stored && stored->expires_at_ms != 0 && stored->expires_at_ms <= now_ms) {
      [[maybe_unused]] const write_order ordered;
      auto s = impl_->rocks->Delete(impl_->write, impl_->cf(c), it->key());
      if (!s.ok()) {
        auto failed = from_status(s, "sweep of " + std::string(to_string(c)));
        record_failure(failed);
        return failed;
      }
      ++removed;
    }
  }
  if (!it->status().ok()) {
    return from_status(it->status(), "sweep of " + std::string(to_string(c)));
  }
  return removed;
}

}  // namespace troupe
