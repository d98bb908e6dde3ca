// io_threads: an io_context with named threads of its own.

#include "runtime/net/io_threads.hpp"

#include <pthread.h>

#include <atomic>
#include <mutex>
#include <set>
#include <string>
#include <utility>  // before Asio: its awaitable.hpp uses std::exchange

#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <catch2/catch.hpp>

#include "tests/support/wait.hpp"

using namespace troupe;

namespace {

std::string this_thread_name() {
  char name[16] = {};
  ::pthread_getname_np(::pthread_self(), name, sizeof name);
  return name;
}

}  // namespace

TEST_CASE("io_threads runs handlers on its own threads, named, until stopped") {
  io_threads io("troupe-testpool", 2);
  std::mutex mutex;
  std::set<std::string> names;
  std::atomic<int> ran{0};
  auto post_some = [&] {
    for (int i = 0; i < 20; ++i) {
      boost::asio::post(io.context(), [&] {
        std::lock_guard lock(mutex);
        names.insert(this_thread_name());
        ++ran;
      });
    }
  };
  post_some();
  CHECK(ran.load() == 0);  // nothing runs before start()
  io.start();
  io.start();  // a second start adds no threads
  REQUIRE(test::wait_until([&] { return ran.load() == 20; }));
  // Idle, the threads keep running: later work is still done.
  post_some();
  REQUIRE(test::wait_until([&] { return ran.load() == 40; }));
  io.stop();
  io.stop();
  {
    std::lock_guard lock(mutex);
    CHECK(names == std::set<std::string>{"troupe-testpool"});
  }
  post_some();
  CHECK(ran.load() == 40);  // stopped: nothing runs
}

TEST_CASE("an io_threads name longer than the kernel keeps is cut, not refused") {
  io_threads io("troupe-a-very-long-pool-name", 1);
  std::atomic<bool> named{false};
  std::string seen;
  boost::asio::post(io.context(), [&] {
    seen = this_thread_name();
    named = true;
  });
  io.start();
  REQUIRE(test::wait_until([&] { return named.load(); }));
  CHECK(seen == "troupe-a-very-l");
}
