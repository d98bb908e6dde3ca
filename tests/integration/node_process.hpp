#pragma once

// Runs real troupe-node and troupectl processes for integration tests: a
// temp data dir per node, port 0 so the kernel picks a free one, and waits
// on conditions with deadlines instead of sleeps.

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <sys/types.h>

namespace troupe::test {

struct process_result {
  int exit_code = -1;
  std::string out;
  std::string err;
};

/// Runs `argv` to completion (bounded by `timeout`) with extra `env` and
/// optional stdin text; returns exit code and output.
process_result run_process(const std::vector<std::string>& argv,
                           const std::map<std::string, std::string>& env = {},
                           const std::string& input = {},
                           std::chrono::milliseconds timeout = std::chrono::seconds(30));

/// A fresh temp directory, removed with its contents on destruction.
class temp_dir {
 public:
  temp_dir();
  ~temp_dir();
  temp_dir(const temp_dir&) = delete;
  temp_dir& operator=(const temp_dir&) = delete;
  [[nodiscard]] const std::string& path() const { return path_; }

 private:
  std::string path_;
};

class node_process {
 public:
  struct options {
    std::vector<std::string> args;
    std::map<std::string, std::string> env;
    /// Use this data dir instead of a fresh temp one.
    std::optional<std::string> data_dir;
  };

  explicit node_process(options opts);
  ~node_process();
  node_process(const node_process&) = delete;
  node_process& operator=(const node_process&) = delete;

  /// True once the node printed its URL; false if it exited or timed out.
  [[nodiscard]] bool started() const { return !url_.empty(); }
  [[nodiscard]] const std::string& url() const { return url_; }
  [[nodiscard]] const std::string& token() const { return token_; }
  [[nodiscard]] const std::string& data_dir() const { return data_dir_; }
  [[nodiscard]] pid_t pid() const { return pid_; }

  /// Sends `sig` and waits for exit; the exit code, or -1 on timeout.
  int stop(int sig, std::chrono::milliseconds timeout = std::chrono::seconds(20));
  /// Waits for the process to exit on its own; exit code or -1.
  int wait_exit(std::chrono::milliseconds timeout);

  [[nodiscard]] std::string stdout_text() const;
  [[nodiscard]] std::string stderr_text() const;

 private:
  std::optional<temp_dir> own_dir_;
  std::string data_dir_;
  std::string out_path_;
  std::string err_path_;
  pid_t pid_ = -1;
  std::string url_;
  std::string token_;
};

/// Lowers a running process's soft open-file limit to the number of files it
/// has open now, so that its next open/accept/openpty fails with EMFILE; the
/// old limit comes back on destruction.
class fd_limit_squeeze {
 public:
  explicit fd_limit_squeeze(pid_t pid);
  ~fd_limit_squeeze();
  fd_limit_squeeze(const fd_limit_squeeze&) = delete;
  fd_limit_squeeze& operator=(const fd_limit_squeeze&) = delete;
  /// Puts the old limit back now.
  void release();
  [[nodiscard]] bool applied() const { return applied_; }

 private:
  pid_t pid_;
  uint64_t soft_ = 0;
  uint64_t hard_ = 0;
  bool applied_ = false;
};

/// The mock Anthropic upstream (tests/support/mock_upstream) on a free
/// loopback port; killed on destruction.
class mock_upstream_process {
 public:
  explicit mock_upstream_process(std::vector<std::string> args = {});
  ~mock_upstream_process();
  mock_upstream_process(const mock_upstream_process&) = delete;
  mock_upstream_process& operator=(const mock_upstream_process&) = delete;

  [[nodiscard]] bool started() const { return !url_.empty(); }
  /// "http://127.0.0.1:PORT"
  [[nodiscard]] const std::string& url() const { return url_; }

 private:
  temp_dir dir_;
  pid_t pid_ = -1;
  std::string url_;
};

/// A TCP connection to the loopback `url` ("http://127.0.0.1:PORT"), for
/// tests that speak raw HTTP; -1 when it could not be made. The caller
/// closes it.
[[nodiscard]] int connect_loopback(const std::string& url);

/// Reads from `fd` until what was read contains `until` (empty: until the
/// peer closes), the peer closes, or 5 s pass; returns what was read.
[[nodiscard]] std::string read_until(int fd, const std::string& until = {});

/// How often `what` occurs in `text` (overlaps counted).
[[nodiscard]] size_t count_of(const std::string& text, const std::string& what);

/// Paths of the binaries under test (set by CMake).
[[nodiscard]] std::string node_binary();
[[nodiscard]] std::string troupectl_binary();

}  // namespace troupe::test
