#include "storage/writer.hpp"

#include <utility>

#include <spdlog/logger.h>

#include "runtime/log/log.hpp"

namespace troupe {

namespace {

/// Rows one scan of remove_prefix reads; repeated until none are left.
constexpr size_t prefix_scan_rows = 10000;

}  // namespace

store_writer::store_writer(std::shared_ptr<db> store, std::string name)
    : store_(std::move(store)), name_(std::move(name)), thread_([this] { run(); }) {}

store_writer::~store_writer() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_one();
  thread_.join();
}

void store_writer::put(column c, std::string key, std::string value, uint64_t expires_at_ms) {
  post(op{kind::put, c, std::move(key), std::move(value), expires_at_ms});
}

void store_writer::remove(column c, std::string key) {
  post(op{kind::remove, c, std::move(key), {}, 0});
}

void store_writer::remove_prefix(column c, std::string prefix) {
  post(op{kind::remove_prefix, c, std::move(prefix), {}, 0});
}

void store_writer::post(op o) {
  {
    std::lock_guard lock(mutex_);
    queue_.push_back(std::move(o));
  }
  wake_.notify_one();
}

void store_writer::run() {
  std::unique_lock lock(mutex_);
  while (true) {
    wake_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
    if (queue_.empty()) {
      return;  // stopping, and everything posted is applied
    }
    auto batch = std::move(queue_);
    queue_.clear();
    lock.unlock();
    for (const auto& o : batch) {
      apply(o);
    }
    lock.lock();
  }
}

void store_writer::apply(const op& o) {
  auto failed = [&](const error& e) {
    logger("storage")->warn("{}: writing '{}' to column {} failed: {}", name_, o.key,
                            to_string(o.col), e.message);
  };
  switch (o.what) {
    case kind::put:
      if (auto r = store_->put(o.col, o.key, o.value, o.expires_at_ms); !r) {
        failed(r.err());
      }
      return;
    case kind::remove:
      if (auto r = store_->remove(o.col, o.key); !r) {
        failed(r.err());
      }
      return;
    case kind::remove_prefix:
      while (true) {
        auto rows = store_->scan_prefix(o.col, o.key, 0, prefix_scan_rows);
        if (!rows) {
          failed(rows.err());
          return;
        }
        for (const auto& [key, unused] : *rows) {
          if (auto r = store_->remove(o.col, key); !r) {
            failed(r.err());
            return;
          }
        }
        if (rows->size() < prefix_scan_rows) {
          return;
        }
      }
  }
}

}  // namespace troupe
