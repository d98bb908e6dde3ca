#pragma once

// Shared by the benches: statistics over samples, readings of a process
// from /proc, and the one-line JSON result every bench prints last (see
// docs/benchmarks.md).

#include <sys/types.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <optional>
#include <string>
#include <thread>
#include <vector>

namespace troupe::bench {

/// The q-quantile (0..1) of `samples` by nearest rank; 0 for none.
inline double quantile(std::vector<double> samples, double q) {
  if (samples.empty()) {
    return 0;
  }
  std::sort(samples.begin(), samples.end());
  auto rank = static_cast<size_t>(std::ceil(q * static_cast<double>(samples.size())));
  return samples[std::min(samples.size() - 1, rank == 0 ? 0 : rank - 1)];
}

inline double median(std::vector<double> samples) {
  return quantile(std::move(samples), 0.5);
}

/// Median absolute deviation: the spread that one outlier cannot move.
inline double mad(const std::vector<double>& samples) {
  const double m = median(samples);
  std::vector<double> dev;
  dev.reserve(samples.size());
  for (double s : samples) {
    dev.push_back(std::fabs(s - m));
  }
  return median(dev);
}

inline bool has_flag(int argc, char** argv, const char* flag) {
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], flag) == 0) {
      return true;
    }
  }
  return false;
}

/// `--name N` from the command line, else `fallback`.
inline int int_flag(int argc, char** argv, const char* name, int fallback) {
  for (int i = 1; i + 1 < argc; ++i) {
    if (std::strcmp(argv[i], name) == 0) {
      return std::stoi(argv[i + 1]);
    }
  }
  return fallback;
}

/// The argument after `flag` ("--only x" -> "x"); empty when absent.
inline std::string flag_value(int argc, char** argv, const char* flag) {
  for (int i = 1; i + 1 < argc; ++i) {
    if (std::strcmp(argv[i], flag) == 0) {
      return argv[i + 1];
    }
  }
  return {};
}

struct result {
  std::string bench;
  double figure = 0;
  std::string unit;
  double baseline = 0;
  double ratio = 0;
  double p50 = 0;
  double p99 = 0;
  int runs = 0;
};

/// Prints the machine-readable last line.
inline void print_json(const result& r) {
  std::printf(
      "{\"bench\": \"%s\", \"figure\": %.6g, \"unit\": \"%s\", \"baseline\": %.6g, "
      "\"ratio\": %.4f, \"p50\": %.6g, \"p99\": %.6g, \"runs\": %d}\n",
      r.bench.c_str(), r.figure, r.unit.c_str(), r.baseline, r.ratio, r.p50, r.p99, r.runs);
  std::fflush(stdout);
}

/// VmRSS of `pid` in KiB (/proc/<pid>/status); nullopt when unreadable.
inline std::optional<long> rss_kib(pid_t pid) {
  std::ifstream status("/proc/" + std::to_string(pid) + "/status");
  for (std::string line; std::getline(status, line);) {
    if (line.starts_with("VmRSS:")) {
      return std::stol(line.substr(6));  // "VmRSS:	   12345 kB"
    }
  }
  return std::nullopt;
}

/// The RSS of `pid` in KiB as the median of `samples` readings 100 ms
/// apart (one reading catches the allocator mid-change); nullopt if
/// unreadable.
inline std::optional<double> settled_rss_kib(pid_t pid, int samples) {
  std::vector<double> readings;
  for (int i = 0; i < samples; ++i) {
    if (i > 0) {
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    auto kib = rss_kib(pid);
    if (!kib) {
      return std::nullopt;
    }
    readings.push_back(static_cast<double>(*kib));
  }
  return median(readings);
}

/// CPU time (user + system) the process `pid` has used, in seconds
/// (/proc/<pid>/stat); 0 if it cannot be read.
inline double cpu_seconds(pid_t pid) {
  std::FILE* f = std::fopen(("/proc/" + std::to_string(pid) + "/stat").c_str(), "r");
  if (f == nullptr) {
    return 0;
  }
  char line[1024];
  const size_t n = std::fread(line, 1, sizeof line - 1, f);
  std::fclose(f);
  line[n] = 0;
  // Fields after the command (which may hold spaces) start past its ')'.
  const char* rest = std::strrchr(line, ')');
  unsigned long long utime = 0;
  unsigned long long stime = 0;
  if (rest == nullptr ||
      std::sscanf(rest + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &utime,
                  &stime) != 2) {
    return 0;
  }
  return static_cast<double>(utime + stime) / static_cast<double>(sysconf(_SC_CLK_TCK));
}

}  // namespace troupe::bench
