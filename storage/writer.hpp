#pragma once

// Writes to the store from actors without waiting for the disk. A RocksDB
// put can stall on a memtable flush or a compaction, and a CAF scheduler
// thread that waits stalls every actor queued behind it (see the CAF notes):
// actors post their writes here instead, and one thread of the writer's own
// applies them, in the order they were posted.

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "storage/db.hpp"

namespace troupe {

class store_writer {
 public:
  /// `name` tells the writer's failures apart in the log.
  store_writer(std::shared_ptr<db> store, std::string name);
  /// Applies everything posted so far, then stops.
  ~store_writer();
  store_writer(const store_writer&) = delete;
  store_writer& operator=(const store_writer&) = delete;

  /// `expires_at_ms` as in db::put. A failed write is logged.
  void put(column c, std::string key, std::string value, uint64_t expires_at_ms = 0);
  void remove(column c, std::string key);
  /// Removes every key of `c` that starts with `prefix` (in bounded scans).
  void remove_prefix(column c, std::string prefix);

 private:
  enum class kind : uint8_t { put, remove, remove_prefix };
  struct op {
    kind what = kind::put;
    column col = column::meta;
    std::string key;
    std::string value;
    uint64_t expires_at_ms = 0;
  };

  void post(op o);
  void run();
  void apply(const op& o);

  std::shared_ptr<db> store_;
  std::string name_;
  std::mutex mutex_;
  std::condition_variable wake_;
  std::deque<op> queue_;
  bool stopping_ = false;
  std::thread thread_;
};

}  // namespace troupe
