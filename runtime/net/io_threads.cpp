#include "runtime/net/io_threads.hpp"

#include <pthread.h>
#include <sched.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>

#include <optional>
#include <thread>
#include <utility>  // before Asio: its awaitable.hpp uses std::exchange
#include <vector>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>

namespace troupe {

namespace net = boost::asio;

namespace {

/// The kernel's struct sched_attr, first version (48 bytes): its header
/// cannot be included beside <sched.h>, and glibc wraps sched_setattr only
/// from 2.41 on.
struct kernel_sched_attr {
  uint32_t size;
  uint32_t sched_policy;
  uint64_t sched_flags;
  int32_t sched_nice;
  uint32_t sched_priority;
  uint64_t sched_runtime;
  uint64_t sched_deadline;
  uint64_t sched_period;
};
static_assert(sizeof(kernel_sched_attr) == 48);

}  // namespace

struct io_threads::impl {
  impl(std::string n, uint32_t count, std::chrono::microseconds s)
      : name(std::move(n)), threads_wanted(count), slice(s) {}
  std::string name;
  uint32_t threads_wanted;
  std::chrono::microseconds slice;
  net::io_context ioc;
  std::optional<net::executor_work_guard<net::io_context::executor_type>> guard;
  std::vector<std::thread> threads;
};

io_threads::io_threads(std::string name, uint32_t threads, std::chrono::microseconds slice)
    : impl_(std::make_unique<impl>(std::move(name), threads == 0 ? 1 : threads, slice)) {}

io_threads::~io_threads() {
  stop();
}

net::io_context& io_threads::context() {
  return impl_->ioc;
}

void io_threads::start() {
  if (!impl_->threads.empty()) {
    return;
  }
  impl_->guard.emplace(net::make_work_guard(impl_->ioc));
  for (uint32_t i = 0; i < impl_->threads_wanted; ++i) {
    impl_->threads.emplace_back([p = impl_.get()] {
      name_this_thread(p->name);
      if (p->slice.count() > 0) {
        set_thread_slice(p->slice);
      }
      p->ioc.run();
    });
  }
}

void io_threads::stop() {
  if (impl_->threads.empty()) {
    return;
  }
  impl_->guard.reset();
  impl_->ioc.stop();
  for (auto& t : impl_->threads) {
    t.join();
  }
  impl_->threads.clear();
}

void name_this_thread(const std::string& name) {
  // The kernel keeps 15 bytes and a NUL; a longer name is refused whole.
  ::pthread_setname_np(::pthread_self(), name.substr(0, 15).c_str());
}

bool set_thread_slice(std::chrono::microseconds slice) {
  kernel_sched_attr attr{};
  attr.size = sizeof attr;
  attr.sched_policy = static_cast<uint32_t>(::sched_getscheduler(0));
  if (attr.sched_policy != SCHED_OTHER && attr.sched_policy != SCHED_BATCH) {
    return false;  // real-time or idle: a slice means something else there
  }
  errno = 0;
  const int nice = ::getpriority(PRIO_PROCESS, static_cast<id_t>(::gettid()));
  if (errno != 0) {
    return false;
  }
  attr.sched_nice = nice;
  attr.sched_runtime = static_cast<uint64_t>(
      std::chrono::duration_cast<std::chrono::nanoseconds>(slice).count());
  return ::syscall(SYS_sched_setattr, 0, &attr, 0) == 0;
}

}  // namespace troupe
