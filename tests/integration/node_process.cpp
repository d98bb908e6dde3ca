#include "tests/integration/node_process.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <regex>
#include <sstream>
#include <stdexcept>
#include <thread>

extern char** environ;

namespace troupe::test {

namespace {

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

/// This process's environment without what would configure a node or its
/// upstream (TROUPE_*, ANTHROPIC_*), plus `extra`: a child sees only what its
/// test or bench gives it, whatever the shell that ran the suite had set.
std::vector<std::string> merged_env(const std::map<std::string, std::string>& extra) {
  std::map<std::string, std::string> env;
  for (char** e = environ; *e != nullptr; ++e) {
    std::string kv(*e);
    auto eq = kv.find('=');
    if (eq == std::string::npos || kv.starts_with("TROUPE_") || kv.starts_with("ANTHROPIC_")) {
      continue;
    }
    env[kv.substr(0, eq)] = kv.substr(eq + 1);
  }
  for (const auto& [k, v] : extra) {
    env[k] = v;
  }
  std::vector<std::string> out;
  for (const auto& [k, v] : env) {
    out.push_back(k + "=" + v);
  }
  return out;
}

/// Starts `argv` with stdin/stdout/stderr on the given files. The child is
/// killed when the process that started it dies (PR_SET_PDEATHSIG), so a
/// test or bench that crashes or aborts leaves no node running behind it to
/// skew whatever runs next.
pid_t spawn(const std::vector<std::string>& argv, const std::map<std::string, std::string>& env,
            const std::string& in_path, const std::string& out_path, const std::string& err_path) {
  std::vector<char*> args;
  for (const auto& a : argv) {
    args.push_back(const_cast<char*>(a.c_str()));
  }
  args.push_back(nullptr);
  auto env_strings = merged_env(env);
  std::vector<char*> envp;
  for (auto& e : env_strings) {
    envp.push_back(e.data());
  }
  envp.push_back(nullptr);
  const pid_t parent = ::getpid();
  const pid_t pid = ::fork();
  if (pid < 0) {
    throw std::runtime_error("cannot spawn " + argv[0] + ": " + std::strerror(errno));
  }
  if (pid == 0) {
    // The child of a threaded process: async-signal-safe calls only.
    if (::prctl(PR_SET_PDEATHSIG, SIGKILL) != 0 || ::getppid() != parent) {
      ::_exit(127);
    }
    const int in = ::open(in_path.c_str(), O_RDONLY | O_CLOEXEC);
    const int out = ::open(out_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    const int err = ::open(err_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (in < 0 || out < 0 || err < 0 || ::dup2(in, 0) < 0 || ::dup2(out, 1) < 0 ||
        ::dup2(err, 2) < 0) {
      ::_exit(127);
    }
    ::execve(args[0], args.data(), envp.data());
    ::_exit(127);
  }
  return pid;
}

/// Waits for `pid` to exit within `timeout`; the exit code (128+signal for a
/// signal), or -1 if it is still running.
int wait_for(pid_t pid, std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    int status = 0;
    pid_t r = waitpid(pid, &status, WNOHANG);
    if (r == pid) {
      return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    }
    if (std::chrono::steady_clock::now() >= deadline) {
      return -1;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
}

}  // namespace

temp_dir::temp_dir() {
  std::random_device rd;
  auto base = std::filesystem::temp_directory_path();
  for (int attempt = 0; attempt < 100; ++attempt) {
    auto candidate = base / ("troupe-test-" + std::to_string(rd()));
    if (std::filesystem::create_directory(candidate)) {
      path_ = candidate.string();
      return;
    }
  }
  throw std::runtime_error("cannot create a temp dir");
}

temp_dir::~temp_dir() {
  std::error_code ec;
  std::filesystem::remove_all(path_, ec);
}

process_result run_process(const std::vector<std::string>& argv,
                           const std::map<std::string, std::string>& env, const std::string& input,
                           std::chrono::milliseconds timeout) {
  temp_dir dir;
  const auto in_path = dir.path() + "/in";
  const auto out_path = dir.path() + "/out";
  const auto err_path = dir.path() + "/err";
  std::ofstream(in_path) << input;
  pid_t pid = spawn(argv, env, in_path, out_path, err_path);
  process_result result;
  result.exit_code = wait_for(pid, timeout);
  if (result.exit_code == -1) {
    kill(pid, SIGKILL);
    wait_for(pid, std::chrono::seconds(5));
  }
  result.out = read_file(out_path);
  result.err = read_file(err_path);
  return result;
}

node_process::node_process(options opts) {
  if (opts.data_dir) {
    data_dir_ = *opts.data_dir;
  } else {
    own_dir_.emplace();
    data_dir_ = own_dir_->path() + "/data";
  }
  // Output files live beside the data dir so a restarted node does not
  // overwrite a previous one's logs in the same test.
  static int counter = 0;
  const auto log_base = std::filesystem::path(data_dir_).parent_path().string() + "/node-" +
                        std::to_string(getpid()) + "-" + std::to_string(++counter);
  out_path_ = log_base + ".out";
  err_path_ = log_base + ".err";
  std::vector<std::string> argv{node_binary(), "--listen", "127.0.0.1:0", "--data-dir", data_dir_};
  argv.insert(argv.end(), opts.args.begin(), opts.args.end());
  // Tests keep their files in temp dirs (temp_dir): those are the roots a
  // user would configure for their projects, unless a test says otherwise.
  opts.env.emplace("TROUPE_CACHE_DEPENDENCY_ROOTS",
                   std::filesystem::temp_directory_path().string());
  pid_ = spawn(argv, opts.env, "/dev/null", out_path_, err_path_);
  const std::regex listening("listening on (http://127\\.0\\.0\\.1:[0-9]+)");
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (std::chrono::steady_clock::now() < deadline) {
    std::smatch m;
    auto out = read_file(out_path_);
    if (std::regex_search(out, m, listening)) {
      url_ = m[1];
      token_ = read_file(data_dir_ + "/token");
      while (!token_.empty() && (token_.back() == '\n' || token_.back() == ' ')) {
        token_.pop_back();
      }
      return;
    }
    int status = 0;
    if (waitpid(pid_, &status, WNOHANG) == pid_) {
      pid_ = -1;
      return;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
}

node_process::~node_process() {
  int status = 0;
  if (pid_ > 0 && waitpid(pid_, &status, WNOHANG) == pid_) {
    pid_ = -1;
    // It failed while the test still used it (a crash, a sanitizer's
    // report; not a signal a test sends to stop it): the test's own
    // failures say what went wrong, the node's log why.
    const bool failed = WIFEXITED(status)
                            ? WEXITSTATUS(status) != 0
                            : WTERMSIG(status) != SIGKILL && WTERMSIG(status) != SIGTERM &&
                                  WTERMSIG(status) != SIGINT;
    if (failed) {
      const auto log = read_file(err_path_);
      const size_t tail = 16384;
      std::fprintf(stderr, "node_process: the node failed on its own (%s %d); its log ends:\n%s\n",
                   WIFEXITED(status) ? "exit status" : "signal",
                   WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status),
                   log.substr(log.size() > tail ? log.size() - tail : 0).c_str());
    }
  }
  if (pid_ > 0) {
    kill(pid_, SIGKILL);
    wait_for(pid_, std::chrono::seconds(10));
  }
  std::error_code ec;
  std::filesystem::remove(out_path_, ec);
  std::filesystem::remove(err_path_, ec);
}

int node_process::stop(int sig, std::chrono::milliseconds timeout) {
  if (pid_ <= 0) {
    return -1;
  }
  kill(pid_, sig);
  return wait_exit(timeout);
}

int node_process::wait_exit(std::chrono::milliseconds timeout) {
  if (pid_ <= 0) {
    return -1;
  }
  int code = wait_for(pid_, timeout);
  if (code != -1) {
    pid_ = -1;
  }
  return code;
}

std::string node_process::stdout_text() const {
  return read_file(out_path_);
}
std::string node_process::stderr_text() const {
  return read_file(err_path_);
}

int connect_loopback(const std::string& url) {
  const auto colon = url.rfind(':');
  if (colon == std::string::npos) {
    return -1;
  }
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    return -1;
  }
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(std::stoi(url.substr(colon + 1))));
  ::inet_pton(AF_INET, "127.0.0.1", &addr.sin_addr);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

std::string read_until(int fd, const std::string& until) {
  std::string seen;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  char buf[4096];
  while ((until.empty() || seen.find(until) == std::string::npos) &&
         std::chrono::steady_clock::now() < deadline) {
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, 100) <= 0) {
      continue;
    }
    const auto n = ::read(fd, buf, sizeof buf);
    if (n <= 0) {
      break;
    }
    seen.append(buf, static_cast<size_t>(n));
  }
  return seen;
}

size_t count_of(const std::string& text, const std::string& what) {
  size_t n = 0;
  for (auto at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) {
    ++n;
  }
  return n;
}

std::string node_binary() {
  // A/B runs of a bench point this at a build of the code before a change.
  if (const char* other = std::getenv("TROUPE_BENCH_NODE_BIN"); other != nullptr && *other != 0) {
    return other;
  }
  return TROUPE_NODE_BIN;
}
std::string troupectl_binary() {
  return TROUPECTL_BIN;
}

mock_upstream_process::mock_upstream_process(std::vector<std::string> args) {
  std::vector<std::string> argv{MOCK_UPSTREAM_BIN, "--listen", "127.0.0.1:0"};
  argv.insert(argv.end(), args.begin(), args.end());
  const auto out_path = dir_.path() + "/out";
  std::ofstream(dir_.path() + "/in") << "";
  pid_ = spawn(argv, {}, dir_.path() + "/in", out_path, dir_.path() + "/err");
  const std::regex listening("listening on (http://127\\.0\\.0\\.1:[0-9]+)");
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  while (std::chrono::steady_clock::now() < deadline) {
    std::smatch m;
    const auto out = read_file(out_path);
    if (std::regex_search(out, m, listening)) {
      url_ = m[1];
      return;
    }
    if (wait_for(pid_, std::chrono::milliseconds(0)) != -1) {
      pid_ = -1;
      return;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
}

mock_upstream_process::~mock_upstream_process() {
  if (pid_ > 0) {
    kill(pid_, SIGKILL);
    wait_for(pid_, std::chrono::seconds(5));
  }
}

fd_limit_squeeze::fd_limit_squeeze(pid_t pid) : pid_(pid) {
  rlimit old{};
  if (::prlimit(pid, RLIMIT_NOFILE, nullptr, &old) != 0) {
    return;
  }
  soft_ = old.rlim_cur;
  hard_ = old.rlim_max;
  std::error_code ec;
  uint64_t open_now = 0;
  for (std::filesystem::directory_iterator it("/proc/" + std::to_string(pid) + "/fd", ec), end;
       !ec && it != end; it.increment(ec)) {
    ++open_now;
  }
  if (ec || open_now == 0) {
    return;
  }
  const rlimit tight{open_now, old.rlim_max};
  applied_ = ::prlimit(pid, RLIMIT_NOFILE, &tight, nullptr) == 0;
}

fd_limit_squeeze::~fd_limit_squeeze() {
  release();
}

void fd_limit_squeeze::release() {
  if (applied_) {
    const rlimit old{soft_, hard_};
    ::prlimit(pid_, RLIMIT_NOFILE, &old, nullptr);
    applied_ = false;
  }
}

}  // namespace troupe::test
