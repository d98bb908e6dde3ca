// Configuration loading (runtime/config): a TOML file and the environment,
// merged and validated by load_config. The input up to its first NUL byte
// is the file; after it come lines NAME=VALUE: a NAME with a '.' is a flag
// ("section.key"), any other an environment variable (TROUPE_ is prefixed
// when missing, so the fuzzer need not spell it).
//
// Invariants: loading never throws or crashes; a refusal is config_invalid
// and says why; loading is deterministic; what loads keeps the promises
// the table makes (order rules, bounds, URLs that parse), secrets never
// show in describe(), and base URLs print back to themselves.

#include <sys/mman.h>  // memfd_create
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <string>
#include <string_view>

#include "fuzz/support/fuzz_check.hpp"
#include "runtime/config/node_config.hpp"
#include "runtime/net/base_url.hpp"

namespace {

using namespace troupe;

/// load_config reads its file by path: the TOML goes into an in-memory
/// file, named through /proc, so no run touches the disk.
class memory_file {
 public:
  memory_file() : fd_(memfd_create("troupe-fuzz-config", 0)) {
    if (fd_ < 0) {
      std::perror("memfd_create");
      std::abort();
    }
    path_ = "/proc/self/fd/" + std::to_string(fd_);
  }
  ~memory_file() { close(fd_); }
  memory_file(const memory_file&) = delete;
  memory_file& operator=(const memory_file&) = delete;

  const std::string& write(std::string_view content) {
    FUZZ_CHECK(ftruncate(fd_, 0) == 0, "the config file can be emptied");
    size_t done = 0;
    while (done < content.size()) {
      const auto n =
          pwrite(fd_, content.data() + done, content.size() - done, static_cast<off_t>(done));
      FUZZ_CHECK(n > 0, "the config file can be written");
      done += static_cast<size_t>(n);
    }
    return path_;
  }

 private:
  int fd_;
  std::string path_;
};

config_sources sources_of(std::string_view input, const std::string& path) {
  config_sources sources;
  sources.file = path;
  const auto nul = input.find('\0');
  std::string_view rest =
      nul == std::string_view::npos ? std::string_view{} : input.substr(nul + 1);
  while (!rest.empty()) {
    const auto newline = rest.find('\n');
    const auto line = rest.substr(0, newline);
    rest = newline == std::string_view::npos ? std::string_view{} : rest.substr(newline + 1);
    const auto equals = line.find('=');
    if (equals == std::string_view::npos) {
      continue;
    }
    const std::string name(line.substr(0, equals));
    const std::string value(line.substr(equals + 1));
    if (name.find('.') != std::string::npos) {
      sources.flags[name] = value;
    } else {
      sources.env[name.starts_with("TROUPE_") ? name : "TROUPE_" + name] = value;
    }
  }
  return sources;
}

void check_url_prints_back(std::string_view text) {
  auto url = parse_base_url(text);
  FUZZ_CHECK(url.has_value(), "a loaded base URL parses");
  const std::string printed = to_string(*url);
  auto again = parse_base_url(printed);
  FUZZ_CHECK(again.has_value(), "a base URL printed by to_string parses");
  FUZZ_CHECK(to_string(*again) == printed, "a base URL prints back to itself");
  FUZZ_CHECK(again->host == url->host && again->port == url->port && again->tls == url->tls &&
                 again->base_path == url->base_path,
             "a printed base URL parses to the same URL");
}

/// What validation promised of a config that loaded.
void check_loaded(const node_config& config) {
  FUZZ_CHECK(!config.node.name.empty() && config.node.name.size() <= 64, "node names are 1..64");
  FUZZ_CHECK(config.node.scheduler_threads >= 1 && config.node.scheduler_threads <= 64,
             "scheduler threads are 1..64");
  FUZZ_CHECK(config.gateway.request_timeout_ms <= config.gateway.request_timeout_max_ms,
             "request_timeout_ms <= request_timeout_max_ms");
  FUZZ_CHECK(config.supervisor.backoff_min_ms <= config.supervisor.backoff_max_ms,
             "backoff_min_ms <= backoff_max_ms");
  FUZZ_CHECK(config.breaker.calls_min <= config.breaker.window_calls, "calls_min <= window_calls");
  FUZZ_CHECK(config.breaker.open_ms <= config.breaker.open_ms_max, "open_ms <= open_ms_max");
  FUZZ_CHECK(config.llm.retry_backoff_min_ms <= config.llm.retry_backoff_max_ms,
             "retry_backoff_min_ms <= retry_backoff_max_ms");
  FUZZ_CHECK(config.breaker.failure_rate_max > 0.0 && config.breaker.failure_rate_max <= 1.0,
             "failure_rate_max is in (0, 1]");
  FUZZ_CHECK(config.supervisor.backoff_jitter >= 0.0 && config.supervisor.backoff_jitter < 1.0,
             "backoff_jitter is in [0, 1)");
  check_url_prints_back(config.llm_anthropic.base_url);
  if (!config.llm.local_base_url.empty()) {
    check_url_prints_back(config.llm.local_base_url);
  }
  const std::string described = describe(config);
  FUZZ_CHECK(described.find("auth.token = (set)\n") != std::string::npos ||
                 described.find("auth.token = (generated)\n") != std::string::npos,
             "describe() masks the token");
  FUZZ_CHECK(described.find("llm.anthropic.api_key = (set)\n") != std::string::npos ||
                 described.find("llm.anthropic.api_key = (generated)\n") != std::string::npos,
             "describe() masks the API key");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static memory_file file;
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  const std::string& path = file.write(input.substr(0, input.find('\0')));
  const config_sources sources = sources_of(input, path);

  auto config = load_config(sources);
  auto again = load_config(sources);
  FUZZ_CHECK(config.has_value() == again.has_value(), "loading is deterministic");
  (void)ignored_environment(sources.env);
  if (!config) {
    FUZZ_CHECK(config.err().code == errc::config_invalid, "a refused config is config_invalid");
    FUZZ_CHECK(!config.err().message.empty(), "a refused config says why");
    FUZZ_CHECK(config.err().message == again.err().message, "a refusal is deterministic");
    return 0;
  }
  FUZZ_CHECK(describe(*config) == describe(*again), "a loaded config is deterministic");
  check_loaded(*config);
  return 0;
}
