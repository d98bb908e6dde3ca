#include "actors/cache/watcher.hpp"

#include <poll.h>
#include <sys/eventfd.h>
#include <sys/inotify.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <filesystem>
#include <map>
#include <mutex>
#include <thread>

#include <spdlog/logger.h>
#include <caf/all.hpp>

#include "actors/cache/messages.hpp"
#include "runtime/actor/envelope_message.hpp"
#include "runtime/actor/serve.hpp"
#include "runtime/log/log.hpp"
#include "runtime/node/node_context.hpp"

namespace troupe {

namespace {

constexpr uint32_t watch_mask = IN_MODIFY | IN_ATTRIB | IN_CLOSE_WRITE | IN_CREATE | IN_DELETE |
                                IN_MOVED_FROM | IN_MOVED_TO | IN_DELETE_SELF | IN_MOVE_SELF;

/// Owns the inotify descriptor and the thread reading it. Watches are added
/// from the actor's thread; events are handled on the reader thread.
class inotify_loop {
 public:
  explicit inotify_loop(std::shared_ptr<node_context> ctx)
      : ctx_(std::move(ctx)),
        log_(logger("cache")),
        inotify_fd_(inotify_init1(IN_NONBLOCK | IN_CLOEXEC)),
        wake_fd_(eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) {
    if (inotify_fd_ < 0 || wake_fd_ < 0) {
      log_->error("cache watcher: inotify unavailable; relying on read-time checks");
      return;
    }
    reader_ = std::thread([this] { run(); });
  }

  ~inotify_loop() {
    stopping_ = true;
    if (wake_fd_ >= 0) {
      uint64_t one = 1;
      (void)::write(wake_fd_, &one, sizeof(one));
    }
    if (reader_.joinable()) {
      reader_.join();
    }
    for (int fd : {inotify_fd_, wake_fd_}) {
      if (fd >= 0) {
        ::close(fd);
      }
    }
  }

  /// Watches `path`; a directory with its subdirectories (inotify is not
  /// recursive), within watched_paths_max.
  void watch(const std::string& path) {
    {
      std::lock_guard lock(mutex_);
      if (by_path_.count(path) != 0) {
        return;  // watched already, with its subdirectories
      }
    }
    add(path);
    std::error_code ec;
    if (!std::filesystem::is_directory(path, ec)) {
      return;
    }
    for (std::filesystem::recursive_directory_iterator
             it(path, std::filesystem::directory_options::skip_permission_denied, ec),
         end;
         !ec && it != end; it.increment(ec)) {
      if (it->is_directory(ec) && !it->is_symlink(ec)) {
        add(it->path().string());
      }
    }
  }

 private:
  void add(const std::string& path) {
    if (inotify_fd_ < 0) {
      return;
    }
    std::lock_guard lock(mutex_);
    if (by_path_.count(path) != 0) {
      return;
    }
    if (by_path_.size() >= watched_paths_max) {
      log_->warn("cache watcher: {} paths watched already; not watching {}", watched_paths_max,
                 path);
      return;
    }
    const int wd = inotify_add_watch(inotify_fd_, path.c_str(), watch_mask);
    if (wd < 0) {
      return;  // gone already: the read-time check catches it
    }
    by_path_[path] = wd;
    by_wd_[wd] = path;
  }

  void run() {
    std::array<pollfd, 2> fds{pollfd{inotify_fd_, POLLIN, 0}, pollfd{wake_fd_, POLLIN, 0}};
    alignas(inotify_event) char buf[16384];
    while (!stopping_) {
      if (::poll(fds.data(), fds.size(), -1) < 0 || stopping_) {
        continue;
      }
      const ssize_t n = ::read(inotify_fd_, buf, sizeof(buf));
      if (n <= 0) {
        continue;
      }
      std::vector<std::string> changed;
      for (ssize_t off = 0; off < n;) {
        const auto* ev = reinterpret_cast<const inotify_event*>(buf + off);
        off += static_cast<ssize_t>(sizeof(inotify_event) + ev->len);
        std::lock_guard lock(mutex_);
        auto it = by_wd_.find(ev->wd);
        if (it == by_wd_.end()) {
          continue;
        }
        // A change inside a watched directory is a change of the entry
        // depending on that directory, and of anything depending on the
        // child path itself.
        changed.push_back(ev->len > 0 ? it->second + "/" + ev->name : it->second);
        if ((ev->mask & (IN_DELETE_SELF | IN_MOVE_SELF | IN_IGNORED)) != 0) {
          by_path_.erase(it->second);
          by_wd_.erase(it);
        }
      }
      if (!changed.empty()) {
        invalidate(changed);
      }
    }
  }

  /// Sends the changed paths to every shard; fire-and-forget, since each
  /// shard answers for itself and the read-time check backs it up.
  void invalidate(const std::vector<std::string>& paths) {
    const auto msg = make_envelope(cache::invalidate_type, cache::invalidate_request{paths, {}});
    const uint32_t shards = cache::shard_count(ctx_->config);
    for (uint32_t i = 0; i < shards; ++i) {
      if (auto shard = ctx_->registry.current("cache/shard-" + std::to_string(i))) {
        caf::anon_send(shard, msg.type, msg.body, msg.correlation_id);
      }
    }
    ctx_->metrics.counter("troupe_cache_watch_events_total", "Dependency changes the watcher saw")
        .inc(paths.size());
  }

  std::shared_ptr<node_context> ctx_;
  std::shared_ptr<spdlog::logger> log_;
  int inotify_fd_;
  int wake_fd_;
  std::atomic<bool> stopping_{false};
  std::mutex mutex_;
  std::map<std::string, int> by_path_;
  std::map<int, std::string> by_wd_;
  std::thread reader_;
};

}  // namespace

child_spec watcher_child(std::shared_ptr<node_context> ctx) {
  child_spec spec;
  spec.name = "watcher";
  spec.start = [ctx](caf::actor_system& system, const std::string&) {
    // Detached: watching a directory walks it, which must not hold a
    // scheduler thread.
    return system.spawn<caf::detached>([ctx](caf::event_based_actor* self) -> caf::behavior {
      auto loop = std::make_shared<inotify_loop>(ctx);
      auto table = std::make_shared<handler_table>();
      table->on<watch_request>(watch_type, [loop](const watch_request& req) {
        for (const auto& path : req.paths) {
          loop->watch(path);
        }
        return expected<empty_body>(empty_body{});
      });
      return serve(self, table);
    });
  };
  return spec;
}

}  // namespace troupe
