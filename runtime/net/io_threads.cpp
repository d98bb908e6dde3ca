#include "runtime/net/io_threads.hpp"

#include <pthread.h>

#include <optional>
#include <thread>
#include <utility>  // before Asio: its awaitable.hpp uses std::exchange
#include <vector>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>

namespace troupe {

namespace net = boost::asio;

struct io_threads::impl {
  impl(std::string n, uint32_t count) : name(std::move(n)), threads_wanted(count) {}
  std::string name;
  uint32_t threads_wanted;
  net::io_context ioc;
  std::optional<net::executor_work_guard<net::io_context::executor_type>> guard;
  std::vector<std::thread> threads;
};

io_threads::io_threads(std::string name, uint32_t threads)
    : impl_(std::make_unique<impl>(std::move(name), threads == 0 ? 1 : threads)) {}

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

}  // namespace troupe
