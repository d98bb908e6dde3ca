#pragma once

// An Asio io_context and the threads that run it. The node keeps one per
// kind of traffic (HTTP and WebSockets, PTY reads, upstream calls), so that
// no kind waits behind another; each thread carries the pool's name
// (`top -H`, perf and the thread map in docs/architecture.md show it).

#include <cstdint>
#include <memory>
#include <string>

namespace boost::asio {
class io_context;
}

namespace troupe {

class io_threads {
 public:
  /// `name` (at most 15 bytes, the kernel's limit) names every thread.
  io_threads(std::string name, uint32_t threads);
  /// Stops and joins the threads; handlers still queued are destroyed with
  /// the context.
  ~io_threads();
  io_threads(const io_threads&) = delete;
  io_threads& operator=(const io_threads&) = delete;

  [[nodiscard]] boost::asio::io_context& context();
  /// Starts the threads; they run until stop(), with or without work.
  /// Calling it again does nothing.
  void start();
  /// Stops the context and joins the threads. Calling it again does nothing.
  void stop();

 private:
  struct impl;
  std::unique_ptr<impl> impl_;
};

/// Names the calling thread (truncated to the kernel's 15 bytes).
void name_this_thread(const std::string& name);

}  // namespace troupe
