#pragma once

// An Asio io_context and the threads that run it. The node keeps one per
// kind of traffic (HTTP and WebSockets, PTY reads, upstream calls), so that
// no kind waits behind another; each thread carries the pool's name
// (`top -H`, perf and the thread map in docs/architecture.md show it).

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>

namespace boost::asio {
class io_context;
}

namespace troupe {

class io_threads {
 public:
  /// `name` (at most 15 bytes, the kernel's limit) names every thread. A
  /// non-zero `slice` asks the kernel for that scheduler slice for them
  /// (see set_thread_slice).
  io_threads(std::string name, uint32_t threads,
             std::chrono::microseconds slice = std::chrono::microseconds(0));
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

/// Asks the kernel to run the calling thread in slices of `slice` (0.1 to
/// 100 ms), keeping its policy and nice value. Under EEVDF (Linux 6.12 and
/// later) a thread that wakes with a shorter slice than the running one may
/// preempt it at once, so a long slice marks bulk work that gives way to
/// every interactive thread (a keystroke's echo, an HTTP request) while
/// keeping its fair share of the CPU. False when the kernel refuses (older
/// kernels; the thread then keeps the default).
bool set_thread_slice(std::chrono::microseconds slice);

}  // namespace troupe
